//! Idempotent submission: `Idempotency-Key` on `POST /api/jobs` and the form's one-time token
//! (the test on PostgreSQL + Redis with two `serve` processes is in `processes.rs`).

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::common::{self, TestApp, assert_error, spawn_app, spawn_app_with};

/// One answer to a keyed submission: status, job id, `Location`, whether it was a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub id: String,
    pub location: String,
    pub replayed: bool,
}

/// POST `body` (JSON) to `url` with `Idempotency-Key: key`.
pub async fn post_keyed(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Answer {
    let r = client
        .post(url)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let replayed = r
        .headers()
        .get("Idempotent-Replayed")
        .is_some_and(|v| v == "true");
    let body: Value = r.json().await.expect("a JSON body");
    Answer {
        status,
        id: body["id"].as_str().unwrap_or_default().to_owned(),
        location,
        replayed,
    }
}

/// `n` identical keyed submissions at once, spread over `urls` in turn.
pub async fn same_request_at_once(
    urls: &[String],
    key: &str,
    body: &Value,
    n: usize,
) -> Vec<Answer> {
    let client = common::client();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (client, url) = (client.clone(), urls[i % urls.len()].clone());
            async move { post_keyed(&client, &url, key, body).await }
        })
        .buffer_unordered(n)
        .collect()
        .await
}

/// Every answer names one job, the same `Location`, and exactly one of them made it.
pub fn assert_one_job(answers: &[Answer]) -> String {
    let first = &answers[0];
    for a in answers {
        assert_eq!(a.status, 202, "{a:?}");
        assert_eq!(
            (&a.id, &a.location),
            (&first.id, &first.location),
            "{answers:?}"
        );
    }
    assert_eq!(first.location, format!("/api/jobs/{}", first.id));
    let made = answers.iter().filter(|a| !a.replayed).count();
    assert_eq!(
        made, 1,
        "one answer made the job, the others replayed it: {answers:?}"
    );
    first.id.clone()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_keyed_requests_at_once_make_one_job_and_get_its_id_fifty_times() {
    let app = spawn_app().await;
    let body = json!({"text": "Only once, please."});
    let answers = same_request_at_once(&[app.url("/api/jobs")], "order-4711", &body, 50).await;
    let id = assert_one_job(&answers);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sentiq_jobs").await, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM Jobs").await,
        1,
        "one queue entry"
    );
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded");
    // Later too, while the key lives: the same answer.
    let again = post_keyed(&app.client, &app.url("/api/jobs"), "order-4711", &body).await;
    assert_eq!((again.status, again.id, again.replayed), (202, id, true));
}

#[tokio::test]
async fn a_key_reused_with_another_request_is_refused_and_writes_nothing() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let url = app.url("/api/jobs");
    let first = post_keyed(&app.client, &url, "k-1", &json!({"text": "One."})).await;
    assert_eq!(first.status, 202);
    let r = app
        .client
        .post(&url)
        .header("Idempotency-Key", "k-1")
        .json(&json!({"text": "Another."}))
        .send()
        .await
        .unwrap();
    let message = assert_error(r, 422, "idempotency_key_reused").await;
    assert!(message.contains("different request"), "{message}");
    // The same text as a raw upload is another request too (another content type).
    let r = app
        .client
        .post(&url)
        .header("Idempotency-Key", "k-1")
        .header("Content-Type", "text/plain")
        .body("One.")
        .send()
        .await
        .unwrap();
    assert_error(r, 422, "idempotency_key_reused").await;
    assert_eq!(app.job_rows().await, 1);
}

#[tokio::test]
async fn requests_without_a_key_or_with_other_keys_are_separate_jobs() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let url = app.url("/api/jobs");
    let body = json!({"text": "Same text."});
    let a = post_keyed(&app.client, &url, "a", &body).await;
    let b = post_keyed(&app.client, &url, "b", &body).await;
    let (c, d) = (app.submit(&body).await, app.submit(&body).await);
    let mut ids = vec![a.id, b.id, c, d];
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four jobs");
    assert!(!a.replayed && !b.replayed);
}

#[tokio::test]
async fn an_expired_key_makes_a_new_job() {
    let app = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.limits.idempotency_ttl = Duration::from_secs(1);
    })
    .await;
    let url = app.url("/api/jobs");
    let body = json!({"text": "Again tomorrow."});
    let first = post_keyed(&app.client, &url, "daily", &body).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = post_keyed(&app.client, &url, "daily", &body).await;
    assert_eq!(second.status, 202);
    assert!(!second.replayed);
    assert_ne!(first.id, second.id);
    // The expired key was taken over, not duplicated.
    let keys = count(&app, "SELECT COUNT(*) FROM idempotency_keys").await;
    assert_eq!(keys, 1);
}

const TOKEN_FIELD: &str = "name=\"csrf\" value=\"";
const SUBMISSION_FIELD: &str = "name=\"submission\" value=\"";

fn field(html: &str, prefix: &str) -> String {
    let start = html.find(prefix).expect("the field") + prefix.len();
    let len = html[start..].find('"').expect("the end of the value");
    html[start..start + len].to_owned()
}

async fn post_form(app: &TestApp, csrf: &str, submission: &str, text: &str) -> String {
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("csrf", csrf), ("submission", submission), ("text", text)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

async fn front_page(app: &TestApp) -> String {
    let r = app.client.get(app.url("/")).send().await.unwrap();
    r.text().await.unwrap()
}

#[tokio::test]
async fn the_form_sent_twice_shows_one_analysis_and_a_changed_form_makes_another() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let html = front_page(&app).await;
    let (csrf, submission) = (field(&html, TOKEN_FIELD), field(&html, SUBMISSION_FIELD));
    assert_eq!(submission.len(), 36, "a fresh UUID token: {submission}");
    // A double click, or Back and send again: the same analysis.
    let first = post_form(&app, &csrf, &submission, "Twice is once.").await;
    let again = post_form(&app, &csrf, &submission, "Twice is once.").await;
    assert_eq!(first, again);
    assert_eq!(app.job_rows().await, 1);
    // Back, change the text, send: a new analysis.
    let changed = post_form(&app, &csrf, &submission, "Something else.").await;
    assert_ne!(first, changed);
    assert_eq!(app.job_rows().await, 2);
    // Each page load gives a new token.
    let html = front_page(&app).await;
    assert_ne!(field(&html, SUBMISSION_FIELD), submission);
}
