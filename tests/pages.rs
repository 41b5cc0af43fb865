//! Black-box tests of the server-rendered pages and the form.

mod common;

use common::{client, spawn_app, spawn_app_with};
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::multipart::{Form, Part};
use sentiq::jobs::worker::{self, Outcome};

fn id_from_location(r: &reqwest::Response) -> String {
    let location = r.headers()[LOCATION].to_str().unwrap();
    location
        .strip_prefix("/analyses/")
        .unwrap_or_else(|| panic!("unexpected Location {location}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_page_has_a_textarea_a_file_upload_and_sets_an_http_only_visitor_cookie() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sentiq_visitor="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("<textarea id=\"text\" name=\"text\""));
    assert!(html.contains("type=\"file\""));
    assert!(html.contains("<label for=\"text\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("/static/app.css"));
    // A second visit keeps the cookie.
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_the_form_redirects_303_to_the_status_page_with_the_results() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[(
            "text",
            "The food was delicious. The waiter was rude and slow.",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let id = id_from_location(&r);
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded");
    let html = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"histogram\""));
    assert!(html.contains("id=\"arc\""));
    assert!(html.contains("id=\"most-positive\""));
    assert!(html.contains("id=\"most-negative\""));
    assert!(html.contains("The food was delicious."));
    assert!(html.contains("<polyline class=\"arc-line\""));
    assert_eq!(html.matches("<rect class=\"bar").count(), 20);
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "final pages do not refresh"
    );
    assert!(html.contains("/api/jobs/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_csv_file_upload_is_analysed_row_by_row() {
    let app = spawn_app().await;
    let csv = "id,review\n1,Best purchase ever\n2,Worst purchase ever\n3,It is a chair\n";
    let form = Form::new().text("text", "").part(
        "file",
        Part::bytes(csv.as_bytes().to_vec())
            .file_name("reviews.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let r = app
        .client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let id = id_from_location(&r);
    let job = app.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["format"], "csv");
    assert_eq!(job["result"]["items"], 3);
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("reviews.csv"),
        "the upload is listed by its file name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_text_field_without_a_file_is_analysed_as_text() {
    let app = spawn_app().await;
    let form = Form::new()
        .text("text", "Sunny and warm. Lovely.")
        .part("file", Part::bytes(Vec::new()).file_name(""));
    let r = app
        .client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let job = app.wait_final(&id_from_location(&r)).await;
    assert_eq!(job["result"]["items"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_form_input_shows_the_error_in_words_and_creates_no_job() {
    let app = spawn_app_with(|c| {
        c.max_body_bytes = 2048;
        c.run_worker = false;
    })
    .await;
    // Blank text.
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", "   \n ")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("There is nothing to analyse"), "{html}");
    // Too large.
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", "x".repeat(4000))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("too large"));
    let form = Form::new()
        .part("file", Part::bytes(vec![b'a'; 4000]).file_name("big.txt"))
        .text("column", "after the file");
    let r = app
        .client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Not UTF-8.
    let form = Form::new().part(
        "file",
        Part::bytes(b"ok\n\xff\xfe".to_vec()).file_name("latin1.txt"),
    );
    let r = app
        .client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("UTF-8"), "{html}");
    // A CSV without a text column names its columns.
    let form = Form::new().part(
        "file",
        Part::bytes(b"name,stars\nbob,5\n".to_vec()).file_name("people.csv"),
    );
    let r = app
        .client
        .post(app.url("/analyses"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("&quot;name&quot;, &quot;stars&quot;") || html.contains("&#34;name&#34;"),
        "{html}"
    );
    // Not a form at all.
    let r = app
        .client
        .post(app.url("/analyses"))
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.job_rows().await, 0);
    assert_eq!(app.queue_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_jobs_on_the_form_are_only_the_visitors_own() {
    let app = spawn_app_with(|c| c.run_worker = false).await;
    let alice = client();
    let bob = client();
    for (who, text) in [
        (&alice, "Alice writes about apples"),
        (&bob, "Bob writes about bananas"),
    ] {
        who.get(app.url("/")).send().await.unwrap();
        let r = who
            .post(app.url("/analyses"))
            .form(&[("text", text)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }
    // An API job has no visitor and is listed for nobody.
    app.submit(&serde_json::json!({"text": "Carol via the API"}))
        .await;
    let page_a = alice
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page_b = bob
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page_a.contains("Alice writes about apples"));
    assert!(!page_a.contains("Bob writes"));
    assert!(page_b.contains("Bob writes about bananas"));
    assert!(!page_b.contains("Alice writes"));
    for page in [&page_a, &page_b] {
        assert!(!page.contains("Carol"));
    }
    let stranger = client()
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stranger.contains("id=\"no-recent\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_refreshes_itself_without_javascript_until_final() {
    let app = spawn_app_with(|c| c.run_worker = false).await;
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", "Hopeful beginnings.")])
        .send()
        .await
        .unwrap();
    let id = id_from_location(&r);
    let url = app.url(&format!("/analyses/{id}"));
    let html = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"2\"></noscript>"));
    assert!(html.contains("<progress id=\"progress\""));
    assert!(html.contains("<script src=\"/static/app.js\" defer></script>"));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");
    assert_eq!(
        worker::process(&app.deps, &id).await.unwrap(),
        Outcome::Succeeded
    );
    let html = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("id=\"results\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_button_cancels_and_returns_to_the_status_page() {
    let app = spawn_app_with(|c| c.run_worker = false).await;
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", "Wait for me.")])
        .send()
        .await
        .unwrap();
    let id = id_from_location(&r);
    let r = app
        .client
        .post(app.url(&format!("/analyses/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], format!("/analyses/{id}"));
    let html = app
        .client
        .get(app.url(&format!("/analyses/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("This analysis was cancelled."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_text_is_escaped_on_every_page() {
    let app = spawn_app().await;
    let evil = "<script>alert('x')</script> I love <b>bold</b> things.";
    let r = app
        .client
        .post(app.url("/analyses"))
        .form(&[("text", evil)])
        .send()
        .await
        .unwrap();
    let id = id_from_location(&r);
    app.wait_final(&id).await;
    for path in ["/".to_owned(), format!("/analyses/{id}")] {
        let html = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("<script>alert"), "{path}");
        assert!(!html.contains("<b>bold</b>"), "{path}");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_are_served_from_the_binary_and_unknown_pages_are_404() {
    let app = spawn_app_with(|c| c.run_worker = false).await;
    let r = app
        .client
        .get(app.url("/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let r = app
        .client
        .get(app.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(r.text().await.unwrap().contains("If-None-Match"));
    for path in [
        format!("/analyses/{}", uuid::Uuid::new_v4()),
        "/analyses/garbage".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            r.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}
