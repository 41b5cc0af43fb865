//! Black-box tests of the server-rendered pages and the form.

use crate::common::{TestApp, client, spawn_app, spawn_app_with};
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::multipart::{Form, Part};
use sentiq::jobs::worker::{self, Outcome};

fn id_from_location(r: &reqwest::Response) -> String {
    let location = r.headers()[LOCATION].to_str().unwrap();
    location
        .strip_prefix("/analyses/")
        .unwrap_or_else(|| panic!("unexpected Location {location}"))
        .to_owned()
}

const TOKEN_FIELD: &str = "name=\"csrf\" value=\"";

/// The CSRF token in the page's form.
fn token_in(html: &str) -> String {
    let start = html.find(TOKEN_FIELD).expect("a form with a csrf field") + TOKEN_FIELD.len();
    let len = html[start..].find('"').expect("the end of the value");
    html[start..start + len].to_owned()
}

/// What a browser does before it posts: load the page with the form (which sets the token
/// cookie) and read the token from the hidden field.
pub(crate) async fn form_token(client: &reqwest::Client, url: &str) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    token_in(&html)
}

/// The analysis form sent urlencoded, its token first as the page has it.
async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = form_token(client, &app.url("/")).await;
    let mut body = vec![("csrf", token.as_str())];
    body.extend_from_slice(fields);
    client
        .post(app.url("/analyses"))
        .form(&body)
        .send()
        .await
        .unwrap()
}

/// The start of the analysis form sent as multipart: the page's token as the first part.
async fn multipart_form(app: &TestApp) -> Form {
    Form::new().text("csrf", form_token(&app.client, &app.url("/")).await)
}

async fn post_multipart(app: &TestApp, form: Form) -> reqwest::Response {
    app.client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The Cancel button of the status page, with the token of that page.
async fn post_cancel(app: &TestApp, id: &str) -> reqwest::Response {
    let token = form_token(&app.client, &app.url(&format!("/analyses/{id}"))).await;
    app.client
        .post(app.url(&format!("/analyses/{id}/cancel")))
        .form(&[("csrf", token)])
        .send()
        .await
        .unwrap()
}

/// The `Set-Cookie` header that starts with `prefix` (`name=`).
fn set_cookie(r: &reqwest::Response, prefix: &str) -> String {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} cookie set"))
}

