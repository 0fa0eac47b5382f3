//! The dashboard in a real browser: headless Chromium driven through ChromeDriver against the real
//! binary and a recording receiver on 127.0.0.1. Needs the built dashboard (frontend/dist) and the
//! chromium and chromium-driver packages; ./scripts/test.sh provides both.
//!
//! Every main page is saved as a screenshot under `<target>/screenshots/` for people to look at.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer,
    browser::{Browser, require_dashboard},
    dashboard::{choose, click, click_text, create_api_key, fill, path_is, server, sign_up},
    fake_stripe::{FakeStripe, PRO_PRICE, SECRET_KEY, WEBHOOK_SECRET},
    receiver::{Receiver, Reply},
};
use serde_json::{Value, json};

/// Answers the next `confirm()` dialogs with OK (WebDriver cannot click a native dialog that
/// blocks its own script calls).
async fn accept_confirms(browser: &Browser) {
    browser.execute("window.confirm = () => true;", vec![]).await;
}

/// The page fits the window: nothing forces a horizontal scroll bar.
async fn fits_width(browser: &Browser, what: &str) {
    browser.settle().await;
    let widths =
        browser.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await;
    let (content, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(content <= window, "{what}: the page is {content} px wide in a {window} px window");
}

/// The journey of the issue: sign up → application and endpoint pointing at the receiver → a
/// message sent through the API shows as delivered in the log → the receiver fails → the failure
/// shows → resend → success; plus API key create and revoke, and every main page's screenshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_journey_from_sign_up_to_resend() {
    require_dashboard();
    let server = server().await;
    let failing = Arc::new(AtomicBool::new(false));
    let receiver = {
        let failing = failing.clone();
        Receiver::start_with(
            Arc::new(
                move |_, _| if failing.load(Ordering::SeqCst) { Reply::status(503) } else { Reply::ok() },
            ),
            2,
        )
    };
    let browser = Browser::start().await;

    // Signed out, the dashboard sends visitors to the log-in page.
    browser.goto(&server.url("/")).await;
    path_is(&browser, "/login").await;
    browser.find("input[name=email]").await;
    browser.screenshot("login").await;

    sign_up(&browser, &server, "Acme Payments", "owner@acme.test").await;
    browser.find("#apps-table, .empty").await;
    browser.wait_for_text(".empty", "No applications yet").await;
    browser.screenshot("applications-empty").await;

    // Application, then an endpoint pointing at the receiver.
    fill(&browser, "input[name=app-name]", "Globex").await;
    fill(&browser, "input[name=app-uid]", "globex").await;
    click(&browser, "form button[type=submit]").await;
    path_is(&browser, "/apps/app_").await;
    browser.wait_for_text("h1", "Globex").await;
    browser.wait_for_text(".empty", "No endpoints yet").await;
    click(&browser, "#add-endpoint").await;
    fill(&browser, "input[name=endpoint-url]", &receiver.url("/hooks")).await;
    fill(&browser, "input[name=endpoint-description]", "Globex production").await;
    click(&browser, "#new-endpoint button[type=submit]").await;
    browser.wait_for_text("#endpoints-table", &receiver.url("/hooks")).await;
    browser.find("#endpoints-table .badge-ok").await;
    browser.screenshot("application").await;

    // The endpoint page: a test event and its attempt.
    click_text(&browser, "#endpoints-table a", &receiver.url("/hooks")).await;
    path_is(&browser, "/apps/app_").await;
    browser.wait_for_text("h1", &receiver.url("/hooks")).await;
    browser.wait_for_text(".empty", "No attempts yet").await;
    click(&browser, "#send-test").await;
    browser.wait_for_text(".alert-info", "Test event").await;
    browser.wait_for_text(".attempts-table .attempt-succeeded", "200").await;
    assert_eq!(receiver.count(), 1, "the test event reached the receiver");
    // No automatic retries during the test: a failed attempt stays failed until resent.
    fill(&browser, "input[name=retry-schedule]", "3600").await;
    click(&browser, "#save-endpoint").await;
    browser.wait_for_text(".saved", "Saved").await;
    click(&browser, "#reveal-secret").await;
    let secret = browser.find("#secret .copy-value").await.text().await;
    assert!(secret.starts_with("whsec_"), "the secret is revealed: {secret}");
    browser.execute("window.scrollTo(0, 0);", vec![]).await;
    browser.screenshot("endpoint").await;

    // An API key made in the dashboard sends a message through the API.
    let key = create_api_key(&browser, &server, "backend").await;
    browser.screenshot("api-keys").await;
    let api = server.client_with_key(&key);
    let apps = api.get("/api/v1/app").await.expect(200);
    let app = apps["data"][0]["id"].as_str().expect("the application").to_owned();
    let first = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"event_type": "invoice.paid", "payload": {"invoice": "inv_001", "amount": 4200}}),
        )
        .await
        .expect(202);
    receiver.wait_for(2, Duration::from_secs(10)).await;

    // The log shows it, delivered.
    browser.goto(&server.url(&format!("/apps/{app}/logs"))).await;
    browser.wait_for_text("#messages-table", "invoice.paid").await;
    choose(&browser, "select[name=status]", "succeeded").await;
    fill(&browser, "input[name=q]", "inv_001").await;
    click(&browser, "#search").await;
    browser.wait_for_text("#messages-table", first["id"].as_str().unwrap()).await;
    browser.screenshot("logs").await;
    click_text(&browser, "#messages-table a", first["id"].as_str().unwrap()).await;
    browser.wait_for_text("#payload", "inv_001").await;
    browser.find("#deliveries-table .delivery-succeeded").await;
    browser.wait_for_text("#attempt-timeline .attempt-succeeded", "200").await;

    // The receiver fails: the next message's failure shows, then a resend succeeds.
    failing.store(true, Ordering::SeqCst);
    let second = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"event_type": "invoice.failed", "payload": {"invoice": "inv_002"}}),
        )
        .await
        .expect(202);
    let second_id = second["id"].as_str().unwrap().to_owned();
    receiver.wait_for(3, Duration::from_secs(10)).await;
    browser.goto(&server.url(&format!("/apps/{app}/msg/{second_id}"))).await;
    browser.find("#deliveries-table .delivery-failed").await;
    browser.wait_for_text("#attempt-timeline .attempt-failed", "503").await;
    failing.store(false, Ordering::SeqCst);
    click(&browser, "#deliveries-table .resend").await;
    browser.find("#deliveries-table .delivery-succeeded").await;
    browser.wait_for_text("#attempt-timeline .attempt-succeeded", "manual").await;
    browser.screenshot("message").await;
    let retried = receiver.received().into_iter().filter(|r| r.msg_id() == second_id).count();
    assert_eq!(retried, 2, "the failed attempt and the manual resend");

    // The log filters failures by status.
    browser.goto(&server.url(&format!("/apps/{app}/logs"))).await;
    click(&browser, "#attempts-tab").await;
    choose(&browser, "select[name=attempt-status]", "failed").await;
    click(&browser, "#attempt-filters button[type=submit]").await;
    browser.wait_for_text(".attempts-table", "503").await;
    browser.absent(".attempts-table .attempt-succeeded").await;

    // Event types with a schema and an example.
    browser.goto(&server.url("/event-types")).await;
    browser.wait_for_text(".empty", "No event types yet").await;
    fill(&browser, "input[name=event-type-name]", "invoice.paid").await;
    fill(&browser, "input[name=event-type-description]", "An invoice was paid in full.").await;
    fill(&browser, "textarea[name=event-type-schema]", r#"{"type": "object", "required": ["invoice"]}"#)
        .await;
    fill(&browser, "textarea[name=event-type-example]", r#"{"invoice": "inv_001", "amount": 4200}"#).await;
    click(&browser, "#new-event-type button[type=submit]").await;
    browser.wait_for_text("#event-types", "An invoice was paid in full.").await;
    browser.screenshot("event-types").await;

    // Overview and usage: the numbers are this tenant's.
    browser.goto(&server.url("/")).await;
    browser.wait_for_text(".stat", "Delivery attempts").await;
    browser.wait_for_text(".chart", "Delivery attempts per hour").await;
    browser.wait_for_text(".meter-caption", "Messages on your plan").await;
    let attempts = browser.find(".stat .stat-value").await.text().await;
    assert_eq!(attempts, "4", "the test event, the first message, the failure and the resend: {attempts}");
    browser.screenshot("overview").await;
    browser.goto(&server.url("/billing")).await;
    browser
        .wait_until("document.querySelector('#plan .plan-name').textContent === 'free'", "the free plan")
        .await;
    browser.wait_for_text("#quota", "of 10,000").await;
    browser.wait_for_text(".chart", "Messages per day").await;
    browser.screenshot("billing").await;

    // A 1024 px laptop: every page still fits.
    browser.set_window_size(1024, 768).await;
    for path in ["/", "/apps", &format!("/apps/{app}/logs"), "/api-keys", "/billing"] {
        browser.goto(&server.url(path)).await;
        browser.find(".content h1").await;
        fits_width(&browser, path).await;
    }
    browser.screenshot("overview-1024").await;
    browser.set_window_size(1280, 900).await;

    // Revoking the key: the dashboard shows it revoked and the API refuses it.
    browser.goto(&server.url("/api-keys")).await;
    accept_confirms(&browser).await;
    click(&browser, "tr[data-name=backend] .revoke").await;
    browser.find("tr[data-name=backend] .badge-bad").await;
    browser.absent("tr[data-name=backend] .revoke").await;
    api.get("/api/v1/app").await.expect_error(401, "unauthorized");

    // Log out: the session is gone.
    click(&browser, ".sidebar-footer button").await;
    path_is(&browser, "/login").await;
    browser.goto(&server.url("/apps")).await;
    path_is(&browser, "/login").await;
}

/// A wrong password shows the API's error detail, and the right one logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_shows_errors_and_logs_in() {
    require_dashboard();
    let server = server().await;
    server
        .anonymous()
        .post(
            "/api/v1/auth/signup",
            json!({"email": "ann@initech.test", "password": "correct horse battery", "organization_name": "Initech"}),
        )
        .await
        .expect(201);
    let browser = Browser::start().await;
    browser.goto(&server.url("/login")).await;
    fill(&browser, "input[name=email]", "ann@initech.test").await;
    fill(&browser, "input[name=password]", "wrong password!").await;
    click(&browser, "button[type=submit]").await;
    browser.wait_for_text(".alert-error", "email or password").await;
    fill(&browser, "input[name=password]", "correct horse battery").await;
    click(&browser, "button[type=submit]").await;
    path_is(&browser, "/").await;
    browser.wait_for_text(".org-name", "Initech").await;
    browser.wait_for_text("#failing-endpoints", "Nothing is failing").await;
}

