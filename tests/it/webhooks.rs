//! Signed completion webhooks, end to end: a receiver on loopback (an actix server in the test)
//! answers as each test scripts it and checks every request's signature with its own HMAC code,
//! written from the Standard Webhooks text (never the code under test): 500, 500, 200 delivers
//! on the third attempt under one id; 410 stops; a receiver down throughout a short schedule
//! ends `failed` while the job stays `succeeded`; every final state sends its event and an open
//! job none; an operator's Send again; a listing shows each job's newest delivery (SQLite and
//! PostgreSQL); and, as processes on PostgreSQL + Redis, a worker killed with SIGKILL during an
//! attempt has the event delivered by another.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::common::procs::{self, Env, FreshDatabase, Namespace, Scratch, Sentiq};
use crate::common::{TestApp, spawn_app_with};
use sentiq::config::Config;

/// The tests' signing key: `whsec_` and the base64 of 32 bytes.
fn secret() -> String {
    format!("whsec_{}", STANDARD.encode([42u8; 32]))
}

/// The signature Standard Webhooks v1 specifies, computed here from its text: `v1,` and the
/// base64 of HMAC-SHA256, keyed with the base64-decoded part of the secret after `whsec_`, over
/// `{webhook-id}.{webhook-timestamp}.{body}`.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// What the receiver does with a request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Never answer (the sender's time limit, or its death, ends the request).
    Hold,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    content_type: String,
    body: Vec<u8>,
    at: Instant,
    /// The signature header holds the signature computed by [`expected_signature`].
    signed: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<Received>>,
    arrived: Notify,
}

/// A webhook receiver on a free port of 127.0.0.1: the `n`-th request gets `replies[n]` (200
/// after the last).
struct Receiver {
    url: String,
    seen: Arc<Seen>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start(replies: Vec<Reply>) -> Receiver {
        let seen = Arc::new(Seen::default());
        let state = web::Data::new((seen.clone(), replies, secret()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/sentiq"),
            seen,
            server: handle,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.requests.lock().unwrap().clone()
    }

    /// Until `n` requests have come (at most `within`).
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let arrived = self.seen.arrived.notified();
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            let left = within.checked_sub(start.elapsed()).unwrap_or_else(|| {
                panic!(
                    "{} of {n} webhook requests within {within:?}",
                    requests.len()
                )
            });
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let server = self.server.clone();
        tokio::spawn(async move { server.stop(false).await });
    }
}

type ReceiverState = web::Data<(Arc<Seen>, Vec<Reply>, String)>;

async fn receive(req: HttpRequest, body: web::Bytes, state: ReceiverState) -> HttpResponse {
    let (seen, replies, secret) = state.get_ref();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let expected = expected_signature(secret, &id, &timestamp, &body);
    let signed = header("webhook-signature")
        .split(' ')
        .any(|signature| signature == expected);
    let n = {
        let mut requests = seen.requests.lock().unwrap();
        requests.push(Received {
            id,
            timestamp,
            content_type: header("content-type"),
            body: body.to_vec(),
            at: Instant::now(),
            signed,
        });
        requests.len() - 1
    };
    seen.arrived.notify_waiters();
    match replies.get(n).copied().unwrap_or(Reply::Status(200)) {
        Reply::Status(status) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
        }
        Reply::Hold => std::future::pending().await,
    }
}

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.expect("request")
}

/// The id of a job a submission made (asserting 202).
async fn accepted_id(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().expect("an id").to_owned()
}

/// Webhooks on, to loopback, with a short schedule.
fn webhooks_on(c: &mut Config) {
    c.webhooks.secret = Some(sentiq::webhooks::SigningKey::parse(&secret()).unwrap());
    c.webhooks.allow_private = true;
    c.webhooks.retry_schedule = vec![Duration::from_millis(100), Duration::from_millis(100)];
    c.webhooks.timeout = Duration::from_secs(2);
    c.http.public_url = Some(PUBLIC_URL.into());
}

