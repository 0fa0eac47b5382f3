//! Routing rules in the dashboard, in a real browser (headless Chromium through ChromeDriver, as
//! in `dashboard.rs`): an event type with a retry schedule from its form, the filter editor's
//! live preview against the event type's example and an edited payload, an endpoint created
//! with a filter that then gets only matching messages, the filter edited on the endpoint page,
//! and the Content filters page.
//! Needs the built dashboard (frontend/dist); ./scripts/test.sh provides it.

use std::time::Duration;

use hookline_e2e::{
    browser::{Browser, require_dashboard},
    dashboard::{choose, click, click_text, create_api_key, fill, server, sign_up},
    receiver::Receiver,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_editor_previews_a_pattern_and_the_endpoint_gets_only_matching_messages() {
    require_dashboard();
    let server = server().await;
    let receiver = Receiver::start();
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Globex", "hank@globex.test").await;
    let api = server.client_with_key(&create_api_key(&browser, &server, "setup").await);
    let app = api.create_app("Billing", Some("billing")).await["id"].as_str().unwrap().to_owned();
    // The event type, with its example and a retry schedule, from the Event types page.
    browser.goto(&server.url("/event-types")).await;
    fill(&browser, "input[name=event-type-name]", "invoice.paid").await;
    fill(&browser, "textarea[name=event-type-example]", r#"{"amount": 20, "currency": "EUR"}"#).await;
    fill(&browser, "input[name=event-type-retry]", "1, 60").await;
    click(&browser, "#new-event-type button[type=submit]").await;
    browser.wait_for_text("#event-types .retry-schedule", "Retries after 1 s, 60 s").await;
    let event_type = api.get("/api/v1/event-type/invoice.paid").await.expect(200);
    assert_eq!(event_type["retry_schedule"], json!([1, 60]), "{event_type}");

    // The new-endpoint form: a pattern, previewed on the event type's example (no match, and
    // where), then on an edited payload (a match); a pattern that is not valid says so.
    browser.goto(&server.url(&format!("/apps/{app}"))).await;
    click(&browser, "#add-endpoint").await;
    fill(&browser, "input[name=endpoint-url]", &receiver.url("/large")).await;
    let pattern = r#"{"payload": {"amount": [{"numeric": [">", 100]}]}}"#;
    fill(&browser, "textarea[name=endpoint-content-filter]", pattern).await;
    click(&browser, "#new-endpoint .filter-sample summary").await;
    browser.wait_for_text("select[name=endpoint-content-filter-sample-type]", "invoice.paid (example)").await;
    choose(&browser, "select[name=endpoint-content-filter-sample-type]", "invoice.paid").await;
    browser.wait_for_text("#new-endpoint .filter-preview", "at payload.amount").await;
    fill(&browser, "textarea[name=endpoint-content-filter-sample-payload]", r#"{"amount": 250}"#).await;
    browser.wait_for_text("#new-endpoint .filter-preview", "Matches").await;
    browser.screenshot("filter-preview-match").await;
    fill(
        &browser,
        "textarea[name=endpoint-content-filter]",
        r#"{"payload": {"amount": [{"numeric": ["~", 1]}]}}"#,
    )
    .await;
    browser.wait_for_text("#new-endpoint .filter-preview", "body.filter.payload.amount.0.numeric").await;
    fill(&browser, "textarea[name=endpoint-content-filter]", pattern).await;
    browser.wait_for_text("#new-endpoint .filter-preview", "Matches").await;
    click(&browser, "#new-endpoint button[type=submit]").await;
    click_text(&browser, "#endpoints-table a", &receiver.url("/large")).await;
    browser.wait_for_text("h1", &receiver.url("/large")).await;
    let endpoint = browser.current_url().await.rsplit('/').next().unwrap().to_owned();
    let saved = api.get(&format!("/api/v1/app/{app}/endpoint/{endpoint}")).await.expect(200);
    assert_eq!(saved["filter"], json!({"payload": {"amount": [{"numeric": [">", 100]}]}}), "{saved}");

    // Only the large invoice is delivered.
    api.send_message(&app, "invoice.paid", json!({"amount": 20})).await;
    let large = api.send_message(&app, "invoice.paid", json!({"amount": 500})).await;
    let received = receiver.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(received[0].msg_id(), large["id"].as_str().unwrap());

    // The endpoint page shows the filter and edits it: currency EUR instead.
    let shown = browser.find("textarea[name=content-filter]").await.value().await;
    assert!(shown.contains("numeric"), "{shown}");
    fill(&browser, "textarea[name=content-filter]", r#"{"payload": {"currency": ["EUR"]}}"#).await;
    click(&browser, "#settings .filter-sample summary").await;
    browser.wait_for_text("select[name=content-filter-sample-type]", "invoice.paid (example)").await;
    choose(&browser, "select[name=content-filter-sample-type]", "invoice.paid").await;
    browser.wait_for_text("#settings .filter-preview", "Matches").await;
    click(&browser, "#save-endpoint").await;
    browser.wait_for_text(".saved", "Saved").await;
    let edited = api.get(&format!("/api/v1/app/{app}/endpoint/{endpoint}")).await.expect(200);
    assert_eq!(edited["filter"], json!({"payload": {"currency": ["EUR"]}}), "{edited}");
    browser.execute("document.querySelector('#settings').scrollIntoView();", vec![]).await;
    browser.screenshot("endpoint-content-filter").await;
    let euro = api.send_message(&app, "invoice.paid", json!({"amount": 1, "currency": "EUR"})).await;
    api.send_message(&app, "invoice.paid", json!({"amount": 900, "currency": "USD"})).await;
    let received = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(received[1].msg_id(), euro["id"].as_str().unwrap());

    // The Content filters page tries a pattern on a pasted payload.
    click_text(&browser, ".sidebar a", "Content filters").await;
    browser.wait_for_text("h1", "Content filters").await;
    fill(&browser, "textarea[name=playground-filter]", r#"{"event_type": [{"prefix": "invoice."}]}"#).await;
    click(&browser, "#filter-playground .filter-sample summary").await;
    fill(&browser, "input[name=playground-filter-sample-event-type]", "order.created").await;
    browser.wait_for_text("#filter-playground .filter-preview", "at event_type").await;
    fill(&browser, "input[name=playground-filter-sample-event-type]", "invoice.voided").await;
    browser.wait_for_text("#filter-playground .filter-preview", "Matches").await;
    browser.screenshot("content-filters-page").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 2, "no other message was delivered");
}