/// A refused form post: the 403 page in words, in the site's layout.
async fn assert_refused(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 403, "{what}");
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{what}"
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("This form expired or was sent from another site."),
        "{what}: {html}"
    );
    assert!(html.contains("Reload the page and submit again."), "{what}");
    assert!(
        html.contains("/static/app.css"),
        "{what}: not in the layout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_page_has_a_textarea_a_file_upload_and_sets_an_http_only_visitor_cookie() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r, "sentiq_visitor=");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("<textarea id=\"text\" name=\"text\""));
    assert!(html.contains("type=\"file\""));
    assert!(html.contains("<label for=\"text\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("/static/app.css"));
    // A second visit keeps the cookie.
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_the_form_redirects_303_to_the_status_page_with_the_results() {
    let app = spawn_app().await;
    let r = post_form(
        &app,
        &app.client,
        &[(
            "text",
            "The food was delicious. The waiter was rude and slow.",
        )],
    )
    .await;
    assert_eq!(r.status(), 303);
    let id = id_from_location(&r);
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded");
    let html = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"histogram\""));
    assert!(html.contains("id=\"arc\""));
    assert!(html.contains("id=\"most-positive\""));
    assert!(html.contains("id=\"most-negative\""));
    assert!(html.contains("The food was delicious."));
    assert!(html.contains("<polyline class=\"arc-line\""));
    assert_eq!(html.matches("<rect class=\"bar").count(), 20);
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "final pages do not refresh"
    );
    assert!(html.contains("/api/jobs/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_csv_file_upload_is_analysed_row_by_row() {
    let app = spawn_app().await;
    let csv = "id,review\n1,Best purchase ever\n2,Worst purchase ever\n3,It is a chair\n";
    let form = multipart_form(&app).await.text("text", "").part(
        "file",
        Part::bytes(csv.as_bytes().to_vec())
            .file_name("reviews.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let r = post_multipart(&app, form).await;
    assert_eq!(r.status(), 303);
    let id = id_from_location(&r);
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["format"], "csv");
    assert_eq!(job["result"]["items"], 3);
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("reviews.csv"),
        "the upload is listed by its file name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_text_field_without_a_file_is_analysed_as_text() {
    let app = spawn_app().await;
    let form = multipart_form(&app)
        .await
        .text("text", "Sunny and warm. Lovely.")
        .part("file", Part::bytes(Vec::new()).file_name(""));
    let r = post_multipart(&app, form).await;
    assert_eq!(r.status(), 303);
    let job = app.wait_final(&id_from_location(&r)).await;
    assert_eq!(job["result"]["items"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_form_input_shows_the_error_in_words_and_creates_no_job() {
    let app = spawn_app_with(|c| {
        c.http.max_body_bytes = 2048;
        c.worker.run_in_process = false;
    })
    .await;
    // Blank text.
    let r = post_form(&app, &app.client, &[("text", "   \n ")]).await;
    assert_eq!(r.status(), 422);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("There is nothing to analyse"), "{html}");
    // Too large.
    let r = post_form(&app, &app.client, &[("text", &"x".repeat(4000))]).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("too large"));
    let form = multipart_form(&app)
        .await
        .part("file", Part::bytes(vec![b'a'; 4000]).file_name("big.txt"))
        .text("column", "after the file");
    let r = post_multipart(&app, form).await;
    assert_eq!(r.status(), 413);
    // Not UTF-8.
    let form = multipart_form(&app).await.part(
        "file",
        Part::bytes(b"ok\n\xff\xfe".to_vec()).file_name("latin1.txt"),
    );
    let r = post_multipart(&app, form).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("UTF-8"), "{html}");
    // A CSV without a text column names its columns.
    let form = multipart_form(&app).await.part(
        "file",
        Part::bytes(b"name,stars\nbob,5\n".to_vec()).file_name("people.csv"),
    );
    let r = post_multipart(&app, form).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("&quot;name&quot;, &quot;stars&quot;") || html.contains("&#34;name&#34;"),
        "{html}"
    );
    // Not a form at all.
    let r = app
        .client
        .post(app.url("/analyses"))
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_jobs_on_the_form_are_only_the_visitors_own() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let alice = client();
    let bob = client();
    for (who, text) in [
        (&alice, "Alice writes about apples"),
        (&bob, "Bob writes about bananas"),
    ] {
        let r = post_form(&app, who, &[("text", text)]).await;
        assert_eq!(r.status(), 303);
    }
    // An API job has no visitor and is listed for nobody.
    app.submit(&serde_json::json!({"text": "Carol via the API"}))
        .await;
    let page_a = alice
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page_b = bob
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page_a.contains("Alice writes about apples"));
    assert!(!page_a.contains("Bob writes"));
    assert!(page_b.contains("Bob writes about bananas"));
    assert!(!page_b.contains("Alice writes"));
    for page in [&page_a, &page_b] {
        assert!(!page.contains("Carol"));
    }
    let stranger = client()
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stranger.contains("id=\"no-recent\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_refreshes_itself_without_javascript_until_final() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = post_form(&app, &app.client, &[("text", "Hopeful beginnings.")]).await;
    let id = id_from_location(&r);
    let url = app.url(&format!("/analyses/{id}"));
    let html = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"2\"></noscript>"));
    assert!(html.contains("<progress id=\"progress\""));
    assert!(html.contains("<script src=\"/static/app.js\" defer></script>"));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
    let html = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("id=\"results\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_button_cancels_and_returns_to_the_status_page() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = post_form(&app, &app.client, &[("text", "Wait for me.")]).await;
    let id = id_from_location(&r);
    let r = post_cancel(&app, &id).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], format!("/analyses/{id}"));
    let html = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("This analysis was cancelled."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_text_is_escaped_on_every_page() {
    let app = spawn_app().await;
    let evil = "<script>alert('x')</script> I love <b>bold</b> things.";
    let r = post_form(&app, &app.client, &[("text", evil)]).await;
    let id = id_from_location(&r);
    app.wait_final(&id).await;
    for path in ["/".to_owned(), format!("/analyses/{id}")] {
        let html = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("<script>alert"), "{path}");
        assert!(!html.contains("<b>bold</b>"), "{path}");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_are_served_from_the_binary_and_unknown_pages_are_404() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = app
        .client
        .get(app.url("/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let r = app
        .client
        .get(app.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(r.text().await.unwrap().contains("If-None-Match"));
    for path in [
        format!("/analyses/{}", uuid::Uuid::new_v4()),
        "/analyses/garbage".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            r.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_with_a_form_set_a_strict_http_only_token_cookie_and_put_the_token_first_in_the_form()
{
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    let cookie = set_cookie(&r, "sentiq_csrf=");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let value = cookie["sentiq_csrf=".len()..].split(';').next().unwrap();
    assert!(
        value.len() >= 32 && value.bytes().all(|b| b.is_ascii_hexdigit()),
        "at least 128 random bits as hex: {value}"
    );
    let html = r.text().await.unwrap();
    assert_eq!(token_in(&html), value);
    let form = &html[html.find("<form").unwrap()..];
    let first_field = form.find("<input").unwrap();
    assert!(
        form[first_field..].starts_with(&format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{value}\">"
        )),
        "the token is the first field"
    );
    assert!(first_field < form.find("<textarea").unwrap());

    // The token stays the same: other pages and tabs keep working, and no cookie is set again.
    let r = post_form(&app, &app.client, &[("text", "Steady.")]).await;
    let id = id_from_location(&r);
    let r = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none());
    let html = r.text().await.unwrap();
    assert_eq!(
        token_in(&html),
        value,
        "the Cancel form carries the same token"
    );
    let cancel_form = &html[html.find("/cancel\"").unwrap()..];
    assert!(
        cancel_form[cancel_form.find('>').unwrap() + 1..]
            .trim_start()
            .starts_with("<input type=\"hidden\" name=\"csrf\"")
    );

    // Over https (behind the router) the cookie is Secure.
    let r = client()
        .get(app.url("/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&r, "sentiq_csrf=");
    assert!(cookie.contains("Secure"), "{cookie}");
    // A malformed cookie is replaced, not trusted.
    let r = client()
        .get(app.url("/"))
        .header("cookie", "sentiq_csrf=not-a-token")
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&r, "sentiq_csrf=");
    assert!(!cookie.contains("not-a-token"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_without_a_token_gets_403_and_writes_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    // The visitor has the cookie (the page was loaded), but the post carries no token.
    form_token(&app.client, &app.url("/")).await;
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", "Forged but friendly.")])
        .send()
        .await
        .unwrap();
    assert_refused(r, "urlencoded without a token").await;
    let form = Form::new().text("text", "Forged but friendly.");
    assert_refused(
        post_multipart(&app, form).await,
        "multipart without a token",
    )
    .await;
    // The token must come first: after an upload it is too late to check it.
    let token = form_token(&app.client, &app.url("/")).await;
    let form = Form::new()
        .part("file", Part::bytes(b"Lovely.".to_vec()).file_name("a.txt"))
        .text("csrf", token);
    assert_refused(post_multipart(&app, form).await, "multipart, token last").await;
    // A large forged upload still gets the page (its body is read and dropped), not a reset.
    let form = Form::new().part(
        "file",
        Part::bytes(vec![b'a'; 2 << 20]).file_name("big.txt"),
    );
    assert_refused(post_multipart(&app, form).await, "large multipart upload").await;
    // No cookie at all (a browser that never loaded the form).
    let r = client()
        .post(app.url("/analyses"))
        .form(&[("text", "Out of nowhere.")])
        .send()
        .await
        .unwrap();
    assert_refused(r, "no cookie").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_does_not_match_the_cookie_gets_403_and_writes_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let mine = form_token(&app.client, &app.url("/")).await;
    // Another visitor's real token: well-formed, but not this visitor's cookie.
    let theirs = form_token(&client(), &app.url("/")).await;
    assert_ne!(mine, theirs);
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("csrf", theirs.as_str()), ("text", "Not my token.")])
        .send()
        .await
        .unwrap();
    assert_refused(r, "urlencoded, another token").await;
    let form = Form::new()
        .text("csrf", theirs.clone())
        .text("text", "Not my token.");
    assert_refused(post_multipart(&app, form).await, "multipart, another token").await;
    let truncated = &mine[..mine.len() - 1];
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("csrf", truncated), ("text", "Almost my token.")])
        .send()
        .await
        .unwrap();
    assert_refused(r, "a token one digit short").await;
    // An empty field matches nothing.
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("csrf", ""), ("text", "Empty token.")])
        .send()
        .await
        .unwrap();
    assert_refused(r, "an empty token").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_gets_403_even_with_a_valid_token() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let token = form_token(&app.client, &app.url("/")).await;
    let forged = |name: &'static str, value: &'static str| {
        app.client
            .post(app.url("/analyses"))
            .header(name, value)
            .form(&[("csrf", token.as_str()), ("text", "From elsewhere.")])
            .send()
    };
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "http://127.0.0.1.evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        assert_refused(
            forged(name, value).await.unwrap(),
            &format!("{name}: {value}"),
        )
        .await;
    }
    let form = Form::new()
        .text("csrf", token.clone())
        .text("text", "From elsewhere.");
    let r = app
        .client
        .post(app.url("/analyses"))
        .header("sec-fetch-site", "cross-site")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_refused(r, "multipart, cross-site").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);

    // What a browser sends from the page itself passes.
    let r = app
        .client
        .post(app.url("/analyses"))
        .header("origin", app.address.as_str())
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", token.as_str()), ("text", "From home.")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(app.job_rows().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_form_post_without_a_valid_token_does_not_cancel_the_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = post_form(&app, &app.client, &[("text", "Do not stop me.")]).await;
    let id = id_from_location(&r);
    let url = app.url(&format!("/analyses/{id}/cancel"));
    let token = form_token(&app.client, &app.url(&format!("/analyses/{id}"))).await;
    let other = form_token(&client(), &app.url("/")).await;
    let r = app.client.post(&url).send().await.unwrap();
    assert_refused(r, "no body").await;
    let r = app
        .client
        .post(&url)
        .form(&[("csrf", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_refused(r, "another visitor's token").await;
    let r = app
        .client
        .post(&url)
        .header("origin", "https://evil.example")
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_refused(r, "cross-site, with the token").await;
    let r = client().post(&url).send().await.unwrap();
    assert_refused(r, "no cookie").await;
    assert_eq!(app.job(&id).await["status"], "queued");
    let cancelled: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sentiq_jobs WHERE status = 'cancelled'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(cancelled, 0);

    // The refusal leads back to the analysis, whose button then works.
    let r = app.client.post(&url).send().await.unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("href=\"/analyses/{id}\"")), "{html}");
    assert_eq!(post_cancel(&app, &id).await.status(), 303);
    assert_eq!(app.job(&id).await["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_refused_before_its_token_was_read_comes_back_with_a_token_that_works() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    // A browser without the cookie gets the form again (415: not a form body), with a fresh token.
    let visitor = client();
    let r = visitor
        .post(app.url("/analyses"))
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let cookie = set_cookie(&r, "sentiq_csrf=");
    let html = r.text().await.unwrap();
    let token = token_in(&html);
    assert!(
        cookie.starts_with(&format!("sentiq_csrf={token};")),
        "{cookie}"
    );
    let r = visitor
        .post(app.url("/analyses"))
        .form(&[("csrf", token.as_str()), ("text", "Second time lucky.")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(app.job_rows().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_over_the_submission_rate_gets_the_form_back_with_their_text_and_a_wait_in_words()
{
    let app = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.limits.submit_rate_per_minute = 6;
        c.limits.submit_burst = 1;
    })
    .await;
    let r = post_form(&app, &app.client, &[("text", "The first one is fine.")]).await;
    assert_eq!(r.status(), 303);
    let r = post_form(&app, &app.client, &[("text", "Sorry, one too many!")]).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After: {wait}");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Too many submissions from your address; please try again in"),
        "{html}"
    );
    assert!(
        html.contains("Sorry, one too many!"),
        "the text was not kept"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sentiq_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}
