//! Reading and checking a submission cheaply, before anything is written: size, UTF-8, not
//! blank, JSON shape, a usable CSV text column. The full analysis happens in the worker.

use actix_web::web;
use futures_util::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::errors::ApiError;
use super::upload::{Staged, Uploaded};
use crate::analysis::input::{Chunker, CsvChunker, Fields, JsonlChunker};
use crate::analysis::{AnalysisError, Format, pytext};

/// A checked input, ready to become a job.
#[derive(Debug)]
pub struct Submission {
    pub format: Format,
    /// The columns (CSV) or keys (JSONL) of the text, id, grouping and rating, as named.
    pub fields: Fields,
    pub title: String,
    pub input: Input,
    /// Where to POST the job's completion event, as given (checked by the handler, which may
    /// also take it from the query string).
    pub webhook_url: Option<String>,
}

/// A submission's input: in memory, or already written in parts ([`super::upload`]).
#[derive(Debug)]
pub enum Input {
    Whole(Vec<u8>),
    Staged(Box<Staged>),
}

impl Input {
    pub fn len(&self) -> usize {
        match self {
            Input::Whole(body) => body.len(),
            Input::Staged(s) => s.bytes as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when held whole.
    pub fn whole(&self) -> Option<&[u8]> {
        match self {
            Input::Whole(body) => Some(body),
            Input::Staged(_) => None,
        }
    }

    /// SHA-256 of the input (what a form's idempotency fingerprint covers).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        match self {
            Input::Whole(body) => sha2::Sha256::digest(body).into(),
            Input::Staged(s) => s.digest,
        }
    }
}

/// An upload of `format` read by [`super::upload::Upload`]: one held in memory is checked as
/// [`from_raw`] does; one written in parts was checked for UTF-8 and blankness part by part, and
/// its named columns are checked against its first part.
pub fn from_upload(
    uploaded: Uploaded,
    format: Format,
    mut fields: Fields,
    title: Option<String>,
) -> Result<Submission, ApiError> {
    let staged = match uploaded {
        Uploaded::Whole { body, .. } => return from_raw(body, format, fields, title),
        Uploaded::Staged(staged) => staged,
    };
    fields.text = fields.text.filter(|c| !c.trim().is_empty());
    let head = std::str::from_utf8(&staged.head).map_err(ApiError::unexpected)?;
    check_fields(head, format, &fields)?;
    let title = title.unwrap_or_else(|| default_title(format, head));
    Ok(Submission {
        format,
        fields,
        title,
        input: Input::Staged(staged),
        webhook_url: None,
    })
}

