//! Black-box tests of the CloudEvents abuse-protection handshake (CloudEvents HTTP 1.0 Web Hooks,
//! section 4): the real binary asks a real receiver on 127.0.0.1 with `OPTIONS` before it sends,
//! honours the rate the receiver allows, and pauses an endpoint that refuses, on SQLite and
//! PostgreSQL.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Received, Receiver, Reply},
};
use serde_json::{Value, json};

both_databases!(
    a_cloudevents_endpoint_is_asked_once_before_its_first_delivery_and_its_allowed_rate_holds,
    a_refused_handshake_pauses_the_endpoint_until_a_later_one_is_accepted,
    the_handshake_setting_defaults_by_format_and_a_new_url_is_asked_again,
);

const WAIT: Duration = Duration::from_secs(30);
const ORIGIN: &str = "hooks.example.test";

fn options() -> ServerOptions {
    ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_PUBLIC_URL", &format!("https://{ORIGIN}"))
        .env("HOOKLINE_RETRY_SCHEDULE", "1,1,1,1,1,1,1,1")
        .env("HOOKLINE_CIRCUIT_COOLDOWN_SECONDS", "2")
}

/// Answers a handshake allowing our origin at `rate` requests a minute; 200 to anything else.
fn accepting(rate: &'static str) -> hookline_e2e::receiver::Behaviour {
    Arc::new(move |received: &Received, _| match received.method.as_str() {
        "OPTIONS" => {
            Reply::ok().header("WebHook-Allowed-Origin", ORIGIN).header("WebHook-Allowed-Rate", rate)
        }
        _ => Reply::ok(),
    })
}

fn requests(receiver: &Receiver, method: &str, path: &str) -> Vec<Received> {
    receiver.received().into_iter().filter(|r| r.method == method && r.path == path).collect()
}

