//! The operator dashboard at `/admin`: hidden without `ADMIN_TOKEN`, closed to anyone without
//! the token, CSRF-protected actions, and figures that match the job rows: queue depths,
//! workers and their heartbeats, failures with their errors, throughput, retry and cancel. On
//! SQLite with the in-process worker, and once on PostgreSQL + Redis with a worker process.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::prod::spawn_prod;
use crate::common::{TestApp, spawn_app, spawn_app_with};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use sentiq::jobs::model;
use serde_json::{Value, json};
use sha2::Sha256;

const TOKEN: &str = "s3cret-admin-token";
/// A CSV whose second row breaks off: the job is accepted, then fails in the worker.
const BROKEN_CSV: &str = "id,stars,review\n1,5,Lovely\n2\n3,1,Dreadful\n";

fn with_token(c: &mut sentiq::config::Config) {
    c.security.admin_token = Some(sentiq::config::Secret::new(TOKEN));
}

/// The CSRF token as specified: hex HMAC-SHA256(key = admin token, "sentiq admin csrf").
pub(crate) fn csrf_for(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(b"sentiq admin csrf");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).bearer_auth(TOKEN).send().await.unwrap()
}

/// `GET /admin` with the token: the page's HTML (asserting 200).
async fn dashboard(client: &reqwest::Client, address: &str) -> String {
    let r = get(client, format!("{address}/admin")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    r.text().await.unwrap()
}

/// Form fields or request headers.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// POST an action with the token and these form fields.
async fn act(
    client: &reqwest::Client,
    url: String,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client.post(url).bearer_auth(TOKEN).form(fields);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn retry(app: &TestApp, id: &str, csrf: &str) -> reqwest::Response {
    act(
        &app.client,
        app.url(&format!("/admin/jobs/{id}/retry")),
        &[("csrf", csrf)],
        &[],
    )
    .await
}

/// The table row of the page whose `id` attribute is `row_id`, up to its end.
fn row<'a>(page: &'a str, row_id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"{row_id}\""))
        .unwrap_or_else(|| panic!("no row {row_id} in the page"));
    let end = page[start..].find("</tr>").expect("the row ends") + start;
    &page[start..end]
}

/// The value of the first hidden `csrf` field of the page.
fn csrf_field(page: &str) -> &str {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let end = page[start..].find('"').unwrap() + start;
    &page[start..end]
}

/// The status and version of a job's row, and its transition log.
async fn snapshot(app: &TestApp, id: &str) -> (String, i64, i64, Vec<model::Transition>) {
    let job = model::get(&app.db, id).await.unwrap().unwrap();
    let path = model::transitions(&app.db, id).await.unwrap();
    (job.status.to_string(), job.version, job.attempts, path)
}

fn step(from: &str, to: &str, attempt: i64) -> model::Transition {
    model::Transition {
        from_status: from.into(),
        to_status: to.into(),
        attempt,
    }
}

