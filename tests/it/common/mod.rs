//! Test helpers: an app on a free port with its own temporary database, and polling helpers.
#![allow(dead_code)]

pub mod procs;
pub mod prod;

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use sentiq::config::Config;
use sentiq::db::Db;
use sentiq::deps::Deps;
use sentiq::startup::Application;
use serde_json::Value;
use sqlx::SqlitePool;

/// The HTTP side of a test app, the same for both topologies: requests and polling.
pub struct Api {
    pub address: String,
    /// Keeps cookies (the visitor cookie), never follows redirects.
    pub client: reqwest::Client,
}

/// An app on the embedded default (SQLite, in-process worker); its requests and polling are
/// [`Api`]'s.
pub struct TestApp {
    pub api: Api,
    pub port: u16,
    pub pool: SqlitePool,
    pub db: Db,
    pub deps: Deps,
    _dir: tempfile::TempDir,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The app with its in-process worker.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The app with a changed configuration (e.g. `worker.run_in_process = false` to keep jobs
/// queued).
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        sentiq::telemetry::init();
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.http.host = "127.0.0.1".into();
    config.http.port = 0;
    config.database.url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sentiq-test.db").display()
    );
    config.queue.poll_interval = Duration::from_millis(50);
    // Tests submit faster than one client may; the rate limit has its own test.
    config.limits.submit_rate_per_minute = 0;
    change(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let port = app.port();
    let db = app.db().clone();
    let pool = db.sqlite().expect("a SQLite app").clone();
    let deps = app.deps().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        api: Api::new(port),
        port,
        pool,
        db,
        deps,
        _dir: dir,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            address: format!("http://127.0.0.1:{port}"),
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/jobs"))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Submit and return the job id (asserting 202).
    pub async fn submit(&self, body: &Value) -> String {
        let r = self.post_json(body).await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn submit_raw(&self, content_type: &str, body: &str) -> String {
        let r = self
            .post_raw("/api/jobs", content_type, body.as_bytes().to_vec())
            .await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn job(&self, id: &str) -> Value {
        let r = self
            .client
            .get(self.url(&format!("/api/jobs/{id}")))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Poll the status endpoint until the job is final (at most 60 s).
    pub async fn wait_final(&self, id: &str) -> Value {
        self.wait_final_within(id, Duration::from_secs(60)).await
    }

    /// Poll the status endpoint until the job is final (at most `within`).
    pub async fn wait_final_within(&self, id: &str, within: Duration) -> Value {
        self.wait_for_within(id, within, |s| {
            matches!(s, "succeeded" | "failed" | "cancelled")
        })
        .await
    }

    /// Poll the status endpoint until `done` holds for the job's status (at most 60 s).
    pub async fn wait_for(&self, id: &str, done: impl Fn(&str) -> bool) -> Value {
        self.wait_for_within(id, Duration::from_secs(60), done)
            .await
    }

    async fn wait_for_within(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            if done(job["status"].as_str().unwrap()) {
                return job;
            }
            assert!(start.elapsed() < within, "job {id} stuck: {job}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl TestApp {
    /// Rows in the jobs table.
    pub async fn job_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM sentiq_jobs")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Entries in the apalis queue table.
    pub async fn queue_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM Jobs")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// An error body `{"error": {"code", "message"}}` with this code; returns the message.
pub async fn assert_error(r: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(r.status().as_u16(), status);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(!message.is_empty());
    message
}

/// A text big enough to keep a worker busy for a while (about `mib` MiB).
pub fn big_text(mib: usize) -> String {
    let mut s = String::with_capacity(mib << 20);
    let mut i = 0u64;
    while s.len() < mib << 20 {
        i += 1;
        s.push_str(&format!(
            "Review {i} says the product is great and I love it. Shipping took {i} days, which was terrible!\n"
        ));
    }
    s
}

/// A neutral scored item at `position`, as a run would store it.
pub fn item(position: i64, text: &str) -> sentiq::jobs::model::ItemRow {
    sentiq::jobs::model::ItemRow {
        position,
        item_id: None,
        text: text.to_owned(),
        neg: 0.0,
        neu: 1.0,
        pos: 0.0,
        compound: 0.0,
        source: Default::default(),
        lang: None,
    }
}
