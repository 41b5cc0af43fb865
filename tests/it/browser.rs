//! Drives a real headless Chromium (through chromedriver) from the form to the charts, and
//! saves screenshots under `target/`. Fails, with a message, when chromedriver is missing.

use crate::common;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestApp, spawn_app};
use fantoccini::error::CmdError;
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

/// What a person does on the form: open it, type `text` and/or choose `file`, press Analyse.
/// The page's own form carries its CSRF token, so this is also the proof that a real browser
/// sends it.
async fn submit_form(
    browser: &fantoccini::Client,
    app: &TestApp,
    text: &str,
    file: Option<&Path>,
) -> Result<(), CmdError> {
    browser.goto(&app.url("/")).await?;
    if !text.is_empty() {
        browser
            .find(Locator::Id("text"))
            .await?
            .send_keys(text)
            .await?;
    }
    if let Some(file) = file {
        browser
            .find(Locator::Id("file"))
            .await?
            .send_keys(&file.display().to_string())
            .await?;
    }
    browser.find(Locator::Id("submit")).await?.click().await
}

/// The element `locator` once the page shows it, looked for every 100 ms for at most `secs`.
/// Unlike fantoccini's `wait().for_element`, which gives up at the first error other than "no
/// such element", this keeps looking through the errors chromedriver answers while a page
/// the script reloads is being replaced (the document unloaded under a find), so a reload
/// that lands between two looks is not a failure; the last error is returned at the deadline.
async fn element_within(
    browser: &fantoccini::Client,
    locator: Locator<'_>,
    secs: u64,
) -> Result<fantoccini::elements::Element, CmdError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match browser.find(locator).await {
            Ok(element) => return Ok(element),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The id of the job whose status page the browser shows.
async fn job_id_on_page(browser: &fantoccini::Client) -> Result<String, CmdError> {
    let url = browser.current_url().await?;
    assert!(url.path().starts_with("/analyses/"), "{url}");
    Ok(url.path().trim_start_matches("/analyses/").to_owned())
}

/// Proof that nothing injected ran or was parsed on the page: no dialog is open, no element
/// carries the payloads' `src=x` or `onerror`, every script is the app's own file, and the title
/// is the one the server wrote.
async fn assert_nothing_injected(
    browser: &fantoccini::Client,
    title: &str,
) -> Result<(), CmdError> {
    match browser.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        other => panic!("a dialog is open (or the check failed): {other:?}"),
    }
    let page = browser.current_url().await?;
    assert!(
        browser
            .find_all(Locator::Css("img[src=\"x\"]"))
            .await?
            .is_empty(),
        "an injected image on {page}"
    );
    assert!(
        browser
            .find_all(Locator::Css("[onerror]"))
            .await?
            .is_empty(),
        "an injected handler on {page}"
    );
    for script in browser.find_all(Locator::Css("script")).await? {
        assert_eq!(
            script.attr("src").await?.as_deref(),
            Some("/static/app.js"),
            "an injected script on {page}: {}",
            script.html(false).await?
        );
    }
    assert_eq!(browser.title().await?, title, "the title on {page}");
    Ok(())
}

/// True when the page has no horizontal scrolling.
async fn fits_width(browser: &fantoccini::Client) -> Result<bool, CmdError> {
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
        let text = "I absolutely love how light this laptop is. The screen is gorgeous! \
            Sadly the battery dies after two hours, which is terrible. \
            Support never answered my emails. The keyboard is fine. \
            Overall I am happy with it, and I would buy it again.";
        submit_form(&browser, &app, text, None).await?;

        // The status page follows the job and swaps in the results when it is done.
        let histogram = element_within(&browser, Locator::Id("histogram"), 30).await?;
        job_id_on_page(&browser).await?;
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
        submit_form(&browser, &app, "", Some(&csv)).await?;
        element_within(&browser, Locator::Id("histogram"), 30).await?;
        let count = browser.find(Locator::Id("item-count")).await?.text().await?;
        assert_eq!(count, "3");

        // Blank input: the error is shown on the form, in words.
        submit_form(&browser, &app, "   ", None).await?;
        let error = element_within(&browser, Locator::Id("form-error"), 10).await?
            .text()
            .await?;
        assert!(error.contains("nothing to analyse"), "{error}");
        let png = browser.screenshot().await?;
        std::fs::write(target_dir().join("browser-form-error.png"), png).expect("screenshot");
        Ok::<_, CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}

