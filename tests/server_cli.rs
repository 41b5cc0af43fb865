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
