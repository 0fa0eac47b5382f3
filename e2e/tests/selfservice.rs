//! Self-service, black-box: log search with every filter (payload text included) on both
//! databases, resend, bulk recover and replay-missing with progress to completion, cancellation,
//! endpoint and tenant statistics, retention purge and expunge.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, Reply},
};
use serde_json::{Value, json};

both_databases!(
    message_search_filters_each_narrow_the_list,
    payload_search_answers_the_same_for_common_words,
    attempt_search_filters_by_outcome_class_message_and_time,
    bad_search_input_is_422_with_the_parameter_named,
    resend_makes_one_manual_attempt,
    recover_resends_failed_and_dead_deliveries_as_a_job,
    replay_missing_delivers_what_an_endpoint_never_got,
    a_cancelled_job_stops_and_hands_back_what_waited,
    endpoint_stats_count_outcomes_and_latency,
    tenant_stats_sum_every_endpoint_and_list_the_failing_and_disabled,
    retention_purges_payloads_and_bodies_and_expunge_removes_one,
);

const WAIT: Duration = Duration::from_secs(30);

fn options() -> ServerOptions {
    ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_RETRY_SCHEDULE", "1")
        // These tests fail many deliveries on purpose; the circuit breaker is tested elsewhere.
        .env("HOOKLINE_CIRCUIT_THRESHOLD", "1000")
}

/// The 1 h, 24 h and 7 d windows of a stats answer, each asserted to count these attempts.
fn windows_counting(stats: &Value, attempts: u64, succeeded: u64, failed: u64) -> Vec<Value> {
    let windows = stats["windows"].as_array().unwrap().clone();
    assert_eq!(
        windows.iter().map(|w| w["window"].as_str().unwrap()).collect::<Vec<_>>(),
        ["1h", "24h", "7d"]
    );
    for w in &windows {
        assert_eq!(
            (w["attempts"].as_u64(), w["succeeded"].as_u64(), w["failed"].as_u64()),
            (Some(attempts), Some(succeeded), Some(failed)),
            "{w}"
        );
    }
    windows
}

/// A time for a query string (`Z`, not `+00:00`, whose `+` would decode as a space).
fn t(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(id).collect()
}

/// Waits until the message has a delivery to every endpoint it goes to, none still in progress.
async fn settled(api: &Client, app: &str, msg: &str, deliveries: usize) -> Vec<Value> {
    until("deliveries to settle", async || {
        let list = api.get(&format!("/api/v1/app/{app}/msg/{msg}/delivery")).await.expect(200);
        let list = list.as_array().unwrap().clone();
        (list.len() == deliveries && list.iter().all(|d| d["status"] == "succeeded" || d["status"] == "dead"))
            .then_some(list)
    })
    .await
}

/// Wait for a job to have counted what it has to do (the request that creates a job only stores
/// it; its steps count, and `total` stays 0 until they have): a total, or the job finished.
async fn counted_job(api: &Client, job: &str) -> Value {
    until("the job to count", async || {
        let job = api.get(&format!("/api/v1/job/{job}")).await.expect(200);
        (job["total"] != 0 || job["state"] != "running").then_some(job)
    })
    .await
}

/// Wait for a job to leave `running`.
async fn finished_job(api: &Client, job: &str) -> Value {
    until("the job to finish", async || {
        let job = api.get(&format!("/api/v1/job/{job}")).await.expect(200);
        (job["state"] != "running").then_some(job)
    })
    .await
}

async fn message_search_filters_each_narrow_the_list(db: Backend) {
    search_scenario(db, options()).await;
}

/// The same searches when every word counts as common (SQLite then walks the messages and checks
/// each against the index, instead of walking the matches).
async fn payload_search_answers_the_same_for_common_words(db: Backend) {
    search_scenario(db, options().env("HOOKLINE_SEARCH_COMMON_WORD_MATCHES", "1")).await;
}

