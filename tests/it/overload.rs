//! Overload and hostile clients: slow bodies are cut off, event streams have a cap, an exhausted
//! PostgreSQL pool and a full disk are answered with a 503 and `Retry-After` instead of a hang
//! or a 500, and nothing is half-written.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::RETRY_AFTER;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::prod::spawn_prod;
use crate::common::{assert_error, spawn_app_with};

/// Start a request of `content_type` declaring `length` bytes, then send its body a byte a
/// second; the answer's status line and body.
async fn trickle_body(port: u16, content_type: &str, length: usize) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    let sender = tokio::spawn(async move {
        for _ in 0..length {
            if write.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer comes before the body is done, and the server closes the connection.
    let read_all = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("an answer within 30 s");
    sender.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_sent_a_byte_a_second_gets_408_while_other_clients_submit_as_usual() {
    let app = spawn_app_with(|_| {}).await;
    let started = Instant::now();
    let raw = tokio::spawn(trickle_body(app.port, "text/plain", 1000));
    let json = tokio::spawn(trickle_body(app.port, "application/json", 1000));
    // Meanwhile another client's submissions are answered at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..5 {
        let sent = Instant::now();
        let id = app
            .submit(&json!({ "text": format!("A fine day number {i}.") }))
            .await;
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "a submission waited {:?} behind slow clients",
            sent.elapsed()
        );
        assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    }
    for slow in [raw.await.unwrap(), json.await.unwrap()] {
        assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
        assert!(slow.contains("\"body_too_slow\""), "{slow}");
        assert!(slow.contains("at least 10 KiB in every 10 s"), "{slow}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(20),
        "cut off after {took:?}"
    );
    // Nothing of the slow requests was written.
    assert_eq!(app.job_rows().await, 5);
    let parts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_input_parts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parts, 0);
}

/// Ask for the event stream of `id`; the answer (a stream still open when it is 200).
async fn events(api: &crate::common::Api, id: &str) -> reqwest::Response {
    api.client
        .get(api.url(&format!("/api/jobs/{id}/events")))
        .send()
        .await
        .unwrap()
}

/// The event stream of `id`, open.
async fn open_stream(api: &crate::common::Api, id: &str) -> reqwest::Response {
    let r = events(api, id).await;
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test]
async fn event_streams_past_the_cap_get_503_too_many_streams_and_a_closed_one_frees_its_place() {
    let app = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.limits.max_event_streams = 2;
    })
    .await;
    let id = app
        .submit(&json!({ "text": "Queued for as long as we like." }))
        .await;
    let mut first = open_stream(&app, &id).await.bytes_stream();
    let first_event = first.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first_event).contains("event: status"));
    let second = open_stream(&app, &id).await;

    let refused = events(&app, &id).await;
    assert_eq!(refused.headers()[RETRY_AFTER], "2");
    let message = assert_error(refused, 503, "too_many_streams").await;
    assert!(message.contains("poll"), "{message}");
    // Polling still works meanwhile.
    assert_eq!(app.job(&id).await["status"], "queued");

    // A client that goes away gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = events(&app, &id).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the closed stream's place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(second);
}

