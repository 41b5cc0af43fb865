//! Reading and checking a submission cheaply, before anything is written: size, UTF-8, not
//! blank, JSON shape, a usable CSV text column. The full analysis happens in the worker.

use actix_web::web;
use futures_util::StreamExt;
use serde_json::Value;

use super::errors::ApiError;
use crate::analysis::input::CsvChunker;
use crate::analysis::{AnalysisError, Format, pytext};

/// A checked input, ready to become a job.
#[derive(Debug)]
pub struct Submission {
    pub format: Format,
    pub column: Option<String>,
    pub title: String,
    pub input: Vec<u8>,
    /// Where to POST the job's completion event, as given (checked by the handler, which may
    /// also take it from the query string).
    pub webhook_url: Option<String>,
}

/// Read a whole body, refusing it once it passes `limit` bytes. With `drain_up_to > 0` the rest
/// of a refused body (up to that many bytes in all) is read and dropped first, so a browser gets
/// the error page instead of a reset connection; API clients get the 413 at once.
pub async fn read_body(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    drain_up_to: u64,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        if declared.is_some_and(|len| len <= drain_up_to) {
            drain(&mut payload, drain_up_to).await;
        }
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            let seen = (body.len() + chunk.len()) as u64;
            drop(body);
            if seen < drain_up_to {
                drain(&mut payload, drain_up_to - seen).await;
            }
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Read and drop up to `max` more bytes of a body (for at most 30 s).
pub async fn drain<S, E>(payload: &mut S, max: u64)
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let mut seen = 0u64;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(Ok(chunk)) = payload.next().await {
            seen += chunk.len() as u64;
            if seen > max {
                break;
            }
        }
    })
    .await;
}

/// How much of a refused form body is read and dropped so the browser sees the error page.
pub fn form_drain_limit(limit: usize) -> u64 {
    (limit as u64).saturating_mul(4).min(512 << 20)
}

/// The body as UTF-8 text, or an error naming the line and byte offset of the first bad byte.
pub fn utf8(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| {
        let at = e.valid_up_to();
        let line = body[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        ApiError::from(AnalysisError::InvalidUtf8 {
            line,
            byte_offset: at as u64,
        })
    })
}

/// Whether the analysis would find nothing in `text`: whitespace as Python's `isspace` counts it
/// (which includes U+001C..U+001F), after the byte-order mark the analysis skips.
fn is_blank(text: &str) -> bool {
    pytext::strip(text.strip_prefix('\u{feff}').unwrap_or(text)).is_empty()
}

fn blank() -> ApiError {
    ApiError::EmptyInput("nothing to analyse: the text is empty".into())
}

/// A short label for the visitor's list of recent jobs.
pub fn title_of_text(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.chars().count() > 70 {
            out.push('…');
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A raw upload of `format` (text, CSV or JSONL).
pub fn from_raw(
    body: Vec<u8>,
    format: Format,
    column: Option<String>,
    title: Option<String>,
) -> Result<Submission, ApiError> {
    let text = utf8(&body)?;
    if is_blank(text) {
        return Err(blank());
    }
    let column = column.filter(|c| !c.trim().is_empty());
    if format == Format::Csv {
        CsvChunker::new(text.as_bytes(), column.as_deref())?;
    }
    let title = title.unwrap_or_else(|| match format {
        Format::Text => title_of_text(text),
        Format::Csv => "CSV upload".into(),
        _ => "JSONL upload".into(),
    });
    Ok(Submission {
        format,
        column,
        title,
        input: body,
        webhook_url: None,
    })
}

/// `{"text": "..."}` or `{"documents": [{"id": "...", "text": "..."}]}`.
pub fn from_json(body: &[u8]) -> Result<Submission, ApiError> {
    let text = utf8(body)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object with a \"text\" or \"documents\" field".into(),
        ));
    };
    let webhook_url = webhook_url_field(&map)?;
    document_or_batch(&map).map(|s| Submission { webhook_url, ..s })
}

/// The optional `webhook_url` field of a JSON body: a string, or absent (null counts as
/// absent).
fn webhook_url_field(map: &serde_json::Map<String, Value>) -> Result<Option<String>, ApiError> {
    match map.get("webhook_url") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) => Ok(Some(url.clone())),
        Some(_) => Err(ApiError::InvalidJson(
            "\"webhook_url\" must be a string (an http:// or https:// URL)".into(),
        )),
    }
}

/// The one document (`text`) or the batch (`documents`) of a JSON body.
fn document_or_batch(map: &serde_json::Map<String, Value>) -> Result<Submission, ApiError> {
    if let Some(t) = map.get("text") {
        let Value::String(t) = t else {
            return Err(ApiError::InvalidJson("\"text\" must be a string".into()));
        };
        if is_blank(t) {
            return Err(blank());
        }
        return Ok(Submission {
            format: Format::Text,
            column: None,
            title: title_of_text(t),
            input: t.as_bytes().to_vec(),
            webhook_url: None,
        });
    }
    if let Some(docs) = map.get("documents") {
        return documents(docs);
    }
    Err(ApiError::MissingField(
        "the body needs a \"text\" field (one document) or a \"documents\" field (a batch)".into(),
    ))
}

