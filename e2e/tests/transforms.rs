//! Black-box tests of transformations: jq programs tried with `POST /api/v1/transform/test`,
//! run by the real binary's sandbox processes, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, verify_signature},
};
use serde_json::{Value, json};

both_databases!(
    an_endpoints_transform_decides_what_is_signed_and_sent_skipped_or_failed,
    deliveries_a_transform_skips_do_not_count_as_failures_of_the_endpoint,
    transforms_are_checked_when_saved_and_need_the_plan_feature,
    a_transform_reshapes_skips_or_fails_a_sample_and_bad_programs_are_422,
    runaway_programs_stop_at_their_limits_and_the_next_program_still_runs,
    the_free_plan_has_no_transformations,
    a_sources_transform_decides_what_is_stored_skipped_or_refused,
);

const WAIT: Duration = Duration::from_secs(20);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32").env("HOOKLINE_RETRY_SCHEDULE", "60")
}

/// The message's one delivery, once `done` says it is.
async fn delivery_when(api: &Client, message: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let deliveries = api.get(&format!("/api/v1/app/a/msg/{message}/delivery")).await.expect(200);
        if let Some(delivery) = deliveries.as_array().and_then(|d| d.first()).filter(|d| done(d)) {
            return delivery.clone();
        }
        assert!(Instant::now() < deadline, "message {message}: {deliveries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_endpoints_transform_decides_what_is_signed_and_sent_skipped_or_failed(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant_on("acme", "pro");
    api.create_app("A", Some("a")).await;
    let transform = r#"if .payload.amount < 100 then null
        else {payload: {cents: (.payload.amount * 100)}, event_type: "invoice.large",
              headers: {"X-Team": "billing"}} end"#;
    let endpoint = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/billing"), "transform": transform}))
        .await
        .expect(201);
    assert_eq!(endpoint["transform"], transform);
    let secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200);

    // Reshaped: the body, event type and headers are the program's, and the signature covers
    // the body as sent.
    let large = api.send_message("a", "invoice.paid", json!({"amount": 250})).await;
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].json(), json!({"cents": 25000}));
    assert_eq!(received[0].header("x-team"), Some("billing"));
    assert_eq!(received[0].msg_id(), id(&large));
    assert!(verify_signature(secret["key"].as_str().unwrap(), &received[0]), "signed as sent");
    delivery_when(&api, &id(&large), |d| d["status"] == "succeeded").await;
    let attempts = api.get(&format!("/api/v1/app/a/msg/{}/attempt", id(&large))).await.expect(200);
    assert_eq!(
        attempts["data"][0]["request_body"].as_str().unwrap().as_bytes(),
        received[0].body,
        "{attempts}"
    );

    // Skipped: nothing is sent, the delivery ends filtered and the attempt log says why.
    let small = api.send_message("a", "invoice.paid", json!({"amount": 20})).await;
    let delivery =
        delivery_when(&api, &id(&small), |d| d["status"] != "pending" && d["status"] != "sending").await;
    assert_eq!(delivery["status"], "filtered", "{delivery}");
    let attempts = api.get(&format!("/api/v1/app/a/msg/{}/attempt", id(&small))).await.expect(200);
    assert_eq!(attempts["data"][0]["error_class"], "filtered", "{attempts}");
    let filtered = api.get("/api/v1/app/a/msg?status=filtered").await.expect(200);
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1, "{filtered}");
    assert_eq!(filtered["data"][0]["id"], small["id"]);

    // Failed: a program that errors fails the attempt with class transform (retried later).
    api.patch(
        &format!("/api/v1/app/a/endpoint/{}", id(&endpoint)),
        json!({"transform": "error(\"no plan\")"}),
    )
    .await
    .expect(200);
    // Endpoint settings are cached for a second by the worker.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let broken = api.send_message("a", "invoice.paid", json!({"amount": 500})).await;
    let delivery = delivery_when(&api, &id(&broken), |d| d["status"] == "failed").await;
    assert_eq!(delivery["attempt_count"], 1, "{delivery}");
    let attempts = api.get(&format!("/api/v1/app/a/msg/{}/attempt", id(&broken))).await.expect(200);
    assert_eq!(attempts["data"][0]["error_class"], "transform", "{attempts}");
    assert!(
        attempts["data"][0]["error_detail"].as_str().unwrap_or_default().contains("no plan"),
        "{attempts}"
    );

    // Removed: the payload goes as it is.
    api.patch(&format!("/api/v1/app/a/endpoint/{}", id(&endpoint)), json!({"transform": null}))
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.send_message("a", "invoice.paid", json!({"amount": 7})).await;
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(received[1].json(), json!({"amount": 7}));
    assert_eq!(receiver.count(), 2, "the skipped and the failed message sent nothing");
}

