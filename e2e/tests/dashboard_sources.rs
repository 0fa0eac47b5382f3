//! The dashboard's Sources pages in a real browser: headless Chromium driven through ChromeDriver
//! against the real binary and a recording receiver on 127.0.0.1, as in `dashboard.rs`. Needs the
//! built dashboard (frontend/dist) and the chromium and chromium-driver packages;
//! ./scripts/test.sh provides both.
//!
//! The pages are saved as screenshots under `<target>/screenshots/` for people to look at.

use std::{fmt::Write, time::Duration};

use hmac::{Hmac, Mac};
use hookline_e2e::{
    Client, TestServer,
    browser::{Browser, require_dashboard},
    dashboard::{choose, click, click_text, create_api_key, fill, path_is, server, sign_up},
    receiver::Receiver,
};
use serde_json::{Value, json};
use sha2::Sha256;

/// The webhook secret set on the source, as on GitHub's webhook settings page.
const GITHUB_SECRET: &str = "It's a Secret to Everybody";

/// `sha256=<hex HMAC-SHA256 of the body>`, GitHub's `X-Hub-Signature-256`.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().fold("sha256=".to_owned(), |mut signature, byte| {
        let _ = write!(signature, "{byte:02x}");
        signature
    })
}

/// The path (and query) of the ingest URL, sent to the test server's real address: the URL is
/// built from the configured public URL, which need not name the port the test server got.
fn ingest_path(ingest_url: &str) -> String {
    if ingest_url.starts_with('/') {
        return ingest_url.to_owned();
    }
    let url = url::Url::parse(ingest_url).unwrap_or_else(|e| panic!("the ingest URL {ingest_url:?}: {e}"));
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// POSTs a GitHub `pull_request` delivery to the ingest URL, signed with `secret`; returns the
/// status and body.
async fn send_github_delivery(
    server: &TestServer,
    ingest_url: &str,
    secret: &str,
    delivery: &str,
    body: &str,
) -> (u16, String) {
    send_github_event(server, ingest_url, "pull_request", secret, delivery, body).await
}

/// POSTs a GitHub delivery of `event` (`X-GitHub-Event`) to the ingest URL, signed with `secret`.
async fn send_github_event(
    server: &TestServer,
    ingest_url: &str,
    event: &str,
    secret: &str,
    delivery: &str,
    body: &str,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(server.url(&ingest_path(ingest_url)))
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitHub-Hookshot/e2e")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", github_signature(secret, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("the ingest request was sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("the ingest answer"))
}

/// Waits until the source's request log (through the API) holds `count` requests, so the page
/// loaded next shows them.
async fn wait_for_logged(api: &Client, source: &str, count: usize) {
    let path = format!("/api/v1/source/{source}/request");
    let mut logged = Value::Null;
    for _ in 0..100 {
        logged = api.get(&path).await.expect(200);
        if logged["data"].as_array().is_some_and(|data| data.len() >= count) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the source's log did not reach {count} requests within 10 s: {logged}");
}

/// A GitHub source made with the dashboard's form: it is listed; its ingest URL, read from its
/// page, accepts a correctly signed GitHub delivery, which the requests log then shows as
/// accepted with a link to its message (delivered to the application's endpoint); "Send a test
/// request" shows a signed curl command for that URL; a wrongly signed delivery is logged as
/// rejected and the outcome filter shows it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_source_from_the_form_logs_a_signed_delivery_links_its_message_back_and_shows_a_test_curl() {
    require_dashboard();
    let server = server().await;
    let receiver = Receiver::start();
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Octo Org", "mona@octo.test").await;
    let api = server.client_with_key(&create_api_key(&browser, &server, "setup").await);
    let app = api.create_app("Octo Repo", Some("octo-repo")).await["id"].as_str().unwrap().to_owned();
    api.create_endpoint(&app, &receiver.url("/github")).await;

    // The list is empty; the form creates a GitHub source for the application.
    browser.goto(&server.url("/sources")).await;
    browser.wait_for_text(".empty", "No sources yet").await;
    fill(&browser, "#source-name", "GitHub").await;
    // The application select fills in once the applications are loaded.
    browser.find(&format!("#source-app option[value='{app}']")).await;
    choose(&browser, "#source-app", &app).await;
    choose(&browser, "#source-verification-type", "github").await;
    // The secret field is GitHub's now.
    browser.find("#source-secret[placeholder='the secret set on GitHub']").await;
    fill(&browser, "#source-secret", GITHUB_SECRET).await;
    fill(&browser, "#source-event-type-header", "X-GitHub-Event").await;
    fill(&browser, "#source-forward-headers", "X-GitHub-Event, X-GitHub-Delivery").await;
    browser.screenshot("sources-new").await;
    click(&browser, "#source-create-submit").await;
    browser.wait_for_text("#source-created", "Source 'GitHub' created").await;
    browser.wait_for_text("#sources-table .source-row", "GitHub").await;
    browser.wait_for_text("#sources-table .source-row", "Octo Repo").await;
    browser.find("#sources-table .source-row .badge-ok").await;
    browser.screenshot("sources").await;

    // The API has what the form said.
    let sources = api.get("/api/v1/source").await.expect(200);
    let created = &sources["data"][0];
    assert_eq!(created["name"], "GitHub", "{sources}");
    assert_eq!(created["app_id"], app.as_str(), "{sources}");
    assert_eq!(created["verification"]["type"], "github", "{sources}");
    assert_eq!(created["event_type"], json!({"header": "X-GitHub-Event"}), "{sources}");
    assert_eq!(created["forward_headers"], json!(["X-GitHub-Event", "X-GitHub-Delivery"]), "{sources}");
    assert_eq!(created["disabled"], false, "{sources}");
    let source = created["id"].as_str().expect("the source's id").to_owned();

    // Its page shows the ingest URL; nothing received yet.
    click_text(&browser, "#sources-table a", "GitHub").await;
    path_is(&browser, "/sources/src_").await;
    browser.wait_for_text("h1", "GitHub").await;
    let ingest_url = browser.find("#source-ingest-url").await.value().await;
    assert_eq!(ingest_url, created["ingest_url"].as_str().unwrap(), "the page shows the source's URL");
    browser.wait_for_text("#source-log .empty", "No requests yet").await;

    // A delivery signed as GitHub signs it is accepted and becomes a message of the application.
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let body = json!({
        "action": "opened",
        "number": 1347,
        "pull_request": {"title": "Amazing new feature"},
        "repository": {"full_name": "octo-org/hookline-e2e"},
    })
    .to_string();
    let (status, answer) = send_github_delivery(&server, &ingest_url, GITHUB_SECRET, delivery, &body).await;
    assert_eq!(status, 202, "a correctly signed delivery is accepted: {answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    let message = answer["message"].as_str().expect("the accepted delivery's message").to_owned();
    receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(receiver.received()[0].msg_id(), message, "the message reached the application's endpoint");

    // Reloaded, the page's log shows it accepted, with its delivery id and a link to the message.
    wait_for_logged(&api, &source, 1).await;
    browser.goto(&server.url(&format!("/sources/{source}"))).await;
    browser.find("#source-requests .outcome-accepted").await;
    browser.wait_for_text("#source-requests .request-accepted", delivery).await;
    browser.wait_for_text("#source-requests .request-accepted a", &message).await;
    browser.screenshot("source").await;

    // "Send a test request" shows a curl command for the ingest URL.
    click(&browser, "#source-test-request").await;
    let curl = browser.wait_for_text("#source-curl", "curl").await.text().await;
    assert!(curl.contains(&ingest_url), "the curl command sends to the ingest URL {ingest_url}: {curl}");
    browser.execute("document.querySelector('#source-test').scrollIntoView();", vec![]).await;
    browser.screenshot("source-test-request").await;

    // The message link opens the message with the delivery's body as its payload.
    browser.execute("window.scrollTo(0, 0);", vec![]).await;
    click_text(&browser, "#source-requests .request-accepted a", &message).await;
    path_is(&browser, &format!("/apps/{app}/msg/{message}")).await;
    browser.wait_for_text("#payload", "octo-org/hookline-e2e").await;
    // … and links back to the source and the request it came from.
    let logged = api.get(&format!("/api/v1/source/{source}/request?outcome=accepted")).await.expect(200);
    let request_id = logged["data"][0]["id"].as_str().expect("the accepted request's id").to_owned();
    let received_by = browser.wait_for_text("#received-by", "GitHub").await.text().await;
    assert!(received_by.contains(&request_id), "the message names its request {request_id}: {received_by}");
    click_text(&browser, "#received-by a", "GitHub").await;
    path_is(&browser, &format!("/sources/{source}")).await;
    browser.find(&format!("tr[id='{request_id}'].request-accepted")).await;

    // A delivery signed with another secret is refused and logged as rejected; the outcome filter
    // shows only that one.
    let (status, answer) =
        send_github_delivery(&server, &ingest_url, "not the secret", "forged-delivery", &body).await;
    assert!((400..500).contains(&status), "a wrongly signed delivery is refused: {status} {answer}");
    assert_eq!(receiver.count(), 1, "nothing of the refused delivery reached the endpoint");
    wait_for_logged(&api, &source, 2).await;
    browser.goto(&server.url(&format!("/sources/{source}"))).await;
    browser.find("#source-requests .outcome-rejected").await;
    browser.find("#source-requests .outcome-accepted").await;
    choose(&browser, "#source-request-outcome", "rejected").await;
    browser
        .wait_until(
            "document.querySelectorAll('#source-requests .source-request-row').length === 1 \
             && document.querySelector('#source-requests .outcome-rejected') !== null",
            "the rejected request alone",
        )
        .await;
    browser.absent("#source-requests .outcome-accepted").await;
    browser.screenshot("source-rejected").await;
}

/// A GitHub source made with the form's content filter (pull requests only), its preview tried
/// on a sample first: a `pull_request` delivery becomes a message; an `issues` delivery is
/// answered 200 `filtered`, stored nowhere, and the page's log shows it as filtered with the path
/// that did not match; the settings show the filter.
#[tokio::test]
async fn a_source_made_with_a_content_filter_stores_only_matching_requests_and_logs_the_rest_as_filtered() {
    require_dashboard();
    let server = server().await;
    let receiver = Receiver::start();
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Filter Org", "ada@filter.test").await;
    let api = server.client_with_key(&create_api_key(&browser, &server, "setup").await);
    let app = api.create_app("Repo", Some("repo")).await["id"].as_str().unwrap().to_owned();
    api.create_endpoint(&app, &receiver.url("/github")).await;

    browser.goto(&server.url("/sources")).await;
    fill(&browser, "#source-name", "GitHub PRs").await;
    browser.find(&format!("#source-app option[value='{app}']")).await;
    choose(&browser, "#source-app", &app).await;
    choose(&browser, "#source-verification-type", "github").await;
    fill(&browser, "#source-secret", GITHUB_SECRET).await;
    let filter = r#"{"headers": {"x-github-event": ["pull_request"]}}"#;
    fill(&browser, "textarea[name='source-content-filter']", filter).await;
    // The preview tries it on a sample: without the header, no match at the header's path.
    browser.wait_for_text("#source-create .filter-preview", "headers.x-github-event").await;
    browser.screenshot("source-content-filter").await;
    click(&browser, "#source-create-submit").await;
    browser.wait_for_text("#source-created", "Source 'GitHub PRs' created").await;

    let created = api.get("/api/v1/source").await.expect(200)["data"][0].clone();
    assert_eq!(created["filter"], json!({"headers": {"x-github-event": ["pull_request"]}}), "{created}");
    let source = created["id"].as_str().unwrap().to_owned();
    let ingest_url = created["ingest_url"].as_str().unwrap().to_owned();

    let body = json!({"action": "opened", "number": 7}).to_string();
    let (status, answer) =
        send_github_delivery(&server, &ingest_url, GITHUB_SECRET, "pr-delivery", &body).await;
    assert_eq!(status, 202, "a pull request matches: {answer}");
    // Sent as GitHub sends an issue event: same signature scheme, another X-GitHub-Event.
    let (status, answer) =
        send_github_event(&server, &ingest_url, "issues", GITHUB_SECRET, "issue-delivery", &body).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    assert_eq!(answer["filtered"], true, "{answer}");
    receiver.wait_for(1, Duration::from_secs(10)).await;
    wait_for_logged(&api, &source, 2).await;
    let messages = api.get(&format!("/api/v1/app/{app}/msg")).await.expect(200);
    assert_eq!(messages["data"].as_array().unwrap().len(), 1, "only the pull request was stored: {messages}");

    browser.goto(&server.url(&format!("/sources/{source}"))).await;
    browser.find("#source-requests .outcome-accepted").await;
    browser.wait_for_text("#source-requests", "filter: no match at headers.x-github-event").await;
    choose(&browser, "#source-request-outcome", "filtered").await;
    browser
        .wait_until(
            "document.querySelectorAll('#source-requests .source-request-row').length === 1 \
             && document.querySelector('#source-requests .outcome-filtered') !== null",
            "the filtered request alone",
        )
        .await;
    browser.wait_for_text("#source-settings", "pull_request").await;
    browser.screenshot("source-filtered-request").await;
    assert_eq!(receiver.count(), 1, "nothing filtered reached the endpoint");
}
