//! Thin delivery in the dashboard, in a real browser (headless Chromium through ChromeDriver, as
//! in `dashboard.rs`): the payload mode set on the endpoint forms, a thin attempt on the message
//! page with the thin body that was sent and the `data_url` fetch that followed, the
//! application's Payload fetches page, and a claim-checked payload's size and download link.
//! Needs the built dashboard (frontend/dist); ./scripts/test.sh provides it.

use std::time::Duration;

use hookline_e2e::{
    browser::{Browser, require_dashboard},
    dashboard::{choose, click, click_text, create_api_key, fill, server, sign_up},
    receiver::Receiver,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_mode_is_set_in_the_forms_and_a_thin_attempt_shows_its_body_and_fetches() {
    require_dashboard();
    let server = server().await;
    let receiver = Receiver::start();
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Initech", "peter@initech.test").await;
    let api = server.client_with_key(&create_api_key(&browser, &server, "setup").await);
    let app = api.create_app("TPS", Some("tps")).await["id"].as_str().unwrap().to_owned();

    // Created thin from the application page's form.
    browser.goto(&server.url(&format!("/apps/{app}"))).await;
    click(&browser, "#add-endpoint").await;
    fill(&browser, "input[name=endpoint-url]", &receiver.url("/reports")).await;
    choose(&browser, "select[name=endpoint-payload-mode]", "thin").await;
    click(&browser, "#new-endpoint button[type=submit]").await;
    click_text(&browser, "#endpoints-table a", &receiver.url("/reports")).await;
    browser.wait_for_text("h1", &receiver.url("/reports")).await;
    let endpoint = browser.current_url().await.rsplit('/').next().unwrap().to_owned();
    let created = api.get(&format!("/api/v1/app/{app}/endpoint/{endpoint}")).await.expect(200);
    assert_eq!(created["payload_mode"], "thin", "{created}");

    // Edited to auto above 2 KiB, with one-hour URLs.
    choose(&browser, "select[name=payload-mode]", "auto").await;
    fill(&browser, "input[name=thin-above]", "2048").await;
    fill(&browser, "input[name=data-url-ttl]", "3600").await;
    click(&browser, "#save-endpoint").await;
    browser.wait_for_text(".saved", "Saved").await;
    let saved = api.get(&format!("/api/v1/app/{app}/endpoint/{endpoint}")).await.expect(200);
    assert_eq!(saved["payload_mode"], "auto", "{saved}");
    assert_eq!(saved["thin_above_bytes"], 2048);
    assert_eq!(saved["data_url_ttl_seconds"], 3600);

    // A 4 KiB report goes thin; the consumer fetches it.
    let message = api.send_message(&app, "report.ready", json!({"rows": "r".repeat(4096)})).await;
    let message = message["id"].as_str().unwrap().to_owned();
    let received = receiver.wait_for(1, Duration::from_secs(15)).await;
    let thin = received[0].json();
    let data_url = thin["data_url"].as_str().expect("a thin body").to_owned();
    let fetched =
        reqwest::Client::new().get(&data_url).header("user-agent", "report-fetcher/2").send().await.unwrap();
    assert_eq!(fetched.status(), 200);

    // The message page: the attempt is marked thin, shows the body sent and the fetch.
    browser.goto(&server.url(&format!("/apps/{app}/msg/{message}"))).await;
    browser.find("#attempt-timeline .thin-badge").await;
    click(&browser, "#attempt-timeline summary").await;
    browser.wait_for_text("#attempt-timeline .thin-body", &data_url).await;
    let row = browser.wait_for_text("#attempt-timeline .payload-fetch", "report-fetcher/2").await;
    let row = row.text().await;
    assert!(row.contains("200") && row.contains("127.0.0.1"), "{row}");
    browser.execute("document.querySelector('#attempt-timeline').scrollIntoView();", vec![]).await;
    browser.screenshot("message-thin-attempt").await;

    // The application's Payload fetches page lists it, linked to its message.
    browser.goto(&server.url(&format!("/apps/{app}"))).await;
    click(&browser, "#payload-fetches-link").await;
    let row = browser.wait_for_text("#fetches-table .payload-fetch", "report-fetcher/2").await.text().await;
    assert!(row.contains(&message) && row.contains("200"), "{row}");
    browser.screenshot("payload-fetches").await;

    // A 300 KiB payload is in the object store: the page says so and links its download.
    let large = api.send_message(&app, "report.ready", json!({"rows": "r".repeat(300 * 1024)})).await;
    let large = large["id"].as_str().unwrap().to_owned();
    browser.goto(&server.url(&format!("/apps/{app}/msg/{large}"))).await;
    let size = browser.wait_for_text("#payload-size", "stored in the object store").await.text().await;
    assert!(size.starts_with("307.2 KB"), "307,211 bytes: {size}");
    let href = browser.find("#download-payload").await.attr("href").await.unwrap();
    assert_eq!(href, format!("/api/v1/app/{app}/msg/{large}/payload"));
}