/// Skips are not failures: after more skipped deliveries in a row than the circuit's threshold
/// (2 here), the next delivery is sent at once, not held for the circuit's cool-down (ten minutes
/// here).
async fn deliveries_a_transform_skips_do_not_count_as_failures_of_the_endpoint(db: Backend) {
    let options =
        options().env("HOOKLINE_CIRCUIT_THRESHOLD", "2").env("HOOKLINE_CIRCUIT_COOLDOWN_SECONDS", "600");
    let server = TestServer::start_with(db, options).await;
    let receiver = Receiver::start();
    let api = server.tenant_on("acme", "pro");
    api.create_app("A", Some("a")).await;
    let transform = "if .payload.send then {payload: .payload} else null end";
    api.post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/hook"), "transform": transform}))
        .await
        .expect(201);
    for _ in 0..4 {
        let skipped = api.send_message("a", "invoice.paid", json!({"send": false})).await;
        delivery_when(&api, &id(&skipped), |d| d["status"] == "filtered").await;
    }
    let sent = api.send_message("a", "invoice.paid", json!({"send": true})).await;
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].msg_id(), id(&sent));
    delivery_when(&api, &id(&sent), |d| d["status"] == "succeeded").await;
}

async fn transforms_are_checked_when_saved_and_need_the_plan_feature(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant_on("acme", "pro");
    api.create_app("A", Some("a")).await;
    let bad = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({"url": "https://example.com/h", "transform": "{payload: .a |}"}),
        )
        .await
        .expect(422);
    assert_eq!(bad["errors"][0]["loc"], json!(["body", "transform"]), "{bad}");
    assert!(bad["errors"][0]["msg"].as_str().unwrap().contains("(at character"), "{bad}");
    let endpoint = api.create_endpoint("a", "https://example.com/h").await;
    api.patch(&format!("/api/v1/app/a/endpoint/{}", id(&endpoint)), json!({"transform": "frobnicate"}))
        .await
        .expect(422);
    // The free plan has no transformations: saving one is refused, an endpoint without is fine.
    let free = server.tenant_on("thrifty", "free");
    free.create_app("A", Some("a")).await;
    free.post(
        "/api/v1/app/a/endpoint",
        json!({"url": "https://example.com/h", "transform": "{payload: .payload}"}),
    )
    .await
    .expect_error(403, "plan_feature_missing");
    let plain = free.create_endpoint("a", "https://example.com/h").await;
    assert_eq!(plain["transform"], Value::Null);
}

async fn try_transform(api: &Client, transform: &str, payload: Value) -> Value {
    api.post(
        "/api/v1/transform/test",
        json!({"transform": transform, "event_type": "invoice.paid", "payload": payload}),
    )
    .await
    .expect(200)
}

