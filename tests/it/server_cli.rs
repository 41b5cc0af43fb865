//! The server side of the binary: `sentiq` with no command serves (and stops cleanly on SIGTERM), and
//! `sentiq migrate` prepares a database, twice without harm.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sentiq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sentiq"))
}

#[test]
fn migrate_creates_the_database_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out = sentiq()
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("m.db").exists());
}

#[test]
fn sentiq_without_a_command_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sentiq()
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines
            .next()
            .expect("the server logs that it listens")
            .unwrap();
        if let Some(rest) = line.split("listening on http://localhost:").nth(1) {
            break rest
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let health = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/jobs"))
            .json(&serde_json::json!({"text": "Served by the binary. Lovely."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let url = format!(
            "http://127.0.0.1:{port}{}",
            r.headers()["location"].to_str().unwrap()
        );
        let start = Instant::now();
        loop {
            let job: serde_json::Value =
                client.get(&url).send().await.unwrap().json().await.unwrap();
            if job["status"] == "succeeded" {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // The default database file is created in the working directory.
    assert!(dir.path().join("sentiq.db").exists());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("sentiq did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// Start `sentiq serve` (embedded, in a temp dir) with extra environment; returns the child,
/// its port and the log lines it writes, collected as they come.
fn serve_collecting_logs(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut cmd = sentiq();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("LOG_FORMAT")
        .env_remove("RUST_LOG_FORMAT")
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (n, v) in env {
        cmd.env(n, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let port: u16 = loop {
        let line = lines
            .next()
            .expect("the server logs that it listens")
            .unwrap();
        let port = line
            .split("listening on http://localhost:")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            });
        collected.lock().unwrap().push(line);
        if let Some(p) = port {
            break p.parse().unwrap();
        }
    };
    let sink = collected.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (child, port, collected)
}

fn stop(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_logs_name_the_request_and_the_job_on_every_line_about_them_and_never_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port, logs) = serve_collecting_logs(dir.path(), &[("RUST_LOG_FORMAT", "json")]);
    let secret = "Marmalade-7f3e is my secret and I love it.";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (given_request, own_request, job_id) = rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/jobs"))
            .header("X-Request-Id", "caller-req-42")
            .json(&serde_json::json!({ "text": secret }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["x-request-id"], "caller-req-42");
        let job: serde_json::Value = r.json().await.unwrap();
        let id = job["id"].as_str().unwrap().to_owned();
        let start = Instant::now();
        let own = loop {
            let r = client
                .get(format!("http://127.0.0.1:{port}/api/jobs/{id}"))
                // Not a plain id: replaced by one of the server's own.
                .header("X-Request-Id", "bad id\twith tab")
                .send()
                .await
                .unwrap();
            let own = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            let job: serde_json::Value = r.json().await.unwrap();
            if job["status"] == "succeeded" {
                break own;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ("caller-req-42".to_owned(), own, id)
    });
    stop(child);
    let lines = logs.lock().unwrap().clone();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        !lines.iter().any(|l| l.contains("Marmalade-7f3e")),
        "the submitted text was logged"
    );
    uuid::Uuid::parse_str(&own_request).expect("a replaced request id is a UUID");
    let request_of = |e: &serde_json::Value| e["span"]["request_id"].as_str().map(str::to_owned);
    let answered: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "request answered")
        .collect();
    assert!(
        answered.iter().all(|e| request_of(e).is_some()
            && e["fields"]["status"].is_number()
            && e["fields"]["duration_ms"].is_number()),
        "a request line without its id, status or duration"
    );
    assert!(
        answered
            .iter()
            .any(|e| request_of(e).as_deref() == Some(&given_request)
                && e["fields"]["path"] == "/api/jobs")
    );
    assert!(
        answered
            .iter()
            .any(|e| request_of(e).as_deref() == Some(&own_request))
    );
    // The web process's line about the job carries both the request and the job.
    let queued = events
        .iter()
        .find(|e| e["fields"]["message"] == "job queued")
        .expect("a job queued line");
    assert_eq!(request_of(queued).as_deref(), Some(given_request.as_str()));
    assert_eq!(queued["fields"]["job_id"], job_id.as_str());
    // The worker's lines about the job name it too.
    for message in ["job started", "job succeeded"] {
        let line = events
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line"));
        assert_eq!(line["span"]["job_id"], job_id.as_str(), "{line}");
    }
}

#[test]
fn human_logs_are_the_default_and_carry_the_request_id_too() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port, logs) = serve_collecting_logs(dir.path(), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .header("X-Request-Id", "plain-text-req-7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    std::thread::sleep(Duration::from_millis(200));
    stop(child);
    let lines = logs.lock().unwrap().clone();
    assert!(lines.iter().all(|l| !l.starts_with('{')), "JSON by default");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request_id=plain-text-req-7") && l.contains("request answered")),
        "{lines:#?}"
    );
}

#[test]
fn a_separate_worker_serves_its_own_job_metrics_at_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let (web, port, _logs) = serve_collecting_logs(dir.path(), &[("RUN_WORKER", "false")]);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let worker = sentiq()
        .arg("worker")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("HOST", "127.0.0.1")
        .env("METRICS_PORT", metrics_port.to_string())
        .env("POLL_INTERVAL_MS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (web_text, worker_text) = rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/jobs"))
            .json(&serde_json::json!({"text": "Run elsewhere. Lovely."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let start = Instant::now();
        loop {
            let job: serde_json::Value = client
                .get(format!("http://127.0.0.1:{port}/api/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["status"] == "succeeded" {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let get = |url: String| {
            let client = client.clone();
            async move { client.get(url).send().await.unwrap().text().await.unwrap() }
        };
        (
            get(format!("http://127.0.0.1:{port}/metrics")).await,
            get(format!("http://127.0.0.1:{metrics_port}/metrics")).await,
        )
    });
    let mut worker = worker;
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    stop(web);
    // Each process counts what happened in it; the row gauges are the same in both.
    assert!(
        worker_text.contains("sentiq_jobs_succeeded_total{queue=\"quick\"} 1"),
        "{worker_text}"
    );
    assert!(worker_text.contains("sentiq_job_duration_seconds_count{queue=\"quick\"} 1"));
    assert!(!worker_text.contains("sentiq_jobs_submitted_total{"));
    assert!(
        web_text.contains("sentiq_jobs_submitted_total{queue=\"quick\"} 1"),
        "{web_text}"
    );
    assert!(!web_text.contains("sentiq_jobs_succeeded_total{"));
    for text in [&web_text, &worker_text] {
        assert!(
            text.contains("sentiq_jobs{queue=\"quick\",status=\"succeeded\"} 1"),
            "{text}"
        );
    }
}

/// The threads actix names `actix-server worker N` (the kernel keeps 15 bytes of a name).
fn http_worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("actix-server wo"))
        .count()
}

#[test]
fn web_concurrency_sets_how_many_threads_serve_http_and_a_bad_value_is_refused() {
    // 1 and 3: neither is the default (one per core) on a 2-core machine, nor on most others.
    for n in [1usize, 3] {
        let dir = tempfile::tempdir().unwrap();
        let (child, port, _) =
            serve_collecting_logs(dir.path(), &[("WEB_CONCURRENCY", &n.to_string())]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let health = rt
            .block_on(reqwest::get(format!("http://127.0.0.1:{port}/healthz")))
            .unwrap();
        assert_eq!(health.status(), 200);
        // The workers start together; give a slow machine a moment before counting.
        let start = Instant::now();
        while http_worker_threads(child.id()) < n && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let threads = http_worker_threads(child.id());
        stop(child);
        assert_eq!(threads, n, "WEB_CONCURRENCY={n}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = sentiq()
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("WEB_CONCURRENCY", "lots")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WEB_CONCURRENCY"), "{stderr}");
}

#[test]
fn service_settings_are_checked_before_anything_starts_and_offline_commands_ignore_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = sentiq();
        cmd.args(args)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL");
        for (name, value) in env {
            cmd.env(name, value);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        )
    };
    let (ok, _, stderr) = run(&["serve", "--port", "lots"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("error: option --port=\"lots\": invalid digit"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&["migrate"], &[("PORT", "lots")]);
    assert!(!ok);
    assert!(
        stderr.contains("error: environment variable PORT=\"lots\": invalid digit"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("sentiq.db").exists(),
        "migrated despite the error"
    );
    let (ok, stdout, stderr) = run(&["licenses"], &[("PORT", "lots"), ("WORKER_QUEUES", "x")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("VADER"));
    let (ok, stdout, _) = run(&["worker", "--help"], &[("ADMIN_TOKEN", "hunter2")]);
    assert!(ok);
    assert!(stdout.contains("--concurrency <N>"), "{stdout}");
    assert!(stdout.contains("[env: PORT] [default: 8080]"), "{stdout}");
    assert!(
        !stdout.contains("hunter2"),
        "--help shows a variable's value"
    );
}
