//! A table of bad inputs to the JSON API (and a few to the browser form): each gets the status
//! and the error code the contract (`product.md`, `src/web/errors.rs`) promises, never a 5xx,
//! and never a job row.
//!
//! A case whose answer disagrees with the contract today carries `known_bug`: the table reports
//! it without failing, and fails once the answer is right, so the marker is removed then.

use crate::common;
use crate::common::spawn_app_with;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use sentiq::analysis::MAX_ITEM_BYTES;
use sentiq::jobs::worker;
use serde_json::Value;

/// The body limit of the app under test: small, so the size cases are cheap.
const LIMIT: usize = 64 * 1024;

/// The form's CSRF token, sent as both the cookie and the field so the form cases get past the
/// check to the input they are about.
const FORM_TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

enum Body {
    None,
    Bytes(Vec<u8>),
    /// Sent chunked (no `Content-Length`), in 8 KiB pieces.
    Chunked(Vec<u8>),
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    /// Raw header values (they may hold bytes that are not ASCII), `Content-Type` included.
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Body,
    status: u16,
    /// The `error.code` of the JSON body; `None` for the browser form, which answers with its
    /// HTML page and the message in words.
    code: Option<&'static str>,
    known_bug: Option<&'static str>,
    /// Sent to a second app with the default body limit (64 MiB), for items past
    /// [`MAX_ITEM_BYTES`] that fit in a body. That app has no webhook secret either (the first
    /// has one, and refuses private webhook addresses).
    roomy: bool,
    /// Sent to a third app, with `API_KEYS=required`.
    strict: bool,
}

fn case(name: &'static str, method: Method, path: impl Into<String>) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Body::None,
        status: 0,
        code: None,
        known_bug: None,
        roomy: false,
        strict: false,
    }
}

/// `POST /api/jobs` with this content type and body.
fn submit(name: &'static str, content_type: impl Into<Vec<u8>>, body: impl Into<Vec<u8>>) -> Case {
    case(name, Method::POST, "/api/jobs")
        .header("content-type", content_type)
        .body(body)
}

fn json(name: &'static str, body: impl Into<Vec<u8>>) -> Case {
    submit(name, "application/json", body)
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }
    fn chunked(mut self, body: Vec<u8>) -> Self {
        self.body = Body::Chunked(body);
        self
    }
    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = Some(code);
        self
    }
    /// The browser form: its HTML page again, with this status.
    fn page(mut self, status: u16) -> Self {
        self.status = status;
        self.code = None;
        self
    }
    /// Send the `sentiq_csrf` cookie the form page would have set.
    fn form_cookie(self) -> Self {
        self.header("cookie", format!("sentiq_csrf={FORM_TOKEN}"))
    }
    fn roomy(mut self) -> Self {
        self.roomy = true;
        self
    }
    /// Sent to the app without webhooks (the roomy one).
    fn without_webhooks(self) -> Self {
        self.roomy()
    }
    /// Sent to the app that requires API keys.
    fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
    /// Sent with `Authorization: Bearer <key>`.
    fn key(self, key: &str) -> Self {
        self.header("authorization", format!("Bearer {key}"))
    }
    fn known_bug(mut self, why: &'static str) -> Self {
        self.known_bug = Some(why);
        self
    }
}

/// What the app answered to one case.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    new_job_rows: i64,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    fn code(&self) -> Option<String> {
        self.json()?["error"]["code"].as_str().map(str::to_owned)
    }
    fn summary(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(160).collect();
        format!(
            "{} [{}] {body:?}{}",
            self.status,
            self.content_type,
            if self.new_job_rows > 0 {
                format!(" (+{} job row)", self.new_job_rows)
            } else {
                String::new()
            }
        )
    }
}

/// Every way the answer falls short of the case's expectation (empty: as the contract says).
fn problems(case: &Case, a: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    if a.status >= 500 {
        out.push(format!("a {} server error", a.status));
    }
    if a.status != case.status {
        out.push(format!("status {} instead of {}", a.status, case.status));
    }
    match case.code {
        Some(code) => {
            if !a.content_type.starts_with("application/json") {
                out.push(format!("content type {:?}, not JSON", a.content_type));
            }
            match a.json() {
                None => out.push("the body is not JSON".into()),
                Some(body) => {
                    if body["error"]["code"] != code {
                        out.push(format!(
                            "code {} instead of {code:?}",
                            body["error"]["code"]
                        ));
                    }
                    if body["error"]["message"]
                        .as_str()
                        .is_none_or(|m| m.trim().is_empty())
                    {
                        out.push("no message".into());
                    }
                }
            }
        }
        None => {
            if !a.content_type.starts_with("text/html") {
                out.push(format!("content type {:?}, not the page", a.content_type));
            }
        }
    }
    if a.new_job_rows != 0 {
        out.push(format!("{} job row(s) written", a.new_job_rows));
    }
    out
}