/// The consumer portal, opened from the dashboard's link in a browser without a session, shows
/// its application's endpoints and logs, and nothing of the tenant's other applications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_token_view_shows_only_its_application() {
    require_dashboard();
    let server = server().await;
    let receiver = Receiver::start();
    let api: Client = server.tenant("umbrella");
    let mine = api.create_app("Mine", Some("mine")).await;
    let other = api.create_app("Other", Some("other")).await;
    let mine_id = mine["id"].as_str().unwrap().to_owned();
    let other_id = other["id"].as_str().unwrap().to_owned();
    api.create_endpoint(&mine_id, &receiver.url("/mine")).await;
    let other_endpoint = api.create_endpoint(&other_id, &receiver.url("/other")).await;
    api.send_message(&mine_id, "order.created", json!({"order": "ord_mine"})).await;
    api.send_message(&other_id, "order.created", json!({"order": "ord_other"})).await;
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let token: Value = api
        .post(&format!("/api/v1/app/{mine_id}/portal-token"), json!({"read_only": false}))
        .await
        .expect(201);
    let url = token["url"].as_str().unwrap();
    assert!(url.starts_with("/portal#"), "the portal link carries the token in the fragment: {url}");

    let browser = Browser::start().await;
    browser.goto(&server.url(url)).await;
    browser.wait_for_text(".portal-app", "Mine").await;
    browser.wait_for_text("#endpoints-table", &receiver.url("/mine")).await;
    browser.absent("nav.sidebar").await;
    let page = browser.execute("return document.body.innerText;", vec![]).await;
    assert!(!page.as_str().unwrap().contains("/other"), "the other application's endpoint is not shown");
    assert!(!page.as_str().unwrap().contains("Other"), "nor its name");
    // The token left the address bar.
    browser.wait_until("location.hash === ''", "the fragment to be cleared").await;
    browser.screenshot("portal").await;

    // Its logs: this application's message only; the detail view works under /portal.
    click_text(&browser, ".portal-tabs a", "Logs").await;
    path_is(&browser, "/portal/logs").await;
    let row = browser.wait_for_text("#messages-table", "order.created").await;
    assert_eq!(
        browser.find_all("#messages-table .message-row").await.len(),
        1,
        "one message: {}",
        row.text().await
    );
    click(&browser, "#messages-table a").await;
    path_is(&browser, "/portal/msg/").await;
    browser.wait_for_text("#payload", "ord_mine").await;
    browser.screenshot("portal-message").await;

    // The tenant's own pages are not reachable with the portal token: no session, so log-in.
    browser.goto(&server.url("/apps")).await;
    path_is(&browser, "/login").await;

    // The other application's endpoint cannot be reached through this portal: the API answers 404.
    browser.goto(&server.url(&format!("/portal/endpoints/{}", other_endpoint["id"].as_str().unwrap()))).await;
    browser.wait_for_text(".alert-error", "Not found").await;

    // An expired or garbled link says so.
    browser.execute("sessionStorage.clear();", vec![]).await;
    browser.goto(&server.url("/portal#not-a-token")).await;
    browser.wait_for_text("#portal-invalid", "not valid").await;
}

