//! Recovery: jobs whose worker died or whose queue entry was lost are handed out again, and a
//! run that lost its job can no longer write to it.

use crate::common;
use crate::common::{item, spawn_app_with};
use sentiq::jobs::model;
use sentiq::jobs::worker::{self, Outcome};
use serde_json::json;

const LONG_AGO: &str = "2000-01-01T00:00:00.000Z";

async fn make_stale(app: &common::TestApp, id: &str) {
    sqlx::query("UPDATE sentiq_jobs SET updated_at = ? WHERE id = ?")
        .bind(LONG_AGO)
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_re_enqueued_after_its_lease_and_finishes() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app
        .submit(&json!({"text": "Interrupted, then fine."}))
        .await;
    // A worker claimed it, then died: the row stays `running`, its queue entry is done.
    let claimed = model::claim(&app.db, &id).await.unwrap().expect("claimed");
    assert_eq!(claimed.attempts, 1);
    sqlx::query("UPDATE Jobs SET status = 'Done'")
        .execute(&app.pool)
        .await
        .unwrap();
    // Within its lease nothing happens.
    assert_eq!(worker::reconcile(&app.deps).await.unwrap(), 0);
    make_stale(&app, &id).await;
    assert_eq!(worker::reconcile(&app.deps).await.unwrap(), 1);
    assert_eq!(app.job(&id).await["status"], "queued");
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE status = 'Pending'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(live, 1);
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
    let job = app.job(&id).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"], 2);
    // The dead run's writes are fenced off by its attempt number.
    assert!(!model::set_progress(&app.db, &id, 1, 1, 2).await.unwrap());
    assert!(!model::succeed(&app.db, &id, 1, "{}", None).await.unwrap());
    assert!(!model::fail(&app.db, &id, 1, "x", "y", None).await.unwrap());
    assert_eq!(app.job(&id).await, job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_whose_queue_entry_was_lost_is_re_enqueued_once() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Lost and found."})).await;
    sqlx::query("DELETE FROM Jobs")
        .execute(&app.pool)
        .await
        .unwrap();
    make_stale(&app, &id).await;
    assert_eq!(worker::reconcile(&app.deps).await.unwrap(), 1);
    assert_eq!(app.queue_rows().await, 1);
    // It now has a live entry (and a fresh timestamp): nothing more to do.
    make_stale(&app, &id).await;
    assert_eq!(worker::reconcile(&app.deps).await.unwrap(), 0);
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_reads_the_live_queue_entries_once_not_once_per_queued_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let mut connection = app.pool.acquire().await.unwrap();
    let steps = plan(&mut connection, model::STALE_EMBEDDED, &[LONG_AGO]).await;
    assert!(
        steps.iter().any(|s| s.contains("LIST SUBQUERY")),
        "{steps:#?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("CORRELATED")),
        "a lookup per queued job: {steps:#?}"
    );
}

/// The query planner's steps for `statement` on `connection`.
async fn plan(
    connection: &mut sqlx::SqliteConnection,
    statement: &str,
    binds: &[&str],
) -> Vec<String> {
    use sqlx::Row;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {statement}"
    )));
    for value in binds {
        query = query.bind(*value);
    }
    query
        .fetch_all(connection)
        .await
        .unwrap()
        .iter()
        .map(|step| step.get::<String, _>("detail"))
        .collect()
}

