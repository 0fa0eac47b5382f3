//! Black-box tests of routing rules: endpoints' and sources' content filters (EventBridge-style
//! patterns), against a real receiver, on SQLite and PostgreSQL.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use hookline_e2e::{
    Backend, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, Reply},
};
use serde_json::{Value, json};

both_databases!(
    each_pattern_operator_selects_exactly_the_expected_messages_of_a_mixed_stream,
    filters_are_validated_when_saved_and_tried_with_the_test_route,
    a_filter_on_forwarded_headers_routes_received_webhooks,
    a_sources_filter_stores_only_the_requests_it_matches,
    replay_missing_sends_only_the_messages_the_filter_matches,
    an_event_types_retry_schedule_applies_where_the_endpoint_has_none,
);

const WAIT: Duration = Duration::from_secs(20);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32").env("HOOKLINE_RETRY_SCHEDULE", "1")
}

/// The message ids each receiver path got.
fn by_path(receiver: &Receiver) -> BTreeMap<String, BTreeSet<String>> {
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in receiver.received() {
        paths.entry(request.path.clone()).or_default().insert(request.msg_id().to_owned());
    }
    paths
}

async fn each_pattern_operator_selects_exactly_the_expected_messages_of_a_mixed_stream(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("Shop", Some("shop")).await;

    // (event type, channels, payload): five messages; m4 matches no filter.
    let stream = [
        (
            "order.created",
            json!([]),
            json!({"amount": 50, "currency": "EUR", "customer": {"tier": "gold", "email": "A@Example.COM"},
                   "tags": ["new", "eu"], "ip": "10.0.0.7", "sku": "shoe-red-42"}),
        ),
        (
            "order.created",
            json!([]),
            json!({"amount": 150, "currency": "USD", "customer": {"tier": "silver"}, "tags": ["repeat"],
                   "ip": "192.168.1.9", "sku": "hat-blue-1"}),
        ),
        (
            "order.refunded",
            json!([]),
            json!({"amount": 500, "currency": "eur", "customer": {"tier": "gold", "email": "b@example.org"},
                   "ip": "10.0.1.2", "sku": "shoe-blue-40", "note": null}),
        ),
        ("invoice.paid", json!(["vip"]), json!({"amount": 0, "currency": "GBP", "tags": [], "sku": "gift"})),
        ("other.thing", json!([]), json!({"unmatched": true})),
    ];
    // Each endpoint: its filter and the messages (indexes into `stream`) it must get, worked out
    // by hand from EventBridge's documented semantics.
    let endpoints: Vec<(&str, Value, Vec<usize>)> = vec![
        ("exact", json!({"payload": {"currency": ["EUR", "GBP"]}}), vec![0, 3]),
        ("prefix", json!({"payload": {"sku": [{"prefix": "shoe-"}]}}), vec![0, 2]),
        (
            "suffix-ignore-case",
            json!({"payload": {"customer": {"email": [{"suffix": {"equals-ignore-case": "@example.com"}}]}}}),
            vec![0],
        ),
        ("anything-but", json!({"payload": {"currency": [{"anything-but": ["EUR", "USD"]}]}}), vec![2, 3]),
        ("numeric", json!({"payload": {"amount": [{"numeric": [">", 100, "<=", 500]}]}}), vec![1, 2]),
        (
            "exists",
            json!({"payload": {"sku": [{"exists": true}], "customer": {"tier": [{"exists": false}]}}}),
            vec![3],
        ),
        ("wildcard", json!({"payload": {"sku": [{"wildcard": "*-blue-*"}]}}), vec![1, 2]),
        ("equals-ignore-case", json!({"payload": {"currency": [{"equals-ignore-case": "eur"}]}}), vec![0, 2]),
        ("cidr", json!({"payload": {"ip": [{"cidr": "10.0.0.0/16"}]}}), vec![0, 2]),
        (
            "or",
            json!({"$or": [{"event_type": [{"prefix": "invoice."}]}, {"payload": {"tags": ["repeat"]}}]}),
            vec![1, 3],
        ),
        ("array-element", json!({"payload": {"tags": ["eu"]}}), vec![0]),
        ("channels", json!({"channels": ["vip"]}), vec![3]),
        ("null", json!({"payload": {"note": [null]}}), vec![2]),
        (
            "nested-and-type",
            json!({"event_type": ["order.created", "order.refunded"], "payload": {"customer": {"tier": ["gold"]}}}),
            vec![0, 2],
        ),
    ];
    for (name, filter, _) in &endpoints {
        let created = api
            .post(
                "/api/v1/app/shop/endpoint",
                json!({"url": receiver.url(&format!("/{name}")), "filter": filter}),
            )
            .await
            .expect(201);
        assert_eq!(&created["filter"], filter, "the filter is kept as saved");
    }
    let mut ids = Vec::new();
    for (event_type, channels, payload) in &stream {
        let message = api
            .post(
                "/api/v1/app/shop/msg",
                json!({"event_type": event_type, "channels": channels, "payload": payload}),
            )
            .await
            .expect(202);
        ids.push(id(&message));
    }
    let expected_total: usize = endpoints.iter().map(|(_, _, wanted)| wanted.len()).sum();
    receiver.wait_for(expected_total, WAIT).await;
    // Anything unexpected would arrive as fast as what was expected: give it time to.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = by_path(&receiver);
    for (name, _, wanted) in &endpoints {
        let expected: BTreeSet<String> = wanted.iter().map(|i| ids[*i].clone()).collect();
        assert_eq!(got.get(&format!("/{name}")).cloned().unwrap_or_default(), expected, "endpoint {name}");
    }
    assert_eq!(receiver.count(), expected_total, "each delivery once");

    // The message no endpoint wanted is stored and searchable all the same.
    let unmatched = api.get(&format!("/api/v1/app/shop/msg/{}", ids[4])).await.expect(200);
    assert_eq!(unmatched["payload"], json!({"unmatched": true}));
    let found = api.get("/api/v1/app/shop/msg?q=unmatched").await.expect(200);
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    let deliveries = api.get(&format!("/api/v1/app/shop/msg/{}/delivery", ids[4])).await.expect(200);
    assert_eq!(deliveries.as_array().unwrap().len(), 0, "{deliveries}");
}