/// "Great product, would buy again.\n", gzip-compressed.
const GZIPPED: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x73\x2f\x4a\x4d\x2c\x51\x28\
    \x28\xca\x4f\x29\x4d\x2e\xd1\x51\x28\xcf\x2f\xcd\x49\x51\x48\x2a\xad\x54\x48\x4c\x4f\xcc\
    \xcc\xd3\xe3\x02\x00\xa6\xc5\x51\xe6\x20\x00\x00\x00";

// Why the known bugs answer as they do.
const WORKER_ONLY: &str = "only the worker checks this: 202 and a job row, then the job fails \
    (with the code expected here) or succeeds";
const LENIENT_QUOTES: &str = "the CSV reader is lenient: the rest of the file becomes one item and \
    the job succeeds";

/// What the API-key cases need in the (small) app: a valid key, a revoked one, and a job of a
/// third key.
struct KeyFixture {
    key: String,
    revoked: String,
    others_job: String,
}

async fn key_fixture(app: &common::TestApp) -> KeyFixture {
    use crate::keys::make_key;
    let key = make_key(&app.db, "client", Default::default()).await;
    let revoked = make_key(&app.db, "revoked", Default::default()).await;
    sentiq::keys::revoke(&app.db, "revoked").await.unwrap();
    let owner = make_key(&app.db, "owner", Default::default()).await;
    let r = app
        .client
        .post(app.url("/api/jobs"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"text": "Not yours."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let others_job = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    KeyFixture {
        key,
        revoked,
        others_job,
    }
}

/// API keys, ownership and the listing's parameters. Sent first: the listing without a key
/// must find no visitor cookie, which later form cases give the client.
fn key_table(fx: &KeyFixture) -> Vec<Case> {
    use Method as M;
    let KeyFixture {
        key,
        revoked,
        others_job,
    } = fx;
    let job = format!("/api/jobs/{others_job}");
    let list = |query: &str| format!("/api/jobs?{query}");
    vec![
        case(
            "listing without a key or a visitor cookie",
            M::GET,
            "/api/jobs",
        )
        .expect(401, "unauthorized"),
        json("no API key where keys are required", r#"{"text": "hello"}"#)
            .strict()
            .expect(401, "unauthorized"),
        case(
            "no API key on the list where keys are required",
            M::GET,
            "/api/jobs",
        )
        .strict()
        .expect(401, "unauthorized"),
        case(
            "no API key on a job where keys are required",
            M::GET,
            job.clone(),
        )
        .strict()
        .expect(401, "unauthorized"),
        json("a malformed API key", r#"{"text": "hello"}"#)
            .key("sq_tooshort")
            .expect(401, "unauthorized"),
        json(
            "an Authorization header of another scheme",
            r#"{"text": "hello"}"#,
        )
        .header("authorization", "Basic dXNlcjpwYXNz")
        .expect(401, "unauthorized"),
        json("an unknown API key", r#"{"text": "hello"}"#)
            .key(&format!("sq_{}", "Q".repeat(43)))
            .expect(401, "unauthorized"),
        json("a revoked API key", r#"{"text": "hello"}"#)
            .key(revoked)
            .expect(401, "unauthorized"),
        case("another client's job", M::GET, job.clone())
            .key(key)
            .expect(404, "not_found"),
        case("another client's job without a key", M::GET, job.clone()).expect(404, "not_found"),
        case(
            "cancel of another client's job",
            M::POST,
            format!("{job}/cancel"),
        )
        .key(key)
        .expect(404, "not_found"),
        case("DELETE of another client's job", M::DELETE, job.clone())
            .key(key)
            .expect(404, "not_found"),
        case(
            "items of another client's job",
            M::GET,
            format!("{job}/items.jsonl"),
        )
        .key(key)
        .expect(404, "not_found"),
        case(
            "events of another client's job",
            M::GET,
            format!("{job}/events"),
        )
        .key(key)
        .expect(404, "not_found"),
        case(
            "a tampered cursor",
            M::GET,
            list("cursor=MXwyMDI2LTEyLTEwVDEwOjAwOjAwWnx4"),
        )
        .key(key)
        .expect(400, "invalid_cursor"),
        case("a limit of 0", M::GET, list("limit=0"))
            .key(key)
            .expect(400, "invalid_limit"),
        case("a limit of 1,000", M::GET, list("limit=1000"))
            .key(key)
            .expect(400, "invalid_limit"),
        case(
            "a date that is not RFC 3339",
            M::GET,
            list("created_after=yesterday"),
        )
        .key(key)
        .expect(400, "invalid_date"),
        case("a status that does not exist", M::GET, list("status=done"))
            .key(key)
            .expect(400, "invalid_status"),
        case("an unknown listing parameter", M::GET, list("sort=oldest"))
            .key(key)
            .expect(400, "unknown_parameter"),
    ]
}

fn table(unknown: &str) -> Vec<Case> {
    use Method as M;
    let over = LIMIT + 1;
    let bad_utf8 = b"good line\nbad \xff\xfe byte\n".to_vec();
    // A bracket nesting far past serde_json's recursion limit (128), inside an ignored field.
    let deep = format!(
        "{{\"text\": \"hi\", \"extra\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_text = format!("{{\"text\": {}\"x\"{}}}", "[".repeat(200), "]".repeat(200));
    let multipart_no_boundary =
        "--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello\r\n--x--\r\n";
    vec![
        // --- Wrong methods: a route of the contract answers another method with 405, its
        // `Allow` header naming the right one; a path outside the contract is a JSON 404.
        case("DELETE on the list of jobs", M::DELETE, "/api/jobs")
            .expect(405, "method_not_allowed"),
        json("PUT on /api/jobs", r#"{"text": "hello"}"#)
            .method(M::PUT)
            .expect(405, "method_not_allowed"),
        case("PATCH on a job", M::PATCH, format!("/api/jobs/{unknown}"))
            .expect(405, "method_not_allowed"),
        json(
            "POST on the GET-only /api/jobs/{id}",
            r#"{"text": "hello"}"#,
        )
        .path(format!("/api/jobs/{unknown}"))
        .expect(405, "method_not_allowed"),
        case(
            "GET on the POST-only cancel",
            M::GET,
            format!("/api/jobs/{unknown}/cancel"),
        )
        .expect(405, "method_not_allowed"),
        case(
            "POST on the GET-only items.csv",
            M::POST,
            format!("/api/jobs/{unknown}/items.csv"),
        )
        .expect(405, "method_not_allowed"),
        case("GET on a path outside the API", M::GET, "/api/nothing-here").expect(404, "not_found"),
        // --- Content types.
        submit("an XML body", "application/xml", "<text>hello</text>")
            .expect(415, "unsupported_media_type"),
        case("no content type at all", M::POST, "/api/jobs")
            .body("hello")
            .expect(415, "unsupported_media_type"),
        submit("an empty content type", "", "hello").expect(415, "unsupported_media_type"),
        submit(
            "an urlencoded form on the API",
            "application/x-www-form-urlencoded",
            "text=hello",
        )
        .expect(415, "unsupported_media_type"),
        submit(
            "multipart without a boundary on the API",
            "multipart/form-data",
            multipart_no_boundary,
        )
        .expect(415, "unsupported_media_type"),
        submit(
            "a content type that is not ASCII",
            b"text/pl\xe4in".to_vec(),
            "hello",
        )
        .expect(415, "unsupported_media_type"),
        submit(
            "an unsupported type over the size limit",
            "image/png",
            vec![0x89; over],
        )
        .expect(415, "unsupported_media_type"),
        // --- Encodings.
        submit(
            "invalid UTF-8 in text/plain",
            "text/plain",
            bad_utf8.clone(),
        )
        .expect(400, "invalid_utf8"),
        submit(
            "invalid UTF-8 in CSV",
            "text/csv",
            b"id,text\n1,caf\xe9\n".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        submit(
            "invalid UTF-8 in JSONL",
            "application/x-ndjson",
            bad_utf8.clone(),
        )
        .expect(400, "invalid_utf8"),
        json(
            "invalid UTF-8 inside a JSON string",
            b"{\"text\": \"\xff\"}".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        submit(
            "Latin-1 declared in the charset",
            "text/plain; charset=iso-8859-1",
            b"Tr\xe8s bien".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        submit(
            "UTF-16 with its byte-order mark",
            "text/plain; charset=utf-16",
            b"\xff\xfeh\x00i\x00".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        submit(
            "a character cut off at the end",
            "text/plain",
            b"ok \xe2\x82".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        submit(
            "a gzip body the API does not decode",
            "text/plain",
            GZIPPED.to_vec(),
        )
        .header("content-encoding", "gzip")
        .expect(415, "unsupported_media_type"),
        submit(
            "an encoded UTF-16 surrogate",
            "text/plain",
            b"x \xed\xa0\x80 y".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        // --- Malformed JSON.
        json("JSON cut off", r#"{"text": "#).expect(400, "invalid_json"),
        json("not JSON at all", "text=hello").expect(400, "invalid_json"),
        json("JSON with trailing garbage", r#"{"text": "hi"} and more"#)
            .expect(400, "invalid_json"),
        json("an empty JSON body", "").expect(400, "invalid_json"),
        json("NaN is not JSON", r#"{"text": NaN}"#).expect(400, "invalid_json"),
        // --- JSON of the wrong type.
        json("a JSON array", r#"[{"text": "hi"}]"#).expect(400, "invalid_json"),
        json("a JSON number", "42").expect(400, "invalid_json"),
        json("a JSON string", r#""hello""#).expect(400, "invalid_json"),
        json("JSON null", "null").expect(400, "invalid_json"),
        json("text is a number", r#"{"text": 5}"#).expect(400, "invalid_json"),
        json("text is null", r#"{"text": null}"#).expect(400, "invalid_json"),
        json("documents is a string", r#"{"documents": "hi"}"#).expect(400, "invalid_json"),
        json("a document is a string", r#"{"documents": ["hi"]}"#).expect(400, "invalid_json"),
        json(
            "a document text is an array",
            r#"{"documents": [{"text": ["hi"]}]}"#,
        )
        .expect(400, "invalid_json"),
        json(
            "a document id is an object",
            r#"{"documents": [{"id": {"n": 1}, "text": "hi"}]}"#,
        )
        .expect(400, "invalid_json"),
        // --- Unexpected and too deep nesting.
        json("text is an object", r#"{"text": {"value": "hi"}}"#).expect(400, "invalid_json"),
        json(
            "documents nested in arrays",
            r#"{"documents": [[{"text": "hi"}]]}"#,
        )
        .expect(400, "invalid_json"),
        json("text nested 200 arrays deep", deep_text).expect(400, "invalid_json"),
        json("an ignored field nested 10,000 deep", deep).expect(400, "invalid_json"),
        json("10,000 unclosed brackets", "[".repeat(10_000)).expect(400, "invalid_json"),
        json(
            "both text and documents",
            r#"{"text": "hi", "documents": [{"text": "ho"}]}"#,
        )
        .expect(400, "invalid_json"),
        // --- Idempotency keys that cannot be used (checked before the body is read).
        json("an empty Idempotency-Key", r#"{"text": "hello"}"#)
            .header("idempotency-key", "")
            .expect(400, "invalid_idempotency_key"),
        json(
            "an Idempotency-Key of 256 characters",
            r#"{"text": "hello"}"#,
        )
        .header("idempotency-key", "k".repeat(256))
        .expect(400, "invalid_idempotency_key"),
        json(
            "an Idempotency-Key that is not ASCII",
            r#"{"text": "hello"}"#,
        )
        .header("idempotency-key", "clé".as_bytes())
        .expect(400, "invalid_idempotency_key"),
        json("an Idempotency-Key with a tab", r#"{"text": "hello"}"#)
            .header("idempotency-key", "a\tb")
            .expect(400, "invalid_idempotency_key"),
        json("two Idempotency-Key headers", r#"{"text": "hello"}"#)
            .header("idempotency-key", "one")
            .header("idempotency-key", "two")
            .expect(400, "invalid_idempotency_key"),
        // --- Missing fields.
        json("an empty object", "{}").expect(400, "missing_field"),
        json("a misspelt field", r#"{"txt": "hello"}"#).expect(400, "missing_field"),
        json("a document without text", r#"{"documents": [{"id": "1"}]}"#)
            .expect(400, "missing_field"),
        // --- Empty and blank.
        json("empty text", r#"{"text": ""}"#).expect(422, "empty_input"),
        json("whitespace-only text", r#"{"text": " \n\t\r "}"#).expect(422, "empty_input"),
        json("no documents", r#"{"documents": []}"#).expect(422, "empty_input"),
        json(
            "blank documents",
            r#"{"documents": [{"text": " "}, {"text": ""}]}"#,
        )
        .expect(422, "empty_input"),
        submit("an empty text/plain body", "text/plain", "").expect(422, "empty_input"),
        json(
            "text of ASCII separators only",
            r#"{"text": "\u001c\u001d\u001e\u001f"}"#,
        )
        .expect(422, "empty_input"),
        submit(
            "a byte-order mark alone",
            "text/plain",
            b"\xef\xbb\xbf".to_vec(),
        )
        .expect(422, "empty_input"),
        submit(
            "Unicode spaces only",
            "text/plain",
            "\u{a0}\u{3000}\u{2003}\n",
        )
        .expect(422, "empty_input"),
        submit("JSONL of blank lines", "application/x-ndjson", "\n  \n\t\n")
            .expect(422, "empty_input"),
        // --- CSV shapes.
        submit(
            "CSV without a header row",
            "text/csv",
            "\"Great product\",5\n\"Awful\",1\n",
        )
        .expect(422, "no_text_column"),
        submit("CSV header of blank names", "text/csv", ",,\n1,2,3\n").expect(422, "empty_input"),
        submit(
            "CSV missing the named column",
            "text/csv",
            "id,text\n1,Nice\n",
        )
        .path("/api/jobs?column=comment_text")
        .expect(422, "no_text_column"),
        submit(
            "CSV whose header quote never closes",
            "text/csv",
            "\"text,id\n1,Nice\n",
        )
        .expect(422, "no_text_column"),
        submit("CSV with only a header", "text/csv", "id,text\n")
            .expect(422, "empty_input")
            .known_bug(WORKER_ONLY),
        submit(
            "CSV with a ragged row",
            "text/csv",
            "id,stars,review\n1,5,Lovely\n2\n",
        )
        .expect(422, "bad_record")
        .known_bug(WORKER_ONLY),
        submit(
            "CSV with a quote that never closes in a row",
            "text/csv",
            "id,text\n1,\"Nice\n2,Awful\n3,Fine\n",
        )
        .expect(422, "bad_record")
        .known_bug(LENIENT_QUOTES),
        submit(
            "CSV with a field past the item limit",
            "text/csv",
            format!("text\n{}\n", "a".repeat(MAX_ITEM_BYTES + 1)),
        )
        .roomy()
        .expect(422, "item_too_large")
        .known_bug(WORKER_ONLY),
        // --- JSONL with a bad line.
        submit(
            "JSONL with a line that is not JSON",
            "application/x-ndjson",
            "{\"text\": \"fine\"}\n{\"text\": \n",
        )
        .expect(422, "bad_record")
        .known_bug(WORKER_ONLY),
        submit(
            "JSONL with a line whose text is a number",
            "application/x-ndjson",
            "{\"text\": \"fine\"}\n{\"text\": 5}\n",
        )
        .expect(422, "bad_record")
        .known_bug(WORKER_ONLY),
        submit(
            "a JSONL line past the item limit",
            "application/x-ndjson",
            format!("{{\"text\": \"{}\"}}\n", "b".repeat(MAX_ITEM_BYTES)),
        )
        .roomy()
        .expect(422, "item_too_large")
        .known_bug(WORKER_ONLY),
        // --- Sizes (limit: 64 KiB).
        json(
            "JSON over the limit",
            format!("{{\"text\": \"{}\"}}", "a".repeat(LIMIT)),
        )
        .expect(413, "payload_too_large"),
        submit(
            "a huge single line of text over the limit",
            "text/plain",
            "a".repeat(over),
        )
        .expect(413, "payload_too_large"),
        submit(
            "CSV over the limit",
            "text/csv",
            format!("text\n{}", "nice,".repeat(LIMIT / 5 + 1)),
        )
        .expect(413, "payload_too_large"),
        submit(
            "a huge single JSONL line over the limit",
            "application/x-ndjson",
            format!("{{\"text\": \"{}\"}}", "b".repeat(LIMIT)),
        )
        .expect(413, "payload_too_large"),
        case("chunked text past the limit", M::POST, "/api/jobs")
            .header("content-type", "text/plain")
            .chunked(vec![b'c'; 2 * LIMIT])
            .expect(413, "payload_too_large"),
        // --- Ids.
        case("a malformed id", M::GET, "/api/jobs/not-a-uuid").expect(404, "not_found"),
        case("an unknown id", M::GET, format!("/api/jobs/{unknown}")).expect(404, "not_found"),
        case(
            "DELETE of an unknown id",
            M::DELETE,
            format!("/api/jobs/{unknown}"),
        )
        .expect(404, "not_found"),
        case(
            "DELETE of a malformed id",
            M::DELETE,
            "/api/jobs/not-a-uuid",
        )
        .expect(404, "not_found"),
        case(
            "a UUID with a character more",
            M::GET,
            format!("/api/jobs/{unknown}0"),
        )
        .expect(404, "not_found"),
        case("an id that tries SQL", M::GET, "/api/jobs/1%27%20OR%201=1").expect(404, "not_found"),
        case("an id with a NUL byte", M::GET, "/api/jobs/%00").expect(404, "not_found"),
        case(
            "an id that climbs up the path",
            M::GET,
            "/api/jobs/..%2F..%2Fetc%2Fpasswd",
        )
        .expect(404, "not_found"),
        case(
            "a 2,000-character id",
            M::GET,
            format!("/api/jobs/{}", "f".repeat(2000)),
        )
        .expect(404, "not_found"),
        case(
            "items.csv of an unknown id",
            M::GET,
            format!("/api/jobs/{unknown}/items.csv"),
        )
        .expect(404, "not_found"),
        case(
            "items.jsonl of a malformed id",
            M::GET,
            "/api/jobs/nope/items.jsonl",
        )
        .expect(404, "not_found"),
        case(
            "cancel of an unknown id",
            M::POST,
            format!("/api/jobs/{unknown}/cancel"),
        )
        .expect(404, "not_found"),
        case(
            "cancel of a malformed id",
            M::POST,
            "/api/jobs/x%20y/cancel",
        )
        .expect(404, "not_found"),
        case(
            "events of an unknown id",
            M::GET,
            format!("/api/jobs/{unknown}/events"),
        )
        .expect(404, "not_found"),
        case(
            "a garbage If-None-Match on an unknown id",
            M::GET,
            format!("/api/jobs/{unknown}"),
        )
        .header("if-none-match", "*, \"unclosed, W/, \u{e9}")
        .expect(404, "not_found"),
        // --- Prefer: wait (RFC 7240): whole seconds from 0 to 25, refused before the body is
        // read; other preferences beside it are ignored.
        json("a wait over 25 s", r#"{"text": "hello"}"#)
            .header("prefer", "wait=26")
            .expect(400, "bad_prefer"),
        json("a wait that is not a number", r#"{"text": "hello"}"#)
            .header("prefer", "respond-async, wait=abc")
            .expect(400, "bad_prefer"),
        json("a negative wait", r#"{"text": "hello"}"#)
            .header("prefer", "wait=-1")
            .expect(400, "bad_prefer"),
        json("a wait in fractions of a second", r#"{"text": "hello"}"#)
            .header("prefer", "return=minimal; x=1, wait=0.5")
            .expect(400, "bad_prefer"),
        json("a wait without its value", r#"{"text": "hello"}"#)
            .header("prefer", "wait")
            .expect(400, "bad_prefer"),
        case(
            "a long-poll of ten minutes",
            M::GET,
            format!("/api/jobs/{unknown}"),
        )
        .header("if-none-match", "*")
        .header("prefer", "wait=600")
        .expect(400, "bad_prefer"),
        // --- Query parameters.
        submit("CSV grouped by a column it lacks", "text/csv", "id,text\n1,Nice\n")
            .path("/api/jobs?group_by=brand")
            .expect(422, "unknown_column"),
        submit("CSV with an id column it lacks", "text/csv", "id,text\n1,Nice\n")
            .path("/api/jobs?id_column=sku")
            .expect(422, "unknown_column"),
        submit("CSV with a rating column it lacks", "text/csv", "id,text\n1,Nice\n")
            .path("/api/jobs?rating_column=stars")
            .expect(422, "unknown_column"),
        submit(
            "CSV whose rating column holds a word",
            "text/csv",
            "stars,text\n5,Nice\nfive,Great\n",
        )
        .path("/api/jobs?rating_column=stars")
        .expect(422, "bad_record"),
        submit("a grouping period that is not day, week or month", "text/csv", "d,text\n1,Nice\n")
            .path("/api/jobs?group_by=d&group_by_period=year")
            .expect(422, "invalid_period"),
        submit("a grouping period without a grouping", "text/csv", "d,text\n1,Nice\n")
            .path("/api/jobs?group_by_period=day")
            .expect(422, "invalid_period"),
        submit("a grouping of plain text", "text/plain", "Just one document.")
            .path("/api/jobs?group_by=product")
            .expect(422, "unknown_column"),
        submit("JSONL grouped by a key its first line lacks", "application/x-ndjson", "{\"text\": \"hi\"}\n")
            .path("/api/jobs?group_by=product")
            .expect(422, "unknown_column"),
        submit("the column parameter twice", "text/csv", "a,b\nx,y\n")
            .path("/api/jobs?column=a&column=b")
            .expect(400, "bad_request"),
        submit(
            "a column name that is not UTF-8",
            "text/csv",
            "id,text\n1,Nice\n",
        )
        .path("/api/jobs?column=%FF")
        .expect(422, "no_text_column"),
        // --- Webhook URLs (the app has a webhook secret and refuses private addresses).
        json(
            "a webhook URL that is not http",
            r#"{"text": "hi", "webhook_url": "ftp://example.com/hook"}"#,
        )
        .expect(422, "invalid_webhook_url"),
        json(
            "a webhook URL that is not a URL",
            r#"{"text": "hi", "webhook_url": "call me back"}"#,
        )
        .expect(422, "invalid_webhook_url"),
        json(
            "a webhook URL over 2,048 characters",
            format!(
                r#"{{"text": "hi", "webhook_url": "https://example.com/{}"}}"#,
                "a".repeat(2048)
            ),
        )
        .expect(422, "invalid_webhook_url"),
        json(
            "a webhook URL with credentials",
            r#"{"text": "hi", "webhook_url": "https://user:pw@example.com/hook"}"#,
        )
        .expect(422, "invalid_webhook_url"),
        json(
            "a webhook URL that is a number",
            r#"{"text": "hi", "webhook_url": 5}"#,
        )
        .expect(400, "invalid_json"),
        json(
            "a webhook URL on loopback",
            r#"{"text": "hi", "webhook_url": "http://127.0.0.1:9000/hook"}"#,
        )
        .expect(422, "webhook_url_refused"),
        json(
            "a webhook URL at the cloud metadata address",
            r#"{"text": "hi", "webhook_url": "http://169.254.169.254/latest/meta-data/"}"#,
        )
        .expect(422, "webhook_url_refused"),
        json(
            "a webhook URL at an IPv4-mapped private address",
            r#"{"text": "hi", "webhook_url": "http://[::ffff:10.0.0.1]/hook"}"#,
        )
        .expect(422, "webhook_url_refused"),
        json(
            "a webhook URL with an internal name",
            r#"{"text": "hi", "webhook_url": "http://metadata.google.internal/computeMetadata/v1/"}"#,
        )
        .expect(422, "webhook_url_refused"),
        submit("a private webhook URL in the query of an upload", "text/plain", "hi")
            .path("/api/jobs?webhook_url=http%3A%2F%2F192.168.1.10%2Fhook")
            .expect(422, "webhook_url_refused"),
        json(
            "a webhook URL in both the body and the query",
            r#"{"text": "hi", "webhook_url": "https://example.com/a"}"#,
        )
        .path("/api/jobs?webhook_url=https%3A%2F%2Fexample.com%2Fb")
        .expect(422, "invalid_webhook_url"),
        json(
            "a webhook URL on a server without webhooks",
            r#"{"text": "hi", "webhook_url": "https://example.com/hook"}"#,
        )
        .without_webhooks()
        .expect(422, "webhooks_not_configured"),
        // --- The browser form (HTML page again, the message in words, no job).
        case(
            "the form as multipart without a boundary",
            M::POST,
            "/analyses",
        )
        .header("content-type", "multipart/form-data")
        .body(multipart_no_boundary)
        .page(400),
        case("the form as multipart cut off", M::POST, "/analyses")
            .form_cookie()
            .header("content-type", "multipart/form-data; boundary=x")
            .body(format!(
                "--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{FORM_TOKEN}\r\n\
                 --x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhel"
            ))
            .page(400),
        case("the form as JSON", M::POST, "/analyses")
            .header("content-type", "application/json")
            .body(r#"{"text": "hello"}"#)
            .page(415),
        case("the form with blank text", M::POST, "/analyses")
            .form_cookie()
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={FORM_TOKEN}&text=%20%0A%20"))
            .page(422),
    ]
}

impl Case {
    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
}

async fn send(app: &common::TestApp, case: &Case) -> Answer {
    let before = app.job_rows().await;
    let mut request = app.client.request(case.method.clone(), app.url(&case.path));
    for (name, value) in &case.headers {
        request = request.header(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).expect("a header value"),
        );
    }
    request = match &case.body {
        Body::None => request,
        Body::Bytes(b) => request.body(b.clone()),
        Body::Chunked(b) => {
            let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
                b.chunks(8192).map(|c| Ok(c.to_vec())).collect();
            request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                pieces,
            )))
        }
    };
    let r = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Answer {
        status,
        content_type,
        body,
        new_job_rows: app.job_rows().await - before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_error_code_and_writes_no_job() {
    let app = spawn_app_with(|c| {
        c.http.max_body_bytes = LIMIT;
        c.worker.run_in_process = false;
        let key = format!("whsec_{}", "A".repeat(43));
        c.webhooks.secret = Some(sentiq::webhooks::SigningKey::parse(&key).unwrap());
    })
    .await;
    let roomy = spawn_app_with(|c| c.worker.run_in_process = false).await;
    assert!(roomy.deps.db().sqlite().is_some() && MAX_ITEM_BYTES < 64 << 20);
    let strict = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.clients.api_keys = sentiq::config::ApiKeys::Required;
    })
    .await;
    let fixture = key_fixture(&app).await;
    // The fixture's job and its queue entry.
    let (rows, entries) = (app.job_rows().await, app.queue_rows().await);
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut cases = key_table(&fixture);
    cases.extend(table(&unknown));
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "two cases named {:?}", c.name);
        assert!(c.status >= 400, "{}: no expectation", c.name);
    }

    let mut failures = Vec::new();
    let mut known = Vec::new();
    let mut rows_by_known_bugs = [0, 0];
    for case in &cases {
        let on = match (case.roomy, case.strict) {
            (_, true) => &strict,
            (true, _) => &roomy,
            _ => &app,
        };
        let answer = send(on, case).await;
        let problems = problems(case, &answer);
        let expected = format!("{} {}", case.status, case.code.unwrap_or("(page)"));
        let got = format!(
            "{} {}",
            answer.status,
            answer.code().unwrap_or_else(|| "-".into())
        );
        println!("{:<48} expected {expected:<30} got {got}", case.name);
        match (case.known_bug, problems.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!(
                "{} ({} {}): {}; answer: {}",
                case.name,
                case.method,
                case.path,
                problems.join(", "),
                answer.summary()
            )),
            (Some(why), false) => {
                rows_by_known_bugs[usize::from(case.roomy)] += answer.new_job_rows;
                // What became of a job the bad input should not have made.
                let mut fate = String::new();
                if let Some(id) = answer
                    .json()
                    .and_then(|b| b["id"].as_str().map(str::to_owned))
                {
                    let outcome = worker::process(&on.deps, &id).await;
                    let job = on.job(&id).await;
                    fate = format!(
                        "; the job then ran: {outcome:?}, status {}, error {}",
                        job["status"], job["error"]
                    );
                }
                known.push(format!(
                    "KNOWN BUG {}: {why}: {}; answer: {}{fate}",
                    case.name,
                    problems.join(", "),
                    answer.summary()
                ));
            }
            (Some(why), true) => failures.push(format!(
                "{}: marked as a known bug ({why}) but answered as the contract says: \
                 remove the marker",
                case.name
            )),
        }
    }
    for k in &known {
        println!("{k}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not answered as the contract says:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Nothing but the known bugs wrote a row (or a queue entry).
    assert_eq!(app.job_rows().await - rows, rows_by_known_bugs[0]);
    assert_eq!(app.queue_rows().await - entries, rows_by_known_bugs[0]);
    assert_eq!(strict.job_rows().await, 0);
    assert_eq!(roomy.job_rows().await, rows_by_known_bugs[1]);
    assert_eq!(roomy.queue_rows().await, rows_by_known_bugs[1]);

    // A long single line within the limit is not a bad input: it is accepted.
    let long_line = "good ".repeat((LIMIT - 100) / 5);
    assert!(!long_line.contains('\n') && long_line.len() < LIMIT);
    let r = app
        .post_raw("/api/jobs", "text/plain", long_line.into_bytes())
        .await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    assert_eq!(app.job_rows().await - rows, rows_by_known_bugs[0] + 1);
}