async fn a_transform_reshapes_skips_or_fails_a_sample_and_bad_programs_are_422(db: Backend) {
    // Debug builds copy the 6 MB output below slower than the default 50 ms allow.
    let server =
        TestServer::start_with(db, ServerOptions::default().env("HOOKLINE_TRANSFORM_CPU_MS", "3000")).await;
    let api = server.tenant_on("acme", "pro");
    let reshape = r#"if .payload.amount < 100 then null
        else {payload: {cents: (.payload.amount * 100), lines: (.payload.lines | map(.sku))},
              event_type: "invoice.large", headers: {"X-Team": "billing"}} end"#;
    let out =
        try_transform(&api, reshape, json!({"amount": 250, "lines": [{"sku": "a"}, {"sku": "b"}]})).await;
    assert_eq!(
        out,
        json!({"skipped": false, "payload": {"cents": 25000, "lines": ["a", "b"]},
               "event_type": "invoice.large", "headers": {"X-Team": "billing"}})
    );
    assert_eq!(try_transform(&api, reshape, json!({"amount": 20})).await, json!({"skipped": true}));
    // Without an event type of its own the message's is kept; the headers are the input's.
    let out = api
        .post(
            "/api/v1/transform/test",
            json!({"transform": "{payload: {event: .headers[\"x-github-event\"]}}", "event_type": "github.push",
                   "payload": {}, "headers": {"X-GitHub-Event": "push"}}),
        )
        .await
        .expect(200);
    assert_eq!(out, json!({"skipped": false, "payload": {"event": "push"}, "event_type": "github.push"}));
    // Run-time failures are answers, as a delivery's attempt would log them.
    let error = |out: Value| out["error"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        error(try_transform(&api, r#"error("no invoice")"#, json!({})).await),
        "the program failed: no invoice"
    );
    assert!(
        error(try_transform(&api, "{payload, extra: 1}", json!({})).await).contains("unknown key \"extra\"")
    );
    assert!(error(try_transform(&api, ".payload", json!({"a": 1})).await).contains("no payload"));
    assert!(error(try_transform(&api, "empty", json!({})).await).contains("no value"));
    assert!(
        error(
            try_transform(&api, r#"{payload: 1, headers: {"webhook-signature": "v1,x"}}"#, json!({})).await
        )
        .contains("cannot be overridden")
    );
    // An output past the plan's payload limit (Pro: 5 MiB) is refused.
    let big = error(try_transform(&api, r#"{payload: ("x" * 6000000)}"#, json!({})).await);
    assert!(big.starts_with("the output is ") && big.contains("more than the limit of 5242880"), "{big}");
    // Programs that do not compile are 422 with jaq's message and where.
    for (program, expected) in [
        (".payload | {a: }", "expected term, found \"}\" (at character 15)"),
        (".payload | frobnicate", "undefined filter frobnicate/0 (at character 11)"),
        ("{payload: env}", "undefined filter env/0 (at character 10)"),
        ("", "the program is empty (at character 0)"),
    ] {
        let response = api
            .post("/api/v1/transform/test", json!({"transform": program, "event_type": "a.b", "payload": {}}))
            .await;
        let body = response.expect(422);
        assert_eq!(body["errors"][0]["loc"], json!(["body", "transform"]), "{program}: {body}");
        assert_eq!(body["errors"][0]["msg"], expected, "{program}: {body}");
    }
}

async fn runaway_programs_stop_at_their_limits_and_the_next_program_still_runs(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant_on("acme", "pro");
    for (program, expected) in [
        // Never ends: stopped by the CPU time limit.
        ("last(repeat(1))", "CPU time limit (50 ms)"),
        ("def loop: loop; {payload: loop}", ""),
        // Recursion deeper than any stack: aborts the sandbox, not the server.
        ("def deep: [deep]; {payload: deep}", ""),
        // Allocates without end: the memory cap or the CPU limit, whichever comes first.
        ("{payload: [range(1e12)]}", ""),
    ] {
        let started = Instant::now();
        let out = try_transform(&api, program, json!({})).await;
        let error = out["error"].as_str().unwrap_or_else(|| panic!("{program}: {out}"));
        assert!(error.contains(expected), "{program}: {error}");
        assert!(
            error.contains("CPU time limit") || error.contains("exhausted its memory"),
            "{program}: {error}"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{program} took {:?}", started.elapsed());
        // The next program runs in a fresh sandbox.
        assert_eq!(
            try_transform(&api, "{payload: .payload}", json!({"n": 1})).await,
            json!({"skipped": false, "payload": {"n": 1}, "event_type": "invoice.paid"}),
            "after {program}"
        );
    }
    server.anonymous().get("/readyz").await.expect(200);
}

async fn the_free_plan_has_no_transformations(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant_on("acme", "free");
    api.post(
        "/api/v1/transform/test",
        json!({"transform": "{payload: .}", "event_type": "a.b", "payload": {}}),
    )
    .await
    .expect_error(403, "plan_feature_missing");
}

async fn a_sources_transform_decides_what_is_stored_skipped_or_refused(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant_on("acme", "pro");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/all")).await;
    // Checked when saved; the free plan may not set one.
    let bad = api
        .post(
            "/api/v1/source",
            json!({"name": "Shop", "app": "a", "verification": {"type": "none"}, "transform": "{payload: .a |}"}),
        )
        .await
        .expect(422);
    assert_eq!(bad["errors"][0]["loc"], json!(["body", "transform"]), "{bad}");
    let free = server.tenant_on("thrifty", "free");
    free.create_app("A", Some("a")).await;
    free.post(
        "/api/v1/source",
        json!({"name": "Shop", "app": "a", "verification": {"type": "none"}, "transform": "{payload: .payload}"}),
    )
    .await
    .expect_error(403, "plan_feature_missing");

    // Orders of zero are dropped; others become `order.<status>` with the amount in cents and
    // the request's shop header (not forwarded) kept on the message; a missing amount fails.
    let program = r#"if .payload.total == 0 then null
        else {payload: {cents: (.payload.total * 100), order: .payload.id},
              event_type: ("order." + .payload.status),
              headers: {"X-Shop": .headers["x-shop-domain"]}} end"#;
    let source = api
        .post(
            "/api/v1/source",
            json!({"name": "Shop", "app": "a", "verification": {"type": "none"}, "transform": program}),
        )
        .await
        .expect(201);
    assert_eq!(source["transform"], program);
    let src = id(&source);
    let url = url::Url::parse(source["ingest_url"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::new();
    let send = |body: Value| {
        let request = http
            .post(server.url(url.path()))
            .header("X-Shop-Domain", "acme.example")
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }
    };
    let (status, accepted) = send(json!({"id": 7, "status": "paid", "total": 12})).await;
    assert_eq!(status, 202, "{accepted}");
    let message_id = accepted["message"].as_str().unwrap().to_owned();
    let message = api.get(&format!("/api/v1/app/a/msg/{message_id}")).await.expect(200);
    assert_eq!(message["event_type"], "order.paid", "{message}");
    assert_eq!(message["payload"], json!({"cents": 1200, "order": 7}), "{message}");
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].json(), json!({"cents": 1200, "order": 7}));
    assert_eq!(received[0].header("x-shop"), Some("acme.example"), "the program's header is forwarded");

    let (status, skipped) = send(json!({"id": 8, "status": "paid", "total": 0})).await;
    assert_eq!((status, &skipped["filtered"]), (200, &json!(true)), "{skipped}");
    let (status, failed) = send(json!({"id": 9, "status": 5})).await;
    assert_eq!(status, 502, "{failed}");
    assert_eq!(failed["code"], "transform_failed");
    let detail = failed["detail"].as_str().unwrap();
    assert!(!detail.contains("order."), "the provider learns nothing of the program: {detail}");

    // One message only; the request log says why the others were not stored.
    let messages = api.get("/api/v1/app/a/msg").await.expect(200);
    assert_eq!(messages["data"].as_array().unwrap().len(), 1, "{messages}");
    let deadline = Instant::now() + WAIT;
    let (mut filtered, mut rejected) = (Vec::new(), Vec::new());
    while (filtered.is_empty() || rejected.is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = api.get(&format!("/api/v1/source/{src}/request")).await.expect(200);
        let reasons = |outcome: &str| -> Vec<String> {
            log["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["outcome"] == outcome)
                .map(|r| r["reason"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        filtered = reasons("filtered");
        rejected = reasons("rejected");
    }
    assert_eq!(filtered, ["transform: returned null"]);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].starts_with("transform: the program failed"), "{rejected:?}");

    // Removed: requests are stored as received again.
    let removed = api.patch(&format!("/api/v1/source/{src}"), json!({"transform": null})).await.expect(200);
    assert_eq!(removed["transform"], Value::Null);
    let (status, plain) = send(json!({"id": 10, "status": "paid", "total": 0})).await;
    assert_eq!(status, 202, "{plain}");
}