/// Poll the job until its webhook has `status` (at most 20 s); the job's JSON.
async fn wait_webhook(app: &TestApp, id: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let job = app.job(id).await;
        if job["webhook"]["status"] == status {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "webhook of {id} not {status}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `PUBLIC_URL` of [`webhooks_on`].
const PUBLIC_URL: &str = "https://sentiq.example.com";

/// Every request is signed, under one id, and tells of `job`'s `status`, linking it under
/// `public_url`.
fn assert_events_of(requests: &[Received], job: &Value, status: &str, public_url: &str) {
    let id = job["id"].as_str().unwrap();
    for r in requests {
        assert!(r.signed, "a request whose signature does not verify: {r:?}");
        assert_eq!(
            r.id, requests[0].id,
            "the webhook-id changed between attempts"
        );
        assert!(r.id.starts_with("msg_"), "{}", r.id);
        assert_eq!(r.content_type, "application/json");
        let sent_at: i64 = r.timestamp.parse().expect("a Unix time");
        assert!((sent_at - chrono::Utc::now().timestamp()).abs() < 60);
        assert_eq!(
            r.json(),
            json!({
                "type": format!("job.{status}"),
                "timestamp": job["finished_at"],
                "data": {
                    "id": id,
                    "status": status,
                    "status_url": format!("{public_url}/api/jobs/{id}"),
                },
            })
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_500_200_has_the_event_delivered_on_the_third_attempt_under_one_id()
 {
    let receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(500)]).await;
    let app = spawn_app_with(webhooks_on).await;
    let id = app
        .submit(&json!({"text": "Webhooks are great.", "webhook_url": receiver.url}))
        .await;

    let job = wait_webhook(&app, &id, "delivered").await;
    assert_eq!(job["status"], "succeeded");
    let webhook = &job["webhook"];
    assert_eq!(webhook["url"], receiver.url.as_str());
    assert_eq!(webhook["attempts"], 3);
    assert_eq!(webhook["last_status"], 200);
    assert!(webhook["delivered_at"].is_string(), "{job}");
    assert!(webhook["next_attempt_at"].is_null(), "{job}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert_events_of(&requests, &job, "succeeded", PUBLIC_URL);
    // The retries waited for the schedule (100 ms, give or take 20 %).
    for pair in requests.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(75), "{gap:?}");
    }

    let metrics = get(&app.client, app.url("/metrics"))
        .await
        .text()
        .await
        .unwrap();
    for line in [
        "sentiq_webhook_deliveries_total{outcome=\"retry\"} 2",
        "sentiq_webhook_deliveries_total{outcome=\"delivered\"} 1",
        "sentiq_webhook_deliveries_pending 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    // Delivered means no further attempt.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_410_gets_no_further_attempt() {
    let receiver = Receiver::start(vec![Reply::Status(410)]).await;
    let app = spawn_app_with(webhooks_on).await;
    let id = app
        .submit(&json!({"text": "Stop sending these.", "webhook_url": receiver.url}))
        .await;
    let job = wait_webhook(&app, &id, "stopped").await;
    assert_eq!(job["webhook"]["attempts"], 1);
    assert_eq!(job["webhook"]["last_status"], 410);
    assert!(job["webhook"]["next_attempt_at"].is_null());
    // Longer than the whole schedule: nothing more comes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_events_of(&requests, &job, "succeeded", PUBLIC_URL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_throughout_the_schedule_leaves_the_delivery_failed_and_the_job_succeeded()
{
    // Nothing listens there.
    let url = format!("http://127.0.0.1:{}/hooks", procs::free_port());
    let app = spawn_app_with(webhooks_on).await;
    let id = app
        .submit(&json!({"text": "Nobody is listening.", "webhook_url": url}))
        .await;
    let job = wait_webhook(&app, &id, "failed").await;
    assert_eq!(job["status"], "succeeded");
    assert!(job["error"].is_null());
    let webhook = &job["webhook"];
    assert_eq!(webhook["attempts"], 3, "{job}");
    assert!(webhook["last_status"].is_null());
    assert!(webhook["delivered_at"].is_null());
    assert!(webhook["next_attempt_at"].is_null());
    let delivery = sentiq::jobs::webhooks::latest_for_job(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    let error = delivery.last_error.unwrap();
    assert!(error.contains("onnect"), "{error}");
}

/// An app without its worker, and a delivery loop of its own (so jobs stay open until the
/// test runs them).
async fn app_with_a_delivery_loop() -> TestApp {
    let app = spawn_app_with(|c| {
        webhooks_on(c);
        c.worker.run_in_process = false;
    })
    .await;
    let mut config = Config::default();
    webhooks_on(&mut config);
    let sender = sentiq::webhooks::delivery::Sender::new(&config)
        .unwrap()
        .expect("a secret");
    tokio::spawn(sentiq::webhooks::delivery::deliver_forever(
        app.deps.clone(),
        Arc::new(sender),
    ));
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_final_state_sends_its_event_and_an_open_job_sends_none() {
    let receiver = Receiver::start(Vec::new()).await;
    let app = app_with_a_delivery_loop().await;
    let queued = app
        .submit(&json!({"text": "Cancel me.", "webhook_url": receiver.url}))
        .await;
    // A broken CSV, its webhook in the query string: the worker fails it.
    let path = format!(
        "/api/jobs?webhook_url={}",
        url::form_urlencoded::byte_serialize(receiver.url.as_bytes()).collect::<String>()
    );
    let r = app
        .post_raw(
            &path,
            "text/csv",
            b"id,stars,review\n1,5,Lovely\n2\n".to_vec(),
        )
        .await;
    let broken = accepted_id(r).await;

    // Open jobs: nothing in the outbox, nothing sent.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(receiver.requests().is_empty());
    let job = app.job(&queued).await;
    assert_eq!(
        job["webhook"],
        json!({"url": receiver.url, "status": "pending", "attempts": 0, "last_status": null,
               "delivered_at": null, "next_attempt_at": null})
    );
    for id in [&queued, &broken] {
        let outbox = sentiq::jobs::webhooks::latest_for_job(&app.db, id).await;
        assert!(outbox.unwrap().is_none(), "a delivery for open job {id}");
    }

    let r = app
        .client
        .post(app.url(&format!("/api/jobs/{queued}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cancelled = wait_webhook(&app, &queued, "delivered").await;
    assert_events_of(
        &receiver.wait_for(1, Duration::from_secs(10)).await,
        &cancelled,
        "cancelled",
        PUBLIC_URL,
    );

    let outcome = sentiq::jobs::worker::process(&app.deps, &broken).await;
    assert_eq!(outcome.unwrap(), sentiq::jobs::worker::Outcome::Failed);
    let failed = wait_webhook(&app, &broken, "delivered").await;
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_events_of(&requests[1..], &failed, "failed", PUBLIC_URL);
    assert_ne!(requests[0].id, requests[1].id, "two events share an id");
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sends_a_failed_delivery_again_from_the_dashboard() {
    const TOKEN: &str = "webhook-admin-token";
    let receiver = Receiver::start(vec![Reply::Status(503)]).await;
    let app = spawn_app_with(|c| {
        webhooks_on(c);
        c.webhooks.retry_schedule = Vec::new();
        c.security.admin_token = Some(sentiq::config::Secret::new(TOKEN));
    })
    .await;
    let id = app
        .submit(&json!({"text": "Try again later.", "webhook_url": receiver.url}))
        .await;
    let job = wait_webhook(&app, &id, "failed").await;
    assert_eq!(job["webhook"]["last_status"], 503);
    let first = receiver.requests()[0].id.clone();

    let page = app.client.get(app.url("/admin")).bearer_auth(TOKEN).send();
    let page = page.await.unwrap().text().await.unwrap();
    let row_start = page
        .find(&format!("id=\"webhook-{first}\""))
        .expect("the failing delivery is listed");
    let row = &page[row_start..row_start + page[row_start..].find("</tr>").unwrap()];
    assert!(row.contains("HTTP 503 Service Unavailable"), "{row}");
    assert!(row.contains(&id) && row.contains("Send again"), "{row}");
    let action = format!("/admin/webhooks/{first}/send");
    assert!(row.contains(&action), "{row}");

    // Without the form's token: refused, nothing sent.
    let r = app
        .client
        .post(app.url(&action))
        .bearer_auth(TOKEN)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .post(app.url(&action))
        .bearer_auth(TOKEN)
        .form(&[("csrf", sentiq::web::admin::csrf_token(TOKEN))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let job = wait_webhook(&app, &id, "delivered").await;
    assert_eq!(job["webhook"]["attempts"], 2);
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_events_of(&requests, &job, "succeeded", PUBLIC_URL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_json_with_a_webhook_and_the_event_conform_to_the_openapi_document() {
    let receiver = Receiver::start(Vec::new()).await;
    let app = spawn_app_with(webhooks_on).await;
    let id = app
        .submit(&json!({"text": "Schema me.", "webhook_url": receiver.url}))
        .await;
    wait_webhook(&app, &id, "delivered").await;
    let doc: Value = get(&app.client, app.url("/api/openapi.json"))
        .await
        .json()
        .await
        .unwrap();
    let r = get(&app.client, app.url(&format!("/api/jobs/{id}"))).await;
    crate::api::conforms(&doc, "get", "/api/jobs/{id}", r)
        .await
        .unwrap();
    let hook = &doc["webhooks"]["jobFinished"]["post"];
    let schema = &hook["requestBody"]["content"]["application/json"]["schema"];
    let event = receiver.wait_for(1, Duration::from_secs(10)).await[0].json();
    crate::api::validate_against(&doc, "the webhook event", schema, &event).unwrap();
    let headers: Vec<&str> = hook["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
}

/// The SIGKILL test's worker time limit: an attempt's lease is three times as long.
const KILL_TEST_TIMEOUT_SECS: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_delivery_has_the_event_delivered_by_another_after_its_lease() {
    let scratch = Scratch::new("webhook-sigkill");
    let receiver = Receiver::start(vec![Reply::Hold]).await;
    let db = FreshDatabase::create().await;
    let ns = Namespace::new(&procs::shared_redis_url());
    let env = Env::new()
        .set("DATABASE_URL", &db.url)
        .set("REDIS_URL", &ns.redis_url)
        .set("REDIS_NAMESPACE", &ns.name)
        .set("WEBHOOK_SECRET", secret())
        .set("WEBHOOK_ALLOW_PRIVATE", "true")
        .set("WEBHOOK_TIMEOUT", KILL_TEST_TIMEOUT_SECS)
        .set("WEBHOOK_RETRY_SCHEDULE", "100ms");
    procs::migrate(&scratch, &env);
    let web = Sentiq::serve(&scratch, "web", &env).await;
    let mut first = Sentiq::worker(&scratch, "worker_a", &[], &env).await;
    let client = reqwest::Client::new();
    let r = client
        .post(web.url("/api/jobs"))
        .json(&json!({"text": "Deliver me, whoever you are.", "webhook_url": receiver.url}))
        .send()
        .await
        .unwrap();
    let id = accepted_id(r).await;

    // The first worker's attempt is held open; the worker dies during it.
    let held = receiver.wait_for(1, Duration::from_secs(30)).await;
    first.sigkill();
    let mut second = Sentiq::worker(&scratch, "worker_b", &[], &env).await;
    let requests = receiver.wait_for(2, Duration::from_secs(30)).await;
    let lease = Duration::from_secs(3 * KILL_TEST_TIMEOUT_SECS);
    let waited = requests[1].at - held[0].at;
    assert!(
        waited >= lease - Duration::from_millis(500),
        "sent again after {waited:?}, before the lease of {lease:?} ran out"
    );

    let start = Instant::now();
    let job = loop {
        let job: Value = get(&client, web.url(&format!("/api/jobs/{id}")))
            .await
            .json()
            .await
            .unwrap();
        if job["webhook"]["status"] == "delivered" {
            break job;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["webhook"]["attempts"], 2);
    assert_eq!(job["webhook"]["last_status"], 200);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_events_of(&requests, &job, "succeeded", "");
    assert!(second.is_running());
    second.sigterm();
    assert!(second.wait_exit(Duration::from_secs(30)).await.is_some());
}

/// Write a delivery of job `job_id` made at `created_at` with `status`, as a job that ran again
/// (an operator's retry) leaves beside its first.
async fn add_delivery(db: &sentiq::db::Db, id: &str, job_id: &str, created_at: &str, status: &str) {
    let sql = "INSERT INTO webhook_deliveries (id, job_id, event, url, status, created_at, \
               updated_at) VALUES ($1, $2, 'job.succeeded', 'http://127.0.0.1:9/', $3, $4, $4)";
    let written = sentiq::on_db!(db, |pool| {
        sqlx::query(sql)
            .bind(id)
            .bind(job_id)
            .bind(status)
            .bind(created_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    });
    assert_eq!(written.unwrap(), 1);
}

/// `GET /api/jobs` reads the deliveries of a page in one query: each listed job shows the
/// `webhook` its own `GET /api/jobs/{id}` shows, the newest of its deliveries (an older one and
/// a newer one are added beside the first), and a job without a webhook shows null.
async fn a_listing_shows_each_jobs_newest_delivery(
    api: &crate::common::Api,
    db: &sentiq::db::Db,
    deps: &sentiq::deps::Deps,
) {
    let key = crate::keys::make_key(db, "lister", Default::default()).await;
    let client = reqwest::Client::new();
    let get = |path: String| client.get(api.url(&path)).bearer_auth(&key).send();
    let mut ids = Vec::new();
    for body in [
        json!({"text": "First, with a hook.", "webhook_url": "http://127.0.0.1:9/a"}),
        json!({"text": "Second, with a hook.", "webhook_url": "http://127.0.0.1:9/b"}),
        json!({"text": "Third, without one."}),
    ] {
        let r = client
            .post(api.url("/api/jobs"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let id = accepted_id(r).await;
        assert_eq!(
            sentiq::jobs::worker::process(deps, &id).await.unwrap(),
            sentiq::jobs::worker::Outcome::Succeeded
        );
        ids.push(id);
    }
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    add_delivery(db, "msg_older", a, "2000-01-01T00:00:00.000Z", "failed").await;
    add_delivery(db, "msg_newer", b, "2999-01-01T00:00:00.000Z", "stopped").await;

    let listed: Value = get("/api/jobs".into()).await.unwrap().json().await.unwrap();
    let listed = listed["jobs"].as_array().expect("a page of jobs");
    assert_eq!(listed.len(), 3, "{listed:?}");
    for id in [a, b, c] {
        let in_list = listed.iter().find(|j| j["id"] == **id).expect("listed");
        let own: Value = get(format!("/api/jobs/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(in_list["webhook"], own["webhook"], "job {id}");
    }
    let webhook_of = |id: &String| &listed.iter().find(|j| j["id"] == **id).unwrap()["webhook"];
    assert_eq!(webhook_of(a)["status"], "pending", "not the older delivery");
    assert_eq!(webhook_of(a)["url"], "http://127.0.0.1:9/a");
    assert_eq!(webhook_of(b)["status"], "stopped", "the newer delivery");
    assert!(webhook_of(c).is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_shows_each_jobs_newest_webhook_delivery_on_sqlite() {
    let app = spawn_app_with(|c| {
        webhooks_on(c);
        c.worker.run_in_process = false;
    })
    .await;
    a_listing_shows_each_jobs_newest_delivery(&app, &app.db, &app.deps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_shows_each_jobs_newest_webhook_delivery_on_postgres() {
    let app = crate::common::prod::spawn_prod(|c| {
        webhooks_on(c);
        c.worker.run_in_process = false;
    })
    .await;
    a_listing_shows_each_jobs_newest_delivery(&app.api, &app.db, &app.deps).await;
}