/// True when the text of the first element matching `css` sits on one line.
async fn on_one_line(browser: &fantoccini::Client, css: &str) -> Result<bool, CmdError> {
    let v = browser
        .execute(
            "const el = document.querySelector(arguments[0]); \
             const range = document.createRange(); range.selectNodeContents(el); \
             const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top))); \
             return tops.size === 1;",
            vec![css.into()],
        )
        .await?;
    Ok(v.as_bool().unwrap_or(false))
}

/// The labels of an SVG chart that stick out of its drawing (clipped on screen), as text.
async fn clipped_labels(browser: &fantoccini::Client, svg: &str) -> Result<Vec<String>, CmdError> {
    let v = browser
        .execute(
            "const svg = document.querySelector(arguments[0]); const box = svg.viewBox.baseVal; \
             return [...svg.querySelectorAll('text')].filter(t => { const b = t.getBBox(); \
               return b.x < box.x - 0.5 || b.x + b.width > box.x + box.width + 0.5; }) \
               .map(t => t.textContent);",
            vec![svg.into()],
        )
        .await?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_uploads_a_csv_in_chromium_and_sees_groups_agreement_and_their_ids() {
    // Tall screenshots keep Chromium busy on both cores: not beside the timing-sensitive tests.
    let _heavy = crate::processes::HEAVY.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    let app = spawn_app().await;
    let browser = open_browser(&driver, true).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("reviews.csv");
    let mut body = String::from("review_id,rating,product,review\n");
    let products = [
        "Aurora kettle",
        "Borealis toaster with a very long product name",
        "Cirrus lamp",
    ];
    // Mostly neutral, so the histogram's tallest bar passes 1,000 (its axis label "1.1k").
    for i in 0..1_534 {
        let (rating, review) = match i % 10 {
            0 => (5, "Wonderful, I love it and would buy it again."),
            1 => (1, "Terrible. It broke after a day, awful support."),
            2 => (4, "Good value, happy with it."),
            _ => (3, "It arrived on Tuesday in a brown box."),
        };
        let product = products[(i / 4) % 3];
        body.push_str(&format!("rv-{i:05},{rating},{product},\"{review}\"\n"));
    }
    std::fs::write(&csv, body).expect("csv file");

    let outcome = async {
        browser.goto(&app.url("/")).await?;
        browser
            .find(Locator::Id("file"))
            .await?
            .send_keys(&csv.display().to_string())
            .await?;
        browser
            .find(Locator::Css("#columns summary"))
            .await?
            .click()
            .await?;
        browser
            .find(Locator::Id("group_by"))
            .await?
            .send_keys("product")
            .await?;
        browser.find(Locator::Id("submit")).await?.click().await?;
        element_within(&browser, Locator::Id("group-bars"), 30).await?;
        let count = browser
            .find(Locator::Id("item-count"))
            .await?
            .text()
            .await?;
        assert_eq!(count, "1,534", "thousands separators");
        let positive = browser
            .find(Locator::Id("most-positive"))
            .await?
            .text()
            .await?;
        assert!(
            positive.contains("rv-00002"),
            "the id column is the item's #: {positive}"
        );
        let bars = browser
            .find_all(Locator::Css("#group-bars rect.bar"))
            .await?;
        assert_eq!(bars.len(), 3);
        let table = browser
            .find(Locator::Id("groups-table"))
            .await?
            .text()
            .await?;
        assert!(
            table.contains("Cirrus lamp") && table.contains("512"),
            "{table}"
        );
        let ticks = browser.find(Locator::Id("histogram")).await?.text().await?;
        assert!(ticks.contains("1.1k"), "{ticks}");
        let pearson = browser.find(Locator::Id("pearson")).await?.text().await?;
        assert!(pearson.starts_with('+'), "rating found by name: {pearson}");
        browser.find(Locator::Id("rating-chart")).await?;
        browser.find(Locator::Id("delete")).await?;

        for (width, height, name) in [
            (1280, 3200, "browser-analyst.png"),
            (390, 5200, "browser-analyst-390.png"),
        ] {
            browser.set_window_size(width, height).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = browser.screenshot().await?;
            std::fs::write(target_dir().join(name), png).expect("screenshot");
            assert!(
                fits_width(&browser).await?,
                "the page scrolls sideways at {width} px"
            );
            assert!(
                on_one_line(&browser, "#most-positive td.pos-n").await?,
                "an item's # wraps at {width} px"
            );
            assert!(
                on_one_line(&browser, "#item-count").await?,
                "the count wraps at {width} px"
            );
            for svg in ["#histogram", "#arc", "#group-bars", "#rating-chart"] {
                let clipped = clipped_labels(&browser, svg).await?;
                assert!(clipped.is_empty(), "{svg} at {width} px clips {clipped:?}");
            }
        }
        Ok::<_, CmdError>(())
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
    let app = common::spawn_app_with(|c| c.worker.run_in_process = false).await;
    let browser = open_browser(&driver, false).await;
    let outcome = async {
        submit_form(&browser, &app, "Plain old HTML still works. Lovely!", None).await?;
        element_within(&browser, Locator::Id("progress"), 10).await?;
        // Scripting really is off: <noscript> content is parsed into elements only then.
        browser
            .find(Locator::Css("noscript meta[http-equiv=refresh]"))
            .await?;
        let id = job_id_on_page(&browser).await?;
        assert_eq!(
            sentiq::jobs::worker::process(&app.deps, &id).await.unwrap(),
            sentiq::jobs::worker::Outcome::Succeeded
        );
        // The <noscript> meta refresh brings the results within a few seconds.
        element_within(&browser, Locator::Id("histogram"), 15).await?;
        let status = browser.find(Locator::Id("status")).await?.text().await?;
        assert_eq!(status.to_lowercase(), "succeeded");
        Ok::<_, CmdError>(())
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
    let app = common::spawn_app_with(|c| c.worker.run_in_process = false).await;
    let browser = open_browser(&driver, true).await;
    let outcome = async {
        submit_form(&browser, &app, "Pushed, not polled. Lovely!", None).await?;
        element_within(&browser, Locator::Id("progress"), 10).await?;
        let id = job_id_on_page(&browser).await?;
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
        element_within(&browser, Locator::Id("histogram"), 30).await?;
        let status = browser.find(Locator::Id("status")).await?.text().await?;
        assert_eq!(status.to_lowercase(), "succeeded");
        Ok::<_, CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_typed_into_the_form_is_shown_as_text_and_never_runs_in_chromium() {
    const SCRIPT: &str = "<script>alert(1)</script>";
    const ATTRIBUTE: &str = "\"><img src=x onerror=alert(1)>";
    // Would rename the page if it ever ran, even where a dialog goes unnoticed.
    const MARKER: &str = "<img src=x onerror=\"document.title='pwned'\">";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    let app = spawn_app().await;
    let browser = open_browser(&driver, true).await;
    // Each payload shares its sentence with strong words, so the sentence is listed among the
    // most positive or most negative; the text starts with one so the job's title holds it too.
    // Sentences end in `!`: after a `.`, a sentence starting with `<img` would not be split off.
    let text = format!(
        "{SCRIPT} I love this wonderful, excellent phone! \
         {ATTRIBUTE} The support was terrible, awful and rude! \
         {MARKER} What a great, happy, lovely day!"
    );
    let title = sentiq::web::input::title_of_text(&text);
    assert!(title.starts_with(SCRIPT), "{title}");
    let outcome = async {
        submit_form(&browser, &app, &text, None).await?;
        element_within(&browser, Locator::Id("histogram"), 30).await?;
        job_id_on_page(&browser).await?;
        // Time for an image that fails to load to fire its handler, had one been parsed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_nothing_injected(&browser, &format!("{title} · sentiq")).await?;

        let positive = browser
            .find(Locator::Id("most-positive"))
            .await?
            .text()
            .await?;
        assert!(positive.contains(SCRIPT), "{positive}");
        assert!(positive.contains(MARKER), "{positive}");
        let negative = browser
            .find(Locator::Id("most-negative"))
            .await?
            .text()
            .await?;
        assert!(negative.contains(ATTRIBUTE), "{negative}");
        let heading = browser
            .find(Locator::Css("h1.job-title"))
            .await?
            .text()
            .await?;
        assert_eq!(heading, title);

        // The visitor's recent list on the form shows the title as text as well.
        browser.goto(&app.url("/")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_nothing_injected(&browser, "sentiq · analyse a text").await?;
        let link = browser.find(Locator::Css("#recent a")).await?;
        assert_eq!(
            link.prop("textContent").await?.as_deref(),
            Some(title.as_str())
        );
        let markup = link.html(true).await?;
        assert!(
            markup.starts_with("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{markup}"
        );
        Ok::<_, CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_button_of_the_status_page_cancels_the_job_in_chromium() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    // The job stays queued, so the Cancel button is there to press.
    let app = common::spawn_app_with(|c| c.worker.run_in_process = false).await;
    let browser = open_browser(&driver, true).await;
    let outcome = async {
        submit_form(&browser, &app, "Stop me if you can. Lovely!", None).await?;
        element_within(&browser, Locator::Id("cancel"), 10)
            .await?
            .click()
            .await?;
        let error = element_within(&browser, Locator::Id("job-error"), 10)
            .await?
            .text()
            .await?;
        assert!(error.contains("This analysis was cancelled."), "{error}");
        let id = job_id_on_page(&browser).await?;
        assert_eq!(app.job(&id).await["status"], "cancelled");
        Ok::<_, CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps");
    drop(driver);
}

/// The text of the element `css`.
async fn text_of(browser: &fantoccini::Client, css: &str) -> Result<String, CmdError> {
    browser.find(Locator::Css(css)).await?.text().await
}

/// Wait (at most 10 s) until the browser is on a page whose query is `query`, after a click
/// that navigates; its address.
async fn wait_for_query(browser: &fantoccini::Client, query: &str) -> Result<url::Url, CmdError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.current_url().await?;
        if url.query() == Some(query) || Instant::now() > deadline {
            browser.find(Locator::Id("items")).await?;
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scores in the items table, in order.
async fn table_scores(browser: &fantoccini::Client) -> Result<Vec<f64>, CmdError> {
    let mut scores = Vec::new();
    for cell in browser
        .find_all(Locator::Css("#items-table td.score"))
        .await?
    {
        let text = cell.text().await?;
        let number = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .replace('−', "-");
        scores.push(number.parse().unwrap_or(f64::NAN));
    }
    Ok(scores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_items_table_is_filtered_sorted_and_paged_in_chromium_with_javascript_off() {
    let _heavy = crate::processes::HEAVY.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = start_chromedriver().await;
    let app = spawn_app().await;
    let mut csv = String::from("review_id,review\n");
    for i in 0..1_534 {
        let review = match i % 5 {
            0 => "Wonderful, I love it and would buy it again.",
            1 => "Terrible. It broke after a day, awful support.",
            2 => "Not great, a bit disappointing.",
            3 => "Good value, happy with it.",
            _ => "It arrived on Tuesday in a brown box.",
        };
        csv.push_str(&format!("rv-{i:05},\"{review} (order {i})\"\n"));
    }
    let r = app
        .post_raw("/api/jobs", "text/csv", csv.into_bytes())
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.wait_final(&id).await["status"], "succeeded");

    let browser = open_browser(&driver, false).await;
    let outcome = async {
        browser.goto(&app.url(&format!("/analyses/{id}"))).await?;
        let rows = browser
            .find_all(Locator::Css("#items-table tbody tr"))
            .await?;
        assert_eq!(rows.len(), 50);
        assert_eq!(
            text_of(&browser, "#items-table tbody tr td.pos-n").await?,
            "rv-00000"
        );
        assert_eq!(
            text_of(&browser, "#items-caption").await?,
            "Rows 1–50 of 1,534, input order"
        );
        // The form: most negative first, negative only.
        browser
            .find(Locator::Id("items-sort"))
            .await?
            .select_by_value("score_asc")
            .await?;
        browser
            .find(Locator::Id("items-label"))
            .await?
            .select_by_value("negative")
            .await?;
        browser
            .find(Locator::Id("items-show"))
            .await?
            .click()
            .await?;
        let url = wait_for_query(&browser, "sort=score_asc&label=negative").await?;
        assert_eq!(url.query(), Some("sort=score_asc&label=negative"), "{url}");
        assert_eq!(url.fragment(), Some("items"));
        let caption = text_of(&browser, "#items-caption").await?;
        assert!(
            caption.starts_with("Negative rows 1–50 of ")
                && caption.ends_with("most negative first"),
            "{caption}"
        );
        let first = table_scores(&browser).await?;
        assert_eq!(first.len(), 50);
        assert!(
            first.windows(2).all(|w| w[0] <= w[1]),
            "not ascending: {first:?}"
        );
        assert!(
            first.iter().all(|&s| s <= -0.05),
            "not all negative: {first:?}"
        );
        // Next keeps the view and goes on where the first page ended.
        browser
            .find(Locator::Id("items-next"))
            .await?
            .click()
            .await?;
        let url = wait_for_query(&browser, "sort=score_asc&label=negative&page=2").await?;
        assert_eq!(
            url.query(),
            Some("sort=score_asc&label=negative&page=2"),
            "{url}"
        );
        let second = table_scores(&browser).await?;
        assert!(second[0] >= first[49], "{second:?} after {first:?}");
        // The page box: straight to the last page.
        let last = browser.find(Locator::Id("items-page")).await?;
        let pages: u64 = last
            .attr("max")
            .await?
            .unwrap_or_default()
            .parse()
            .unwrap_or(0);
        assert!(pages >= 2);
        last.clear().await?;
        last.send_keys(&pages.to_string()).await?;
        browser
            .find(Locator::Css(".page-jump button"))
            .await?
            .click()
            .await?;
        let query = format!("sort=score_asc&label=negative&page={pages}");
        wait_for_query(&browser, &query).await?;
        assert!(
            browser
                .find_all(Locator::Id("items-next"))
                .await?
                .is_empty()
        );
        assert!(
            !browser
                .find_all(Locator::Id("items-previous"))
                .await?
                .is_empty()
        );
        Ok::<_, CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser steps with JavaScript off");

    // How it looks, with JavaScript on for the layout checks: at 1280 and 390 px.
    let browser = open_browser(&driver, true).await;
    let outcome = async {
        browser
            .goto(&app.url(&format!("/analyses/{id}?sort=score_desc&page=3")))
            .await?;
        // Windows as tall as the whole page: an element's screenshot shows what is in view.
        for (width, height, name) in [
            (1280, 6400, "browser-items.png"),
            (390, 9600, "browser-items-390.png"),
        ] {
            browser.set_window_size(width, height).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = browser
                .find(Locator::Id("items"))
                .await?
                .screenshot()
                .await?;
            std::fs::write(target_dir().join(name), png).expect("screenshot");
            assert!(
                fits_width(&browser).await?,
                "the page scrolls sideways at {width} px"
            );
            assert!(
                on_one_line(&browser, "#items-table td.pos-n").await?,
                "an item's # wraps at {width} px"
            );
            let row = browser
                .execute(
                    "const kids = [...document.querySelector('.page-jump').children] \
                       .filter(k => k.type !== 'hidden').map(k => k.getBoundingClientRect()); \
                     const mid = kids.map(r => (r.top + r.bottom) / 2); \
                     return Math.max(...mid) - Math.min(...mid) < 8;",
                    vec![],
                )
                .await?;
            assert_eq!(row, true, "the page box wraps at {width} px");
        }
        Ok::<_, CmdError>(())
    }
    .await;
    let _ = browser.close().await;
    outcome.expect("browser layout steps");
    drop(driver);
}