/// The `documents` of a batch, each checked, stored as `[{"id", "text"}]`.
fn documents(docs: &Value) -> Result<Submission, ApiError> {
    let Value::Array(docs) = docs else {
        return Err(ApiError::InvalidJson(
            "\"documents\" must be an array".into(),
        ));
    };
    let out = docs
        .iter()
        .enumerate()
        .map(|(i, d)| document(i, d))
        .collect::<Result<Vec<Value>, ApiError>>()?;
    if out.iter().all(|d| {
        d["text"]
            .as_str()
            .is_none_or(|t| pytext::strip(t).is_empty())
    }) {
        return Err(ApiError::EmptyInput(
            "nothing to analyse: the documents have no text".into(),
        ));
    }
    let n = out.len();
    let input = serde_json::to_vec(&out).map_err(ApiError::unexpected)?;
    Ok(Submission {
        format: Format::Documents,
        column: None,
        title: format!("{n} document{}", if n == 1 { "" } else { "s" }),
        input,
        webhook_url: None,
    })
}

/// Document `i` of a batch: an object with a string `text` and an optional string or number
/// `id`.
fn document(i: usize, d: &Value) -> Result<Value, ApiError> {
    let Some(obj) = d.as_object() else {
        return Err(ApiError::InvalidJson(format!(
            "documents[{i}] must be an object with a \"text\" field"
        )));
    };
    let text = match obj.get("text") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(ApiError::InvalidJson(format!(
                "documents[{i}].text must be a string"
            )));
        }
        None => {
            return Err(ApiError::MissingField(format!(
                "documents[{i}] has no \"text\" field"
            )));
        }
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(ApiError::InvalidJson(format!(
                "documents[{i}].id must be a string or a number"
            )));
        }
    };
    Ok(serde_json::json!({"id": id, "text": text}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_become_text_or_documents() {
        let s = from_json(br#"{"text": "Hello there"}"#).unwrap();
        assert_eq!(s.format, Format::Text);
        assert_eq!(s.input, b"Hello there");
        let s = from_json(br#"{"documents": [{"id": 7, "text": "a"}, {"text": "b"}]}"#).unwrap();
        assert_eq!(s.format, Format::Documents);
        assert_eq!(s.title, "2 documents");
        assert_eq!(s.webhook_url, None);
        let stored: serde_json::Value = serde_json::from_slice(&s.input).unwrap();
        assert_eq!(
            stored,
            serde_json::json!([{"id": "7", "text": "a"}, {"id": null, "text": "b"}])
        );
        let s = from_json(br#"{"text": "Hi", "webhook_url": "https://example.com/h"}"#).unwrap();
        assert_eq!(s.webhook_url.as_deref(), Some("https://example.com/h"));
    }

    #[test]
    fn json_errors_have_their_codes() {
        assert_eq!(from_json(b"{").unwrap_err().code(), "invalid_json");
        assert_eq!(from_json(b"{}").unwrap_err().code(), "missing_field");
        assert_eq!(
            from_json(br#"{"text": " "}"#).unwrap_err().code(),
            "empty_input"
        );
        assert_eq!(
            from_json(br#"{"text": 1}"#).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(from_json(b"\"\xff\"").unwrap_err().code(), "invalid_utf8");
        assert_eq!(
            from_json(br#"{"text": "hi", "webhook_url": 5}"#)
                .unwrap_err()
                .code(),
            "invalid_json"
        );
        assert_eq!(
            from_json(br#"{"documents": [{"id": [1], "text": "x"}]}"#)
                .unwrap_err()
                .code(),
            "invalid_json"
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let e = utf8(b"one\ntwo \xc3\x28").unwrap_err();
        assert_eq!(e.code(), "invalid_utf8");
        assert!(e.to_string().contains("line 2 at byte offset 8"), "{e}");
    }

    #[test]
    fn csv_uploads_need_a_text_column() {
        let e = from_raw(b"a,b\n1,2\n".to_vec(), Format::Csv, None, None).unwrap_err();
        assert_eq!(e.code(), "no_text_column");
        let ok = from_raw(b"a,b\n1,2\n".to_vec(), Format::Csv, Some("B".into()), None).unwrap();
        assert_eq!(ok.column.as_deref(), Some("B"));
    }

    #[test]
    fn titles_are_short_and_single_line() {
        let t = title_of_text("  Hello\n\nworld  ");
        assert_eq!(t, "Hello world");
        let long = title_of_text(&"word ".repeat(100));
        assert!(long.chars().count() < 90 && long.ends_with('…'));
    }
}
