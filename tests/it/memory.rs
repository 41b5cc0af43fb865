//! Bounded memory: uploads over a part are written in parts while they arrive, and the bytes of
//! request bodies held at once are admitted against the process's budget.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use serde_json::json;

use crate::common::prod::spawn_prod;
use crate::common::{Api, TestApp, assert_error, spawn_app, spawn_app_with};

const MIB: usize = 1 << 20;

/// A job's result without its timing.
fn scored(job: &serde_json::Value) -> serde_json::Value {
    let mut result = job["result"].clone();
    result.as_object_mut().unwrap().remove("elapsed_ms");
    result
}

/// Submit the same 2.5 MiB text as an upload (stored in parts) and as JSON (held whole): both
/// succeed with the same result.
async fn parted_and_whole_score_alike(api: &Api) {
    let text = mixed_text(5 * MIB / 2);
    let parted = api.submit_raw("text/plain", &text).await;
    let whole = api.submit(&json!({ "text": text })).await;
    let parted = api.wait_final(&parted).await;
    let whole = api.wait_final(&whole).await;
    assert_eq!(parted["status"], "succeeded", "{parted}");
    assert_eq!(whole["status"], "succeeded", "{whole}");
    assert_eq!(scored(&parted), scored(&whole));
    assert!(parted["result"]["items"].as_u64().unwrap() > 20_000);
}

/// About `bytes` of text whose sentences hold two- and four-byte characters, so that part
/// boundaries fall inside characters.
fn mixed_text(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 200);
    let mut i = 0u64;
    while s.len() < bytes {
        i += 1;
        s.push_str(&format!(
            "Der Kaffee {i} war großartig 😀, the service was terrible… très décevant! "
        ));
        if i.is_multiple_of(7) {
            s.push('\n');
        }
    }
    s
}

async fn parts_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM job_input_parts")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Wait (up to 5 s) until no part is stored: the parts of a refused upload are deleted by a
/// task of their own.
async fn assert_parts_go(app: &TestApp) {
    let start = Instant::now();
    while parts_rows(app).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the parts of an upload that is no job were kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_upload_over_a_part_is_stored_in_parts_cut_at_characters_and_no_body_is_held() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let text = mixed_text(5 * MIB / 2);
    let id = app.submit_raw("text/plain", &text).await;
    let (body, parts): (Vec<u8>, i64) =
        sqlx::query_as("SELECT body, parts FROM job_inputs WHERE job_id = $1")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(body.is_empty(), "an input in parts keeps no body");
    assert_eq!(parts, 3);
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM job_input_parts WHERE job_id = $1 ORDER BY seq")
            .bind(&id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 3);
    for part in &stored {
        assert!(part.len() <= MIB);
        assert!(
            std::str::from_utf8(part).is_ok(),
            "a part is cut at a character"
        );
    }
    assert_eq!(stored.concat(), text.as_bytes(), "the parts are the upload");
    let job = app.job(&id).await;
    assert_eq!(job["progress"]["total"], text.len());
}

#[tokio::test]
async fn an_upload_in_parts_is_scored_exactly_as_the_same_text_held_whole_and_its_parts_go() {
    let app = spawn_app().await;
    parted_and_whole_score_alike(&app).await;
    assert_eq!(
        parts_rows(&app).await,
        0,
        "a finished job's parts are deleted"
    );
}

#[tokio::test]
async fn a_bad_byte_in_a_later_part_is_located_as_in_a_small_upload_and_no_part_is_kept() {
    let app = spawn_app().await;
    let mut body = mixed_text(5 * MIB / 2).into_bytes();
    // Inside the third part, at the start of a line.
    let at = memchr::memchr(b'\n', &body[2 * MIB + 100..]).unwrap() + 2 * MIB + 101;
    body[at] = 0xff;
    let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let r = app.post_raw("/api/jobs", "text/plain", body).await;
    let message = assert_error(r, 400, "invalid_utf8").await;
    assert!(
        message.contains(&format!("line {line} at byte offset {at}")),
        "{message}"
    );
    assert_eq!(app.job_rows().await, 0);
    assert_parts_go(&app).await;
}

#[tokio::test]
async fn a_large_file_from_the_form_is_written_in_parts_and_analysed() {
    let app = spawn_app().await;
    let token = crate::pages::form_token(&app.client, &app.url("/")).await;
    let csv = {
        let mut s = String::from("id,review\n");
        let mut i = 0;
        while s.len() < 3 * MIB {
            i += 1;
            s.push_str(&format!(
                "{i},\"Great value, terrible box 😀 number {i}\"\n"
            ));
        }
        s
    };
    let rows = csv.lines().count() - 1;
    let form = reqwest::multipart::Form::new()
        .text("csrf", token)
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("reviews.csv"),
        )
        .text("column", "review");
    let r = app
        .client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = location.trim_start_matches("/analyses/");
    let job = app.wait_final(id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["items"], rows);
    assert_eq!(parts_rows(&app).await, 0);
}