fn default_title(format: Format, text: &str) -> String {
    match format {
        Format::Text => title_of_text(text),
        Format::Csv => "CSV upload".into(),
        _ => "JSONL upload".into(),
    }
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
    let declared = super::upload::declared_length(req);
    if declared.is_some_and(|len| len > limit as u64) {
        if declared.is_some_and(|len| len <= drain_up_to) {
            drain(&mut payload, drain_up_to).await;
        }
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::unreadable("the body", &e))?;
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

/// The columns an analyst named, as sent (form fields or query parameters); blank ones count
/// as not given.
#[derive(Debug, Default, Deserialize)]
pub struct NamedFields {
    pub column: Option<String>,
    pub id_column: Option<String>,
    pub group_by: Option<String>,
    pub group_by_period: Option<String>,
    pub rating_column: Option<String>,
}

impl NamedFields {
    /// The named columns, checked for what can be checked without the input.
    pub fn parse(self) -> Result<Fields, ApiError> {
        let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let group_by = given(self.group_by);
        let group_by_period =
            match given(self.group_by_period) {
                None => None,
                Some(_) if group_by.is_none() => {
                    return Err(ApiError::Unprocessable {
                        code: "invalid_period",
                        message:
                            "group_by_period needs group_by: name the column of dates to group"
                                .into(),
                    });
                }
                Some(p) => Some(p.parse().map_err(
                    |e: crate::analysis::groups::UnknownPeriod| ApiError::Unprocessable {
                        code: "invalid_period",
                        message: e.to_string(),
                    },
                )?),
            };
        Ok(Fields {
            text: given(self.column),
            id: given(self.id_column),
            group_by,
            group_by_period,
            rating: given(self.rating_column),
        })
    }
}

/// Most input read at submission to check the values of a chosen rating column (the rest is
/// checked by the worker, which fails the job with the same message).
const RATING_CHECK_BYTES: usize = 1 << 20;

/// Check `fields` against the input: every named column exists (CSV header, or the first JSONL
/// object) and a chosen rating column holds numbers in the first megabyte.
fn check_fields(text: &str, format: Format, fields: &Fields) -> Result<(), ApiError> {
    match format {
        Format::Csv => {
            CsvChunker::new(text.as_bytes(), fields)?;
            if fields.rating.is_some() {
                let head = prefix(text, RATING_CHECK_BYTES);
                rating_check(CsvChunker::new(head.as_bytes(), fields)?.next_chunk())?;
            }
            Ok(())
        }
        Format::Jsonl => {
            let first = text
                .lines()
                .find(|l| !pytext::strip(l).is_empty())
                .unwrap_or("");
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(first) else {
                // The worker names the bad line.
                return Ok(());
            };
            let keys: Vec<String> = object.keys().cloned().collect();
            let roles = [
                ("id", &fields.id),
                ("group_by", &fields.group_by),
                ("rating", &fields.rating),
            ];
            for (role, wanted) in roles {
                if let Some(w) = wanted
                    && !object.contains_key(w)
                {
                    return Err(AnalysisError::UnknownColumn {
                        role,
                        wanted: w.clone(),
                        columns: keys,
                    }
                    .into());
                }
            }
            if fields.rating.is_some() {
                let head = prefix(text, RATING_CHECK_BYTES);
                rating_check(JsonlChunker::new(head.as_bytes(), fields).next_chunk())?;
            }
            Ok(())
        }
        // A text column named for plain text was always ignored.
        _ if fields.only_text() => Ok(()),
        _ => Err(ApiError::Unprocessable {
            code: "unknown_column",
            message: "column, id_column, group_by and rating_column name columns of a CSV \
                      upload or keys of JSON lines; this input is plain text"
                .into(),
        }),
    }
}

/// The first `max` bytes of `text`, cut after a line feed (a CSV record may hold line feeds, and
/// one cut inside quotes is only a shorter last record to the check).
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    match memchr::memrchr(b'\n', &text.as_bytes()[..max]) {
        Some(nl) => &text[..=nl],
        None => "",
    }
}

/// The outcome of the rating check: only a rating that is not a number is refused here (a
/// record cut by [`prefix`] may look broken, and the worker reports broken records anyway).
fn rating_check<T>(read: Result<T, AnalysisError>) -> Result<(), ApiError> {
    match read {
        Err(AnalysisError::BadRecord { line, message })
            if message.starts_with("the rating column") =>
        {
            Err(AnalysisError::BadRecord { line, message }.into())
        }
        _ => Ok(()),
    }
}

/// A raw upload of `format` (text, CSV or JSONL).
pub fn from_raw(
    body: Vec<u8>,
    format: Format,
    mut fields: Fields,
    title: Option<String>,
) -> Result<Submission, ApiError> {
    fields.text = fields.text.filter(|c| !c.trim().is_empty());
    let text = utf8(&body)?;
    if is_blank(text) {
        return Err(blank());
    }
    check_fields(text, format, &fields)?;
    let title = title.unwrap_or_else(|| default_title(format, text));
    Ok(Submission {
        format,
        fields,
        title,
        input: Input::Whole(body),
        webhook_url: None,
    })
}

/// The JSON body of `POST /api/jobs`: one document (`text`) or a batch (`documents`). It is both
/// what the body is parsed into and its OpenAPI schema, so the two cannot drift. Other fields
/// are ignored. The field deserializers give the messages of the bad-input table (`null` is
/// "not a string", not "absent"); what no type can say (neither field, blank text) is checked
/// by [`SubmissionBody::into_submission`].
#[derive(Deserialize, ToSchema)]
#[serde(expecting = "a JSON object with a \"text\" or \"documents\" field")]
pub struct SubmissionBody {
    /// One document; it is split into sentences. Must not be blank.
    #[serde(default, deserialize_with = "some_string")]
    #[schema(nullable = false)]
    pub text: Option<String>,
    /// A batch, one item per document; at least one must have text that is not blank. Not
    /// together with `text`.
    #[serde(default, deserialize_with = "some_documents")]
    #[schema(nullable = false)]
    pub documents: Option<Vec<Document>>,
    /// Where to POST the job's completion event (Standard Webhooks): an `http` or `https` URL
    /// of a public host, at most 2,048 characters. Needs `WEBHOOK_SECRET` on the server.
    #[serde(default, deserialize_with = "string_or_null")]
    #[schema(max_length = 2048)]
    pub webhook_url: Option<String>,
}

