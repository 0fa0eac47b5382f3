//! Transformations in the dashboard, in a real browser (headless Chromium through ChromeDriver, as
//! in `dashboard.rs`): the transform editor's live preview (what would be sent, a skip, jaq's
//! error), a transform saved from an endpoint's settings that then reshapes its deliveries, and the
//! Transformations page on a plan without the feature.
//! Needs the built dashboard (frontend/dist); ./scripts/test.sh provides it.

use std::time::Duration;

use hookline_e2e::{
    browser::{Browser, require_dashboard},
    dashboard::{choose, click, click_text, create_api_key, fill, server, sign_up},
    receiver::Receiver,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transform_editor_previews_a_program_and_the_saved_transform_reshapes_deliveries() {
    require_dashboard();
    let server = server().await;
    let receiver = Receiver::start();
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Initech", "peter@initech.test").await;
    let api = server.client_with_key(&create_api_key(&browser, &server, "setup").await);

    // On the free plan the page says that transformations need another plan.
    browser.goto(&server.url("/transforms")).await;
    fill(&browser, "textarea[name=playground-transform]", "{payload: .payload}").await;
    browser
        .wait_until(
            "document.querySelector('.transform-preview')?.dataset.state === 'failed'",
            "the preview to fail on the free plan",
        )
        .await;
    let said = browser.find(".transform-preview").await.text().await;
    assert!(said.contains("transformations"), "names the missing feature: {said}");

    server.cli(&["plan", "set", "--tenant", "Initech", "--plan", "pro"]);
    let app = api.create_app("Billing", Some("billing")).await["id"].as_str().unwrap().to_owned();
    api.post(
        "/api/v1/event-type",
        json!({"name": "invoice.paid", "example": {"amount": 250, "currency": "EUR"}}),
    )
    .await
    .expect(201);
    let endpoint = api
        .post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": receiver.url("/ledger")}))
        .await
        .expect(201);
    let ep = endpoint["id"].as_str().unwrap().to_owned();

    // The endpoint's settings: a program previewed on the event type's example, then a skip,
    // then a program jaq refuses (its message shows), then the program saved.
    browser.goto(&server.url(&format!("/apps/{app}/endpoints/{ep}"))).await;
    let program = r#"if .payload.amount < 100 then null else {payload: {cents: (.payload.amount * 100)}, event_type: "invoice.large", headers: {"X-Team": "billing"}} end"#;
    fill(&browser, "textarea[name=transform]", program).await;
    click(&browser, "#settings .transform-sample summary").await;
    browser.wait_for_text("select[name=transform-sample-type]", "invoice.paid (example)").await;
    choose(&browser, "select[name=transform-sample-type]", "invoice.paid").await;
    browser.wait_for_text("#settings .transform-preview .transform-output", "25000").await;
    browser.wait_for_text("#settings .transform-event-type", "invoice.large").await;
    browser.wait_for_text("#settings .transform-headers", "X-Team: billing").await;
    browser.screenshot("transform-preview").await;
    fill(&browser, "textarea[name=transform-sample-payload]", r#"{"amount": 20}"#).await;
    browser.wait_for_text("#settings .transform-preview", "Skipped").await;
    fill(&browser, "textarea[name=transform]", "{payload: .payload.amount +}").await;
    browser
        .wait_until(
            "document.querySelector('#settings .transform-preview')?.dataset.state === 'failed'",
            "jaq's error",
        )
        .await;
    let error = browser.find("#settings .transform-error").await.text().await;
    assert!(error.contains("body.transform"), "the API's error names the field: {error}");
    fill(&browser, "textarea[name=transform]", program).await;
    browser.wait_for_text("#settings .transform-preview", "Skipped").await;
    click(&browser, "#save-endpoint").await;
    browser.wait_for_text(".saved", "Saved").await;
    let saved = api.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await.expect(200);
    assert_eq!(saved["transform"], program, "{saved}");

    // Deliveries are reshaped as previewed; the small invoice is skipped.
    tokio::time::sleep(Duration::from_millis(1100)).await; // the engine's endpoint cache
    api.send_message(&app, "invoice.paid", json!({"amount": 20})).await;
    let large = api.send_message(&app, "invoice.paid", json!({"amount": 250})).await;
    let received = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(received[0].msg_id(), large["id"].as_str().unwrap());
    assert_eq!(received[0].json(), json!({"cents": 25000}));
    assert_eq!(received[0].header("x-team"), Some("billing"));

    // Clearing the editor removes the transform.
    browser.goto(&server.url(&format!("/apps/{app}/endpoints/{ep}"))).await;
    let shown = browser.find("textarea[name=transform]").await.value().await;
    assert_eq!(shown, program, "the settings show the saved program");
    // Emptied by script, with the input event typing would send (WebDriver's clear sends none).
    browser
        .execute(
            "const t = document.querySelector('textarea[name=transform]'); t.value = ''; \
             t.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![],
        )
        .await;
    browser.wait_for_text("#settings .transform-preview", "No transform").await;
    click(&browser, "#save-endpoint").await;
    browser.wait_for_text(".saved", "Saved").await;
    let cleared = api.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await.expect(200);
    assert!(cleared["transform"].is_null(), "{cleared}");
    click_text(&browser, ".sidebar a", "Transformations").await;
    browser.wait_for_text("h1", "Transformations").await;
}
