//! The responses and request readings that several handlers share, so that every page, every
//! bundled file and every content-type check behaves the same wherever it is served.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

/// A rendered template as an HTML page. Pages show per-visitor or live state, so none is cached.
pub fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    html_with(status, body, &[])
}

/// [`html`] with `headers` added to the page. A failed rendering still answers the plain 500
/// without them: it is no longer the page they were meant for.
pub fn html_with(
    status: StatusCode,
    body: Result<String, askama::Error>,
    headers: &[(&'static str, &'static str)],
) -> HttpResponse {
    match body {
        Ok(b) => {
            let mut response = HttpResponse::build(status);
            response
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"));
            for &pair in headers {
                response.insert_header(pair);
            }
            response.body(b)
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side; please try again.")
        }
    }
}

/// A file built into the binary (a stylesheet, a script, a generated document), with the
/// caching its audience allows: `public` for the site's own files, `private` behind a login.
pub fn asset(
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static str,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, cache_control))
        .body(body)
}

/// The request's media type: its `Content-Type` without parameters, trimmed and lower-cased.
/// Empty when the header is missing or not visible ASCII, which no accepted type matches.
pub fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn media(content_type: Option<&str>) -> String {
        let mut req = TestRequest::default();
        if let Some(ct) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, ct));
        }
        media_type(&req.to_http_request())
    }

    #[test]
    fn the_media_type_is_the_lower_cased_essence() {
        assert_eq!(media(None), "");
        assert_eq!(media(Some("text/CSV")), "text/csv");
        assert_eq!(
            media(Some("Multipart/Form-Data ; boundary=XyZ")),
            "multipart/form-data"
        );
        assert_eq!(
            media(Some("application/x-www-form-urlencoded;charset=UTF-8")),
            "application/x-www-form-urlencoded"
        );
    }
}