async fn filters_are_validated_when_saved_and_tried_with_the_test_route(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;

    // A bad pattern is 422 with the path of the bad part, on create and on PATCH.
    let bad = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({"url": receiver.url("/x"), "filter": {"payload": {"amount": [{"numeric": [">", "ten"]}]}}}),
        )
        .await;
    assert_eq!(bad.error_locs(), ["body.filter.payload.amount.0.numeric"], "{}", bad.text);
    bad.expect_error(422, "validation_error");
    let unknown = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/x"), "filter": {"detail": {}}}))
        .await;
    assert_eq!(unknown.error_locs(), ["body.filter.detail"], "{}", unknown.text);
    let endpoint = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/big"), "filter": {"payload": {"amount": [{"numeric": [">=", 100]}]}}}))
        .await
        .expect(201);
    let path = format!("/api/v1/app/a/endpoint/{}", id(&endpoint));
    let patched = api.patch(&path, json!({"filter": {"payload": {"amount": [{"wildcard": "a**"}]}}})).await;
    assert_eq!(patched.error_locs(), ["body.filter.payload.amount.0.wildcard"], "{}", patched.text);
    assert_eq!(
        api.get(&path).await.expect(200)["filter"],
        json!({"payload": {"amount": [{"numeric": [">=", 100]}]}})
    );

    api.send_message("a", "order.created", json!({"amount": 5})).await;
    let big = api.send_message("a", "order.created", json!({"amount": 500})).await;
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].msg_id(), id(&big));
    // PATCH null removes the filter: every message again.
    assert_eq!(api.patch(&path, json!({"filter": null})).await.expect(200)["filter"], Value::Null);
    let small = api.send_message("a", "order.created", json!({"amount": 5})).await;
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(received[1].msg_id(), id(&small));

    // The test route: a match, a miss with the path where it stopped, and a bad pattern.
    let filter =
        json!({"event_type": [{"prefix": "invoice."}], "payload": {"amount": [{"numeric": [">", 100]}]}});
    let hit = api
        .post(
            "/api/v1/filter/test",
            json!({"filter": filter, "event_type": "invoice.paid", "payload": {"amount": 101}}),
        )
        .await
        .expect(200);
    assert_eq!(hit, json!({"matches": true}));
    let miss = api
        .post(
            "/api/v1/filter/test",
            json!({"filter": filter, "event_type": "invoice.paid", "payload": {"amount": 20}}),
        )
        .await
        .expect(200);
    assert_eq!(miss, json!({"matches": false, "failed_at": ["payload", "amount"]}));
    let wrong_type = api
        .post(
            "/api/v1/filter/test",
            json!({"filter": filter, "event_type": "order.paid", "payload": {"amount": 101}}),
        )
        .await
        .expect(200);
    assert_eq!(wrong_type["failed_at"], json!(["event_type"]));
    let headers = api
        .post(
            "/api/v1/filter/test",
            json!({"filter": {"headers": {"x-github-event": ["push"]}}, "event_type": "push",
                   "headers": {"X-GitHub-Event": "push"}}),
        )
        .await
        .expect(200);
    assert_eq!(headers["matches"], true);
    let refused = api
        .post("/api/v1/filter/test", json!({"filter": {"$or": [{"channels": ["a"]}]}, "event_type": "a.b"}))
        .await;
    assert_eq!(refused.error_locs(), ["body.filter.$or"], "{}", refused.text);
}