/// One document of a batch.
#[derive(Serialize, ToSchema)]
pub struct Document {
    /// The caller's id for the document, echoed in the results (a number is kept as text).
    #[schema(value_type = Option<DocumentId>)]
    pub id: Option<String>,
    #[schema(required = true, nullable = false)]
    pub text: Option<String>,
}

/// Only an object is a document: serde's derive would also take an array (`["7", "Hi"]` as id
/// and text), so the fields are read by hand.
impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Document, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Document;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with a \"text\" field")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Document, A::Error> {
                let mut doc = Document {
                    id: None,
                    text: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => doc.id = map.next_value::<DocumentIdText>()?.into_text(),
                        "text" => match map.next_value::<Value>()? {
                            Value::String(text) => doc.text = Some(text),
                            _ => return Err(serde::de::Error::custom("text must be a string")),
                        },
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(doc)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A document's id as sent: a string or a number (kept as text), or null.
#[derive(ToSchema)]
#[schema(description = "A string or a number (kept as text).")]
pub enum DocumentId {
    #[schema(title = "string")]
    Text(String),
    #[schema(title = "number")]
    Number(f64),
}

/// The id as stored: the text of a string or number, None for null.
struct DocumentIdText(Option<String>);

impl DocumentIdText {
    fn into_text(self) -> Option<String> {
        self.0
    }
}

impl<'de> Deserialize<'de> for DocumentIdText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DocumentIdText, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(DocumentIdText(None)),
            Value::String(s) => Ok(DocumentIdText(Some(s))),
            Value::Number(n) => Ok(DocumentIdText(Some(n.to_string()))),
            _ => Err(serde::de::Error::custom("id must be a string or a number")),
        }
    }
}

