//! Retention, deletion and compact items: jobs expire into tombstones (410) and then go (404),
//! `DELETE` removes everything of a job at once, deleted text is found nowhere, downloads are
//! byte for byte what the scores render to, and a job's storage is about the size of its input.

use std::time::{Duration, Instant};

use crate::common::prod::spawn_prod;
use crate::common::{self, Api, TestApp, assert_error, spawn_app_with};
use redis::AsyncCommands;
use sentiq::analysis::input::Source;
use sentiq::analysis::{self, Format, Item, Observer, Options};
use sentiq::jobs::model;
use sentiq::web::downloads::spreadsheet_safe;
use serde_json::{Value, json};

/// Results kept two seconds, tombstones three, pruned every 100 ms.
fn short_retention(c: &mut sentiq::config::Config) {
    c.retention.result_ttl = Some(Duration::from_secs(2));
    c.retention.tombstone_ttl = Duration::from_secs(3);
    c.retention.prune_every = Duration::from_millis(100);
    c.security.admin_token = Some(sentiq::config::Secret::new(ADMIN));
}

const ADMIN: &str = "retention-admin";

/// The operator dashboard shows the stored bytes and the expired job.
async fn dashboard_shows_one_expired_job(app: &TestApp) {
    let url = app.url("/admin");
    let r = app.client.get(url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("database file"), "{page}");
    assert!(page.contains("expired <strong>1</strong>"), "{page}");
    assert!(page.contains("id=\"pruned-expired\">1<"), "{page}");
}