async fn a_filter_on_forwarded_headers_routes_received_webhooks(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.post(
        "/api/v1/app/a/endpoint",
        json!({"url": receiver.url("/pushes"), "filter": {"headers": {"x-github-event": ["push"]}}}),
    )
    .await
    .expect(201);
    let source = api
        .post(
            "/api/v1/source",
            json!({"name": "GitHub", "app": "a", "verification": {"type": "none"},
                   "event_type": {"header": "X-GitHub-Event"}, "forward_headers": ["X-GitHub-Event"]}),
        )
        .await
        .expect(201);
    let url = url::Url::parse(source["ingest_url"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::new();
    let mut accepted = BTreeMap::new();
    for event in ["issues", "push", "star"] {
        let answer = http
            .post(server.url(url.path()))
            .header("X-GitHub-Event", event)
            .header("content-type", "application/json")
            .body(format!(r#"{{"action": "{event}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
        let body: Value = answer.json().await.unwrap();
        accepted.insert(event, body["message"].as_str().unwrap().to_owned());
    }
    let received = receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 1, "only the push");
    assert_eq!(received[0].msg_id(), accepted["push"]);
}

async fn a_sources_filter_stores_only_the_requests_it_matches(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/all")).await;
    // Saved only when it compiles, on create and on PATCH, with the path of the bad part.
    let bad = json!({"payload": {"ref": [{"prefix": 5}]}});
    let refused = api
        .post(
            "/api/v1/source",
            json!({"name": "GitHub", "app": "a", "verification": {"type": "none"}, "filter": bad}),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.text);
    assert!(
        refused.error_locs().iter().any(|loc| loc.starts_with("body.filter.payload.ref")),
        "{}",
        refused.text
    );
    // Pushes to main only: all the request's headers are matched, not only forwarded ones.
    let filter =
        json!({"headers": {"x-github-event": ["push"]}, "payload": {"ref": [{"prefix": "refs/heads/main"}]}});
    let source = api
        .post(
            "/api/v1/source",
            json!({"name": "GitHub", "app": "a", "verification": {"type": "none"},
                   "event_type": {"header": "X-GitHub-Event"}, "filter": filter}),
        )
        .await
        .expect(201);
    assert_eq!(source["filter"], filter);
    let src = source["id"].as_str().unwrap().to_owned();
    let url = url::Url::parse(source["ingest_url"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::new();
    let send = |event: &'static str, git_ref: &'static str| {
        let request = http
            .post(server.url(url.path()))
            .header("X-GitHub-Event", event)
            .header("content-type", "application/json")
            .body(format!(r#"{{"ref": "{git_ref}"}}"#));
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }
    };
    let (status, main) = send("push", "refs/heads/main").await;
    assert_eq!(status, 202, "{main}");
    assert_eq!(main["filtered"], false);
    let stored = main["message"].as_str().unwrap().to_owned();
    for (event, git_ref) in [("push", "refs/heads/dev"), ("issues", "refs/heads/main")] {
        let (status, body) = send(event, git_ref).await;
        assert_eq!(
            (status, &body["filtered"], &body["message"]),
            (200, &json!(true), &Value::Null),
            "{body}"
        );
    }
    // Only the matching request became a message, and only it was delivered.
    let messages = api.get("/api/v1/app/a/msg").await.expect(200);
    let ids: Vec<&str> =
        messages["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [stored.as_str()]);
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].msg_id(), stored);
    // The request log says why the other two were not stored.
    let mut reasons = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while reasons.len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = api.get(&format!("/api/v1/source/{src}/request?outcome=filtered")).await.expect(200);
        reasons = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reason"].as_str().unwrap().to_owned())
            .collect();
    }
    reasons.sort();
    assert_eq!(reasons, ["filter: no match at headers.x-github-event", "filter: no match at payload.ref"]);
    assert_eq!(receiver.count(), 1, "nothing filtered was delivered");

    api.patch(&format!("/api/v1/source/{src}"), json!({"filter": bad})).await.expect(422);
    let removed = api.patch(&format!("/api/v1/source/{src}"), json!({"filter": null})).await.expect(200);
    assert_eq!(removed["filter"], Value::Null);
    let (status, dev) = send("push", "refs/heads/dev").await;
    assert_eq!(status, 202, "without the filter every verified request is stored: {dev}");
}

async fn replay_missing_sends_only_the_messages_the_filter_matches(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let mut sent = Vec::new();
    for amount in [5, 500, 7, 700] {
        sent.push(id(&api.send_message("a", "order.created", json!({"amount": amount})).await));
    }
    // Created after the messages: replaying the missing ones looks for those its filter takes.
    let endpoint = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/late"), "filter": {"payload": {"amount": [{"numeric": [">", 100]}]}}}))
        .await
        .expect(201);
    api.post(
        &format!("/api/v1/app/a/endpoint/{}/replay-missing", id(&endpoint)),
        json!({"since": "2020-01-01T00:00:00Z"}),
    )
    .await
    .expect(202);
    receiver.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got: BTreeSet<String> = receiver.received().iter().map(|r| r.msg_id().to_owned()).collect();
    assert_eq!(got, BTreeSet::from([sent[1].clone(), sent[3].clone()]));
}

async fn an_event_types_retry_schedule_applies_where_the_endpoint_has_none(db: Backend) {
    // The default schedule waits an hour: a retry within seconds comes from a shorter one.
    let server = TestServer::start_with(
        db,
        ServerOptions::default()
            .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
            .env("HOOKLINE_RETRY_SCHEDULE", "3600"),
    )
    .await;
    let fail_first = || {
        Receiver::start_with(
            std::sync::Arc::new(|_, before| if before == 0 { Reply::status(500) } else { Reply::ok() }),
            2,
        )
    };
    let (plain, own) = (fail_first(), fail_first());
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let refused =
        api.post("/api/v1/event-type", json!({"name": "order.created", "retry_schedule": [604_801]})).await;
    assert_eq!(refused.error_locs(), ["body.retry_schedule"], "{}", refused.text);
    let created = api
        .post("/api/v1/event-type", json!({"name": "order.created", "retry_schedule": [1, 1]}))
        .await
        .expect(201);
    assert_eq!(created["retry_schedule"], json!([1, 1]));
    api.create_endpoint("a", &plain.url("/plain")).await;
    api.post("/api/v1/app/a/endpoint", json!({"url": own.url("/own"), "retry_schedule": [3600]}))
        .await
        .expect(201);

    // Both fail the first attempt: the endpoint without a schedule retries on the type's (1 s),
    // the one with its own waits its hour.
    let order = api.send_message("a", "order.created", json!({"n": 1})).await;
    let retried = plain.wait_for(2, WAIT).await;
    assert!(retried.iter().all(|r| r.msg_id() == id(&order)));
    assert_eq!(retried[1].status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(own.count(), 1, "the endpoint's own schedule comes first");

    // Another type has no schedule: the default hour.
    api.send_message("a", "other.thing", json!({"n": 2})).await;
    plain.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(plain.count(), 3, "no retry within seconds on the default schedule");

    let patched =
        api.patch("/api/v1/event-type/order.created", json!({"retry_schedule": null})).await.expect(200);
    assert_eq!(patched["retry_schedule"], Value::Null);
}