#[tokio::test]
async fn a_submission_that_finds_the_postgres_pool_exhausted_gets_503_with_retry_after_not_a_hang()
{
    let app = spawn_prod(|c| c.database.max_connections = Some(2)).await;
    // Every connection of the web's pool is busy elsewhere.
    let held = [
        app.pg.acquire().await.unwrap(),
        app.pg.acquire().await.unwrap(),
    ];
    let started = Instant::now();
    let r = app.post_json(&json!({ "text": "Anyone there?" })).await;
    let waited = started.elapsed();
    assert_eq!(r.headers()[RETRY_AFTER], "2");
    assert_error(r, 503, "unavailable").await;
    assert!(
        waited >= sentiq::db::PG_ACQUIRE_TIMEOUT && waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    drop(held);
    // Room again: the next submission goes through, and only it was written.
    let r = app.post_json(&json!({ "text": "Anyone there now?" })).await;
    assert_eq!(r.status(), 202);
    assert_eq!(app.job_rows().await, 1);
}

/// A tmpfs of `mib` MiB mounted on a temporary directory, unmounted when dropped: a disk that
/// really fills up.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: usize) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it (it needs root, as CI runs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Write a file until the disk has no room left; its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last few bytes, a block that did not fit.
        while f.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_gets_503_storage_full_reads_still_work_and_writes_resume_when_room_returns() {
    let disk = SmallDisk::mount(24);
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("sentiq.db").display()
    );
    let app = spawn_app_with(|c| {
        c.database.url = url;
        c.worker.timing.retry_base = Duration::from_secs(2);
    })
    .await;
    let before = app
        .submit(&json!({ "text": "Written before the disk filled. Great!" }))
        .await;
    assert_eq!(app.wait_final(&before).await["status"], "succeeded");

    let filler = disk.fill();
    // Submissions of 64 KiB each: the ones that still find room (pages free in the file or its
    // log) are taken; then the disk is full and they are refused, each with a clear answer.
    let text = "The disk is filling up and that is not great at all. ".repeat(1200);
    let mut accepted = vec![before.clone()];
    let mut refusal = None;
    for _ in 0..400 {
        let r = app.post_json(&json!({ "text": text })).await;
        match r.status().as_u16() {
            202 => accepted.push(
                r.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            503 => {
                assert_eq!(r.headers()[RETRY_AFTER], "60");
                refusal = Some(assert_error(r, 503, "storage_full").await);
                break;
            }
            other => panic!("a full disk answered {other}: {:?}", r.text().await),
        }
    }
    let message = refusal.expect("the disk filled up");
    assert!(message.contains("storage is full"), "{message}");
    assert!(message.contains("nothing was saved"), "{message}");
    let rows_when_full = app.job_rows().await;
    assert_eq!(rows_when_full, accepted.len() as i64, "no half-written job");

    // Reads keep working: the status, the results page, the items, the form, the metrics.
    assert_eq!(app.job(&before).await["status"], "succeeded");
    for path in [
        format!("/api/jobs/{before}/items.csv"),
        format!("/analyses/{before}"),
        "/".to_owned(),
        "/metrics".to_owned(),
    ] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} while the disk is full");
    }

    // Room again: new submissions are taken, and every job taken succeeds.
    std::fs::remove_file(filler).unwrap();
    accepted.push(app.submit(&json!({ "text": "Room again. Lovely." })).await);
    for id in &accepted {
        let job = app.wait_final_within(id, Duration::from_secs(90)).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(app.job_rows().await, accepted.len() as i64);
}

#[tokio::test]
async fn submissions_past_the_in_flight_cap_are_refused_at_once_and_the_ones_taken_succeed() {
    let app = spawn_app_with(|c| c.http.max_submissions_in_flight = 1).await;
    // The database is busy elsewhere: a submission taken now waits for it, holding its place.
    let mut writer = app.pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *writer)
        .await
        .unwrap();
    let first = {
        let api = crate::common::Api::new(app.port);
        tokio::spawn(async move {
            api.post_json(&json!({ "text": "I was first. Lovely!" }))
                .await
        })
    };
    // Another one meanwhile is refused at once, once the first holds the place.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let sent = Instant::now();
        let r = app.post_json(&json!({ "text": "Me too, please." })).await;
        assert_ne!(r.status(), 202, "taken past the cap");
        if r.status() == 503 {
            assert!(
                sent.elapsed() < Duration::from_secs(1),
                "refused only after {:?}",
                sent.elapsed()
            );
            break r;
        }
        assert!(Instant::now() < deadline, "never refused: {}", r.status());
    };
    assert_eq!(refused.headers()[RETRY_AFTER], "1");
    let message = assert_error(refused, 503, "overloaded").await;
    assert!(message.contains("again in 1 s"), "{message}");
    // The database is free again: the first is written, the place is free for the next.
    sqlx::query("ROLLBACK").execute(&mut *writer).await.unwrap();
    drop(writer);
    let r = first.await.unwrap();
    assert_eq!(r.status(), 202);
    let last = app.submit(&json!({ "text": "And now?" })).await;
    assert_eq!(app.wait_final(&last).await["status"], "succeeded");
    assert_eq!(app.job_rows().await, 2);
}
