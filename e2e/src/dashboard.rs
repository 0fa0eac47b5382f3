//! What a user does in the dashboard, for the browser tests (e2e/tests/dashboard*.rs): a server
//! that may deliver to the test receiver, form filling and clicks that wait for their element,
//! sign-up and API key creation through the pages.

use serde_json::json;

use crate::{Backend, ServerOptions, TestServer, browser::Browser};

/// A server that may deliver to the test receiver on 127.0.0.1.
pub async fn server() -> TestServer {
    TestServer::start_with(
        Backend::Sqlite,
        ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32"),
    )
    .await
}

pub async fn fill(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await;
    input.clear().await;
    input.type_text(text).await;
}

/// Picks an option of a `<select>` the way a user does (the change event included).
pub async fn choose(browser: &Browser, css: &str, value: &str) {
    let select = browser.find(css).await;
    browser
        .execute(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
            vec![select.as_arg(), json!(value)],
        )
        .await;
}

pub async fn click(browser: &Browser, css: &str) {
    browser.find(css).await.click().await;
}

pub async fn click_text(browser: &Browser, css: &str, text: &str) {
    browser.wait_for_text(css, text).await.click().await;
}

pub async fn path_is(browser: &Browser, prefix: &str) {
    browser
        .wait_until(&format!("location.pathname.startsWith({prefix:?})"), &format!("the page {prefix}"))
        .await;
}

pub async fn sign_up(browser: &Browser, server: &TestServer, organization: &str, email: &str) {
    browser.goto(&server.url("/signup")).await;
    fill(browser, "input[name=organization]", organization).await;
    fill(browser, "input[name=email]", email).await;
    fill(browser, "input[name=password]", "correct horse battery").await;
    browser.screenshot("signup").await;
    click(browser, "button[type=submit]").await;
    path_is(browser, "/apps").await;
    browser.wait_for_text(".org-name", organization).await;
}

/// Creates an API key on the API keys page and returns it as shown (once).
pub async fn create_api_key(browser: &Browser, server: &TestServer, name: &str) -> String {
    browser.goto(&server.url("/api-keys")).await;
    fill(browser, "input[name=key-name]", name).await;
    click(browser, "#new-api-key button[type=submit]").await;
    let key = browser.find("#new-key .copy-value").await.text().await;
    assert!(key.starts_with("hl_live_"), "the new key is shown once: {key}");
    browser.wait_for_text("#api-keys-table", name).await;
    key
}
