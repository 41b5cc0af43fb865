//! Drives a real headless Chromium (through chromedriver) from the form to the charts, and
//! saves screenshots under `target/`. Fails, with a message, when chromedriver is missing.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::spawn_app;
use fantoccini::{ClientBuilder, Locator};

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
    profile_path: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_chromedriver() -> Driver {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find_in_path("chromedriver"))
        .unwrap_or_else(|| {
            panic!(
                "chromedriver was not found (set CHROMEDRIVER or put it on PATH). \
                 Install it with: apt-get update && apt-get install -y chromium chromium-driver"
            )
        });
    let port = free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", path.display()));
    let profile = tempfile::tempdir().expect("profile dir");
    let profile_path = profile.path().to_owned();
    let driver = Driver {
        child,
        port,
        _profile: profile,
        profile_path,
    };
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start listening on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

fn chromium_binary() -> Option<String> {
    std::env::var("CHROME_BIN").ok().or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|n| find_in_path(n))
            .map(|p| p.display().to_string())
    })
}

fn target_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&dir).expect("target dir");
    dir
}

/// A Chromium session through `driver`, with JavaScript on or off.
async fn open_browser(driver: &Driver, javascript: bool) -> fantoccini::Client {
    let mut options = serde_json::json!({
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--user-data-dir={}", driver.profile_path.join(if javascript { "js" } else { "nojs" }).display()),
            "--window-size=1280,1000",
        ]
    });
    if !javascript {
        options["prefs"] =
            serde_json::json!({"profile.managed_default_content_settings.javascript": 2});
    }
    if let Some(bin) = chromium_binary() {
        options["binary"] = bin.into();
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// True when the page has no horizontal scrolling.
async fn fits_width(browser: &fantoccini::Client) -> Result<bool, fantoccini::error::CmdError> {
    let v = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await?;
    Ok(v.as_bool().unwrap_or(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_pastes_a_text_in_chromium_and_sees_the_charts() {
    // Both rustls crypto back ends are in the dependency tree; pick one for fantoccini.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    let app = spawn_app().await;

    let browser = open_browser(&driver, true).await;

    let outcome = async {
        browser.goto(&app.url("/")).await?;
        let textarea = browser.find(Locator::Id("text")).await?;
        let text = "I absolutely love how light this laptop is. The screen is gorgeous! \
            Sadly the battery dies after two hours, which is terrible. \
            Support never answered my emails. The keyboard is fine. \
            Overall I am happy with it, and I would buy it again.";
        textarea.send_keys(text).await?;
        browser.find(Locator::Id("submit")).await?.click().await?;

        // The status page follows the job and swaps in the results when it is done.
        let histogram = browser
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("histogram"))
            .await?;
        let url = browser.current_url().await?;
        assert!(url.path().starts_with("/analyses/"), "{url}");
        let bars = histogram.find_all(Locator::Css("rect.bar")).await?;
        assert_eq!(bars.len(), 20);
        browser.find(Locator::Css("#arc polyline.arc-line")).await?;
        let labels = browser.find(Locator::Id("labels")).await?.text().await?;
        assert!(labels.contains("Positive") && labels.contains("Negative"), "{labels}");
        let positive = browser.find(Locator::Id("most-positive")).await?.text().await?;
        assert!(positive.contains("love"), "{positive}");
        let status = browser.find(Locator::Id("status")).await?.text().await?;
        assert_eq!(status.to_lowercase(), "succeeded");
        // A tall window so the screenshot holds the whole page.
        browser.set_window_size(1280, 2200).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = browser.screenshot().await?;
        std::fs::write(target_dir().join("browser-results.png"), png).expect("screenshot");

        // The same page on a phone.
        browser.set_window_size(375, 2600).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = browser.screenshot().await?;
        std::fs::write(target_dir().join("browser-results-375.png"), png).expect("screenshot");
        assert!(fits_width(&browser).await?, "the results page scrolls sideways at 375 px");

        // Back on the form, the job is in this visitor's recent list.
        browser.goto(&app.url("/")).await?;
        let recent = browser.find(Locator::Id("recent")).await?.text().await?;
        assert!(recent.contains("I absolutely love"), "{recent}");
        browser.set_window_size(375, 1400).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = browser.screenshot().await?;
        std::fs::write(target_dir().join("browser-form-375.png"), png).expect("screenshot");
        assert!(fits_width(&browser).await?, "the form scrolls sideways at 375 px");

        // A CSV upload through the file input.
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("reviews.csv");
        std::fs::write(
            &csv,
            "id,review\n1,Fantastic hotel and a wonderful view\n2,Dirty room and a rude clerk\n3,Breakfast at seven\n",
        )
        .expect("csv file");
        browser.set_window_size(1280, 1000).await?;
        browser
            .find(Locator::Id("file"))
            .await?
            .send_keys(&csv.display().to_string())
            .await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        browser
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("histogram"))
            .await?;
        let count = browser.find(Locator::Id("item-count")).await?.text().await?;
        assert_eq!(count, "3");

        // Blank input: the error is shown on the form, in words.
        browser.goto(&app.url("/")).await?;
        browser.find(Locator::Id("text")).await?.send_keys("   ").await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        let error = browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("form-error"))
            .await?
            .text()
            .await?;
        assert!(error.contains("nothing to analyse"), "{error}");
        let png = browser.screenshot().await?;
        std::fs::write(target_dir().join("browser-form-error.png"), png).expect("screenshot");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_javascript_off_the_status_page_refreshes_itself_to_the_results() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    // Jobs stay queued until the test runs them, so the page must refresh by itself.
    let app = common::spawn_app_with(|c| c.run_worker = false).await;
    let browser = open_browser(&driver, false).await;
    let outcome = async {
        browser.goto(&app.url("/")).await?;
        browser
            .find(Locator::Id("text"))
            .await?
            .send_keys("Plain old HTML still works. Lovely!")
            .await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("progress"))
            .await?;
        // Scripting really is off: <noscript> content is parsed into elements only then.
        browser
            .find(Locator::Css("noscript meta[http-equiv=refresh]"))
            .await?;
        let url = browser.current_url().await?;
        let id = url.path().trim_start_matches("/analyses/").to_owned();
        assert_eq!(
            sentiq::jobs::worker::process(&app.deps, &id).await.unwrap(),
            sentiq::jobs::worker::Outcome::Succeeded
        );
        // The <noscript> meta refresh brings the results within a few seconds.
        browser
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Id("histogram"))
            .await?;
        let status = browser.find(Locator::Id("status")).await?.text().await?;
        assert_eq!(status.to_lowercase(), "succeeded");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_the_job_through_its_event_stream() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    // The job stays queued until the test runs it, so the page is open while it changes.
    let app = common::spawn_app_with(|c| c.run_worker = false).await;
    let browser = open_browser(&driver, true).await;
    let outcome = async {
        browser.goto(&app.url("/")).await?;
        browser
            .find(Locator::Id("text"))
            .await?
            .send_keys("Pushed, not polled. Lovely!")
            .await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("progress"))
            .await?;
        let url = browser.current_url().await?;
        let id = url.path().trim_start_matches("/analyses/").to_owned();
        // app.js marks the page once an event from /api/jobs/{id}/events has reached it (the
        // first one is the job as it stands: queued).
        let fed_by_stream = format!("return sessionStorage.getItem('sentiq-live-{id}');");
        let start = std::time::Instant::now();
        loop {
            let v = browser.execute(&fed_by_stream, vec![]).await?;
            if v.as_str() == Some("events") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no event from the stream reached the page: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = browser.find(Locator::Id("status")).await?.text().await?;
        assert_eq!(status.to_lowercase(), "queued");
        assert_eq!(
            sentiq::jobs::worker::process(&app.deps, &id).await.unwrap(),
            sentiq::jobs::worker::Outcome::Succeeded
        );
        // The final event makes the page reload into the results.
        browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("histogram"))
            .await?;
        let status = browser.find(Locator::Id("status")).await?.text().await?;
        assert_eq!(status.to_lowercase(), "succeeded");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}