/// Every connection the app's pool holds (each plans with the statistics it has read).
async fn every_connection(app: &common::TestApp) -> Vec<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
    let mut held = Vec::new();
    for _ in 0..app.pool.size().max(1) {
        held.push(app.pool.acquire().await.unwrap());
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_acknowledges_entries_by_id_not_by_walking_all_its_workers_entries() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    // The shape of apalis-sqlite's acknowledgement: a JSON list of finished entries, matched
    // by id and by the worker holding them.
    let ack = "WITH j AS (SELECT value ->> 'task_id' AS task_id, value ->> 'status' AS status \
               FROM json_each(?1)) \
               UPDATE Jobs SET status = j.status FROM j \
               WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?2";
    for mut connection in every_connection(&app).await {
        let steps = plan(&mut connection, ack, &["[]", "sentiq-quick-1"]).await;
        assert!(
            steps
                .iter()
                .any(|s| s.contains("SEARCH Jobs") && s.contains("(id=?)")),
            "{steps:#?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("lock_by=?")),
            "every entry the worker ever held is visited: {steps:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_and_fresh_jobs_are_left_alone_by_the_reconciler() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let done = app.submit(&json!({"text": "Done already."})).await;
    assert_eq!(
        worker::process(&app.deps, &done).await.unwrap(),
        Outcome::Succeeded
    );
    let cancelled = app.submit(&json!({"text": "Never mind."})).await;
    app.client
        .post(app.url(&format!("/api/jobs/{cancelled}/cancel")))
        .send()
        .await
        .unwrap();
    let fresh = app.submit(&json!({"text": "Just queued."})).await;
    for id in [&done, &cancelled] {
        make_stale(&app, id).await;
    }
    sqlx::query("DELETE FROM Jobs")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(worker::reconcile(&app.deps).await.unwrap(), 0);
    assert_eq!(app.job(&done).await["status"], "succeeded");
    assert_eq!(app.job(&cancelled).await["status"], "cancelled");
    assert_eq!(app.job(&fresh).await["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_and_the_queue_entry_commit_or_roll_back_together() {
    use sentiq::analysis::Format;
    use sentiq::jobs::{model::NewJob, queue};
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let job = |text: &str| NewJob {
        id: uuid::Uuid::new_v4(),
        visitor: None,
        api_key_id: None,
        queue: sentiq::jobs::queue::QueueName::Quick,
        format: Format::Text,
        column: None,
        options: None,
        title: String::new(),
        input: sentiq::jobs::model::JobInput::Whole(text.as_bytes().to_vec()),
        idempotency: None,
        webhook_url: None,
        max_running: None,
    };
    let rolled_back = job("Never committed.");
    let mut tx = app.pool.begin().await.unwrap();
    model::insert(&mut tx, &rolled_back).await.unwrap();
    queue::enqueue(
        &mut tx,
        sentiq::jobs::queue::QueueName::Quick,
        &rolled_back.id.to_string(),
        None,
        sentiq::jobs::fair::AHEAD,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);

    let committed = job("Committed.");
    let mut tx = app.pool.begin().await.unwrap();
    model::insert(&mut tx, &committed).await.unwrap();
    queue::enqueue(
        &mut tx,
        sentiq::jobs::queue::QueueName::Quick,
        &committed.id.to_string(),
        None,
        sentiq::jobs::fair::AHEAD,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(app.job_rows().await, 1);
    assert_eq!(app.queue_rows().await, 1);
    let payload: Vec<u8> = sqlx::query_scalar("SELECT job FROM Jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // The queue carries only the job id.
    assert_eq!(
        serde_json::from_slice::<String>(&payload).unwrap(),
        committed.id.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_interrupted_by_shutdown_is_handed_back_to_the_queue() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let text: String = (0..400_000)
        .map(|i| format!("Line {i} is lovely, line {i} is awful.\n"))
        .collect();
    let r = app
        .post_raw("/api/jobs", "text/plain", text.into_bytes())
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("DELETE FROM Jobs")
        .execute(&app.pool)
        .await
        .unwrap();
    let deps = app.deps.clone();
    let job_id = id.clone();
    let run = tokio::spawn(async move { worker::process(&deps, &job_id).await });
    app.wait_for(&id, |s| s != "queued").await;
    app.deps.hand_back_running_jobs();
    assert_eq!(run.await.unwrap().unwrap(), Outcome::Retrying);
    let job = app.job(&id).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 1);
    assert_eq!(app.queue_rows().await, 1, "a new queue entry");
    let items: i64 = model::item_count(&app.db, &id).await.unwrap();
    assert_eq!(items, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_crashing_its_worker_fails_after_three_attempts() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Crashy."})).await;
    // Three runs already started and never finished (their workers died).
    sqlx::query("UPDATE sentiq_jobs SET attempts = 3 WHERE id = ?")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Failed
    );
    let job = app.job(&id).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "too_many_attempts");
    assert_eq!(job["attempts"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_that_arrive_together_share_a_commit_and_one_bad_job_fails_alone() {
    use sentiq::analysis::Format;
    use sentiq::jobs::model::NewJob;
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    // Every job names an owner (its own id, as a stand-in key id): the multi-row insert writes it.
    let job = |id: uuid::Uuid| NewJob {
        id,
        visitor: None,
        api_key_id: Some(format!("key-{id}")),
        queue: sentiq::jobs::queue::QueueName::Quick,
        format: Format::Text,
        column: None,
        options: None,
        title: String::new(),
        input: sentiq::jobs::model::JobInput::Whole(b"Together is better.".to_vec()),
        idempotency: None,
        webhook_url: None,
        max_running: None,
    };
    // 200 at once, two of them with the same id: that pair cannot both be written.
    let twin = uuid::Uuid::new_v4();
    let mut ids: Vec<uuid::Uuid> = (0..198).map(|_| uuid::Uuid::new_v4()).collect();
    ids.push(twin);
    ids.push(twin);
    let results = futures_util::future::join_all(ids.iter().map(|id| {
        let store = app.deps.store.clone();
        let job = job(*id);
        async move { store.submit(job).await }
    }))
    .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 1, "only the second twin fails");
    // Every job that was answered Ok has its row and its queue entry; nothing half-written.
    assert_eq!(app.job_rows().await, 199);
    assert_eq!(app.queue_rows().await, 199);
    let row = model::get(&app.db, &ids[0].to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.api_key_id, Some(format!("key-{}", ids[0])));
}

async fn item_texts(app: &common::TestApp, id: &str) -> Vec<String> {
    model::items_page(&app.db, id, -1, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_job_writes_no_items_and_learns_it_lost() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Taken over."})).await;
    let first = model::claim(&app.db, &id).await.unwrap().expect("claimed");
    sqlx::query("UPDATE Jobs SET status = 'Done'")
        .execute(&app.pool)
        .await
        .unwrap();
    make_stale(&app, &id).await;
    assert_eq!(worker::reconcile(&app.deps).await.unwrap(), 1);
    let second = model::claim(&app.db, &id)
        .await
        .unwrap()
        .expect("claimed again");
    assert_eq!((first.attempts, second.attempts), (1, 2));

    // The first run, still going, is fenced off; the second writes.
    let old = [item(0, "old"), item(1, "old")];
    assert!(!model::insert_items(&app.db, &id, 1, &old).await.unwrap());
    assert!(item_texts(&app, &id).await.is_empty());
    assert!(
        model::insert_items(&app.db, &id, 2, &[item(0, "new")])
            .await
            .unwrap()
    );
    assert!(!model::insert_items(&app.db, &id, 1, &old).await.unwrap());
    assert_eq!(item_texts(&app, &id).await, ["new"]);

    // Once the job is cancelled, its own run writes nothing more either.
    assert!(matches!(
        model::cancel(&app.db, &id, None).await.unwrap(),
        model::Cancel::Cancelled(_)
    ));
    assert!(
        !model::insert_items(&app.db, &id, 2, &[item(1, "late")])
            .await
            .unwrap()
    );
    assert_eq!(item_texts(&app, &id).await, ["new"]);
}

async fn item_count(app: &common::TestApp, id: &str) -> i64 {
    model::item_count(&app.db, id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_cancelled_by_another_process_stops_frees_its_worker_and_keeps_no_items() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let app = spawn_app_with(|c| {
        c.worker.concurrency = 1;
        // No lease refresh in between: only the run's own item and progress writes can find
        // out that the row was cancelled.
        c.worker.timing.lease = Duration::from_secs(600);
    })
    .await;
    let text = common::big_text(32);
    let first = app.submit_raw("text/plain", &text).await;
    let second = app.submit_raw("text/plain", &text).await;
    drop(text);

    let waiting = Instant::now();
    while item_count(&app, &first).await < 1_000 {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the first job never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stop = app
        .deps
        .cancels
        .flag(&first)
        .expect("the first run is going");
    assert!(!stop.load(Ordering::SeqCst));
    assert_eq!(app.job(&second).await["status"], "queued");

    // Another web process cancels: the row changes, but nobody tells this process.
    assert!(matches!(
        model::cancel(&app.db, &first, None).await.unwrap(),
        model::Cancel::Cancelled(_)
    ));
    let items_then = item_count(&app, &first).await;

    // The run found out by itself and stopped (rather than analysing to the end with every
    // write refused), which freed the one worker slot for the second job.
    app.wait_for(&second, |s| s == "running").await;
    assert!(
        stop.load(Ordering::SeqCst),
        "the run went on to its end: nothing told it that its job was cancelled"
    );

    // It wrote nothing more, its items are gone, and the row stays cancelled.
    assert!(item_count(&app, &first).await <= items_then);
    let deadline = Instant::now() + Duration::from_secs(30);
    while item_count(&app, &first).await > 0 {
        assert!(Instant::now() < deadline, "the stopped run's items stay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = app.job(&first).await;
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_i64()),
        (Some("cancelled"), Some(1))
    );
    assert!(matches!(
        model::cancel(&app.db, &second, None).await.unwrap(),
        model::Cancel::Cancelled(_)
    ));
}

#[test]
fn a_worker_whose_database_is_gone_keeps_restarting_without_holding_up_its_runtime() {
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let app = common::spawn_app().await;
            let id = app.submit(&json!({"text": "Fine."})).await;
            assert_eq!(app.wait_final(&id).await["status"], "succeeded");
            // Every fetch of the workers now fails at once, and so does every restart.
            app.pool.close().await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        });
        drop(runtime);
        let _ = done.send(());
    });
    assert!(
        stopped
            .recv_timeout(std::time::Duration::from_secs(30))
            .is_ok(),
        "the runtime did not stop within 30 s: a failing worker keeps a thread busy"
    );
}