/// A job that failed for real in the worker, with its final JSON.
async fn failed_job(app: &TestApp) -> (String, Value) {
    let id = app.submit_raw("text/csv", BROKEN_CSV).await;
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "bad_record");
    (id, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_token_every_admin_path_answers_as_an_unknown_page() {
    let app = spawn_app().await;
    let unknown = app
        .client
        .get(app.url("/no-such-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown_type = unknown.headers()["content-type"].clone();
    let unknown_body = unknown.text().await.unwrap();
    assert!(unknown_body.contains("Not found"));
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        ("GET", "/admin".to_owned()),
        ("GET", "/admin/".to_owned()),
        ("GET", "/admin/static/admin.css".to_owned()),
        ("GET", "/admin/anything/else".to_owned()),
        ("POST", "/admin".to_owned()),
        ("POST", format!("/admin/jobs/{id}/retry")),
        ("POST", format!("/admin/jobs/{id}/cancel")),
        ("DELETE", "/admin".to_owned()),
    ] {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            // Even the right token opens nothing: there is no dashboard.
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(r.headers()["content-type"], unknown_type, "{method} {path}");
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(r.text().await.unwrap(), unknown_body, "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_gets_401_and_the_right_one_as_bearer_or_basic_password_gets_in() {
    let app = spawn_app_with(with_token).await;
    let url = app.url("/admin");
    let refused = [
        app.client.get(&url),
        app.client.get(&url).bearer_auth("wrong"),
        app.client.get(&url).bearer_auth(format!("{TOKEN}x")),
        app.client.get(&url).basic_auth("admin", Some("wrong")),
        app.client.get(&url).basic_auth("admin", None::<&str>),
        // The token as the user name is not the password.
        app.client.get(&url).basic_auth(TOKEN, Some("")),
        app.client.get(&url).header("Authorization", TOKEN),
        app.client
            .get(&url)
            .header("Authorization", "Basic !!!notbase64"),
        app.client.get(app.url("/admin/static/admin.css")),
        app.client.get(app.url("/admin/no-such-page")),
        app.client
            .post(app.url(&format!("/admin/jobs/{}/retry", uuid::Uuid::new_v4())))
            .form(&[("csrf", csrf_for(TOKEN))]),
    ];
    for (i, req) in refused.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "request {i}");
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .split(',')
                .next()
                .unwrap(),
            "Basic realm=\"sentiq admin\"",
            "request {i}"
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body = r.text().await.unwrap();
        assert!(body.contains("admin token"), "request {i}: {body}");
        assert!(!body.contains("Operator dashboard"));
    }
    let admitted = [
        app.client.get(&url).bearer_auth(TOKEN),
        app.client.get(&url).basic_auth("admin", Some(TOKEN)),
        app.client
            .get(&url)
            .basic_auth("anyone at all", Some(TOKEN)),
        app.client.get(&url).basic_auth("", Some(TOKEN)),
    ];
    for (i, req) in admitted.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let page = r.text().await.unwrap();
        assert!(page.contains("<h1>Operator dashboard</h1>"), "request {i}");
        // No inline script or style: the CSP forbids them.
        assert!(!page.contains("<script"));
        assert!(!page.contains("style="));
        assert!(page.contains("<meta http-equiv=\"refresh\""));
        assert!(page.contains("href=\"/admin/static/admin.css\""));
    }
    let css = get(&app.client, app.url("/admin/static/admin.css")).await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let unknown = get(&app.client, app.url("/admin/no-such-page")).await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_queued_and_running_jobs_per_queue_from_the_rows() {
    let app = spawn_app_with(|c| {
        with_token(c);
        c.worker.run_in_process = false;
        c.queue.bulk_threshold_bytes = 1000;
    })
    .await;
    let page = dashboard(&app.client, &app.address).await;
    assert!(row(&page, "queue-quick").contains("data-queued=\"0\" data-running=\"0\""));
    assert!(!page.contains("id=\"no-workers\""));

    let mut quick = Vec::new();
    for i in 0..3 {
        quick.push(
            app.submit(&json!({"text": format!("Quick job {i} is lovely.")}))
                .await,
        );
    }
    let mut bulk = Vec::new();
    for i in 0..2 {
        let text = format!("Bulk job {i} is long. ").repeat(60);
        bulk.push(app.submit(&json!({"text": text})).await);
    }
    assert_eq!(app.job(&bulk[0]).await["queue"], "bulk");
    // One quick job starts running, as a worker's claim would make it.
    let running = model::claim(&app.db, &quick[0]).await.unwrap().unwrap();
    assert_eq!(running.status, sentiq::jobs::model::Status::Running);

    let page = dashboard(&app.client, &app.address).await;
    let quick_row = row(&page, "queue-quick");
    assert!(
        quick_row.contains("data-queued=\"2\" data-running=\"1\""),
        "{quick_row}"
    );
    assert!(quick_row.contains("queued just now") || quick_row.contains("s ago"));
    let bulk_row = row(&page, "queue-bulk");
    assert!(
        bulk_row.contains("data-queued=\"2\" data-running=\"0\""),
        "{bulk_row}"
    );
    // The embedded queue's own entries are shown too (the claim above touched only the row).
    assert!(page.contains("quick pending <strong>3</strong>"), "{page}");
    assert!(page.contains("bulk pending <strong>2</strong>"), "{page}");
    // Jobs wait and no worker beats: the page says so.
    assert!(page.contains("id=\"no-workers\""));
    assert!(page.contains("4 jobs waiting, and no worker is alive"));
    // Every open job is listed with a Cancel button, the running one first.
    let first_open = page.find("id=\"open-").unwrap();
    assert!(page[first_open..].starts_with(&format!("id=\"open-{}\"", quick[0])));
    for id in quick.iter().chain(&bulk) {
        let r = row(&page, &format!("open-{id}"));
        assert!(r.contains(&format!("href=\"/analyses/{id}\"")));
        assert!(r.contains(&format!("action=\"/admin/jobs/{id}/cancel\"")));
    }
    assert!(row(&page, &format!("open-{}", quick[0])).contains("data-status=\"running\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_worker_shows_as_alive_and_keeps_beating_and_a_silent_one_as_dead() {
    let app = spawn_app_with(with_token).await;
    // Rows of other workers: one silent for a minute, one that stopped cleanly.
    let long_ago = sentiq::jobs::registry::stored_time_ago(Duration::from_secs(60));
    for (name, stopped) in [("gone:1:dead", None), ("gone:2:stopped", Some(&long_ago))] {
        sqlx::query(
            "INSERT INTO sentiq_workers (name, role, host, pid, queues, concurrency, \
             started_at, last_seen, stopped_at) VALUES ($1, 'worker', 'gone', 1, 'bulk', 2, $2, $2, $3)",
        )
        .bind(name)
        .bind(&long_ago)
        .bind(stopped)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let (name, first_seen): (String, String) = {
        let start = Instant::now();
        loop {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT name, last_seen FROM sentiq_workers WHERE role = 'serve' AND pid = $1",
            )
            .bind(i64::from(std::process::id()))
            .fetch_optional(&app.pool)
            .await
            .unwrap();
            if let Some(r) = row {
                break r;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no heartbeat");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let page = dashboard(&app.client, &app.address).await;
    let me = row_of_worker(&page, &name);
    assert!(me.contains("data-state=\"alive\""), "{me}");
    assert!(me.contains("quick,bulk"));
    assert!(me.contains(&format!("<td class=\"n\">{}</td>", std::process::id())));
    let last_seen = me.split("class=\"last-seen\"").nth(1).unwrap();
    assert!(
        last_seen.contains(">just now<") || last_seen.contains(" s ago<"),
        "{last_seen}"
    );
    assert!(row_of_worker(&page, "gone:1:dead").contains("data-state=\"dead\""));
    assert!(row_of_worker(&page, "gone:2:stopped").contains("data-state=\"stopped\""));
    assert!(page.contains("id=\"workers-alive\">1 alive<"));
    // The alive worker is listed first.
    assert!(page.find(&name).unwrap() < page.find("gone:1:dead").unwrap());

    // It keeps beating.
    tokio::time::sleep(sentiq::jobs::registry::BEAT + Duration::from_millis(500)).await;
    let seen_again: String =
        sqlx::query_scalar("SELECT last_seen FROM sentiq_workers WHERE name = $1")
            .bind(&name)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(seen_again > first_seen, "{seen_again} after {first_seen}");
}

/// The worker table row of the worker `name`.
fn row_of_worker<'a>(page: &'a str, name: &str) -> &'a str {
    let at = page
        .find(&format!("data-name=\"{name}\""))
        .unwrap_or_else(|| panic!("no worker {name}"));
    let start = page[..at].rfind("<tr").unwrap();
    let end = page[at..].find("</tr>").unwrap() + at;
    &page[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_listed_with_its_error_and_retry_runs_it_again_with_a_fresh_budget_of_attempts()
 {
    let app = spawn_app_with(with_token).await;
    let (id, job) = failed_job(&app).await;
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 3"), "{message}");

    let page = dashboard(&app.client, &app.address).await;
    let listed = row(&page, &format!("failed-{id}"));
    assert!(listed.contains(&format!("href=\"/analyses/{id}\"")));
    assert!(listed.contains("<code class=\"error-code\">bad_record</code>"));
    let shown = listed
        .split("class=\"error-message\">")
        .nth(1)
        .unwrap()
        .split("</div>")
        .next()
        .unwrap();
    assert_eq!(shown, askama_escaped(message));
    assert!(listed.contains("<td class=\"n\">1</td>"), "{listed}");
    assert!(listed.contains(&format!("action=\"/admin/jobs/{id}/retry\"")));
    assert!(listed.contains(&job["finished_at"].as_str().unwrap()[..10]));

    let before = snapshot(&app, &id).await;
    assert_eq!(
        before.3,
        [step("queued", "running", 1), step("running", "failed", 1)]
    );
    // The forms carry the CSRF token as specified.
    assert_eq!(csrf_field(&page), csrf_for(TOKEN));
    let r = retry(&app, &id, csrf_field(&page)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/admin");

    // Nothing was fixed: it runs once more and fails again. The row's attempt counter (the
    // fencing token) goes on from 1 to 2, while the API counts the runs since the retry.
    let start = Instant::now();
    let path = loop {
        let (status, _, attempts, path) = snapshot(&app, &id).await;
        if path.len() == 5 {
            assert_eq!((status.as_str(), attempts), ("failed", 2));
            break path;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{path:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        path,
        [
            step("queued", "running", 1),
            step("running", "failed", 1),
            step("failed", "queued", 1),
            step("queued", "running", 2),
            step("running", "failed", 2),
        ]
    );
    let again = app.job(&id).await;
    assert_eq!(again["attempts"], 1);
    assert_eq!(again["error"]["code"], "bad_record");
    assert_ne!(again["finished_at"], job["finished_at"]);

    // A job that is not failed or cancelled cannot be retried; unknown ids are not found.
    let fine = app.submit(&json!({"text": "All good here."})).await;
    assert_eq!(app.wait_final(&fine).await["status"], "succeeded");
    let csrf = csrf_for(TOKEN);
    let r = retry(&app, &fine, &csrf).await;
    assert_eq!(r.status(), 409);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("The job is succeeded; only failed or cancelled jobs can be retried.")
    );
    assert_eq!(app.job(&fine).await["status"], "succeeded");
    let r = retry(&app, &uuid::Uuid::new_v4().to_string(), &csrf).await;
    assert_eq!(r.status(), 404);
    let r = retry(&app, "not-a-uuid", &csrf).await;
    assert_eq!(r.status(), 404);
}

/// `text` as askama escapes it in HTML.
fn askama_escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_without_the_csrf_token_or_from_another_site_is_refused_and_changes_nothing() {
    let app = spawn_app_with(with_token).await;
    let (id, _) = failed_job(&app).await;
    let before = snapshot(&app, &id).await;
    let entries = app.queue_rows().await;
    let url = app.url(&format!("/admin/jobs/{id}/retry"));
    let good = csrf_for(TOKEN);
    let other_key = csrf_for("another token");
    let own_origin = app.address.clone();
    let attempts: [(Fields, Fields); 8] = [
        (&[], &[]),
        (&[("csrf", "")], &[]),
        (&[("csrf", "00")], &[]),
        (&[("csrf", other_key.as_str())], &[]),
        (&[("csrf", &good[..63])], &[]),
        (&[("token", good.as_str())], &[]),
        (
            &[("csrf", good.as_str())],
            &[("Sec-Fetch-Site", "cross-site")],
        ),
        (
            &[("csrf", good.as_str())],
            &[("Origin", "http://evil.example")],
        ),
    ];
    for (i, (fields, headers)) in attempts.into_iter().enumerate() {
        let r = act(&app.client, url.clone(), fields, headers).await;
        assert_eq!(r.status(), 403, "attempt {i}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Refused"), "attempt {i}: {body}");
    }
    // Another origin on the same host name but another port is another site too.
    let r = act(
        &app.client,
        url.clone(),
        &[("csrf", &good)],
        &[("Origin", &format!("http://127.0.0.1:{}", app.port + 1))],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(snapshot(&app, &id).await, before);
    assert_eq!(app.queue_rows().await, entries);

    // The same request from the dashboard itself goes through.
    let r = act(
        &app.client,
        url,
        &[("csrf", &good)],
        &[("Origin", &own_origin), ("Sec-Fetch-Site", "same-origin")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_ne!(snapshot(&app, &id).await.1, before.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_queued_job_and_the_cancelled_job_can_be_retried() {
    let app = spawn_app_with(|c| {
        with_token(c);
        c.worker.run_in_process = false;
    })
    .await;
    let id = app.submit(&json!({"text": "Waiting patiently."})).await;
    let csrf = csrf_for(TOKEN);
    let cancel_url = app.url(&format!("/admin/jobs/{id}/cancel"));
    // Without the token nothing happens.
    let r = act(&app.client, cancel_url.clone(), &[], &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.job(&id).await["status"], "queued");

    let r = act(&app.client, cancel_url.clone(), &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/admin");
    let job = app.job(&id).await;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["code"], "cancelled");
    let page = dashboard(&app.client, &app.address).await;
    assert!(!page.contains(&format!("id=\"open-{id}\"")));
    assert!(row(&page, &format!("cancelled-{id}")).contains("/retry\""));
    assert!(row(&page, "queue-quick").contains("data-queued=\"0\""));

    let r = act(&app.client, cancel_url, &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains(
        "The job has already finished (cancelled); only queued or running jobs can be cancelled."
    ));
    let r = act(
        &app.client,
        app.url(&format!("/admin/jobs/{}/cancel", uuid::Uuid::new_v4())),
        &[("csrf", &csrf)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 404);

    // Cancelled before it ever ran: it can be retried at once, with a new queue entry.
    let entries = app.queue_rows().await;
    let r = retry(&app, &id, &csrf).await;
    assert_eq!(r.status(), 303);
    let job = app.job(&id).await;
    assert_eq!(job["status"], "queued");
    assert!(job["error"].is_null() && job["finished_at"].is_null());
    assert_eq!(app.queue_rows().await, entries + 1);
    let r = retry(&app, &id, &csrf).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("The job is queued;"));
    let page = dashboard(&app.client, &app.address).await;
    assert!(row(&page, "queue-quick").contains("data-queued=\"1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_running_can_be_retried_at_once_and_reruns_under_a_higher_attempt() {
    let app = spawn_app_with(|c| {
        with_token(c);
        c.worker.concurrency = 2;
        c.queue.bulk_threshold_bytes = 0;
    })
    .await;
    let csrf = csrf_for(TOKEN);
    // Long enough (about a second of analysis) to be cancelled and retried mid-run.
    let text = common::big_text(24);
    let id = app.submit_raw("text/plain", &text).await;
    app.wait_for(&id, |s| s != "queued").await;
    let r = act(
        &app.client,
        app.url(&format!("/admin/jobs/{id}/cancel")),
        &[("csrf", &csrf)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    // No waiting for the old run to stop: the retry is accepted at once.
    let r = retry(&app, &id, &csrf).await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);

    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["progress"]["done"], job["progress"]["total"]);
    let (status, _, attempts, path) = snapshot(&app, &id).await;
    assert_eq!((status.as_str(), attempts), ("succeeded", 2));
    assert_eq!(
        path,
        [
            step("queued", "running", 1),
            step("running", "cancelled", 1),
            step("cancelled", "queued", 1),
            step("queued", "running", 2),
            step("running", "succeeded", 2),
        ]
    );
    // A complete set of items: the old run's clean-up did not delete the new run's.
    let items = model::items_page(&app.db, &id, -1, i64::MAX).await.unwrap();
    let count = items.len() as i64;
    let distinct = items
        .iter()
        .map(|item| item.position)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as i64;
    assert_eq!(Some(count), job["result"]["items"].as_i64(), "{job}");
    assert_eq!(distinct, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throughput_chart_counts_a_succeeded_job_in_the_minute_it_finished() {
    let app = spawn_app_with(with_token).await;
    let page = dashboard(&app.client, &app.address).await;
    assert!(page.contains("id=\"total-succeeded\">0<"));
    assert_eq!(page.matches("class=\"minute\"").count(), 60);
    assert!(!page.contains("data-succeeded=\"1\""));

    let id = app.submit(&json!({"text": "What a wonderful day."})).await;
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded");
    let minute = &job["finished_at"].as_str().unwrap()[..16];
    let page = dashboard(&app.client, &app.address).await;
    assert!(page.contains("id=\"total-succeeded\">1<"));
    assert!(page.contains("id=\"total-failed\">0<"));
    let at = page
        .find(&format!("data-minute=\"{minute}\" data-succeeded=\"1\""))
        .unwrap_or_else(|| panic!("no bar for {minute}"));
    let column = &page[at..at + page[at..].find("</g>").unwrap()];
    assert!(
        column.contains(&format!(
            "{} UTC: 1 succeeded, 0 failed, 0 cancelled",
            &minute[11..]
        )),
        "{column}"
    );
    assert!(column.contains("<rect class=\"bar ok\""));
    // Only that minute has a bar.
    assert_eq!(page.matches("<rect class=\"bar ").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_visitors_submitted_is_shown_escaped() {
    let app = spawn_app_with(|c| {
        with_token(c);
        c.worker.run_in_process = false;
    })
    .await;
    let id = app
        .submit(&json!({"text": "<script>alert('x')</script> <b>bold</b> & more"}))
        .await;
    let page = dashboard(&app.client, &app.address).await;
    let listed = row(&page, &format!("open-{id}"));
    assert!(
        listed.contains(&askama_escaped(
            "<script>alert('x')</script> <b>bold</b> & more"
        )),
        "{listed}"
    );
    assert!(!page.contains("<script") && !page.contains("<b>bold"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_and_redis_a_worker_process_reports_and_a_retried_job_runs_again() {
    let app = spawn_prod(with_token).await;
    let worker = app.worker();
    // The web process runs no worker: only the worker process's row appears, alive.
    let start = Instant::now();
    let page = loop {
        let page = dashboard(&app.client, &app.address).await;
        if page.contains("data-state=\"alive\"") {
            break page;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no worker alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.contains("id=\"workers-alive\">1 alive<"));
    let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM sentiq_workers")
        .fetch_all(&app.pg)
        .await
        .unwrap();
    assert_eq!(roles, ["worker"]);

    let r = app
        .post_raw("/api/jobs", "text/csv", BROKEN_CSV.as_bytes().to_vec())
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = app.wait_final(&id).await;
    assert_eq!(job["error"]["code"], "bad_record", "{job}");
    let page = dashboard(&app.client, &app.address).await;
    assert!(row(&page, &format!("failed-{id}")).contains("bad_record"));

    let r = app
        .client
        .post(app.url(&format!("/admin/jobs/{id}/retry")))
        .basic_auth("ops", Some(TOKEN))
        .form(&[("csrf", csrf_field(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let start = Instant::now();
    while app.path(&id).await.len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            app.path(&id).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let once = |from: &str, to: &str, attempt: i64| (from.to_owned(), to.to_owned(), attempt);
    assert_eq!(
        app.path(&id).await,
        [
            once("queued", "running", 1),
            once("running", "failed", 1),
            once("failed", "queued", 1),
            once("queued", "running", 2),
            once("running", "failed", 2),
        ]
    );
    let again = app.job(&id).await;
    assert_eq!(
        (&again["status"], &again["attempts"]),
        (&json!("failed"), &json!(1))
    );

    // A clean stop marks the worker stopped.
    worker.stop().await;
    let page = dashboard(&app.client, &app.address).await;
    assert!(page.contains("data-state=\"stopped\""));
    assert!(page.contains("id=\"workers-alive\">0 alive<"));
}