impl SubmissionBody {
    /// Parse a JSON body: invalid UTF-8, invalid JSON and fields of the wrong type are refused
    /// with the field's path (`documents[2].text: must be a string`).
    pub fn parse(body: &[u8]) -> Result<SubmissionBody, ApiError> {
        let text = utf8(body)?;
        // serde_json limits the nesting of what it parses into values, not of the fields it
        // skips; a body nested absurdly deep is refused either way.
        if nests_deeper_than(body, MAX_JSON_DEPTH) {
            return Err(ApiError::InvalidJson(format!(
                "the body is not valid JSON: it nests deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        // serde's derive would take an array too, as the fields in order.
        if text
            .trim_start_matches(['\u{feff}', ' ', '\t', '\n', '\r'])
            .starts_with('[')
        {
            return Err(ApiError::InvalidJson(
                "the body must be a JSON object with a \"text\" or \"documents\" field, not an \
                 array"
                    .into(),
            ));
        }
        let mut json = serde_json::Deserializer::from_str(text);
        let parsed: SubmissionBody =
            serde_path_to_error::deserialize(&mut json).map_err(json_error)?;
        json.end()
            .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))?;
        Ok(parsed)
    }

    /// The checked input: one document or a batch, not blank.
    pub fn into_submission(self) -> Result<Submission, ApiError> {
        let webhook_url = self.webhook_url;
        let submission = match (self.text, self.documents) {
            (Some(text), None) => {
                if is_blank(&text) {
                    return Err(blank());
                }
                Ok(Submission {
                    format: Format::Text,
                    fields: Fields::default(),
                    title: title_of_text(&text),
                    input: Input::Whole(text.into_bytes()),
                    webhook_url: None,
                })
            }
            (None, Some(docs)) => documents(docs),
            (Some(_), Some(_)) => Err(ApiError::InvalidJson(
                "send either \"text\" (one document) or \"documents\" (a batch), not both".into(),
            )),
            (None, None) => Err(ApiError::MissingField(
                "the body needs a \"text\" field (one document) or a \"documents\" field (a batch)"
                    .into(),
            )),
        }?;
        Ok(Submission {
            webhook_url,
            ..submission
        })
    }
}

/// The deepest nesting of arrays and objects a JSON body may have (serde_json's own limit for
/// values).
const MAX_JSON_DEPTH: usize = 128;

/// Whether the arrays and objects of `json` nest deeper than `max` (brackets inside strings do
/// not count). Strings are skipped with `memchr`, so a large text costs little.
fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let (mut depth, mut at) = (0usize, 0usize);
    while at < json.len() {
        match json[at] {
            b'"' => {
                // To the closing quote: the next quote not escaped by a backslash.
                loop {
                    match memchr::memchr2(b'"', b'\\', &json[at + 1..]) {
                        Some(i) if json[at + 1 + i] == b'\\' => at += i + 2,
                        Some(i) => {
                            at += i + 1;
                            break;
                        }
                        None => return false,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

/// A JSON submission, parsed and checked.
pub fn from_json(body: &[u8]) -> Result<Submission, ApiError> {
    SubmissionBody::parse(body)?.into_submission()
}

/// A JSON error as the client should read it: where in the body, and what is wrong.
fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data if path != "." => {
            ApiError::InvalidJson(format!("{path}: {inner}"))
        }
        serde_json::error::Category::Data => ApiError::InvalidJson(format!("the body is {inner}")),
        _ => ApiError::InvalidJson(format!("the body is not valid JSON: {inner}")),
    }
}

/// A batch, checked (every document has a `text`, not all are blank) and stored as
/// `[{"id", "text"}]`.
fn documents(docs: Vec<Document>) -> Result<Submission, ApiError> {
    if let Some(i) = docs.iter().position(|d| d.text.is_none()) {
        return Err(ApiError::MissingField(format!(
            "documents[{i}] has no \"text\" field"
        )));
    }
    if docs.iter().all(|d| {
        d.text
            .as_deref()
            .is_none_or(|t| pytext::strip(t).is_empty())
    }) {
        return Err(ApiError::EmptyInput(
            "nothing to analyse: the documents have no text".into(),
        ));
    }
    let n = docs.len();
    let input = serde_json::to_vec(&docs).map_err(ApiError::unexpected)?;
    Ok(Submission {
        format: Format::Documents,
        fields: Fields::default(),
        title: format!("{n} document{}", if n == 1 { "" } else { "s" }),
        input: Input::Whole(input),
        webhook_url: None,
    })
}

/// A string, or absent (`null` counts as absent).
fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(serde::de::Error::custom(
            "must be a string (an http:// or https:// URL)",
        )),
    }
}

/// A present field must be a string (`null` included: it is not "absent").
fn some_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(Some(s)),
        _ => Err(serde::de::Error::custom("must be a string")),
    }
}

fn some_documents<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Document>>, D::Error> {
    struct Documents;
    impl<'de> serde::de::Visitor<'de> for Documents {
        type Value = Vec<Document>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of documents")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut docs = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(doc) = seq.next_element()? {
                docs.push(doc);
            }
            Ok(docs)
        }
    }
    d.deserialize_any(Documents).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_become_text_or_documents() {
        let s = from_json(br#"{"text": "Hello there"}"#).unwrap();
        assert_eq!(s.format, Format::Text);
        assert!(matches!(&s.input, Input::Whole(b) if b == b"Hello there"));
        let s = from_json(br#"{"documents": [{"id": 7, "text": "a"}, {"text": "b"}]}"#).unwrap();
        assert_eq!(s.format, Format::Documents);
        assert_eq!(s.title, "2 documents");
        assert_eq!(s.webhook_url, None);
        let Input::Whole(input) = &s.input else {
            panic!("a JSON body is held whole")
        };
        let stored: serde_json::Value = serde_json::from_slice(input).unwrap();
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
    fn nesting_is_measured_outside_strings_only() {
        assert!(!nests_deeper_than(br#"{"a": [[1]]}"#, 3));
        assert!(nests_deeper_than(br#"{"a": [[[1]]]}"#, 3));
        assert!(!nests_deeper_than(br#"{"text": "[[[[[[\"{{{{"}"#, 1));
        assert!(nests_deeper_than(br#"{"t": "\\", "a": [[1]]}"#, 2));
        assert!(!nests_deeper_than(br#"{"unterminated": "[[[["#, 1));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let e = utf8(b"one\ntwo \xc3\x28").unwrap_err();
        assert_eq!(e.code(), "invalid_utf8");
        assert!(e.to_string().contains("line 2 at byte offset 8"), "{e}");
    }

    #[test]
    fn csv_uploads_need_a_text_column() {
        let e = from_raw(b"a,b\n1,2\n".to_vec(), Format::Csv, Fields::default(), None).unwrap_err();
        assert_eq!(e.code(), "no_text_column");
        let ok = from_raw(
            b"a,b\n1,2\n".to_vec(),
            Format::Csv,
            Fields::text(Some("B".into())),
            None,
        )
        .unwrap();
        assert_eq!(ok.fields.text.as_deref(), Some("B"));
    }

    #[test]
    fn titles_are_short_and_single_line() {
        let t = title_of_text("  Hello\n\nworld  ");
        assert_eq!(t, "Hello world");
        let long = title_of_text(&"word ".repeat(100));
        assert!(long.chars().count() < 90 && long.ends_with('…'));
    }
}