/// Endpoint management from its page (edit, FIFO, auth, disable/enable, secret rotation) and the
/// bulk jobs: recover and replay-missing each run to completion under a live progress bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_settings_and_bulk_jobs_with_progress() {
    require_dashboard();
    let server = server().await;
    let failing = Arc::new(AtomicBool::new(true));
    let receiver = {
        let failing = failing.clone();
        Receiver::start_with(
            Arc::new(
                move |_, _| if failing.load(Ordering::SeqCst) { Reply::status(500) } else { Reply::ok() },
            ),
            2,
        )
    };
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Hooli", "gavin@hooli.test").await;
    let api = server.client_with_key(&create_api_key(&browser, &server, "setup").await);
    let app = api.create_app("Pied Piper", Some("piper")).await["id"].as_str().unwrap().to_owned();
    let first = api
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": receiver.url("/first"), "retry_schedule": [3600]}),
        )
        .await
        .expect(201);
    let first = first["id"].as_str().unwrap().to_owned();
    let mut sent = Vec::new();
    for (i, event_type) in
        ["order.created", "order.paid", "user.created", "order.shipped", "user.deleted"].iter().enumerate()
    {
        let msg = api.send_message(&app, event_type, json!({"n": i})).await;
        sent.push(msg["id"].as_str().unwrap().to_owned());
    }
    receiver.wait_for(5, Duration::from_secs(10)).await;
    failing.store(false, Ordering::SeqCst);

    // Recover: the five failed deliveries go out again, with the bar filling to 5 of 5.
    browser.goto(&server.url(&format!("/apps/{app}/endpoints/{first}"))).await;
    browser.wait_for_text(".attempts-table", "500").await;
    choose(&browser, "select[name=replay-since]", "1").await;
    click(&browser, "#recover").await;
    browser.find("#job-progress").await;
    browser
        .wait_until(
            "document.querySelector('#job-progress')?.dataset.state === 'completed'",
            "the recovery to complete",
        )
        .await;
    browser.wait_for_text("#job-progress .job-counts", "5 of 5 sent").await;
    browser.wait_for_text(".attempts-table", "manual").await;
    browser.execute("document.querySelector('#replay').scrollIntoView();", vec![]).await;
    browser.screenshot("endpoint-recovered").await;
    for id in &sent {
        let n = receiver.received().iter().filter(|r| r.msg_id() == id).count();
        assert_eq!(n, 2, "{id}: the failed attempt and the recovery");
    }

    // A second endpoint for order.* made in the form, then replay-missing sends it the three orders.
    browser.goto(&server.url(&format!("/apps/{app}"))).await;
    click(&browser, "#add-endpoint").await;
    fill(&browser, "input[name=endpoint-url]", &receiver.url("/orders")).await;
    fill(&browser, "input[name=endpoint-filter]", "order.*").await;
    click(&browser, "#new-endpoint button[type=submit]").await;
    click_text(&browser, "#endpoints-table a", &receiver.url("/orders")).await;
    browser.wait_for_text("h1", &receiver.url("/orders")).await;
    choose(&browser, "select[name=replay-since]", "1").await;
    click(&browser, "#replay-missing").await;
    browser
        .wait_until(
            "document.querySelector('#job-progress')?.dataset.state === 'completed'",
            "the replay to complete",
        )
        .await;
    browser.wait_for_text("#job-progress .job-counts", "3 of 3 sent").await;
    let orders: Vec<String> =
        receiver.received().iter().filter(|r| r.path == "/orders").map(|r| r.msg_id().to_owned()).collect();
    assert_eq!(orders.len(), 3, "only the order.* messages: {orders:?}");
    assert!(orders.iter().all(|id| [&sent[0], &sent[1], &sent[3]].contains(&id)), "{orders:?}");

    // Settings: filter, FIFO, the CloudEvents handshake and header auth saved through the form, as
    // the API shows them.
    let endpoint_url = browser.current_url().await;
    let second = endpoint_url.rsplit('/').next().unwrap().to_owned();
    fill(&browser, "input[name=filter-types]", "order.paid, order.shipped").await;
    click(&browser, "input[name=fifo]").await;
    click(&browser, "input[name=handshake]").await;
    choose(&browser, "select[name=auth-type]", "header").await;
    fill(&browser, "input[name=auth-header-name]", "X-Api-Token").await;
    fill(&browser, "input[name=auth-header-value]", "s3cret").await;
    click(&browser, "#save-endpoint").await;
    browser.wait_for_text(".saved", "Saved").await;
    let saved = api.get(&format!("/api/v1/app/{app}/endpoint/{second}")).await.expect(200);
    assert_eq!(saved["filter_types"], json!(["order.paid", "order.shipped"]), "{saved}");
    assert_eq!(saved["ordering"], "fifo");
    assert_eq!(saved["handshake"], true, "asked although a JSON endpoint's default is off");
    browser.goto(&endpoint_url).await;
    browser.wait_for_text(".handshake-status", "Not made yet").await;
    browser.screenshot("endpoint-handshake-status").await;
    assert_eq!(saved["auth"], json!({"type": "header", "name": "X-Api-Token"}));

    // Disable, then enable again.
    click(&browser, "#toggle-endpoint").await;
    browser.wait_for_text("#toggle-endpoint", "Enable").await;
    assert_eq!(api.get(&format!("/api/v1/app/{app}/endpoint/{second}")).await.expect(200)["disabled"], true);
    click(&browser, "#toggle-endpoint").await;
    browser.wait_for_text("#toggle-endpoint", "Disable").await;
    assert_eq!(api.get(&format!("/api/v1/app/{app}/endpoint/{second}")).await.expect(200)["disabled"], false);

    // Rotation shows a new secret; the API agrees.
    click(&browser, "#reveal-secret").await;
    let old = browser.find("#secret .copy-value").await.text().await;
    accept_confirms(&browser).await;
    click(&browser, "#rotate-secret").await;
    browser.wait_for_text("#secret .notice", "New secret").await;
    let new = browser.find("#secret .copy-value").await.text().await;
    assert_ne!(old, new, "rotation shows the new secret");
    let current = api.get(&format!("/api/v1/app/{app}/endpoint/{second}/secret")).await.expect(200);
    assert_eq!(current["key"], new.as_str());
}