async fn wait_for_posts(receiver: &Receiver, path: &str, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + WAIT;
    loop {
        let posts = requests(receiver, "POST", path);
        if posts.len() >= n {
            return posts;
        }
        assert!(Instant::now() < deadline, "{} of {n} deliveries arrived at {path}", posts.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_cloudevents_endpoint_is_asked_once_before_its_first_delivery_and_its_allowed_rate_holds(
    db: Backend,
) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(accepting("120"), 2);
    let api = server.tenant_on("acme", "pro");
    api.create_app("A", Some("a")).await;
    let ce = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({"url": receiver.url("/ce"), "format": "cloudevents_structured"}),
        )
        .await
        .expect(201);
    assert_eq!(ce["handshake"], true, "on by default for CloudEvents: {ce}");
    let plain = api.post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/plain")})).await.expect(201);
    assert_eq!(plain["handshake"], false, "off by default for Standard Webhooks: {plain}");

    for n in 0..6 {
        api.send_message("a", "invoice.paid", json!({"n": n})).await;
    }
    let posts = wait_for_posts(&receiver, "/ce", 6).await;
    wait_for_posts(&receiver, "/plain", 6).await;

    let handshakes = requests(&receiver, "OPTIONS", "/ce");
    assert_eq!(handshakes.len(), 1, "one handshake for six deliveries");
    assert_eq!(handshakes[0].header("webhook-request-origin"), Some(ORIGIN));
    assert!(handshakes[0].at <= posts[0].at, "asked before the first delivery");
    assert!(requests(&receiver, "OPTIONS", "/plain").is_empty(), "a Standard Webhooks endpoint is not asked");
    assert_eq!(posts[0].header("content-type"), Some("application/cloudevents+json"));

    // 120 a minute is 2 a second: after the first delivery (which made the handshake) and a
    // bucket of 2, the last three wait for tokens — 1.5 s, where the unlimited endpoint took
    // a few milliseconds.
    let span = posts[5].at.duration_since(posts[0].at);
    assert!(span >= Duration::from_millis(1000), "six deliveries at 2/s took only {span:?}");
    let plain_posts = requests(&receiver, "POST", "/plain");
    assert_eq!(plain_posts.len(), 6, "each message once");

    // The endpoint's statistics say what the handshake agreed; an endpoint without one has none.
    let stats = api.get(&format!("/api/v1/app/a/endpoint/{}/stats", id(&ce))).await.expect(200);
    assert_eq!(stats["handshake"]["allowed_rate_per_minute"], 120, "{stats}");
    assert!(stats["handshake"]["accepted_at"].is_string(), "{stats}");
    assert!(stats["handshake"]["paused_reason"].is_null(), "{stats}");
    let stats = api.get(&format!("/api/v1/app/a/endpoint/{}/stats", id(&plain))).await.expect(200);
    assert!(stats.get("handshake").is_none(), "{stats}");
}

async fn a_refused_handshake_pauses_the_endpoint_until_a_later_one_is_accepted(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let accept = Arc::new(AtomicBool::new(false));
    let behaviour_accept = accept.clone();
    let receiver = Receiver::start_with(
        Arc::new(move |received: &Received, _| {
            match (received.method.as_str(), behaviour_accept.load(Ordering::SeqCst)) {
                ("OPTIONS", false) => Reply::status(405),
                ("OPTIONS", true) => Reply::ok().header("WebHook-Allowed-Origin", "*"),
                _ => Reply::ok(),
            }
        }),
        2,
    );
    let operational = Receiver::start();
    let api = server.tenant_on("acme", "pro");
    api.create_app("Ops", Some("hookline-operational")).await;
    api.post("/api/v1/app/hookline-operational/endpoint", json!({"url": operational.url("/ops")}))
        .await
        .expect(201);
    api.create_app("A", Some("a")).await;
    let endpoint = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/ce"), "format": "cloudevents_binary"}))
        .await
        .expect(201);

    let message = api.send_message("a", "invoice.paid", json!({"n": 1})).await;
    // Paused: the operational webhook says why, the attempt log too, and nothing was sent.
    let paused = operational
        .wait_until(WAIT, "endpoint.paused", |all| all.iter().any(|r| r.json()["type"] == "endpoint.paused"))
        .await;
    let event = paused.iter().map(|r| r.json()).find(|b| b["type"] == "endpoint.paused").unwrap();
    assert_eq!(event["data"]["endpoint_id"], endpoint["id"], "{event}");
    assert!(event["data"]["reason"].as_str().unwrap().contains("405"), "{event}");
    let attempts = attempts_of(&api, &id(&message)).await;
    assert_eq!(attempts[0]["error_class"], "handshake", "{attempts:?}");
    assert!(attempts[0]["error_detail"].as_str().unwrap().contains("405"), "{attempts:?}");
    let stats = api.get("/api/v1/stats").await.expect(200);
    let alert = alert_of(&stats, &id(&endpoint)).unwrap_or_else(|| panic!("paused endpoint listed: {stats}"));
    assert!(alert["paused_reason"].as_str().unwrap().contains("405"), "{alert}");
    let stats_path = format!("/api/v1/app/a/endpoint/{}/stats", id(&endpoint));
    let stats = api.get(&stats_path).await.expect(200);
    assert!(stats["handshake"]["paused_reason"].as_str().unwrap().contains("405"), "{stats}");
    assert!(stats["handshake"]["accepted_at"].is_null(), "{stats}");
    assert!(requests(&receiver, "POST", "/ce").is_empty(), "nothing is sent to a paused endpoint");

    // Still refusing, the circuit's probes ask again and the endpoint stays paused (one event).
    let asked = requests(&receiver, "OPTIONS", "/ce").len();
    let deadline = Instant::now() + WAIT;
    while requests(&receiver, "OPTIONS", "/ce").len() == asked {
        assert!(Instant::now() < deadline, "the circuit's probe never asked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(requests(&receiver, "POST", "/ce").is_empty());

    // Accepting: the next probe's handshake passes, the message arrives, the pause ends.
    accept.store(true, Ordering::SeqCst);
    let posts = wait_for_posts(&receiver, "/ce", 1).await;
    assert_eq!(posts[0].header("ce-id"), Some(id(&message).as_str()), "the message, in binary mode");
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = api.get("/api/v1/stats").await.expect(200);
        if alert_of(&stats, &id(&endpoint)).is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "still listed after a success: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = api.get(&stats_path).await.expect(200);
    assert!(stats["handshake"]["paused_reason"].is_null(), "{stats}");
    assert!(stats["handshake"]["accepted_at"].is_string(), "{stats}");
    let events = operational.received().iter().filter(|r| r.json()["type"] == "endpoint.paused").count();
    assert_eq!(events, 1, "one endpoint.paused however often the probe was refused");
}

async fn the_handshake_setting_defaults_by_format_and_a_new_url_is_asked_again(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(accepting("*"), 2);
    let api = server.tenant_on("acme", "pro");
    api.create_app("A", Some("a")).await;
    let quiet = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({"url": receiver.url("/quiet"), "format": "cloudevents_structured", "handshake": false}),
        )
        .await
        .expect(201);
    assert_eq!(quiet["handshake"], false);
    let path = format!("/api/v1/app/a/endpoint/{}", id(&quiet));
    assert_eq!(
        api.patch(&path, json!({"handshake": null})).await.expect(200)["handshake"],
        true,
        "format default"
    );
    assert_eq!(api.patch(&path, json!({"format": "json"})).await.expect(200)["handshake"], false);
    assert_eq!(api.patch(&path, json!({"handshake": true})).await.expect(200)["handshake"], true, "asked");
    let bad = api.patch(&path, json!({"handshake": "yes"})).await.expect_error(422, "validation_error");
    assert_eq!(bad["errors"][0]["loc"], json!(["body", "handshake"]), "{bad}");
    api.patch(&path, json!({"handshake": false, "format": "cloudevents_structured"})).await.expect(200);

    // Switched off: a CloudEvents endpoint is sent to without being asked.
    api.send_message("a", "invoice.paid", json!({"n": 1})).await;
    wait_for_posts(&receiver, "/quiet", 1).await;
    assert!(requests(&receiver, "OPTIONS", "/quiet").is_empty());

    // On again, then a new URL: each is asked before its first delivery.
    api.patch(&path, json!({"handshake": true})).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await; // the engine's endpoint cache
    api.send_message("a", "invoice.paid", json!({"n": 2})).await;
    wait_for_posts(&receiver, "/quiet", 2).await;
    assert_eq!(requests(&receiver, "OPTIONS", "/quiet").len(), 1);
    api.patch(&path, json!({"url": receiver.url("/moved")})).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.send_message("a", "invoice.paid", json!({"n": 3})).await;
    let moved = wait_for_posts(&receiver, "/moved", 1).await;
    let asked = requests(&receiver, "OPTIONS", "/moved");
    assert_eq!(asked.len(), 1, "the new URL is asked");
    assert!(asked[0].at <= moved[0].at);
}

async fn attempts_of(api: &Client, message: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let attempts = api.get(&format!("/api/v1/app/a/msg/{message}/attempt")).await.expect(200);
        if let Some(data) = attempts["data"].as_array().filter(|d| !d.is_empty()) {
            return data.clone();
        }
        assert!(Instant::now() < deadline, "no attempt of {message}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alert_of(stats: &Value, endpoint: &str) -> Option<Value> {
    stats["failing_endpoints"].as_array()?.iter().find(|a| a["endpoint_id"] == endpoint).cloned()
}