/// Rows of `table` that belong to job `id`.
async fn rows(app: &TestApp, table: &str, id: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE job_id = ?"
    )))
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Poll `GET path` until it answers `status` (at most 20 s).
async fn wait_status(api: &Api, path: &str, status: u16) -> reqwest::Response {
    let start = Instant::now();
    loop {
        let r = api.client.get(api.url(path)).send().await.unwrap();
        if r.status().as_u16() == status {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{path} still answers {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delete(api: &Api, id: &str) -> reqwest::Response {
    let url = api.url(&format!("/api/jobs/{id}"));
    api.client.delete(url).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_result_ttl_answers_410_after_the_pruner_runs_and_404_after_its_tombstone_ttl()
 {
    let app = spawn_app_with(short_retention).await;
    let id = app
        .submit(&json!({"text": "I love this. I hate that. It is fine."}))
        .await;
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // `expires_at` is RESULT_TTL after the job became final.
    let at = |field: &str| -> sentiq::timestamp::Timestamp {
        job[field].as_str().unwrap().parse().unwrap()
    };
    let kept = at("finished_at").seconds_until(at("expires_at"));
    assert!((1.99..=2.01).contains(&kept), "{job}");
    // The input went when the job succeeded; the items stay until it expires.
    assert_eq!(rows(&app, "job_inputs", &id).await, 0);
    assert_eq!(model::item_count(&app.db, &id).await.unwrap(), 3);

    let base = format!("/api/jobs/{id}");
    let r = wait_status(&app, &base, 410).await;
    let message = assert_error(r, 410, "expired").await;
    assert!(message.contains("expired"), "{message}");
    for path in [
        format!("{base}/items.csv"),
        format!("{base}/items.jsonl"),
        format!("{base}/events"),
    ] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_error(r, 410, "expired").await;
    }
    let r = app
        .client
        .post(app.url(&format!("{base}/cancel")))
        .send()
        .await
        .unwrap();
    assert_error(r, 410, "expired").await;
    let page = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("This analysis has expired")
    );
    // Nothing of the input, items or report remains; the row is a tombstone.
    assert_eq!(rows(&app, "job_inputs", &id).await, 0);
    assert_eq!(rows(&app, "job_item_chunks", &id).await, 0);
    let (result, title): (Option<String>, String) =
        sqlx::query_as("SELECT result, title FROM sentiq_jobs WHERE id = ?")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((result, title.as_str()), (None, ""));
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sentiq_jobs_pruned_total{reason=\"expired\"} 1"),
        "{metrics}"
    );
    dashboard_shows_one_expired_job(&app).await;

    // After TOMBSTONE_TTL the row goes, with its transition log: 404.
    let r = wait_status(&app, &base, 404).await;
    assert_error(r, 404, "not_found").await;
    assert_eq!(rows(&app, "job_transitions", &id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_keeps_its_input_for_a_retry_until_it_expires() {
    let app = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.retention.result_ttl = Some(Duration::from_secs(3600));
    })
    .await;
    let id = app.submit(&json!({"text": "Wait for me."})).await;
    let url = app.url(&format!("/api/jobs/{id}/cancel"));
    let job: Value = app
        .client
        .post(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"], "cancelled");
    let at = |field: &str| -> sentiq::timestamp::Timestamp {
        job[field].as_str().unwrap().parse().unwrap()
    };
    let kept = at("finished_at").seconds_until(at("expires_at"));
    assert!((3599.0..=3601.0).contains(&kept), "{job}");
    assert_eq!(rows(&app, "job_inputs", &id).await, 1);
    // A job that is not final has no expiry yet.
    let open = app.submit(&json!({"text": "Still queued."})).await;
    assert!(app.job(&open).await["expires_at"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_job_stops_it_and_removes_its_input_and_items_at_once() {
    let app = spawn_app_with(|_| {}).await;
    let id = app.submit_raw("text/plain", &common::big_text(16)).await;
    app.wait_for(&id, |s| s == "running").await;
    let start = Instant::now();
    let r = delete(&app, &id).await;
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_error(r, 410, "deleted").await;
    // The run was cancelled first, and stops: nothing it writes afterwards survives.
    let path: Vec<(String, String)> = model::transitions(&app.db, &id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.from_status, t.to_status))
        .collect();
    assert_eq!(
        path.last().unwrap(),
        &("running".into(), "cancelled".into())
    );
    let flag = app.deps.cancels.flag(&id);
    assert!(flag.is_none_or(|f| f.load(std::sync::atomic::Ordering::SeqCst)));
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(start.elapsed())).await;
    assert_eq!(rows(&app, "job_inputs", &id).await, 0);
    assert_eq!(rows(&app, "job_item_chunks", &id).await, 0);
    // DELETE is idempotent; an unknown id is 404.
    assert_eq!(delete(&app, &id).await.status(), 204);
    let r = delete(&app, "00000000-0000-4000-8000-000000000000").await;
    assert_error(r, 404, "not_found").await;
    let page = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("This analysis was deleted")
    );
}

/// GET `path` with `client`; the page's text.
async fn page(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// Submit a text through the browser form and wait for it: the job's id and the form token.
async fn submit_by_form(app: &TestApp) -> (String, String) {
    let token = csrf_field(&page(&app.client, app.url("/")).await);
    let form = [("csrf", token.as_str()), ("text", "Mine to delete.")];
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    let id = location.trim_start_matches("/analyses/").to_owned();
    app.wait_final(&id).await;
    (id, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_visitor_who_submitted_a_job_gets_a_delete_button_that_works() {
    let app = spawn_app_with(|_| {}).await;
    let (id, _) = submit_by_form(&app).await;
    let page_url = app.url(&format!("/analyses/{id}"));
    let mine = page(&app.client, page_url.clone()).await;
    assert!(
        mine.contains(&format!("action=\"/analyses/{id}/delete\"")),
        "{mine}"
    );
    // Another visitor sees no button, and a post of their own (with a valid token) is refused.
    let other = common::client();
    let theirs = page(&other, page_url.clone()).await;
    assert!(!theirs.contains("/delete\""), "{theirs}");
    let their_token = csrf_field(&page(&other, app.url("/")).await);
    let r = other
        .post(format!("{page_url}/delete"))
        .form(&[("csrf", their_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Only the visitor who submitted")
    );
    // A forged post (no token) deletes nothing either.
    let r = app
        .client
        .post(format!("{page_url}/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.job(&id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_button_removes_the_job_and_says_so_on_the_front_page() {
    let app = spawn_app_with(|_| {}).await;
    let (id, token) = submit_by_form(&app).await;
    let page_url = app.url(&format!("/analyses/{id}"));
    let r = app
        .client
        .post(format!("{page_url}/delete"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?notice=deleted");
    let index = page(&app.client, app.url("/?notice=deleted")).await;
    assert!(index.contains("The analysis was deleted."), "{index}");
    assert!(
        !index.contains(&format!("/analyses/{id}\"")),
        "still listed: {index}"
    );
    let r = app.client.get(page_url).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("This analysis was deleted")
    );
}

fn csrf_field(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_owned()
}

/// Every stored text and blob of every table of the SQLite file, and the file's bytes.
async fn sqlite_dump(app: &TestApp) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let mut values = Vec::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&app.pool)
        .await
        .unwrap();
        for column in columns {
            let cells: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""
            )))
            .fetch_all(&app.pool)
            .await
            .unwrap();
            let where_ = format!("{table}.{column}");
            values.extend(cells.into_iter().flatten().map(|c| (where_.clone(), c)));
        }
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&app.pool)
        .await
        .unwrap();
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    (values, bytes)
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_leaves_its_text_in_no_table_and_nowhere_in_the_sqlite_file() {
    let app = spawn_app_with(|c| c.retention.prune_every = Duration::from_millis(100)).await;
    let marker = format!("Zq{}", uuid::Uuid::new_v4().simple());
    let text = format!("{marker} is wonderful. The weather is {marker} and awful.");
    let done = app.submit_raw("text/plain", &text).await;
    assert_eq!(app.wait_final(&done).await["status"], "succeeded");
    // A failed job keeps its input: delete one of those too.
    let csv = format!("id,stars,review\n1,5,{marker} lovely\n2\n3,1,Dreadful\n");
    let failed = app.submit_raw("text/csv", &csv).await;
    assert_eq!(app.wait_final(&failed).await["status"], "failed");
    let (values, bytes) = sqlite_dump(&app).await;
    assert!(
        values.iter().any(|(_, v)| holds(v, &marker)),
        "the search finds nothing"
    );
    assert!(holds(&bytes, &marker));
    for id in [&done, &failed] {
        assert_eq!(delete(&app, id).await.status(), 204);
    }
    // Let the pruner give the freed pages back, as it does every tick.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (values, bytes) = sqlite_dump(&app).await;
    let found: Vec<&String> = values
        .iter()
        .filter(|(_, v)| holds(v, &marker))
        .map(|(w, _)| w)
        .collect();
    assert!(found.is_empty(), "the text is still in {found:?}");
    assert!(
        !holds(&bytes, &marker),
        "the text is still in the SQLite file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_leaves_its_text_in_no_postgres_table_and_no_redis_key() {
    let app = spawn_prod(|_| {}).await;
    let worker = app.worker();
    let marker = format!("Zq{}", uuid::Uuid::new_v4().simple());
    let done = app
        .submit(&json!({"text": format!("{marker} is great. {marker} is not.")}))
        .await;
    assert_eq!(app.wait_final(&done).await["status"], "succeeded");
    let queued_text = json!({"documents": [{"id": marker, "text": format!("{marker} waits.")}]});
    worker.stop().await;
    let queued = app.submit(&queued_text).await;
    let tables: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND data_type IN ('text', 'bytea', 'json', 'jsonb', 'character varying')",
    )
    .fetch_all(&app.pg)
    .await
    .unwrap();
    let dump = || async {
        let mut found = Vec::new();
        for (table, column, kind) in &tables {
            let cast = if kind == "bytea" {
                format!("\"{column}\"")
            } else {
                format!("convert_to(\"{column}\"::text, 'UTF8')")
            };
            let cells: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {cast} FROM \"{table}\""
            )))
            .fetch_all(&app.pg)
            .await
            .unwrap();
            if cells.iter().flatten().any(|c| holds(c, &marker)) {
                found.push(format!("{table}.{column}"));
            }
        }
        found
    };
    assert!(!dump().await.is_empty(), "the search finds nothing");
    for id in [&done, &queued] {
        assert_eq!(delete(&app, id).await.status(), 204);
    }
    assert_eq!(dump().await, Vec::<String>::new());
    let mut conn = app.redis.connection();
    for key in app.keys().await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![conn.get(&key).await.unwrap()],
            "hash" => conn.hgetall::<_, Vec<Vec<u8>>>(&key).await.unwrap(),
            "list" => conn.lrange(&key, 0, -1).await.unwrap(),
            "set" => conn.smembers(&key).await.unwrap(),
            "zset" => conn.zrange(&key, 0, -1).await.unwrap(),
            _ => Vec::new(),
        };
        assert!(
            !values.iter().any(|v| holds(v, &marker)) && !key.contains(&marker),
            "the text is still in Redis key {key}"
        );
    }
}

/// Items as the analysis scores them, before anything is stored.
fn scored(text: &[u8]) -> Vec<model::ItemRow> {
    struct Collect(Vec<model::ItemRow>);
    impl Observer for Collect {
        fn items(
            &mut self,
            items: &[Item<'_>],
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            self.0.extend(items.iter().map(|it| model::ItemRow {
                position: it.position as i64,
                item_id: it.id.map(str::to_owned),
                text: it.text.to_owned(),
                neg: it.scores.neg,
                neu: it.scores.neu,
                pos: it.scores.pos,
                compound: it.scores.compound,
                source: it.source.to_owned(),
                lang: it.lang,
            }));
            Ok(())
        }
    }
    let options = Options::new(Format::Text);
    let mut collect = Collect(Vec::new());
    analysis::analyze(text, &options, &mut collect).unwrap();
    collect.0
}

/// Every text of the VADER reference corpora, about 1 MiB of real sentences.
fn corpus() -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vader");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_byte_for_byte_the_scores_the_analysis_gave() {
    let app = spawn_app_with(|_| {}).await;
    let text = corpus();
    let items = scored(&text);
    assert!(items.len() > 5_000, "{}", items.len());
    let id = app
        .submit_raw("text/plain", std::str::from_utf8(&text).unwrap())
        .await;
    assert_eq!(app.wait_final(&id).await["status"], "succeeded");
    // The scores exactly as the analysis gave them, in the layout of a text's downloads (the
    // sentence made spreadsheet-safe in the CSV, verbatim in the JSON).
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "position", "sentence", "start", "end", "neg", "neu", "pos", "compound", "label", "lang",
    ])
    .unwrap();
    let mut jsonl = Vec::new();
    let json = |v: f64| serde_json::to_string(&v).unwrap();
    for it in &items {
        let Source::Span { start, end } = it.source else {
            panic!("a sentence without its offsets")
        };
        let label = if it.compound >= 0.05 {
            "positive"
        } else if it.compound <= -0.05 {
            "negative"
        } else {
            "neutral"
        };
        let lang = it.lang.unwrap_or_default();
        let scores = [it.neg, it.neu, it.pos, it.compound].map(|s| s.to_string());
        let [neg, neu, pos, compound] = &scores;
        csv.write_record([
            &it.position.to_string(),
            spreadsheet_safe(&it.text).as_ref(),
            &start.to_string(),
            &end.to_string(),
            neg,
            neu,
            pos,
            compound,
            label,
            lang,
        ])
        .unwrap();
        let lang = match it.lang {
            Some(l) => format!(",\"lang\":\"{l}\""),
            None => String::new(),
        };
        jsonl.extend_from_slice(
            format!(
                "{{\"position\":{},\"sentence\":{},\"start\":{start},\"end\":{end},\
                 \"sentiment\":{{\"neg\":{},\"neu\":{},\"pos\":{},\"compound\":{},\
                 \"label\":\"{label}\"{lang}}}}}\n",
                it.position,
                serde_json::to_string(&it.text).unwrap(),
                json(it.neg),
                json(it.neu),
                json(it.pos),
                json(it.compound),
            )
            .as_bytes(),
        );
    }
    let csv = csv.into_inner().unwrap();
    for (ext, expected) in [("csv", csv), ("jsonl", jsonl)] {
        let url = app.url(&format!("/api/jobs/{id}/items.{ext}"));
        let body = app
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            body[..] == expected[..],
            "items.{ext} differs ({} against {} bytes)",
            body.len(),
            expected.len()
        );
    }
}

