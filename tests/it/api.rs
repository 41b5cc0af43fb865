//! Black-box tests of the JSON API: each test starts the app on a free port with its own
//! temporary SQLite database (and, unless said otherwise, its in-process worker).

use crate::common;
use std::time::{Duration, Instant};

use crate::common::{assert_error, big_text, spawn_app, spawn_app_with};
use reqwest::header::{ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use sentiq::jobs::worker::{self, Outcome};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_a_text_answers_202_with_location_retry_after_and_the_contract_body() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = app.post_json(&json!({"text": "What a lovely day."})).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(r.headers()[RETRY_AFTER], "1");
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["status_url"], format!("/api/jobs/{id}"));
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(body.as_object().unwrap().len(), 3);
    // One row and one queue entry, written together.
    assert_eq!(app.job_rows().await, 1);
    assert_eq!(app.queue_rows().await, 1);
    let job = app.job(id).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["queue"], "quick");
    assert_eq!(job["attempts"], 0);
    assert!(job["started_at"].is_null() && job["finished_at"].is_null());
    assert!(job["error"].is_null() && job["result"].is_null());
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_text_succeeds_with_labels_histogram_and_arc() {
    let app = spawn_app().await;
    let id = app
        .submit(&json!({"text": "I love this phone. The battery is awful and it broke. It is a phone."}))
        .await;
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1);
    let r = &job["result"];
    assert_eq!(r["items"], 3);
    assert_eq!(
        r["labels"],
        json!({"positive": 1, "neutral": 1, "negative": 1})
    );
    assert_eq!(r["histogram"].as_array().unwrap().len(), 20);
    assert_eq!(r["arc"].as_array().unwrap().len(), 3);
    assert_eq!(r["most_positive"][0]["text"], "I love this phone.");
    assert_eq!(job["progress"]["done"], job["progress"]["total"]);
    for key in ["created_at", "started_at", "finished_at"] {
        let t = job[key].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(t).expect("RFC 3339");
        assert!(t.ends_with('Z'));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_documents_is_scored_one_item_per_document() {
    let app = spawn_app().await;
    let id = app
        .submit(&json!({"documents": [
            {"id": "a", "text": "Wonderful service, friendly staff."},
            {"id": "b", "text": "Horrible. Never again."},
            {"id": 3, "text": "The parcel arrived on Tuesday."}
        ]}))
        .await;
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["items"], 3);
    assert_eq!(job["result"]["format"], "documents");
    assert_eq!(job["result"]["most_positive"][0]["id"], "a");
    assert_eq!(job["result"]["most_negative"][0]["id"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_csv_and_ndjson_uploads_are_accepted_and_analysed() {
    let app = spawn_app().await;
    let text = app
        .submit_raw("text/plain; charset=utf-8", "Good. Bad. Great!")
        .await;
    let csv = app
        .submit_raw(
            "text/csv",
            "id,review\n1,\"Great, really great!\"\n2,Terrible quality\n",
        )
        .await;
    let ndjson = app
        .submit_raw(
            "application/x-ndjson",
            "{\"id\": \"x\", \"text\": \"I am happy\"}\n{\"text\": \"I am sad\"}\n",
        )
        .await;
    let text = app.wait_final(&text).await;
    assert_eq!(text["result"]["items"], 3);
    assert_eq!(text["result"]["format"], "text");
    let csv = app.wait_final(&csv).await;
    assert_eq!(csv["status"], "succeeded", "{csv}");
    assert_eq!(csv["result"]["items"], 2);
    assert_eq!(csv["result"]["format"], "csv");
    assert_eq!(csv["result"]["most_positive"][0]["id"], "1");
    let ndjson = app.wait_final(&ndjson).await;
    assert_eq!(ndjson["result"]["items"], 2);
    assert_eq!(ndjson["result"]["format"], "jsonl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_column_query_parameter_picks_the_text_column() {
    let app = spawn_app().await;
    let body = "title,comment_text\nx,I hate waiting\ny,I adore it\n";
    let r = app
        .post_raw("/api/jobs?column=comment_text", "text/csv", body.into())
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["items"], 2);
    assert_eq!(job["result"]["most_negative"][0]["text"], "I hate waiting");
    // Without the parameter this CSV has no usable text column.
    let r = app.post_raw("/api/jobs", "text/csv", body.into()).await;
    let message = assert_error(r, 422, "no_text_column").await;
    assert!(message.contains("comment_text"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_is_413_and_creates_no_job() {
    let app = spawn_app_with(|c| {
        c.http.max_body_bytes = 1024;
        c.worker.run_in_process = false;
    })
    .await;
    let big = "a".repeat(2000);
    let r = app.post_json(&json!({"text": big})).await;
    assert_error(r, 413, "payload_too_large").await;
    let r = app
        .post_raw("/api/jobs", "text/plain", big.clone().into())
        .await;
    assert_error(r, 413, "payload_too_large").await;
    // Chunked, without a Content-Length: refused as it streams past the limit.
    let stream =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512])));
    let r = app
        .client
        .post(app.url("/api/jobs"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "payload_too_large").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blank_text_is_422_and_creates_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    for body in [
        json!({"text": ""}),
        json!({"text": "  \n\t "}),
        json!({"documents": [{"text": " "}]}),
    ] {
        let r = app.post_json(&body).await;
        assert_error(r, 422, "empty_input").await;
    }
    let r = app
        .post_raw("/api/jobs", "text/plain", b" \n \n".to_vec())
        .await;
    assert_error(r, 422, "empty_input").await;
    let r = app.post_raw("/api/jobs", "text/csv", Vec::new()).await;
    assert_error(r, 422, "empty_input").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_and_creates_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    for body in [
        "{\"text\": ",
        "not json",
        "[1, 2]",
        "{\"text\": 5}",
        "{\"documents\": \"x\"}",
    ] {
        let r = app
            .post_raw("/api/jobs", "application/json", body.as_bytes().to_vec())
            .await;
        assert_error(r, 400, "invalid_json").await;
    }
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_is_400_and_creates_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    for body in [
        json!({}),
        json!({"txt": "hello"}),
        json!({"documents": [{"id": "1"}]}),
    ] {
        let r = app.post_json(&body).await;
        assert_error(r, 400, "missing_field").await;
    }
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_content_type_is_415_and_creates_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    for ct in ["application/xml", "image/png", "application/octet-stream"] {
        let r = app.post_raw("/api/jobs", ct, b"hello".to_vec()).await;
        assert_error(r, 415, "unsupported_media_type").await;
    }
    let r = app
        .client
        .post(app.url("/api/jobs"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "unsupported_media_type").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_400_and_creates_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let bad = b"good line\nbad \xff\xfe byte\n".to_vec();
    for ct in ["text/plain", "text/csv", "application/x-ndjson"] {
        let r = app.post_raw("/api/jobs", ct, bad.clone()).await;
        let message = assert_error(r, 400, "invalid_utf8").await;
        assert!(message.contains("line 2"), "{message}");
    }
    let r = app
        .post_raw(
            "/api/jobs",
            "application/json",
            b"{\"text\": \"\xff\"}".to_vec(),
        )
        .await;
    assert_error(r, 400, "invalid_utf8").await;
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_ids_are_404_json() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/jobs/{unknown}"),
        "/api/jobs/not-a-uuid".to_owned(),
        "/api/jobs/1%27%20OR%201=1".to_owned(),
        format!("/api/jobs/{unknown}/items.csv"),
        "/api/jobs/nope/items.jsonl".to_owned(),
    ] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_error(r, 404, "not_found").await;
    }
    let r = app
        .client
        .post(app.url(&format!("/api/jobs/{unknown}/cancel")))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_etag_answers_304_until_the_job_changes() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Fine."})).await;
    let url = app.url(&format!("/api/jobs/{id}"));
    let r = app.client.get(&url).send().await.unwrap();
    let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
    let r = app
        .client
        .get(&url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()[ETAG].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    // A change (here: running the job) gives a new ETag and a full answer.
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
    let r = app
        .client
        .get(&url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()[ETAG].to_str().unwrap(), etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queued_job_never_starts() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Never to be read."})).await;
    let cancel = app.url(&format!("/api/jobs/{id}/cancel"));
    let r = app.client.post(&cancel).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["status"], "cancelled");
    assert!(job["finished_at"].is_string());
    // Its delivery is a no-op.
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Skipped
    );
    let job = app.job(&id).await;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["attempts"], 0);
    assert!(job["started_at"].is_null());
    // Cancelling a final job is a conflict.
    let r = app.client.post(&cancel).send().await.unwrap();
    assert_error(r, 409, "already_final").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_running_job_stops_and_ends_cancelled() {
    let app = spawn_app().await;
    let r = app
        .post_raw("/api/jobs", "text/plain", big_text(12).into_bytes())
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = app.wait_for(&id, |s| s != "queued").await;
    assert_eq!(
        running["status"], "running",
        "finished before it could be cancelled"
    );
    assert_eq!(running["queue"], "bulk");
    let r = app
        .client
        .post(app.url(&format!("/api/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "cancelled");
    assert!(job["result"].is_null());
    // The worker stops at its next chunk and drops the items it had stored.
    let start = Instant::now();
    loop {
        let items: i64 = sentiq::jobs::model::item_count(&app.db, &id).await.unwrap();
        if items == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "worker kept going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.job(&id).await["status"], "cancelled");
}

/// Milliseconds between two RFC 3339 timestamps of a status body.
fn millis_between(from: &Value, to: &Value) -> i64 {
    let parse = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
            .expect("RFC 3339")
            .timestamp_millis()
    };
    parse(to) - parse(from)
}

/// One analysis at a time, every job on queue `bulk`: a job queued behind a running one starts
/// only once the worker is free, which shows when the running one really stopped.
fn one_worker_slot(c: &mut sentiq::config::Config) {
    c.worker.concurrency = 1;
    c.queue.bulk_threshold_bytes = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_frees_its_worker_within_a_second() {
    let app = spawn_app_with(one_worker_slot).await;
    // About 2 s of analysis on this machine: long enough that only the cancel frees the slot.
    let big = app.submit_raw("text/plain", &big_text(60)).await;
    let running = app.wait_for(&big, |s| s != "queued").await;
    assert_eq!(running["status"], "running");
    let next = app
        .submit(&json!({"text": "Queued behind the big one. Nice."}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.job(&next).await["status"],
        "queued",
        "the worker has one slot, taken by the big job"
    );
    let cancelled_at = Instant::now();
    let r = app
        .client
        .post(app.url(&format!("/api/jobs/{big}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_for(&next, |s| s != "queued").await;
    let freed_after = cancelled_at.elapsed();
    assert!(
        freed_after < Duration::from_secs(1),
        "the next job started {freed_after:?} after the cancel"
    );
    assert_eq!(app.wait_final(&big).await["status"], "cancelled");
    assert_eq!(app.wait_final(&next).await["status"], "succeeded");
    assert!(app.job(&big).await["result"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_past_job_timeout_fails_with_code_timeout_and_frees_its_worker() {
    let app = spawn_app_with(|c| {
        one_worker_slot(c);
        c.worker.timing.job_timeout = Some(Duration::from_millis(400));
    })
    .await;
    let big = app.submit_raw("text/plain", &big_text(40)).await;
    let next = app
        .submit(&json!({"text": "Short and sweet. Lovely."}))
        .await;
    let job = app.wait_final(&big).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "timeout");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("time limit of 0.4 s") && message.contains("JOB_TIMEOUT"),
        "{message}"
    );
    assert!(job["result"].is_null());
    let ran_ms = millis_between(&job["started_at"], &job["finished_at"]);
    // It stops at its next chunk: well under a second on an idle machine, slower when every
    // test of the suite runs at once on two cores.
    assert!(
        (400..4000).contains(&ran_ms),
        "stopped {ran_ms} ms after it started (limit 400 ms)"
    );
    let after = app.wait_final(&next).await;
    assert_eq!(after["status"], "succeeded", "the worker was not freed");
    let items: i64 = sentiq::jobs::model::item_count(&app.db, &big)
        .await
        .unwrap();
    assert_eq!(items, 0, "a timed-out job keeps no partial items");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_submission_rate_gets_429_with_retry_after_and_no_job() {
    let app = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.limits.submit_rate_per_minute = 6;
        c.limits.submit_burst = 3;
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.submit(&json!({"text": format!("Submission {i} is fine.")}))
                .await,
        );
    }
    let r = app.post_json(&json!({"text": "One too many."})).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "Retry-After: {wait}");
    let message = assert_error(r, 429, "rate_limited").await;
    assert!(message.contains("try again in"), "{message}");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sentiq_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3, "the refused submission left no row");
    // Reading is not limited: a client over its submission rate still follows its jobs.
    for id in &ids {
        for _ in 0..5 {
            assert_eq!(app.job(id).await["status"], "queued");
        }
    }
    // The bucket refills at the configured rate (6 a minute: one every 10 s).
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = app.post_json(&json!({"text": "Patience pays."})).await;
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_download_as_csv_and_jsonl_once_the_job_succeeded() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app
        .submit(&json!({"documents": [
            {"id": "r1", "text": "Absolutely \"brilliant\", thanks"},
            {"text": "Awful.\nReally awful."}
        ]}))
        .await;
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/items.csv")))
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "not_succeeded").await;
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );

    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/items.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "position", "id", "text", "neg", "neu", "pos", "compound", "label", "lang"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][0], "0");
    assert_eq!(&rows[0][1], "r1");
    assert_eq!(&rows[0][2], "Absolutely \"brilliant\", thanks");
    assert_eq!(&rows[1][1], "");
    assert_eq!(&rows[1][2], "Awful.\nReally awful.");
    let compound: f64 = rows[1][6].parse().unwrap();
    assert!(compound < 0.0);
    assert_eq!(&rows[1][7], "negative");

    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/items.jsonl")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["position"], 0);
    assert_eq!(lines[0]["id"], "r1");
    assert_eq!(lines[1]["id"], Value::Null);
    for key in ["neg", "neu", "pos", "compound"] {
        assert!(lines[0]["sentiment"][key].is_number());
    }
    assert_eq!(lines[1]["sentiment"]["label"], "negative");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_items_stream_in_order_across_pages() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let text: String = (0..4500).map(|i| format!("Line {i} is nice.\n")).collect();
    let id = app.submit_raw("text/plain", &text).await;
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
    let body = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/items.jsonl")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let positions: Vec<u64> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, (0..4500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_delivery_of_the_same_job_is_a_no_op() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app
        .submit(&json!({"text": "Great start. Sad ending."}))
        .await;
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
    let first = app.job(&id).await;
    let etag_before: String =
        sqlx::query_scalar("SELECT CAST(version AS TEXT) FROM sentiq_jobs WHERE id = ?")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let items_before: i64 = sentiq::jobs::model::item_count(&app.db, &id).await.unwrap();
    // Same function the worker uses, same id, twice more (also concurrently).
    let (a, b) = tokio::join!(
        worker::process(&app.deps, &id),
        worker::process(&app.deps, &id)
    );
    assert_eq!(a.unwrap(), Outcome::Skipped);
    assert_eq!(b.unwrap(), Outcome::Skipped);
    let second = app.job(&id).await;
    assert_eq!(first, second);
    let etag_after: String =
        sqlx::query_scalar("SELECT CAST(version AS TEXT) FROM sentiq_jobs WHERE id = ?")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(etag_before, etag_after);
    let items_after: i64 = sentiq::jobs::model::item_count(&app.db, &id).await.unwrap();
    assert_eq!(items_before, items_after);
    assert_eq!(second["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_racing_for_a_queued_job_run_it_once() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Only once, please."})).await;
    let (a, b) = tokio::join!(
        worker::process(&app.deps, &id),
        worker::process(&app.deps, &id)
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Skipped, Outcome::Succeeded]);
    assert_eq!(app.job(&id).await["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_whose_rows_break_in_the_middle_fails_the_job_with_a_message() {
    let app = spawn_app().await;
    let id = app
        .submit_raw("text/csv", "id,stars,review\n1,5,Lovely\n2\n3,1,Dreadful\n")
        .await;
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "bad_record");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 3"), "{message}");
    assert!(job["result"].is_null());
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/items.csv")))
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "not_succeeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_inputs_go_to_the_bulk_queue_and_small_ones_to_quick() {
    let app = spawn_app_with(|c| c.queue.bulk_threshold_bytes = 100).await;
    let small = app.submit(&json!({"text": "Short and sweet."})).await;
    let large = app
        .submit(&json!({"text": "This is long and lovely. ".repeat(10)}))
        .await;
    let small = app.wait_final(&small).await;
    let large = app.wait_final(&large).await;
    assert_eq!(small["queue"], "quick");
    assert_eq!(large["queue"], "bulk");
    assert_eq!(small["status"], "succeeded");
    assert_eq!(large["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_is_picked_up_promptly() {
    let app = spawn_app().await;
    // Warm up (the workers register on their first poll).
    let id = app.submit(&json!({"text": "Warm."})).await;
    app.wait_final(&id).await;
    let start = Instant::now();
    for _ in 0..5 {
        let id = app.submit(&json!({"text": "Quick one."})).await;
        assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "five small jobs took {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_200() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.pool.close().await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_each_change_and_closes_after_the_final_state() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Streams are lovely."})).await;
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let deps = app.deps.clone();
    let job_id = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        worker::process(&deps, &job_id).await.unwrap();
    });
    // The body ends by itself once the job is final.
    let body = tokio::time::timeout(Duration::from_secs(20), r.text())
        .await
        .expect("the stream closes")
        .unwrap();
    let statuses: Vec<String> = body
        .split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| {
            serde_json::from_str::<Value>(data).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses.first().map(String::as_str), Some("queued"));
    assert_eq!(statuses.last().map(String::as_str), Some("succeeded"));
    assert!(body.contains("event: status"));
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{}/events", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

/// The value of the sample `series` (name with labels, exactly as rendered) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_job_events_durations_waits_and_http_requests_by_route_and_status() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let ok = app.submit(&json!({"text": "Count me. Lovely."})).await;
    let bad = app
        .submit_raw("text/csv", "id,stars,review\n1,5,Lovely\n2\n3,1,Dreadful\n")
        .await;
    let cancelled = app.submit(&json!({"text": "Never mind."})).await;
    let r = app
        .client
        .post(app.url(&format!("/api/jobs/{cancelled}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_error(
        app.post_json(&json!({"text": "  "})).await,
        422,
        "empty_input",
    )
    .await;
    for _ in 0..3 {
        app.job(&ok).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        worker::process(&app.deps, &ok).await.unwrap(),
        Outcome::Succeeded
    );
    assert_eq!(
        worker::process(&app.deps, &bad).await.unwrap(),
        Outcome::Failed
    );
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let q = "{queue=\"quick\"}";
    assert_eq!(
        sample(&text, &format!("sentiq_jobs_submitted_total{q}")),
        3.0
    );
    assert_eq!(sample(&text, &format!("sentiq_jobs_started_total{q}")), 2.0);
    assert_eq!(
        sample(&text, &format!("sentiq_jobs_succeeded_total{q}")),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("sentiq_jobs_cancelled_total{q}")),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "sentiq_jobs_failed_total{code=\"bad_record\",queue=\"quick\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("sentiq_job_duration_seconds_count{q}")),
        2.0
    );
    assert_eq!(
        sample(&text, &format!("sentiq_job_queue_wait_seconds_count{q}")),
        2.0
    );
    // Both waited at least the 30 ms slept above, and less than a minute.
    let waited = sample(&text, &format!("sentiq_job_queue_wait_seconds_sum{q}"));
    assert!((0.06..60.0).contains(&waited), "{waited}");
    let http = |route: &str, method: &str, status: u16| {
        sample(
            &text,
            &format!(
                "sentiq_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(http("/api/jobs", "POST", 202), 3.0);
    assert_eq!(http("/api/jobs", "POST", 422), 1.0);
    assert_eq!(http("/api/jobs/{id}", "GET", 200), 3.0);
    assert_eq!(http("/api/jobs/{id}/cancel", "POST", 200), 1.0);
    assert_eq!(
        sample(
            &text,
            "sentiq_http_request_duration_seconds_count{method=\"POST\",route=\"/api/jobs\"}"
        ),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_jobs_by_queue_and_status() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let done = app.submit(&json!({"text": "Count me."})).await;
    app.submit(&json!({"text": "Me too."})).await;
    assert_eq!(
        worker::process(&app.deps, &done).await.unwrap(),
        Outcome::Succeeded
    );
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("sentiq_jobs{queue=\"quick\",status=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sentiq_jobs{queue=\"quick\",status=\"queued\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sentiq_queue_entries{queue=\"quick\",state=\"pending\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_json_api() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/cancel",
        "/api/jobs/{id}/events",
        "/api/jobs/{id}/items.csv",
        "/api/jobs/{id}/items.jsonl",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

/// Whether a real response conforms to what the OpenAPI document declares for `method path`:
/// its status is declared, its declared headers are present, its media type is declared and its
/// body validates against the declared schema (JSON; each line of JSON lines against `Item`; each
/// event of an event stream and the job in its data). Returns the body read.
pub(crate) async fn conforms(
    doc: &Value,
    method: &str,
    path: &str,
    r: reqwest::Response,
) -> Result<String, String> {
    let status = r.status().as_u16().to_string();
    let headers = r.headers().clone();
    let body = r.text().await.map_err(|e| e.to_string())?;
    let at = format!("{} {path} → {status}", method.to_uppercase());
    let declared = &doc["paths"][path][method]["responses"][&status];
    if !declared.is_object() {
        return Err(format!("{at}: status not declared (body {body})"));
    }
    if let Some(wanted) = declared["headers"].as_object() {
        for (name, header) in wanted {
            if header["required"] == true && !headers.contains_key(name.as_str()) {
                return Err(format!("{at}: header {name} missing"));
            }
        }
    }
    let Some(content) = declared["content"].as_object() else {
        return if body.is_empty() {
            Ok(body)
        } else {
            Err(format!("{at}: a body where none is declared: {body}"))
        };
    };
    let media = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let Some(schema) = content.get(&media).map(|c| &c["schema"]) else {
        return Err(format!("{at}: content type {media:?} not declared"));
    };
    let validate = |schema: &Value, instance: &Value| validate_against(doc, &at, schema, instance);
    let parse = |text: &str| -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| format!("{at}: not JSON ({e}): {text}"))
    };
    match media.as_str() {
        "application/json" => validate(schema, &parse(&body)?)?,
        "application/x-ndjson" => {
            let item = json!({"$ref": "#/components/schemas/Item"});
            for line in body.lines() {
                validate(&item, &parse(line)?)?;
            }
        }
        "text/event-stream" => {
            for frame in body.split("\n\n").filter(|f| !f.trim().is_empty()) {
                let mut event = serde_json::Map::new();
                for line in frame.lines().filter(|l| !l.starts_with(':')) {
                    let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                    event.insert(field.to_owned(), json!(value));
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                let event = Value::Object(event);
                validate(schema, &event)?;
                let data = &doc["components"]["schemas"]["StatusEvent"]["properties"]["data"];
                validate(
                    &data["contentSchema"],
                    &parse(event["data"].as_str().unwrap())?,
                )?;
            }
        }
        "text/csv" | "text/plain" => {}
        other => return Err(format!("{at}: no check for {other}")),
    }
    Ok(body)
}

/// Whether `instance` validates against `schema`, a schema of the OpenAPI document `doc` (its
/// references resolved in the document's components); else why not, after `at`.
pub(crate) fn validate_against(
    doc: &Value,
    at: &str,
    schema: &Value,
    instance: &Value,
) -> Result<(), String> {
    let mut root = schema.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = doc["components"].clone();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("{at}: bad schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{at}: {instance} violates the schema: {errors:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_conform_to_the_openapi_document() {
    let queued = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.http.max_body_bytes = 4096;
    })
    .await;
    let worked = spawn_app().await;
    let limited = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.limits.submit_rate_per_minute = 1;
        c.limits.submit_burst = 1;
    })
    .await;
    let doc: Value = queued
        .client
        .get(queued.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get = |app: &common::TestApp, path: &str| {
        let request = app.client.get(app.url(path)).send();
        async move { request.await.unwrap() }
    };
    let post = |app: &common::TestApp, path: &str| {
        let request = app.client.post(app.url(path)).send();
        async move { request.await.unwrap() }
    };
    let mut seen = std::collections::BTreeSet::new();
    macro_rules! check {
        ($method:literal, $path:literal, $response:expr, $status:expr) => {{
            let r = $response.await;
            assert_eq!(r.status().as_u16(), $status, "{} {}", $method, $path);
            seen.insert(format!("{} {} {}", $method, $path, $status));
            conforms(&doc, $method, $path, r).await.unwrap()
        }};
    }

    // Submissions: every accepted form, then each refusal.
    let body = check!(
        "post",
        "/api/jobs",
        queued.post_json(&json!({"text": "Nice."})),
        202
    );
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    check!(
        "post",
        "/api/jobs",
        queued.post_json(&json!({"documents": [{"id": 7, "text": "a"}, {"text": "b"}]})),
        202
    );
    for (content_type, text) in [
        ("text/plain", "Good. Bad."),
        ("application/x-ndjson", "{\"text\": \"fine\"}\n"),
    ] {
        let r = queued.post_raw("/api/jobs", content_type, text.into());
        check!("post", "/api/jobs", r, 202);
    }
    let r = queued.post_raw(
        "/api/jobs?column=b",
        "text/csv",
        b"a,b\n1,Lovely\n".to_vec(),
    );
    check!("post", "/api/jobs", r, 202);
    check!(
        "post",
        "/api/jobs",
        queued.post_raw("/api/jobs", "application/json", b"{".to_vec()),
        400
    );
    check!("post", "/api/jobs", queued.post_json(&json!({})), 400);
    let big = vec![b'a'; 5000];
    check!(
        "post",
        "/api/jobs",
        queued.post_raw("/api/jobs", "text/plain", big),
        413
    );
    check!(
        "post",
        "/api/jobs",
        queued.post_raw("/api/jobs", "image/png", b"x".to_vec()),
        415
    );
    check!(
        "post",
        "/api/jobs",
        queued.post_json(&json!({"text": "  "})),
        422
    );
    let r = queued.post_raw("/api/jobs", "text/csv", b"a,b\n1,2\n".to_vec());
    check!("post", "/api/jobs", r, 422);
    check!(
        "post",
        "/api/jobs",
        limited.post_json(&json!({"text": "One."})),
        202
    );
    check!(
        "post",
        "/api/jobs",
        limited.post_json(&json!({"text": "Two."})),
        429
    );

    // A repeated Idempotency-Key: the first answer again, or 422 for another request.
    let keyed = |text: &str| {
        let request = queued.client.post(queued.url("/api/jobs"));
        let request = request.header("Idempotency-Key", "conformance");
        let request = request.json(&json!({ "text": text })).send();
        async move { request.await.unwrap() }
    };
    let first = check!("post", "/api/jobs", keyed("Once."), 202);
    let replayed = check!("post", "/api/jobs", keyed("Once."), 202);
    assert_eq!(first, replayed);
    check!("post", "/api/jobs", keyed("Twice."), 422);

    // A queued job: status, 304, downloads refused, cancel, cancel again.
    let job = format!("/api/jobs/{id}");
    check!("get", "/api/jobs/{id}", get(&queued, &job), 200);
    let etag = queued
        .client
        .get(queued.url(&job))
        .send()
        .await
        .unwrap()
        .headers()[ETAG]
        .clone();
    let r = async {
        let request = queued.client.get(queued.url(&job));
        request.header(IF_NONE_MATCH, etag).send().await.unwrap()
    };
    check!("get", "/api/jobs/{id}", r, 304);
    let items = format!("{job}/items.csv");
    check!("get", "/api/jobs/{id}/items.csv", get(&queued, &items), 409);
    let cancel = format!("{job}/cancel");
    check!("post", "/api/jobs/{id}/cancel", post(&queued, &cancel), 200);
    check!("post", "/api/jobs/{id}/cancel", post(&queued, &cancel), 409);
    let events = format!("{job}/events");
    check!("get", "/api/jobs/{id}/events", get(&queued, &events), 200);
    for (path, raw) in [
        (
            "/api/jobs/{id}",
            "/api/jobs/00000000-0000-4000-8000-000000000000",
        ),
        ("/api/jobs/{id}", "/api/jobs/not-a-uuid"),
    ] {
        let r = get(&queued, raw).await;
        assert_eq!(r.status(), 404);
        conforms(&doc, "get", path, r).await.unwrap();
    }
    let unknown = "/api/jobs/00000000-0000-4000-8000-000000000000";
    check!(
        "post",
        "/api/jobs/{id}/cancel",
        post(&queued, &format!("{unknown}/cancel")),
        404
    );
    check!(
        "get",
        "/api/jobs/{id}/events",
        get(&queued, &format!("{unknown}/events")),
        404
    );
    check!(
        "get",
        "/api/jobs/{id}/items.jsonl",
        get(&queued, &format!("{unknown}/items.jsonl")),
        404
    );

    // Finished jobs: succeeded (with its downloads and events) and failed.
    let ok = worked
        .submit(
            &json!({"documents": [{"id": "r1", "text": "Lovely, thanks!"}, {"text": "Awful."}]}),
        )
        .await;
    assert_eq!(worked.wait_final(&ok).await["status"], "succeeded");
    let bad = worked
        .submit_raw("text/csv", "id,stars,review\n1,5,Lovely\n2\n3,1,Dreadful\n")
        .await;
    assert_eq!(worked.wait_final(&bad).await["status"], "failed");
    for id in [&ok, &bad] {
        check!(
            "get",
            "/api/jobs/{id}",
            get(&worked, &format!("/api/jobs/{id}")),
            200
        );
    }
    let csv = check!(
        "get",
        "/api/jobs/{id}/items.csv",
        get(&worked, &format!("/api/jobs/{ok}/items.csv")),
        200
    );
    assert!(
        csv.starts_with("position,id,text,neg,neu,pos,compound,label,lang\n"),
        "{csv}"
    );
    let jsonl = check!(
        "get",
        "/api/jobs/{id}/items.jsonl",
        get(&worked, &format!("/api/jobs/{ok}/items.jsonl")),
        200
    );
    assert_eq!(jsonl.lines().count(), 2);
    let stream = check!(
        "get",
        "/api/jobs/{id}/events",
        get(&worked, &format!("/api/jobs/{ok}/events")),
        200
    );
    assert!(stream.contains("event: status"), "{stream}");
    check!(
        "get",
        "/api/jobs/{id}/items.jsonl",
        get(&worked, &format!("/api/jobs/{bad}/items.jsonl")),
        409
    );

    // Deletion, and the tombstone it leaves: every route of the job answers 410.
    let delete = |app: &common::TestApp, path: &str| {
        let request = app.client.delete(app.url(path)).send();
        async move { request.await.unwrap() }
    };
    let gone = format!(
        "/api/jobs/{}",
        queued.submit(&json!({"text": "Bye."})).await
    );
    for _ in 0..2 {
        check!("delete", "/api/jobs/{id}", delete(&queued, &gone), 204);
    }
    check!("delete", "/api/jobs/{id}", delete(&queued, unknown), 404);
    check!("get", "/api/jobs/{id}", get(&queued, &gone), 410);
    let gone_csv = format!("{gone}/items.csv");
    check!(
        "get",
        "/api/jobs/{id}/items.csv",
        get(&queued, &gone_csv),
        410
    );
    let gone_events = format!("{gone}/events");
    check!(
        "get",
        "/api/jobs/{id}/events",
        get(&queued, &gone_events),
        410
    );
    let gone_cancel = format!("{gone}/cancel");
    check!(
        "post",
        "/api/jobs/{id}/cancel",
        post(&queued, &gone_cancel),
        410
    );

    // API keys: a page of a key's jobs (with its `Link`), a refused parameter, no owner, and
    // a refused key on every route that takes one.
    let key = crate::keys::make_key(&queued.db, "conformance", Default::default()).await;
    let as_key = |method: reqwest::Method, path: &str, key: &str| {
        let request = reqwest::Client::new()
            .request(method, queued.url(path))
            .bearer_auth(key);
        async move {
            request
                .json(&json!({"text": "Keyed."}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        check!(
            "post",
            "/api/jobs",
            as_key(reqwest::Method::POST, "/api/jobs", &key),
            202
        );
    }
    let page = check!(
        "get",
        "/api/jobs",
        as_key(reqwest::Method::GET, "/api/jobs?limit=1", &key),
        200
    );
    assert!(serde_json::from_str::<Value>(&page).unwrap()["next"].is_string());
    check!(
        "get",
        "/api/jobs",
        as_key(reqwest::Method::GET, "/api/jobs?limit=0", &key),
        400
    );
    let nobody = async {
        reqwest::Client::new()
            .get(queued.url("/api/jobs"))
            .send()
            .await
            .unwrap()
    };
    check!("get", "/api/jobs", nobody, 401);
    let revoked = crate::keys::make_key(&queued.db, "revoked", Default::default()).await;
    sentiq::keys::revoke(&queued.db, "revoked").await.unwrap();
    use reqwest::Method as M;
    check!(
        "post",
        "/api/jobs",
        as_key(M::POST, "/api/jobs", &revoked),
        401
    );
    check!("get", "/api/jobs/{id}", as_key(M::GET, &job, &revoked), 401);
    check!(
        "delete",
        "/api/jobs/{id}",
        as_key(M::DELETE, &job, &revoked),
        401
    );
    check!(
        "post",
        "/api/jobs/{id}/cancel",
        as_key(M::POST, &cancel, &revoked),
        401
    );
    check!(
        "get",
        "/api/jobs/{id}/events",
        as_key(M::GET, &events, &revoked),
        401
    );
    check!(
        "get",
        "/api/jobs/{id}/items.csv",
        as_key(M::GET, &items, &revoked),
        401
    );
    let jsonl = format!("{job}/items.jsonl");
    check!(
        "get",
        "/api/jobs/{id}/items.jsonl",
        as_key(M::GET, &jsonl, &revoked),
        401
    );

    // Operations.
    check!("get", "/healthz", get(&worked, "/healthz"), 200);
    check!("get", "/readyz", get(&worked, "/readyz"), 200);
    check!("get", "/metrics", get(&worked, "/metrics"), 200);
    check!(
        "get",
        "/api/openapi.json",
        get(&worked, "/api/openapi.json"),
        200
    );
    worked.pool.close().await;
    check!("get", "/readyz", get(&worked, "/readyz"), 503);
    // Every method, path and status exercised above (a case lost from the list shows here).
    assert_eq!(seen.len(), 39, "{seen:?}");

    // The check has teeth: a renamed field or an undeclared status is caught.
    let mut renamed = doc.clone();
    let required = renamed["components"]["schemas"]["Job"]["required"]
        .as_array_mut()
        .unwrap();
    for name in required.iter_mut().filter(|n| *n == "attempts") {
        *name = json!("tries");
    }
    let r = get(&queued, &job).await;
    let e = conforms(&renamed, "get", "/api/jobs/{id}", r)
        .await
        .unwrap_err();
    assert!(e.contains("tries"), "{e}");
    let mut undeclared = doc.clone();
    undeclared["paths"]["/api/jobs/{id}/cancel"]["post"]["responses"]
        .as_object_mut()
        .unwrap()
        .remove("409");
    let r = post(&queued, &cancel).await;
    let e = conforms(&undeclared, "post", "/api/jobs/{id}/cancel", r)
        .await
        .unwrap_err();
    assert!(e.contains("not declared"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_does_not_have_gets_405_naming_the_allowed_ones() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let r = app.client.patch(app.url("/api/jobs")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD, POST");
    let message = assert_error(r, 405, "method_not_allowed").await;
    assert!(message.contains("use GET, HEAD, POST"), "{message}");
    let id = app.submit(&json!({"text": "Fine."})).await;
    let r = app
        .client
        .put(app.url(&format!("/api/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD, DELETE");
    assert_error(r, 405, "method_not_allowed").await;
    // HEAD is answered like GET, without a body.
    let r = app
        .client
        .head(app.url(&format!("/api/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("etag"));
    assert!(r.bytes().await.unwrap().is_empty());
    let r = app.client.put(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    assert_eq!(
        app.job(&id).await["status"],
        "queued",
        "nothing was changed"
    );
}
