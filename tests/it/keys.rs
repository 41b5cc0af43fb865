//! API keys (issue 22): authentication (`API_KEYS=off|optional|required`), ownership of keyed
//! jobs, `GET /api/jobs`, submission limits per key, idempotency keys per client, the
//! dashboard's keys page, `PUBLIC_FORM`, and what the database keeps of a key. On the embedded
//! default, and on PostgreSQL + Redis where the topology matters (processes.rs has the
//! multi-process cases).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::prod::spawn_prod;
use crate::common::{Api, TestApp, assert_error, spawn_app_with};
use reqwest::header::{AUTHORIZATION, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use sentiq::config::{ApiKeys, Config};
use sentiq::db::Db;
use sentiq::keys::{self, Limits};
use serde_json::{Value, json};

/// A new key named `name` with `limits`: the key itself.
pub async fn make_key(db: &Db, name: &str, limits: Limits) -> String {
    keys::create(db, name, limits)
        .await
        .expect("the key is made")
        .secret
        .expose()
        .to_owned()
}

/// A client without cookies.
fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `method url`, with `key` as the Bearer token when given.
async fn send(method: Method, url: String, key: Option<&str>) -> reqwest::Response {
    let mut request = plain().request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

/// Submit `text` with `key` (None: anonymously); the job id (asserting 202).
async fn submit_as(app: &Api, key: Option<&str>, text: &str) -> String {
    let mut request = plain()
        .post(app.url("/api/jobs"))
        .json(&json!({ "text": text }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Poll job `id` as `key` until it is final (at most 60 s); its JSON.
async fn wait_final_as(app: &TestApp, key: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = send(Method::GET, app.url(&format!("/api/jobs/{id}")), Some(key)).await;
        assert_eq!(r.status(), 200);
        let job: Value = r.json().await.unwrap();
        if matches!(
            job["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every route of a job, as (method, path): what must answer alike for another client.
fn routes_of(id: &str) -> Vec<(Method, String)> {
    vec![
        (Method::GET, format!("/api/jobs/{id}")),
        (Method::GET, format!("/api/jobs/{id}/items.csv")),
        (Method::GET, format!("/api/jobs/{id}/items.jsonl")),
        (Method::GET, format!("/api/jobs/{id}/events")),
        (Method::POST, format!("/api/jobs/{id}/cancel")),
        (Method::DELETE, format!("/api/jobs/{id}")),
    ]
}

fn queued(c: &mut Config) {
    c.worker.run_in_process = false;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_job_answers_404_to_every_other_client_exactly_as_an_unknown_id() {
    let app = spawn_app_with(queued).await;
    let a = make_key(&app.db, "a", Limits::default()).await;
    let b = make_key(&app.db, "b", Limits::default()).await;
    let job = submit_as(&app, Some(&a), "Mine, all mine.").await;
    let row = sentiq::jobs::model::get(&app.db, &job)
        .await
        .unwrap()
        .unwrap();
    let a_id = keys::find(&app.db, "a").await.unwrap().unwrap().id;
    assert_eq!(row.api_key_id.as_deref(), Some(a_id.as_str()));
    let unknown = uuid::Uuid::new_v4().to_string();
    for (method, path) in routes_of(&job) {
        let unknown_path = path.replace(&job, &unknown);
        let expected = send(method.clone(), app.url(&unknown_path), Some(&b)).await;
        assert_eq!(expected.status(), 404);
        let expected: Value = expected.json().await.unwrap();
        for who in [Some(b.as_str()), None] {
            let r = send(method.clone(), app.url(&path), who).await;
            assert_eq!(r.status(), 404, "{method} {path} as {who:?}");
            assert_eq!(
                r.json::<Value>().await.unwrap(),
                expected,
                "{method} {path}"
            );
        }
    }
    // Its page too.
    let page = send(Method::GET, app.url(&format!("/analyses/{job}")), Some(&b)).await;
    assert_eq!(page.status(), 404);
    // Nothing was changed by those attempts; the owner sees, cancels and deletes it.
    let r = send(Method::GET, app.url(&format!("/api/jobs/{job}")), Some(&a)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "queued");
    let page = send(Method::GET, app.url(&format!("/analyses/{job}")), Some(&a)).await;
    assert_eq!(page.status(), 200);
    let r = send(
        Method::POST,
        app.url(&format!("/api/jobs/{job}/cancel")),
        Some(&a),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        Method::DELETE,
        app.url(&format!("/api/jobs/{job}")),
        Some(&a),
    )
    .await;
    assert_eq!(r.status(), 204);
    // An anonymous job stays a capability URL: anyone with its id sees it.
    let open = submit_as(&app, None, "Anyone may look.").await;
    for who in [Some(a.as_str()), Some(b.as_str()), None] {
        let r = send(Method::GET, app.url(&format!("/api/jobs/{open}")), who).await;
        assert_eq!(r.status(), 200, "{who:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_unknown_or_revoked_key_is_refused_with_401_invalid_token() {
    let app = spawn_app_with(queued).await;
    let good = make_key(&app.db, "good", Limits::default()).await;
    let revoked = make_key(&app.db, "revoked", Limits::default()).await;
    // Usable until revoked, refused from the next request on.
    submit_as(&app, Some(&revoked), "Still fine.").await;
    keys::revoke(&app.db, "revoked").await.unwrap();
    let unknown = format!("sq_{}", "A".repeat(43));
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let before = app.job_rows().await;
    for key in [
        revoked.as_str(),
        &unknown,
        &flipped,
        "sq_short",
        "not-a-key",
    ] {
        let r = plain()
            .post(app.url("/api/jobs"))
            .bearer_auth(key)
            .json(&json!({"text": "Let me in."}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"sentiq\", error=\"invalid_token\""
        );
        let message = assert_error(r, 401, "unauthorized").await;
        assert!(!message.contains(key), "the key was echoed: {message}");
    }
    // Not Bearer at all: refused rather than served anonymously.
    let r = plain()
        .get(app.url("/api/jobs"))
        .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthorized").await;
    assert_eq!(
        app.job_rows().await,
        before,
        "a refused request wrote a job"
    );
    submit_as(&app, Some(&good), "Welcome.").await;
    submit_as(&app, None, "Anonymous works too (API_KEYS=optional).").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_keys_close_every_job_route_but_health_readiness_metrics_and_the_document() {
    let app = spawn_app_with(|c| {
        queued(c);
        c.clients.api_keys = ApiKeys::Required;
    })
    .await;
    let key = make_key(&app.db, "k", Limits::default()).await;
    let job = submit_as(&app, Some(&key), "Keyed.").await;
    let before = app.job_rows().await;
    let mut closed = routes_of(&job);
    closed.push((Method::GET, "/api/jobs".into()));
    closed.push((Method::POST, "/api/jobs".into()));
    for (method, path) in closed {
        let r = send(method, app.url(&path), None).await;
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"sentiq\"",
            "{path}"
        );
        let message = assert_error(r, 401, "unauthorized").await;
        assert!(message.contains("Authorization: Bearer"), "{message}");
    }
    assert_eq!(app.job_rows().await, before);
    for open in ["/healthz", "/readyz", "/metrics", "/api/openapi.json"] {
        let r = send(Method::GET, app.url(open), None).await;
        assert_eq!(r.status(), 200, "{open}");
    }
    let r = send(
        Method::GET,
        app.url(&format!("/api/jobs/{job}")),
        Some(&key),
    )
    .await;
    assert_eq!(r.status(), 200);
    // The browser form stays open (PUBLIC_FORM=true).
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_keys_off_the_authorization_header_is_ignored() {
    let app = spawn_app_with(|c| {
        queued(c);
        c.clients.api_keys = ApiKeys::Off;
    })
    .await;
    let key = make_key(&app.db, "k", Limits::default()).await;
    let job = submit_as(&app, Some(&key), "Nobody's.").await;
    submit_as(&app, Some("sq_garbage"), "Still nobody's.").await;
    let row = sentiq::jobs::model::get(&app.db, &job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.api_key_id, None, "a key was recorded with API_KEYS=off");
    let r = send(Method::GET, app.url(&format!("/api/jobs/{job}")), None).await;
    assert_eq!(r.status(), 200);
}

/// Every page of `GET /api/jobs{query}` as `key` (or the TestApp's own client, with its
/// cookies, when None), following `next` and checking `Link` against it: the ids in order.
async fn all_pages(app: &Api, key: Option<&str>, query: &str) -> (Vec<String>, usize) {
    let mut url = format!("/api/jobs{query}");
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let mut request = match key {
            Some(_) => plain().get(app.url(&url)),
            None => app.client.get(app.url(&url)),
        };
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let link = r
            .headers()
            .get(LINK)
            .map(|l| l.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap();
        pages += 1;
        ids.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(link, Some(format!("<{next}>; rel=\"next\"")));
                url = next.to_owned();
            }
            None => {
                assert_eq!(link, None);
                return (ids, pages);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_a_keys_own_jobs_newest_first_and_filters_them() {
    let app = spawn_app_with(queued).await;
    let a = make_key(&app.db, "a", Limits::default()).await;
    let b = make_key(&app.db, "b", Limits::default()).await;
    let mut mine = Vec::new();
    for i in 0..7 {
        mine.push(submit_as(&app, Some(&a), &format!("Job number {i}.")).await);
        submit_as(&app, Some(&b), "Someone else's.").await;
        submit_as(&app, None, "Nobody's.").await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // The form's job belongs to the visitor of the app's client (its cookie).
    let token = crate::pages::form_token(&app.client, &app.url("/")).await;
    let form = app
        .client
        .post(app.url("/analyses"))
        .form(&[("csrf", token.as_str()), ("text", "From the form.")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 303);
    let newest_first: Vec<String> = mine.iter().rev().cloned().collect();
    let (ids, pages) = all_pages(&app, Some(&a), "?limit=3").await;
    assert_eq!(ids, newest_first, "every job of the key once, newest first");
    assert_eq!(pages, 3);
    let (ids, pages) = all_pages(&app, Some(&a), "").await;
    assert_eq!((ids.len(), pages), (7, 1));
    // Status filters: cancel two of them.
    for id in [&mine[1], &mine[4]] {
        let r = send(
            Method::POST,
            app.url(&format!("/api/jobs/{id}/cancel")),
            Some(&a),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let (cancelled, _) = all_pages(&app, Some(&a), "?status=cancelled").await;
    assert_eq!(cancelled, [mine[4].clone(), mine[1].clone()]);
    let (both, _) = all_pages(&app, Some(&a), "?status=cancelled,queued&limit=2").await;
    assert_eq!(both.len(), 7);
    let (open, _) = all_pages(&app, Some(&a), "?status=queued&status=running").await;
    assert_eq!(open.len(), 5);
    // Time filters, exclusive, on created_at.
    let created = |id: &str| {
        let id = id.to_owned();
        let db = app.db.clone();
        async move {
            sentiq::jobs::model::get(&db, &id)
                .await
                .unwrap()
                .unwrap()
                .created_at
                .to_string()
        }
    };
    let third = created(&mine[2]).await;
    let (after, _) = all_pages(&app, Some(&a), &format!("?created_after={third}")).await;
    assert_eq!(after, newest_first[..4]);
    let (before, _) = all_pages(&app, Some(&a), &format!("?created_before={third}")).await;
    assert_eq!(before, [mine[1].clone(), mine[0].clone()]);
    // A deleted job (a tombstone) is left out.
    let r = send(
        Method::DELETE,
        app.url(&format!("/api/jobs/{}", mine[6])),
        Some(&a),
    )
    .await;
    assert_eq!(r.status(), 204);
    let (ids, _) = all_pages(&app, Some(&a), "?limit=100").await;
    assert_eq!(ids, newest_first[1..]);
    // The other key sees only its own; the visitor only the form's; nobody else anything.
    let (theirs, _) = all_pages(&app, Some(&b), "?limit=100").await;
    assert_eq!(theirs.len(), 7);
    assert!(theirs.iter().all(|id| !mine.contains(id)));
    let (visitors, _) = all_pages(&app, None, "").await;
    assert_eq!(visitors.len(), 1);
    assert!(!mine.contains(&visitors[0]) && !theirs.contains(&visitors[0]));
    let r = send(Method::GET, app.url("/api/jobs"), None).await;
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer realm=\"sentiq\"");
    assert_error(r, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_refuses_parameters_it_cannot_use_with_a_clear_400() {
    let app = spawn_app_with(queued).await;
    let key = make_key(&app.db, "k", Limits::default()).await;
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("cursor=bm90IGEgY3Vyc29y", "invalid_cursor"),
        ("status=finished", "invalid_status"),
        ("created_after=last%20week", "invalid_date"),
        ("created_before=2026-13-01T00:00:00Z", "invalid_date"),
        ("order=asc", "unknown_parameter"),
    ] {
        let r = send(
            Method::GET,
            app.url(&format!("/api/jobs?{query}")),
            Some(&key),
        )
        .await;
        let message = assert_error(r, 400, code).await;
        let parameter = query.split('=').next().unwrap();
        assert!(message.contains(parameter), "{query}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_from_two_api_keys_makes_two_jobs() {
    let app = spawn_app_with(queued).await;
    let a = make_key(&app.db, "a", Limits::default()).await;
    let b = make_key(&app.db, "b", Limits::default()).await;
    let keyed = |key: Option<String>| {
        let url = app.url("/api/jobs");
        async move {
            let mut request = plain()
                .post(url)
                .header("Idempotency-Key", "order-4711")
                .json(&json!({"text": "Charge me once."}));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 202);
            let replayed = r.headers().contains_key("idempotent-replayed");
            let id = r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (id, replayed)
        }
    };
    let (first_a, _) = keyed(Some(a.clone())).await;
    let (again_a, replayed) = keyed(Some(a.clone())).await;
    assert_eq!((again_a.as_str(), replayed), (first_a.as_str(), true));
    let (first_b, replayed) = keyed(Some(b.clone())).await;
    assert!(!replayed);
    assert_ne!(
        first_b, first_a,
        "another client's key gave the first client's job"
    );
    let (anonymous, replayed) = keyed(None).await;
    assert!(!replayed);
    assert!(anonymous != first_a && anonymous != first_b);
    assert_eq!(app.job_rows().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_submissions_are_limited_by_its_own_rate_wherever_they_come_from() {
    let app = spawn_app_with(|c| {
        queued(c);
        c.limits.submit_rate_per_minute = 600;
        c.limits.submit_burst = 100;
    })
    .await;
    let slow = make_key(
        &app.db,
        "slow",
        Limits {
            rate_per_minute: Some(3),
            max_running: None,
        },
    )
    .await;
    let other = make_key(&app.db, "other", Limits::default()).await;
    for i in 0..3 {
        submit_as(&app, Some(&slow), &format!("Number {i}.")).await;
    }
    let before = app.job_rows().await;
    let r = plain()
        .post(app.url("/api/jobs"))
        .bearer_auth(&slow)
        .json(&json!({"text": "One too many."}))
        .send()
        .await
        .unwrap();
    let wait: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((15..=20).contains(&wait), "Retry-After {wait}");
    let message = assert_error(r, 429, "rate_limited").await;
    assert!(message.contains("API key"), "{message}");
    assert_eq!(
        app.job_rows().await,
        before,
        "a refused submission wrote a job"
    );
    // The same address with another key, or with none, is not held back by it.
    submit_as(&app, Some(&other), "Mine is fine.").await;
    submit_as(&app, None, "And mine.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_last_use_is_recorded_without_a_write_per_request() {
    let app = spawn_app_with(queued).await;
    let key = make_key(&app.db, "k", Limits::default()).await;
    assert!(
        keys::find(&app.db, "k")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_none()
    );
    let started = Instant::now();
    let used = loop {
        let r = send(Method::GET, app.url("/api/jobs"), Some(&key)).await;
        assert_eq!(r.status(), 200);
        if let Some(at) = keys::find(&app.db, "k")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
        {
            break at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "last use never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for _ in 0..20 {
        let r = send(Method::GET, app.url("/api/jobs"), Some(&key)).await;
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = keys::find(&app.db, "k")
        .await
        .unwrap()
        .unwrap()
        .last_used_at;
    assert_eq!(
        again,
        Some(used),
        "a request within the minute wrote last_used_at again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_public_form_its_routes_answer_404_and_the_api_still_takes_jobs() {
    let app = spawn_app_with(|c| {
        queued(c);
        c.clients.public_form = false;
    })
    .await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Submissions go through the API")
    );
    let post = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", "Let me in.")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);
    assert_eq!(app.job_rows().await, 0);
    let id = submit_as(&app, None, "Through the API.").await;
    let status = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200, "existing analyses keep their pages");
}

/// Every value of every row of `api_keys`, as text (bytes as hex and as base64).
async fn dump(db: &Db) -> Vec<String> {
    type Row = (
        String,
        String,
        String,
        Vec<u8>,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = sentiq::on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT id, name, prefix, hash, created_at, last_used_at, revoked_at, \
             rate_per_minute, max_running FROM api_keys",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    use base64::Engine as _;
    let mut values = Vec::new();
    for (id, name, prefix, hash, created, used, revoked, rate, running) in rows {
        values.extend([id, name, prefix.clone(), created]);
        values.extend([used, revoked].into_iter().flatten());
        values.extend([rate, running].into_iter().flatten().map(|n| n.to_string()));
        values.push(hex::encode(&hash));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash);
        values.push(format!("sq_{b64}"));
        values.push(format!("sq_{prefix}{}", &b64[..b64.len().min(35)]));
        values.push(b64);
    }
    values
}

/// The keys table holds nothing that authenticates: not the keys, and no stored value (nor
/// the hash, as hex or as a key-shaped string) is accepted as one.
async fn assert_dump_authenticates_nothing(db: &Db, api: &crate::common::Api, made: &[String]) {
    let values = dump(db).await;
    assert!(values.len() >= made.len() * 4);
    let everything = values.join("\n");
    for key in made {
        assert!(
            !everything.contains(key.as_str()),
            "a key is stored in clear"
        );
        assert!(
            !everything.contains(&key[3..]),
            "a key's secret part is stored"
        );
    }
    for value in &values {
        let r = plain()
            .get(api.url("/api/jobs"))
            .bearer_auth(value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "a stored value authenticated: {value}");
    }
    // The keys themselves do.
    for key in made {
        let r = plain()
            .get(api.url("/api/jobs"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_keys_table_gives_no_usable_key_on_sqlite_or_postgresql() {
    let lite = spawn_app_with(queued).await;
    let pg = spawn_prod(|_| {}).await;
    for (db, api) in [(&lite.db, &lite.api), (&pg.db, &pg.api)] {
        let mut made = Vec::new();
        for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
            let limits = Limits {
                rate_per_minute: Some(60 + i as u32),
                max_running: Some(2),
            };
            made.push(make_key(db, name, limits).await);
        }
        assert_eq!(made.iter().collect::<HashSet<_>>().len(), 3);
        assert_dump_authenticates_nothing(db, api, &made).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_and_redis_a_keyed_job_is_its_keys_alone_and_listed_for_it() {
    let app = spawn_prod(|_| {}).await;
    let a = make_key(&app.db, "a", Limits::default()).await;
    let b = make_key(&app.db, "b", Limits::default()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit_as(&app.api, Some(&a), &format!("Job {i}.")).await);
    }
    for who in [Some(b.as_str()), None] {
        let r = send(Method::GET, app.url(&format!("/api/jobs/{}", ids[0])), who).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let (seen, pages) = all_pages(&app.api, Some(&a), "?limit=2").await;
    assert_eq!(pages, 3);
    ids.reverse();
    assert_eq!(seen, ids);
    let r = send(Method::GET, app.url("/api/jobs"), Some(&b)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["jobs"], json!([]));
}

/// The key on the page that answers the dashboard's form (the only place it is shown).
pub fn key_on_page(page: &str) -> String {
    const MARK: &str = "id=\"new-key-secret\">";
    let start = page.find(MARK).expect("the new key on the page") + MARK.len();
    page[start..].split('<').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_makes_a_key_shows_it_once_lists_its_usage_and_revokes_it() {
    const TOKEN: &str = "keys-admin-token";
    let app = spawn_app_with(|c| {
        c.security.admin_token = Some(sentiq::config::Secret::new(TOKEN));
    })
    .await;
    let admin = plain();
    let post = |path: &str, fields: Vec<(&'static str, String)>| {
        let request = admin.post(app.url(path)).bearer_auth(TOKEN).form(&fields);
        async move { request.send().await.unwrap() }
    };
    let csrf = crate::admin::csrf_for(TOKEN);
    // Without the form's token: refused, nothing made.
    let r = post("/admin/keys", vec![("name", "acme".into())]).await;
    assert_eq!(r.status(), 403);
    assert!(keys::list(&app.db).await.unwrap().is_empty());
    let r = post(
        "/admin/keys",
        vec![
            ("csrf", csrf.clone()),
            ("name", "acme".into()),
            ("rate_per_minute", "120".into()),
            ("max_running", "".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let key = key_on_page(&page);
    assert!(key.starts_with("sq_") && key.len() == 46, "{key}");
    let stored = keys::find(&app.db, "acme").await.unwrap().unwrap();
    assert_eq!(stored.limits().rate_per_minute, Some(120));
    // Its jobs show as its usage; the list never shows the key again.
    let id = submit_as(&app, Some(&key), "Great product, would buy again.").await;
    assert_eq!(wait_final_as(&app, &key, &id).await["status"], "succeeded");
    let list = admin
        .get(app.url("/admin/keys"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list = list.text().await.unwrap();
    assert!(!list.contains(&key), "the list shows the key");
    let row = &list[list.find(&format!("id=\"key-{}\"", stored.id)).unwrap()..];
    assert!(row.contains("data-succeeded=\"1\""), "{row}");
    assert!(row.contains("data-items=\"1\""), "{row}");
    assert!(row.contains("data-bytes=\"31\""), "{row}");
    assert!(row.contains(&stored.shown_prefix()));
    // A name taken, a bad number: a page that says so, and nothing made.
    let r = post(
        "/admin/keys",
        vec![("csrf", csrf.clone()), ("name", "acme".into())],
    )
    .await;
    assert_eq!(r.status(), 409);
    let r = post(
        "/admin/keys",
        vec![
            ("csrf", csrf.clone()),
            ("name", "other".into()),
            ("max_running", "many".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(keys::list(&app.db).await.unwrap().len(), 1);
    // Revoke: refused at once.
    let r = post(
        &format!("/admin/keys/{}/revoke", stored.id),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = send(Method::GET, app.url(&format!("/api/jobs/{id}")), Some(&key)).await;
    assert_eq!(r.status(), 401);
    let dashboard = admin
        .get(app.url("/admin"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(dashboard.text().await.unwrap().contains("0 active"));
}

/// Revoke or restore key `name` without telling anyone: the change-notifying trigger is off for
/// the one transaction that makes it.
async fn revoke_silently(pg: &sqlx::PgPool, name: &str, revoked: bool) {
    let mut tx = pg.begin().await.unwrap();
    sqlx::query("ALTER TABLE api_keys DISABLE TRIGGER api_key_changed")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE api_keys SET revoked_at = CASE WHEN $2 THEN '2026-12-06T00:00:00.000Z' END \
         WHERE name = $1",
    )
    .bind(name)
    .bind(revoked)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE api_keys ENABLE TRIGGER api_key_changed")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_web_process_serves_keys_from_its_cache_and_refuses_a_revoked_one_at_once() {
    let app = spawn_prod(|_| {}).await;
    let key = make_key(&app.db, "cached", Limits::default()).await;
    let list = || send(Method::GET, app.url("/api/jobs"), Some(&key));
    // The cache is used once the process listens for key changes: a key revoked behind its
    // back (no notification) is then still served, which only a cache can do.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(list().await.status(), StatusCode::OK);
        revoke_silently(&app.pg, "cached", true).await;
        let served = list().await.status();
        revoke_silently(&app.pg, "cached", false).await;
        if served == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a keyed request never came from the cache"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A real revocation notifies every process as it commits: refused from then on.
    keys::revoke(&app.db, "cached").await.unwrap();
    let revoked = Instant::now();
    loop {
        let r = list().await;
        if r.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "a revoked key was still served {:?} after its revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "revoked key refused {:?} after revocation",
        revoked.elapsed()
    );
}