/// `len` bytes of the corpus, repeated (each repeat is further back than LZ4's 64 KiB window,
/// so it compresses like new text).
fn corpus_of(len: usize) -> String {
    let corpus = corpus();
    let mut text = Vec::with_capacity(len + corpus.len());
    while text.len() < len {
        text.extend_from_slice(&corpus);
    }
    text.truncate(len);
    while std::str::from_utf8(&text).is_err() {
        text.pop();
    }
    String::from_utf8(text).unwrap()
}

/// Bytes of the SQLite file after a checkpoint.
async fn sqlite_bytes(app: &TestApp) -> i64 {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The former layout (`migrations/*/20261122000001_jobs.sql`): the input kept, and a row per
/// item with its text and four doubles, filled with job `$id`'s items (a statement at a time:
/// the app's own writers go on meanwhile).
macro_rules! legacy_layout {
    ($pool:expr, $bytes:literal, $double:literal, $db:expr, $id:expr, $text:expr) => {{
        sqlx::query(concat!(
            "CREATE TABLE legacy_inputs (job_id TEXT PRIMARY KEY NOT NULL, body ",
            $bytes,
            " NOT NULL)"
        ))
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(concat!(
            "CREATE TABLE legacy_items (job_id TEXT NOT NULL, position BIGINT NOT NULL, \
             item_id TEXT, text TEXT NOT NULL, neg ",
            $double,
            " NOT NULL, neu ",
            $double,
            " NOT NULL, pos ",
            $double,
            " NOT NULL, compound ",
            $double,
            " NOT NULL, PRIMARY KEY (job_id, position))"
        ))
        .execute($pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO legacy_inputs VALUES ($1, $2)")
            .bind($id)
            .bind($text.as_bytes())
            .execute($pool)
            .await
            .unwrap();
        let mut after = -1;
        loop {
            let items = model::items_page($db, $id, after, 500).await.unwrap();
            let Some(last) = items.last() else { break };
            after = last.position;
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO legacy_items ");
            qb.push_values(&items, |mut b, it| {
                b.push_bind($id)
                    .push_bind(it.position)
                    .push_bind(it.item_id.clone())
                    .push_bind(it.text.clone())
                    .push_bind(it.neg)
                    .push_bind(it.neu)
                    .push_bind(it.pos)
                    .push_bind(it.compound);
            });
            qb.build().execute($pool).await.unwrap();
        }
    }};
}

/// Submit `text` to the embedded app and return the growth of its file over the input's size,
/// once the job succeeded and the pruner gave the freed pages back; with `before_too`, also the
/// growth the former layout gives the same job (its input kept, a row per item).
async fn sqlite_growth(text: &str, before_too: bool) -> (f64, Option<f64>) {
    let app = spawn_app_with(|c| {
        c.http.max_body_bytes = 128 << 20;
        c.retention.prune_every = Duration::from_millis(100);
    })
    .await;
    let before = sqlite_bytes(&app).await;
    let id = app.submit_raw("text/plain", text).await;
    assert_eq!(
        app.wait_final_within(&id, Duration::from_secs(300)).await["status"],
        "succeeded"
    );
    let start = Instant::now();
    loop {
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if free == 0 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = sqlite_bytes(&app).await;
    let len = text.len() as f64;
    let legacy = if before_too {
        legacy_layout!(&app.pool, "BLOB", "REAL", &app.db, &id, text);
        Some((sqlite_bytes(&app).await - after) as f64 / len)
    } else {
        None
    };
    ((after - before) as f64 / len, legacy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_job_grows_the_sqlite_file_by_at_most_1_2_times_its_input() {
    let (growth, _) = sqlite_growth(&corpus_of(4 << 20), false).await;
    assert!(growth <= 1.2, "the file grew by {growth:.2}x the input");
}

/// The measurement of BENCHMARKS.md: a 64 MiB text on both databases, against the former
/// layout of the same job's data.
/// `cargo test --release --test it -- --ignored --nocapture storage_growth_of_a_64_mib_job`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (a few minutes): run it by name"]
async fn storage_growth_of_a_64_mib_job() {
    let text = corpus_of(64 << 20);
    let (growth, legacy) = sqlite_growth(&text, true).await;
    println!(
        "SQLite: the file grew by {growth:.3}x the input (the former layout: {:.3}x)",
        legacy.unwrap()
    );
    let app = spawn_prod(|c| c.http.max_body_bytes = 128 << 20).await;
    let worker = app.worker();
    let size = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT CAST(SUM(pg_total_relation_size(c.oid)) AS BIGINT) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        )
        .fetch_one(&app.pg)
        .await
        .unwrap()
    };
    let before = size().await;
    let id = app.submit_raw("text/plain", &text).await;
    assert_eq!(
        app.wait_final_within(&id, Duration::from_secs(300)).await["status"],
        "succeeded"
    );
    let after = size().await;
    sqlx::query("VACUUM").execute(&app.pg).await.unwrap();
    let vacuumed = size().await;
    legacy_layout!(&app.pg, "BYTEA", "DOUBLE PRECISION", &app.db, &id, text);
    let legacy = size().await - vacuumed;
    let len = text.len() as f64;
    println!(
        "PostgreSQL: the tables grew by {:.3}x the input, {:.3}x after VACUUM \
         (the former layout: {:.3}x)",
        (after - before) as f64 / len,
        (vacuumed - before) as f64 / len,
        legacy as f64 / len
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_stored_a_row_each_by_an_older_version_are_converted_to_chunks_at_start_up() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let id = app.submit(&json!({"text": "Stored the old way."})).await;
    // The table as `migrations/sqlite/20261122000001_jobs.sql` made it, with 7,001 items.
    sqlx::query(
        "CREATE TABLE job_items (job_id TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT, \
         text TEXT NOT NULL, neg REAL NOT NULL, neu REAL NOT NULL, pos REAL NOT NULL, \
         compound REAL NOT NULL, PRIMARY KEY (job_id, position)) WITHOUT ROWID",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 7000) \
         INSERT INTO job_items SELECT ?, i * 2, NULL, 'item ' || i, 0.1, 0.9, 0.0, -0.0772 FROM n",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(model::convert_legacy_items(&app.db).await.unwrap(), 7001);
    let items = model::items_page(&app.db, &id, -1, i64::MAX).await.unwrap();
    assert_eq!(items.len(), 7001);
    assert_eq!(items[6999].position, 13_998);
    assert_eq!(items[6999].text, "item 6999");
    assert_eq!(items[0].compound.to_bits(), (-0.0772f64).to_bits());
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'job_items'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(left, 0, "the old table is dropped");
    // Once gone, there is nothing to convert.
    assert_eq!(model::convert_legacy_items(&app.db).await.unwrap(), 0);
}