async fn search_scenario(db: Backend, options: ServerOptions) {
    let server = TestServer::start_with(db, options).await;
    // Endpoint "good" answers 200; "bad" always 500, so its deliveries die after one retry.
    let receiver = Receiver::start_with(
        Arc::new(|r, _| if r.path == "/bad" { Reply::status(500) } else { Reply::ok() }),
        2,
    );
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let good = id(&api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/good"), "uid": "good"}))
        .await
        .expect(201));
    api.post(
        "/api/v1/app/a/endpoint",
        json!({"url": receiver.url("/bad"), "uid": "bad", "filter_types": ["invoice.*"]}),
    )
    .await
    .expect(201);
    let before_all = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let invoice = id(&api
        .post(
            "/api/v1/app/a/msg",
            json!({"event_type": "invoice.paid", "payload": {"customer": "Zanzibar Trading", "total": 12},
                   "channels": ["eu"], "event_id": "inv-1"}),
        )
        .await
        .expect(202));
    let user = id(&api
        .post(
            "/api/v1/app/a/msg",
            json!({"event_type": "user.created", "payload": {"name": "Ada Lovelace"}, "channels": ["us"]}),
        )
        .await
        .expect(202));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refund = id(&api
        .post(
            "/api/v1/app/a/msg",
            json!({"event_type": "invoice.refunded", "payload": {"customer": "Ada Lovelace", "note": "zanzibar"}}),
        )
        .await
        .expect(202));
    settled(&api, "a", &invoice, 2).await;
    settled(&api, "a", &user, 1).await;
    settled(&api, "a", &refund, 2).await;

    let search = async |query: &str| ids(&api.get(&format!("/api/v1/app/a/msg?{query}")).await.expect(200));
    assert_eq!(search("").await, [refund.clone(), user.clone(), invoice.clone()], "newest first");
    assert_eq!(
        search("event_type=invoice.paid&event_type=invoice.refunded").await,
        [refund.clone(), invoice.clone()]
    );
    assert_eq!(search("channel=eu").await, vec![invoice.clone()]);
    assert_eq!(search("channel=us").await, vec![user.clone()]);
    assert_eq!(search("event_id=inv-1").await, vec![invoice.clone()]);
    // Payload text: words, any case, all required.
    assert_eq!(search("q=zanzibar").await, [refund.clone(), invoice.clone()]);
    assert_eq!(search("q=Ada").await, [refund.clone(), user.clone()]);
    assert_eq!(search("q=ada%20lovelace").await, [refund.clone(), user.clone()]);
    assert_eq!(search("q=ada%20zanzibar").await, vec![refund.clone()]);
    assert_eq!(search("q=nowhere").await, Vec::<String>::new());
    assert_eq!(search(&format!("q=zanzibar&after={}", t(middle))).await, vec![refund.clone()]);
    // Delivery state, and state at one endpoint.
    assert_eq!(search("status=dead").await, [refund.clone(), invoice.clone()]);
    assert_eq!(search("status=succeeded").await, [refund.clone(), user.clone(), invoice.clone()]);
    assert_eq!(search("status=succeeded&endpoint=bad").await, Vec::<String>::new());
    assert_eq!(search("status=dead&endpoint=bad").await, [refund.clone(), invoice.clone()]);
    assert_eq!(search(&format!("endpoint={good}")).await, [refund.clone(), user.clone(), invoice.clone()]);
    assert_eq!(search("status=pending").await, Vec::<String>::new());
    // Time range.
    assert_eq!(search(&format!("after={}", t(middle))).await, vec![refund.clone()]);
    assert_eq!(
        search(&format!("after={}&before={}", t(before_all), t(middle))).await,
        [user.clone(), invoice.clone()]
    );
    // Combined, and paged with the cursor.
    assert_eq!(search("q=zanzibar&status=dead&channel=eu").await, vec![invoice.clone()]);
    let first = api.get("/api/v1/app/a/msg?q=ada&limit=1").await.expect(200);
    assert_eq!(ids(&first), vec![refund.clone()]);
    assert_eq!(first["done"], false);
    let next = api
        .get(&format!("/api/v1/app/a/msg?q=ada&limit=1&iterator={}", first["iterator"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(ids(&next), vec![user.clone()]);
    assert_eq!(next["done"], true);
}

async fn attempt_search_filters_by_outcome_class_message_and_time(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(
        Arc::new(|r, _| match r.path.as_str() {
            "/teapot" => Reply::status(418),
            _ => Reply::ok(),
        }),
        2,
    );
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/ok"), "uid": "ok"})).await.expect(201);
    api.post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/teapot"), "uid": "teapot"}))
        .await
        .expect(201);
    let first = id(&api.send_message("a", "a.b", json!({})).await);
    settled(&api, "a", &first, 2).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = id(&api.send_message("a", "a.b", json!({})).await);
    settled(&api, "a", &second, 2).await;

    let attempts = async |query: &str| {
        api.get(&format!("/api/v1/app/a/attempt?{query}")).await.expect(200)["data"]
            .as_array()
            .unwrap()
            .clone()
    };
    // Two messages: each one 2xx at /ok, and two 4xx (first try and one retry) at /teapot.
    assert_eq!(attempts("").await.len(), 6);
    let ok = attempts("status_code_class=2xx").await;
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|a| a["response_status_code"] == 200));
    let teapots = attempts("status_code_class=4xx&endpoint=teapot").await;
    assert_eq!(teapots.len(), 4);
    assert!(teapots.iter().all(|a| a["response_status_code"] == 418 && a["status"] == "failed"));
    assert!(attempts("status_code_class=5xx").await.is_empty());
    assert_eq!(attempts("status=succeeded").await.len(), 2);
    let of_first = attempts(&format!("message={first}")).await;
    assert_eq!(of_first.len(), 3);
    assert!(of_first.iter().all(|a| a["message_id"] == first.as_str()));
    let late = attempts(&format!("after={}", t(middle))).await;
    assert_eq!(late.len(), 3);
    assert!(late.iter().all(|a| a["message_id"] == second.as_str()));
    assert_eq!(attempts(&format!("before={}", t(middle))).await.len(), 3);
}

async fn bad_search_input_is_422_with_the_parameter_named(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let cases = [
        ("/api/v1/app/a/msg?status=bogus", "query.status.0"),
        ("/api/v1/app/a/msg?after=yesterday", "query.after"),
        ("/api/v1/app/a/msg?limit=1000", "query.limit"),
        ("/api/v1/app/a/msg?iterator=not-a-cursor", "query.iterator"),
        ("/api/v1/app/a/msg?q=", "query.q"),
        ("/api/v1/app/a/msg?q=a&q=b", "query.q"),
        ("/api/v1/app/a/msg?colour=red", "query.colour"),
        ("/api/v1/app/a/attempt?status_code_class=6xx", "query.status_code_class"),
        ("/api/v1/app/a/attempt?status=maybe", "query.status"),
        ("/api/v1/app/a/attempt?message=nope", "query.message"),
    ];
    for (path, loc) in cases {
        let response = api.get(path).await;
        assert_eq!(response.status.as_u16(), 422, "{path}: {}", response.text);
        assert_eq!(response.body["code"], "validation_error", "{path}: {}", response.text);
        assert!(response.error_locs().contains(&loc.to_owned()), "{path}: {}", response.text);
    }
    // An inverted window is a search that matches nothing (docs/decisions.md, "The API contract").
    for list in ["msg", "attempt"] {
        let path = format!("/api/v1/app/a/{list}?after=2026-02-01T00:00:00Z&before=2026-01-01T00:00:00Z");
        let page = api.get(&path).await.expect(200);
        assert_eq!(page["data"], json!([]), "{path}");
    }
    // Quotes and FTS syntax in the search text are words, not syntax.
    api.get("/api/v1/app/a/msg?q=%22a%22%20OR%20NEAR(b*)%20-c%3A").await.expect(200);
    // Job windows.
    let ep = id(&api.create_endpoint("a", "https://example.com/h").await);
    api.post(
        &format!("/api/v1/app/a/endpoint/{ep}/recover"),
        json!({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
    )
    .await
    .expect(422);
    api.post(&format!("/api/v1/app/a/endpoint/{ep}/recover"), json!({"since": "2999-01-01T00:00:00Z"}))
        .await
        .expect(422);
    api.post(&format!("/api/v1/app/a/endpoint/{ep}/replay-missing"), json!({"since": "not a time"}))
        .await
        .expect(422);
    api.get("/api/v1/job/job_01ARZ3NDEKTSV4RRFFQ69G5FAV").await.expect(404);
}

async fn resend_makes_one_manual_attempt(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(Arc::new(|_, _| Reply::status(503)), 2);
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let ep = id(&api.create_endpoint("a", &receiver.url("/")).await);
    let msg = id(&api.send_message("a", "a.b", json!({"n": 1})).await);
    let dead = settled(&api, "a", &msg, 1).await;
    assert_eq!(dead[0]["status"], "dead");
    assert_eq!(receiver.count(), 2);

    receiver.set_behaviour(Arc::new(|_, _| Reply::ok()));
    let resent =
        api.post(&format!("/api/v1/app/a/msg/{msg}/endpoint/{ep}/resend"), json!({})).await.expect(202);
    assert_eq!(resent["status"], "pending");
    let done = until("the resend to succeed", async || {
        let d = api.get(&format!("/api/v1/app/a/msg/{msg}/delivery")).await.expect(200);
        (d[0]["status"] == "succeeded").then_some(d)
    })
    .await;
    assert_eq!(done[0]["attempt_count"], 3);
    assert_eq!(receiver.count(), 3, "exactly one more request");
    let attempts = api.get(&format!("/api/v1/app/a/msg/{msg}/attempt")).await.expect(200);
    assert_eq!(attempts["data"][0]["trigger"], "manual");
    assert_eq!(attempts["data"][1]["trigger"], "scheduled");

    // A failing manual attempt is not retried automatically.
    receiver.set_behaviour(Arc::new(|_, _| Reply::status(500)));
    api.post(&format!("/api/v1/app/a/msg/{msg}/endpoint/{ep}/resend"), json!({})).await.expect(202);
    until("the failed resend", async || {
        let d = api.get(&format!("/api/v1/app/a/msg/{msg}/delivery")).await.expect(200);
        (d[0]["status"] == "dead").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 4, "no automatic retry after a manual attempt");
    // Another tenant's message or endpoint id: 404.
    let other = server.tenant("other");
    other.create_app("A", Some("a")).await;
    other.post(&format!("/api/v1/app/a/msg/{msg}/endpoint/{ep}/resend"), json!({})).await.expect(404);
}

async fn recover_resends_failed_and_dead_deliveries_as_a_job(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(Arc::new(|_, _| Reply::status(500)), 2);
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let ep = id(&api.create_endpoint("a", &receiver.url("/")).await);
    let since = chrono::Utc::now();
    let mut sent = Vec::new();
    for n in 0..12 {
        sent.push(id(&api.send_message("a", "a.b", json!({"n": n})).await));
    }
    for msg in &sent {
        settled(&api, "a", msg, 1).await;
    }
    let before = receiver.count();
    assert_eq!(before, 24);
    receiver.set_behaviour(Arc::new(|_, _| Reply::ok()));
    let job =
        api.post(&format!("/api/v1/app/a/endpoint/{ep}/recover"), json!({"since": since})).await.expect(202);
    assert_eq!(job["kind"], "recover");
    assert_eq!(counted_job(&api, &id(&job)).await["total"], 12);
    let finished = finished_job(&api, &id(&job)).await;
    assert_eq!(finished["state"], "completed", "{finished}");
    assert_eq!((finished["done"].as_u64(), finished["failed"].as_u64()), (Some(12), Some(0)), "{finished}");
    // Every message exactly once more.
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for r in &receiver.received()[before..] {
        *per_message.entry(r.msg_id().to_owned()).or_default() += 1;
    }
    assert_eq!(per_message.len(), 12);
    assert!(per_message.values().all(|n| *n == 1), "{per_message:?}");
    // Nothing left to recover: a new job has nothing to do.
    let again =
        api.post(&format!("/api/v1/app/a/endpoint/{ep}/recover"), json!({"since": since})).await.expect(202);
    let again = finished_job(&api, &id(&again)).await;
    assert_eq!((again["total"].as_u64(), again["state"].as_str()), (Some(0), Some("completed")));
}

async fn replay_missing_delivers_what_an_endpoint_never_got(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let since = chrono::Utc::now();
    let mut orders = Vec::new();
    for n in 0..8 {
        orders.push(id(&api.send_message("a", "order.created", json!({"n": n})).await));
        api.send_message("a", "user.created", json!({"n": n})).await;
    }
    // Created later, for orders only: it missed all of them.
    let late = id(&api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/late"), "filter_types": ["order.*"]}))
        .await
        .expect(201));
    // One order it did get already (a resend), so it is not missing.
    api.post(&format!("/api/v1/app/a/msg/{}/endpoint/{late}/resend", orders[0]), json!({})).await.expect(202);
    receiver.wait_for(1, WAIT).await;
    let job = api
        .post(&format!("/api/v1/app/a/endpoint/{late}/replay-missing"), json!({"since": since}))
        .await
        .expect(202);
    let counted = counted_job(&api, &id(&job)).await;
    assert_eq!(counted["total"], 7, "{counted}");
    let finished = finished_job(&api, &id(&job)).await;
    assert_eq!(finished["state"], "completed", "{finished}");
    assert_eq!(finished["done"], 7, "{finished}");
    let received = receiver.wait_for(8, WAIT).await;
    let mut got: Vec<String> = received.iter().map(|r| r.msg_id().to_owned()).collect();
    got.sort();
    let mut expected = orders.clone();
    expected.sort();
    assert_eq!(got, expected, "every order once, no user event");
    let again = api
        .post(&format!("/api/v1/app/a/endpoint/{late}/replay-missing"), json!({"since": since}))
        .await
        .expect(202);
    assert_eq!(finished_job(&api, &id(&again)).await["total"], 0);
}

async fn a_cancelled_job_stops_and_hands_back_what_waited(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(Arc::new(|_, _| Reply::status(500)), 2);
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let ep = id(&api.create_endpoint("a", &receiver.url("/")).await);
    let since = chrono::Utc::now();
    let mut sent = Vec::new();
    for n in 0..10 {
        sent.push(id(&api.send_message("a", "a.b", json!({"n": n})).await));
    }
    // Every request fails: each delivery settles as dead.
    for msg in &sent {
        settled(&api, "a", msg, 1).await;
    }
    receiver.set_behaviour(Arc::new(|_, _| Reply::ok()));
    // One delivery a second from now on: the job is slow enough to cancel.
    api.patch(&format!("/api/v1/app/a/endpoint/{ep}"), json!({"rate_limit": 1})).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = receiver.count();
    let job =
        api.post(&format!("/api/v1/app/a/endpoint/{ep}/recover"), json!({"since": since})).await.expect(202);
    assert_eq!(counted_job(&api, &id(&job)).await["total"], 10);
    until("the first recovered delivery", async || (receiver.count() > before).then_some(())).await;
    let cancelled = api.post(&format!("/api/v1/job/{}/cancel", id(&job)), json!({})).await.expect(200);
    assert_eq!(cancelled["state"], "cancelled");
    api.post(&format!("/api/v1/job/{}/cancel", id(&job)), json!({})).await.expect_error(409, "job_finished");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sent_by_job = receiver.count() - before;
    assert!(sent_by_job < 10, "the job went on after cancellation: {sent_by_job}");
    let job = api.get(&format!("/api/v1/job/{}", id(&job))).await.expect(200);
    assert_eq!(job["state"], "cancelled");
    // What the job never sent is dead again, not pending.
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for msg in &sent {
        let d = api.get(&format!("/api/v1/app/a/msg/{msg}/delivery")).await.expect(200);
        *statuses.entry(d[0]["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(statuses.get("succeeded").copied().unwrap_or(0), sent_by_job, "{statuses:?}");
    assert_eq!(statuses.get("dead").copied().unwrap_or(0), 10 - sent_by_job, "{statuses:?}");
}

async fn endpoint_stats_count_outcomes_and_latency(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(
        Arc::new(|r, _| {
            if r.json()["fail"] == true {
                Reply::status(500)
            } else {
                Reply::ok().after(Duration::from_millis(30))
            }
        }),
        4,
    );
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let ep = id(&api.create_endpoint("a", &receiver.url("/")).await);
    let mut sent = Vec::new();
    for n in 0..6 {
        sent.push(id(&api.send_message("a", "a.b", json!({"fail": n == 0})).await));
    }
    for msg in &sent {
        settled(&api, "a", msg, 1).await;
    }
    let stats = api.get(&format!("/api/v1/app/a/endpoint/{ep}/stats")).await.expect(200);
    // Five successes; the failing message tried twice.
    for w in windows_counting(&stats, 7, 5, 2) {
        assert!(w["p50_ms"].as_u64().unwrap() >= 30, "{w}");
        assert!(w["p95_ms"].as_u64().unwrap() >= w["p50_ms"].as_u64().unwrap(), "{w}");
        assert_eq!(w["deliveries"]["succeeded"], 5, "{w}");
        assert_eq!(w["deliveries"]["dead"], 1, "{w}");
    }
}

fn alert_ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|a| a["endpoint_id"].as_str().unwrap().to_owned()).collect()
}

async fn tenant_stats_sum_every_endpoint_and_list_the_failing_and_disabled(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start_with(
        Arc::new(|r, _| {
            if r.path == "/fail" { Reply::status(500) } else { Reply::ok().after(Duration::from_millis(10)) }
        }),
        4,
    );
    let api = server.tenant("acme");
    let app = id(&api.create_app("A", Some("a")).await);
    let ok = id(&api.create_endpoint("a", &receiver.url("/ok")).await);
    let failing = id(&api.create_endpoint("a", &receiver.url("/fail")).await);
    let mut sent = Vec::new();
    for n in 0..4 {
        sent.push(id(&api.send_message("a", "a.b", json!({"n": n})).await));
    }
    for msg in &sent {
        settled(&api, "a", msg, 2).await;
    }
    // Created afterwards, so it has no deliveries; then disabled by hand.
    let disabled = id(&api.create_endpoint("a", &receiver.url("/off")).await);
    api.patch(&format!("/api/v1/app/a/endpoint/{disabled}"), json!({"disabled": true})).await.expect(200);

    let stats = api.get("/api/v1/stats").await.expect(200);
    // Four successes; four failing messages tried twice each.
    for w in windows_counting(&stats, 12, 4, 8) {
        assert!((w["success_rate"].as_f64().unwrap() - 4.0 / 12.0).abs() < 1e-9, "{w}");
        assert!(w["p50_ms"].is_u64(), "{w}");
        assert!(w["p95_ms"].as_u64().unwrap() >= w["p50_ms"].as_u64().unwrap(), "{w}");
        assert_eq!(
            (w["deliveries"]["succeeded"].as_u64(), w["deliveries"]["dead"].as_u64()),
            (Some(4), Some(4)),
            "{w}"
        );
    }
    let hourly = stats["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 24, "{stats}");
    let starts: Vec<chrono::DateTime<chrono::Utc>> =
        hourly.iter().map(|b| b["start"].as_str().unwrap().parse().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] == chrono::Duration::hours(1)), "{starts:?}");
    let now = chrono::Utc::now();
    assert!(starts[23] <= now && now - starts[23] < chrono::Duration::hours(1), "the current hour is last");
    let sum = |field: &str| hourly.iter().map(|b| b[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("succeeded"), sum("failed")), (4, 8), "the hours add up to the 24h window");

    let failing_list = &stats["failing_endpoints"];
    assert_eq!(alert_ids(failing_list), std::slice::from_ref(&failing), "{stats}");
    let alert = &failing_list[0];
    assert_eq!(alert["app_id"], app.as_str());
    assert_eq!(alert["url"], receiver.url("/fail"));
    assert_eq!(alert["consecutive_failures"], 8, "{alert}");
    assert!(alert["failing_since"].is_string(), "{alert}");
    assert!(alert["disabled_reason"].is_null(), "{alert}");
    assert_eq!(alert_ids(&stats["disabled_endpoints"]), std::slice::from_ref(&disabled), "{stats}");
    assert_eq!(stats["disabled_endpoints"][0]["consecutive_failures"], 0, "{stats}");
    assert!(!alert_ids(failing_list).contains(&ok));

    // Another tenant sees its own (empty) numbers; a portal token sees nothing.
    let other = server.tenant("other");
    let theirs = other.get("/api/v1/stats").await.expect(200);
    for w in theirs["windows"].as_array().unwrap() {
        assert_eq!(w["attempts"], 0, "{theirs}");
        assert!(w["success_rate"].is_null() && w["p50_ms"].is_null(), "{theirs}");
        assert!(w["deliveries"].as_object().unwrap().values().all(|n| n == 0), "{theirs}");
    }
    let hours = theirs["hourly"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert!(hours.iter().all(|b| b["succeeded"] == 0 && b["failed"] == 0), "{theirs}");
    assert_eq!(
        (
            theirs["failing_endpoints"].as_array().unwrap().len(),
            theirs["disabled_endpoints"].as_array().unwrap().len()
        ),
        (0, 0),
        "{theirs}"
    );
    let minted = api.post("/api/v1/app/a/portal-token", json!({})).await.expect(201);
    server
        .client_with_key(minted["token"].as_str().unwrap())
        .get("/api/v1/stats")
        .await
        .expect_error(404, "not_found");
}

async fn retention_purges_payloads_and_bodies_and_expunge_removes_one(db: Backend) {
    let server =
        TestServer::start_with(db, options().env("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", "1")).await;
    let receiver =
        Receiver::start_with(Arc::new(|_, _| Reply::ok().json(json!({"received": "body-marker"}))), 2);
    let keep = server.tenant("keeper");
    let purge = server.tenant("purged");
    for api in [&keep, &purge] {
        api.create_app("A", Some("a")).await;
        api.create_endpoint("a", &receiver.url("/")).await;
    }
    let kept = id(&keep.send_message("a", "a.b", json!({"secret": "kept-payload"})).await);
    let expunged = id(&keep.send_message("a", "a.b", json!({"secret": "expunged-payload"})).await);
    let gone = id(&purge.send_message("a", "a.b", json!({"secret": "purged-payload"})).await);
    settled(&keep, "a", &kept, 1).await;
    settled(&keep, "a", &expunged, 1).await;
    settled(&purge, "a", &gone, 1).await;

    keep.delete(&format!("/api/v1/app/a/msg/{expunged}/content")).await.expect(204);
    let message = keep.get(&format!("/api/v1/app/a/msg/{expunged}")).await.expect(200);
    assert_eq!(message["payload"], Value::Null, "{message}");
    assert_eq!(message["event_type"], "a.b", "the metadata stays");
    assert!(
        ids(&keep.get("/api/v1/app/a/msg?q=expunged").await.expect(200)).is_empty(),
        "the search index forgot it"
    );

    // Retention 0 days for one tenant: the next maintenance run purges it, and only it.
    let tenant_id = {
        let me = purge.get("/api/v1/app/a").await.expect(200);
        assert!(me["id"].is_string());
        // The CLI takes the tenant's name.
        "purged"
    };
    server.cli(&["plan", "set", "--tenant", tenant_id, "--plan", "free", "--retention-days", "0"]);
    until("the purge", async || {
        let m = purge.get(&format!("/api/v1/app/a/msg/{gone}")).await.expect(200);
        m["payload"].is_null().then_some(())
    })
    .await;
    let attempts = until("attempt bodies to be cleared", async || {
        let a = purge.get(&format!("/api/v1/app/a/msg/{gone}/attempt")).await.expect(200);
        a["data"][0]["response_body"].is_null().then_some(a)
    })
    .await;
    assert_eq!(attempts["data"][0]["response_status_code"], 200, "attempt metadata stays");
    assert!(ids(&purge.get("/api/v1/app/a/msg?q=purged").await.expect(200)).is_empty());
    assert_eq!(
        ids(&purge.get("/api/v1/app/a/msg").await.expect(200)),
        vec![gone.clone()],
        "the message stays"
    );
    // The other tenant keeps everything.
    let message = keep.get(&format!("/api/v1/app/a/msg/{kept}")).await.expect(200);
    assert_eq!(message["payload"]["secret"], "kept-payload");
    let attempts = keep.get(&format!("/api/v1/app/a/msg/{kept}/attempt")).await.expect(200);
    assert!(attempts["data"][0]["response_body"].as_str().unwrap().contains("body-marker"));
    assert_eq!(ids(&keep.get("/api/v1/app/a/msg?q=kept").await.expect(200)), [kept]);
}