/// A request body that sends `first` at once, then waits for the test to send the rest (or
/// to fail it: an `Err` ends the body with an error, as a client that goes away).
fn held_body(
    first: Vec<u8>,
) -> (
    reqwest::Body,
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let rest = tokio_stream_from(rx);
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    (reqwest::Body::wrap_stream(stream), tx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn uploads_beyond_the_memory_budget_wait_then_get_503_with_retry_after_and_nothing_is_half_written()
 {
    // 4 MiB: 2 MiB for bodies, less than one large upload holds, so one at a time.
    let app = spawn_app_with(|c| c.http.memory_budget_bytes = 4 * MIB).await;
    let text = mixed_text(3 * MIB).into_bytes();

    // The first upload is admitted and sends half its body, then stalls.
    let (body, rest) = held_body(text[..3 * MIB / 2].to_vec());
    let first = {
        let request = app
            .client
            .post(app.url("/api/jobs"))
            .header(CONTENT_TYPE, "text/plain")
            .header(CONTENT_LENGTH, text.len())
            .body(body)
            .send();
        tokio::spawn(request)
    };
    let start = Instant::now();
    while parts_rows(&app).await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the first upload never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Three more arrive meanwhile: each waits briefly for room, then is refused.
    let refused = futures_util::future::join_all(
        (0..3).map(|_| app.post_raw("/api/jobs", "text/plain", text.clone())),
    )
    .await;
    for r in refused {
        assert_eq!(r.headers()[RETRY_AFTER], "5");
        let message = assert_error(r, 503, "overloaded").await;
        assert!(message.contains("again in 5 s"), "{message}");
    }
    assert_eq!(app.job_rows().await, 0, "a refused upload wrote no job");

    // The first finishes and becomes a job that succeeds.
    rest.send(Ok(text[3 * MIB / 2..].to_vec())).await.unwrap();
    drop(rest);
    let r = first.await.unwrap().unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // A client that goes away half-way leaves neither a job nor parts behind.
    let (body, rest) = held_body(text[..5 * MIB / 2].to_vec());
    let abandoned = tokio::spawn(
        app.client
            .post(app.url("/api/jobs"))
            .header(CONTENT_TYPE, "text/plain")
            .header(CONTENT_LENGTH, text.len())
            .body(body)
            .send(),
    );
    let start = Instant::now();
    while parts_rows(&app).await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the upload never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rest.send(Err(std::io::Error::other("the client went away")))
        .await
        .unwrap();
    let _ = abandoned.await;
    assert_parts_go(&app).await;
    assert_eq!(app.job_rows().await, 1);

    // With the budget free again, an upload is accepted at once.
    let r = app.post_raw("/api/jobs", "text/plain", text.clone()).await;
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn an_upload_in_parts_runs_on_postgres_and_its_parts_go_when_it_succeeds() {
    let app = spawn_prod(|_| {}).await;
    let worker = app.worker();
    parted_and_whole_score_alike(&app).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_input_parts")
        .fetch_one(&app.pg)
        .await
        .unwrap();
    assert_eq!(left, 0, "a finished job's parts are deleted");
    worker.stop().await;
}

#[tokio::test]
async fn the_pruner_deletes_the_parts_of_an_upload_abandoned_an_hour_ago_and_nothing_else() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let store = &app.deps.store;
    // An upload whose process died an hour ago, one arriving now, and a job's input.
    store
        .stage_input_part("abandoned", 0, b"old")
        .await
        .unwrap();
    sqlx::query(
        "UPDATE job_input_parts SET staged_at = staged_at - 3601 WHERE job_id = 'abandoned'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    store.stage_input_part("arriving", 0, b"new").await.unwrap();
    let job = app.submit_raw("text/plain", &mixed_text(3 * MIB / 2)).await;
    sqlx::query("UPDATE job_input_parts SET staged_at = staged_at - 3601 WHERE job_id = $1")
        .bind(&job)
        .execute(&app.pool)
        .await
        .unwrap();
    let pruned = store.prune().await.unwrap();
    assert_eq!(pruned.abandoned_parts, 1);
    let left: Vec<(String, i64)> = sqlx::query_as(
        "SELECT job_id, COUNT(*) FROM job_input_parts GROUP BY job_id ORDER BY job_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut expected = vec![("arriving".to_owned(), 1), (job, 2)];
    expected.sort();
    assert_eq!(left, expected);
}

/// Every analysis beyond the inline size holds its share of the worker's analysis memory while
/// it runs, so `--concurrency` cannot multiply the memory of large runs. With all of it taken
/// (as by runs already analysing), a large upload (in parts) and a large JSON text (held
/// whole) are not analysed, while a short text (analysed inline, needing none) still is; once
/// the memory is free both large jobs succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_analysis_waits_for_its_share_of_the_workers_memory_and_a_short_one_does_not() {
    let app = spawn_app().await;
    let all = app.deps.analysis_memory.hold(usize::MAX).await;
    let parted = app.submit_raw("text/plain", &mixed_text(3 * MIB / 2)).await;
    let whole = app.submit(&json!({ "text": mixed_text(MIB / 2) })).await;
    let short = app
        .submit(&json!({ "text": "A short and happy note." }))
        .await;
    let short = app.wait_final_within(&short, Duration::from_secs(30)).await;
    assert_eq!(short["status"], "succeeded", "{short}");
    // Unbudgeted, each would be done well within this (about half a second each).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in [&parted, &whole] {
        let job = app.job(id).await;
        assert!(
            job["status"] == "queued" || job["status"] == "running",
            "analysed without its share of the memory: {job}"
        );
        assert!(job["result"].is_null(), "{job}");
    }
    drop(all);
    for id in [&parted, &whole] {
        let job = app.wait_final_within(id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
}
