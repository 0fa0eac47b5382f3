//! Metering and plans, black-box: usage equals the ground truth (idempotent replays and duplicate
//! event ids count once), the free plan stops at its cap while a paid plan goes into overage,
//! quota events, API rate limits under concurrent requests, and plan limits at the edge.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, count_all, id,
    receiver::{Receiver, Reply},
};
use serde_json::{Value, json};

both_databases!(
    usage_counts_each_thing_once_per_tenant_and_application,
    the_free_plan_stops_at_its_cap_and_a_paid_plan_goes_into_overage,
    api_rate_limits_hold_under_concurrent_requests,
    plan_limits_hold_at_the_edge,
    bad_usage_queries_are_422,
    a_dedicated_queue_keeps_enterprise_deliveries_moving_past_a_shared_backlog,
);

const WAIT: Duration = Duration::from_secs(30);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32").env("HOOKLINE_RETRY_SCHEDULE", "1")
}

/// `hookline plan set` for a running server, then wait out its 2-second limits cache.
async fn set_plan(server: &TestServer, tenant: &str, plan: &str, overrides: &[&str]) {
    let mut args = vec!["plan", "set", "--tenant", tenant, "--plan", plan];
    args.extend_from_slice(overrides);
    server.cli(&args);
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

async fn settle(api: &Client, app: &str) {
    let deadline = Instant::now() + WAIT;
    while !api.get(&format!("/api/v1/app/{app}/msg?status=pending&status=failed&limit=1")).await.expect(200)["data"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "deliveries of {app} still pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn usage_counts_each_thing_once_per_tenant_and_application(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    // Every third first attempt fails, so attempts outnumber messages.
    let receiver = Receiver::start_with(
        Arc::new(|r, n| {
            if n == 0 && r.json()["n"].as_u64().unwrap_or(0) % 3 == 0 {
                Reply::status(500)
            } else {
                Reply::ok()
            }
        }),
        2,
    );
    let api = server.tenant("acme");
    for app in ["a", "b"] {
        api.create_app(app, Some(app)).await;
        api.create_endpoint(app, &receiver.url(&format!("/{app}"))).await;
    }
    let mut bytes = [0u64; 2];
    // App a: 12 messages, each sent twice with the same Idempotency-Key (the replay counts once).
    for n in 0..12 {
        let body = json!({"event_type": "a.b", "payload": {"n": n, "text": "x".repeat(n)}});
        bytes[0] += serde_json::to_string(&body["payload"]).unwrap().len() as u64;
        for _ in 0..2 {
            let response = api
                .request(
                    reqwest::Method::POST,
                    "/api/v1/app/a/msg",
                    Some(&body),
                    &[("idempotency-key", &format!("k{n}"))],
                )
                .await;
            assert_eq!(response.status, 202, "{}", response.text);
        }
    }
    // App b: 5 messages, each sent twice with the same event_id (the repeat answers 200).
    for n in 0..5 {
        let body = json!({"event_type": "a.b", "payload": {"n": n}, "event_id": format!("e{n}")});
        bytes[1] += serde_json::to_string(&body["payload"]).unwrap().len() as u64;
        api.post("/api/v1/app/b/msg", body.clone()).await.expect(202);
        api.post("/api/v1/app/b/msg", body).await.expect(200);
    }
    settle(&api, "a").await;
    settle(&api, "b").await;
    let attempts =
        [count_all(&api, "/api/v1/app/a/attempt").await, count_all(&api, "/api/v1/app/b/attempt").await];
    assert!(attempts[0] > 12 && attempts[1] > 5, "some first attempts failed: {attempts:?}");
    assert_eq!(receiver.count(), attempts[0] + attempts[1], "the log has every request the receiver saw");

    for (app, messages, idx) in [("a", 12, 0), ("b", 5, 1)] {
        let usage = api.get(&format!("/api/v1/app/{app}/usage?granularity=hour")).await.expect(200);
        let totals = &usage["totals"];
        assert_eq!(totals["messages_accepted"], messages, "{app}: {usage}");
        assert_eq!(totals["payload_bytes"], bytes[idx], "{app}: {usage}");
        assert_eq!(totals["delivery_attempts"], attempts[idx] as u64, "{app}: {usage}");
        assert!(usage["quota"].is_null(), "quotas are tenant-wide");
        // Hourly buckets over the last 24 hours (25 when the range starts mid-hour), every one
        // present, the counts in the last.
        let data = usage["data"].as_array().unwrap();
        assert!((24..=25).contains(&data.len()), "{usage}");
        assert_eq!(data.last().unwrap()["messages_accepted"], messages, "{usage}");
    }
    let usage = api.get("/api/v1/usage").await.expect(200);
    assert_eq!(usage["granularity"], "day");
    assert_eq!(usage["totals"]["messages_accepted"], 17, "{usage}");
    assert_eq!(usage["totals"]["payload_bytes"], bytes[0] + bytes[1]);
    assert_eq!(usage["totals"]["delivery_attempts"], (attempts[0] + attempts[1]) as u64);
    assert_eq!(usage["quota"]["plan"], "enterprise");
    assert_eq!(usage["quota"]["used"], 17);
    // Another tenant sees its own (empty) usage only.
    let other = server.tenant("other");
    assert_eq!(other.get("/api/v1/usage").await.expect(200)["totals"]["messages_accepted"], 0);
}

async fn the_free_plan_stops_at_its_cap_and_a_paid_plan_goes_into_overage(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let free = server.tenant_on("freebie", "free");
    let pro = server.tenant_on("payer", "pro");
    set_plan(&server, "freebie", "free", &["--monthly-messages", "5"]).await;
    set_plan(&server, "payer", "pro", &["--monthly-messages", "5"]).await;
    for api in [&free, &pro] {
        api.create_app("A", Some("a")).await;
        api.create_endpoint("a", &receiver.url("/a")).await;
    }
    // The free tenant listens to its operational events.
    free.create_app("Ops", Some("hookline-operational")).await;
    free.create_endpoint("hookline-operational", &receiver.url("/ops")).await;

    let mut accepted = Vec::new();
    for n in 0..5 {
        accepted.push(id(&free.send_message("a", "a.b", json!({"n": n})).await));
    }
    let refused = free.post("/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {"n": 5}})).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["code"], "quota_exceeded");
    let header = |name: &str| refused.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(header("x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(header("x-ratelimit-reset").is_some());
    // Nothing already accepted is dropped: all five are delivered.
    let received = receiver
        .wait_until(WAIT, "the free tenant's five messages", |r| {
            accepted.iter().all(|id| r.iter().any(|r| r.path == "/a" && r.msg_id() == id))
        })
        .await;
    assert_eq!(received.iter().filter(|r| r.path == "/a").count(), 5);
    // 80 % and 100 % were told to the tenant's operational endpoint.
    let ops = receiver
        .wait_until(WAIT, "two quota events", |r| r.iter().filter(|r| r.path == "/ops").count() >= 2)
        .await;
    let mut kinds: Vec<String> = ops
        .iter()
        .filter(|r| r.path == "/ops")
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["usage.quota.reached", "usage.quota.warning"]);
    let quota = free.get("/api/v1/usage").await.expect(200)["quota"].clone();
    assert_eq!((quota["used"].as_u64(), quota["remaining"].as_u64()), (Some(5), Some(0)), "{quota}");
    assert_eq!(quota["overage_allowed"], false);

    // The paid tenant goes on into overage.
    for n in 0..8 {
        pro.send_message("a", "a.b", json!({"n": n})).await;
    }
    let quota = pro.get("/api/v1/usage").await.expect(200)["quota"].clone();
    assert_eq!((quota["used"].as_u64(), quota["overage"].as_u64()), (Some(8), Some(3)), "{quota}");
    assert_eq!(quota["overage_allowed"], true);
}

async fn api_rate_limits_hold_under_concurrent_requests(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let key = api.post("/api/v1/api-key", json!({"name": "second"})).await.expect(201);
    let second = server.client_with_key(key["key"].as_str().unwrap());
    set_plan(&server, "acme", "enterprise", &["--api-rate", "1", "--api-burst", "5"]).await;
    // The key's creation cached the old limits: the first request after the change reloads them
    // (requests beside it would still see the old ones), and takes one token of the new burst.
    let first = second.get("/api/v1/app").await;
    assert_eq!(first.headers.get("x-ratelimit-limit").unwrap(), "5");
    first.expect(200);
    let requests = (0..20).map(|_| {
        let api = api.clone();
        async move { api.get("/api/v1/app").await }
    });
    let responses = futures_util::future::join_all(requests).await;
    let ok: Vec<_> = responses.iter().filter(|r| r.status == 200).collect();
    let limited: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok.len() + limited.len(), 20);
    // The rest of the burst, and at most one more if a token refilled during the volley.
    assert!((4..=5).contains(&ok.len()), "{} requests went through", ok.len());
    for response in &limited {
        assert_eq!(response.body["code"], "rate_limited", "{}", response.text);
        assert!(response.headers.get("retry-after").is_some());
        assert_eq!(response.headers.get("x-ratelimit-remaining").unwrap(), "0");
    }
    assert!(ok.iter().all(|r| r.headers.get("x-ratelimit-limit").unwrap() == "5"));
    // Every credential of the tenant draws from the same bucket: another key adds nothing.
    second.get("/api/v1/app").await.expect_error(429, "rate_limited");
    // Tokens come back at the configured rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    second.get("/api/v1/app").await.expect(200);
}

async fn plan_limits_hold_at_the_edge(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant_on("small", "free");
    set_plan(
        &server,
        "small",
        "free",
        &["--max-applications", "1", "--max-endpoints", "1", "--max-payload-bytes", "100"],
    )
    .await;
    api.create_app("A", Some("a")).await;
    api.post("/api/v1/app", json!({"name": "B"})).await.expect_error(403, "plan_limit_reached");
    api.create_endpoint("a", "https://example.com/1").await;
    api.post("/api/v1/app/a/endpoint", json!({"url": "https://example.com/2"}))
        .await
        .expect_error(403, "plan_limit_reached");
    api.post("/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {"text": "x".repeat(200)}}))
        .await
        .expect_error(413, "payload_too_large");
    api.send_message("a", "a.b", json!({"small": true})).await;
    // The limits are visible with the quota.
    let limits: Value = api.get("/api/v1/usage").await.expect(200)["quota"]["limits"].clone();
    assert_eq!(limits["max_endpoints"], 1, "{limits}");
    assert_eq!(limits["max_payload_bytes"], 100);
    assert_eq!(limits["endpoint_rate_limit"], 10, "the free plan's per-endpoint rate");
}

async fn bad_usage_queries_are_422(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    for (path, loc) in [
        ("/api/v1/usage?granularity=week", "query.granularity"),
        ("/api/v1/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "query.to"),
        ("/api/v1/usage?granularity=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "query.from"),
        ("/api/v1/usage?from=yesterday", "query.from"),
        ("/api/v1/app/a/usage?bucket=day", "query.bucket"),
    ] {
        let response = api.get(path).await;
        assert_eq!(response.status, 422, "{path}: {}", response.text);
        assert!(response.error_locs().contains(&loc.to_owned()), "{path}: {}", response.text);
    }
    api.get("/api/v1/app/nope/usage").await.expect(404);
}

async fn a_dedicated_queue_keeps_enterprise_deliveries_moving_past_a_shared_backlog(db: Backend) {
    // Four slots per lane; a slow endpoint (5 s a request) fills the shared lane.
    let server = TestServer::start_with(
        db,
        options().env("HOOKLINE_MAX_IN_FLIGHT", "4").env("HOOKLINE_DEDICATED_IN_FLIGHT", "4"),
    )
    .await;
    let receiver = Receiver::start_with(
        Arc::new(
            |r, _| if r.path == "/slow" { Reply::ok().after(Duration::from_secs(5)) } else { Reply::ok() },
        ),
        16,
    );
    let crowd = server.tenant_on("crowd", "pro");
    let neighbour = server.tenant_on("neighbour", "pro");
    let vip = server.tenant("vip"); // enterprise: a dedicated queue
    let vip_created = Instant::now();
    crowd.create_app("A", Some("a")).await;
    crowd.create_endpoint("a", &receiver.url("/slow")).await;
    for api in [&neighbour, &vip] {
        api.create_app("A", Some("a")).await;
    }
    neighbour.create_endpoint("a", &receiver.url("/neighbour")).await;
    vip.create_endpoint("a", &receiver.url("/vip")).await;
    for n in 0..20 {
        crowd.send_message("a", "a.b", json!({"n": n})).await;
    }
    // The shared lane is full: four slow requests in flight, sixteen waiting.
    receiver
        .wait_until(WAIT, "four slow requests", |r| r.iter().filter(|r| r.path == "/slow").count() >= 4)
        .await;
    // The engine re-reads its dedicated tenants every 2 s.
    tokio::time::sleep(Duration::from_millis(2200).saturating_sub(vip_created.elapsed())).await;
    let sent = Instant::now();
    neighbour.send_message("a", "a.b", json!({"who": "neighbour"})).await;
    vip.send_message("a", "a.b", json!({"who": "vip"})).await;
    let got =
        receiver.wait_until(WAIT, "the enterprise message", |r| r.iter().any(|r| r.path == "/vip")).await;
    let vip_at = got.iter().find(|r| r.path == "/vip").unwrap().at;
    assert!(
        vip_at.duration_since(sent) < Duration::from_millis(2500),
        "the enterprise delivery waited {:?}",
        vip_at.duration_since(sent)
    );
    // Meanwhile the shared tenant's message waits behind the backlog (the slow requests hold
    // every shared slot for 5 s): the backlog is real, and only the dedicated lane got past it.
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(sent.elapsed())).await;
    assert!(
        !receiver.received().iter().any(|r| r.path == "/neighbour"),
        "the shared lane was not full: the test shows nothing"
    );
}