/// Usage & billing with Stripe configured: "Upgrade to Pro" opens a Checkout session for this
/// tenant and sends the browser to Stripe's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_sends_the_browser_to_stripe_checkout() {
    require_dashboard();
    let stripe = FakeStripe::start();
    let options = ServerOptions::default()
        .env("HOOKLINE_STRIPE_API_BASE", stripe.url())
        .env("HOOKLINE_STRIPE_SECRET_KEY", SECRET_KEY)
        .env("HOOKLINE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("HOOKLINE_STRIPE_PRO_PRICE", PRO_PRICE);
    let server = TestServer::start_with(Backend::Sqlite, options).await;
    let browser = Browser::start().await;
    sign_up(&browser, &server, "Vandelay", "art@vandelay.test").await;
    browser.goto(&server.url("/billing")).await;
    browser.find("#upgrade").await;
    browser.absent("#billing-portal").await;
    browser.screenshot("billing-stripe").await;
    click(&browser, "#upgrade").await;
    let mut url = String::new();
    for _ in 0..100 {
        url = browser.current_url().await;
        if url.starts_with("https://checkout.stripe.test/pay/") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = stripe.calls_to("/v1/checkout/sessions");
    let text = browser.execute("return document.body.innerText;", vec![]).await;
    assert!(
        url.starts_with("https://checkout.stripe.test/pay/"),
        "the browser went to Checkout: {url} ({} calls; {text})",
        calls.len()
    );
    assert_eq!(calls.len(), 1, "one Checkout session");
    assert_eq!(calls[0].form.get("line_items[0][price]").map(String::as_str), Some(PRO_PRICE));
}

/// The log pages through cursors: 25 newest first, "Older" shows the rest, "Newer" goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_page_older_and_newer() {
    require_dashboard();
    let server = server().await;
    let api: Client = server.tenant("paging");
    let app = api.create_app("Paged", Some("paged")).await["id"].as_str().unwrap().to_owned();
    for n in 0..30 {
        api.send_message(&app, "page.test", json!({"n": n})).await;
    }
    let token: Value =
        api.post(&format!("/api/v1/app/{app}/portal-token"), json!({"read_only": true})).await.expect(201);
    let browser = Browser::start().await;
    browser.goto(&server.url(token["url"].as_str().unwrap())).await;
    // Read-only: no button that changes anything.
    browser.wait_for_text(".portal-app", "Paged").await;
    browser.absent("#add-endpoint").await;
    click_text(&browser, ".portal-tabs a", "Logs").await;
    browser
        .wait_until(
            "document.querySelectorAll('#messages-table .message-row').length === 25",
            "a first page of 25",
        )
        .await;
    let newest = browser.find("#messages-table .message-row code").await.text().await;
    click(&browser, "#next-page").await;
    browser
        .wait_until(
            "document.querySelectorAll('#messages-table .message-row').length === 5",
            "the 5 older messages",
        )
        .await;
    let older: Vec<String> = browser
        .execute("return [...document.querySelectorAll('#messages-table .message-row code')].map(e => e.innerText);", vec![])
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(!older.contains(&newest), "the second page holds other messages");
    assert!(older.iter().all(|id| id < &newest), "older ids sort before the newest: {older:?}");
    click_text(&browser, ".pager button", "Newer").await;
    browser
        .wait_until(
            "document.querySelectorAll('#messages-table .message-row').length === 25",
            "the first page again",
        )
        .await;
    assert_eq!(browser.find("#messages-table .message-row code").await.text().await, newest);
}
