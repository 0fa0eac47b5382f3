//! Receiving webhooks, black-box: inbound sources on the real binary, providers simulated by
//! signed requests from the test, the application's endpoint a recording receiver on
//! 127.0.0.1; on SQLite and PostgreSQL.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, verify_signature},
};
use serde_json::{Value, json};
use sha2::Sha256;

both_databases!(
    every_scheme_accepts_a_correctly_signed_request_and_rejects_a_wrong_one,
    a_timestamp_outside_the_tolerance_is_rejected,
    the_same_event_id_twice_is_one_message_and_the_second_answer_says_duplicate,
    an_event_id_is_a_duplicate_only_within_the_sources_dedup_window,
    past_the_burst_requests_get_429_with_retry_after,
    a_body_over_the_limit_gets_413_declared_or_streamed,
    an_accepted_request_reaches_the_endpoint_signed_with_standard_webhooks_and_forwarded_headers,
    a_stale_ordered_event_is_kept_but_not_delivered,
    unknown_tokens_are_404_disabled_sources_410_and_rotation_keeps_the_old_url_working,
    the_request_log_shows_outcomes_and_redacts_credentials,
    a_v1a_sources_test_request_says_it_cannot_be_signed_and_is_rejected,
    handshakes_are_answered,
    the_free_plan_has_one_source_and_inbound_requests_are_metered,
    a_kill_during_an_inbound_burst_loses_no_request_that_got_a_2xx,
);

const WAIT: Duration = Duration::from_secs(30);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
}

fn hmac_sha256(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// GitHub's headers for `body` from a source whose secret is `s`.
fn github_headers(body: &[u8], delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Hub-Signature-256", format!("sha256={}", hex(&hmac_sha256(b"s", body)))),
        ("X-GitHub-Delivery", delivery.to_owned()),
    ]
}

/// The path of a source's ingest URL (the URL's host is `HOOKLINE_PUBLIC_URL`).
fn ingest_path(source: &Value) -> String {
    let url = url::Url::parse(source["ingest_url"].as_str().unwrap()).unwrap();
    assert!(url.path().starts_with("/in/"), "{url}");
    url.path().to_owned()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

/// Sends `body` to the ingest path with `headers`, as a provider would.
async fn deliver(server: &TestServer, path: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    send(server, reqwest::Method::POST, path, headers, body.to_vec()).await
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method, server.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

/// POSTs chunks of spaces with `Transfer-Encoding: chunked` (no Content-Length) over a plain
/// TCP connection; returns the answer's status.
async fn chunked_post(server: &TestServer, path: &str, chunks: &[usize]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(&server.url(path)).unwrap();
    let address = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    for size in chunks {
        let chunk = format!("{size:x}\r\n{}\r\n", " ".repeat(*size));
        // The server may answer and close before the last chunk.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The headers of a `…/test-request` answer, as [`deliver`] takes them.
fn test_request_headers(example: &Value) -> Vec<(&str, String)> {
    example["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_owned()))
        .collect()
}

async fn create_source(api: &Client, body: Value) -> Value {
    api.post("/api/v1/source", body).await.expect(201)
}

/// Waits until the source's request log holds `n` rows and returns them (newest first).
async fn wait_requests(api: &Client, source: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = api.get(&format!("/api/v1/source/{source}/request?limit=100")).await.expect(200);
        let rows = page["data"].as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        assert!(Instant::now() < deadline, "{} of {n} request log rows: {rows:?}", rows.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Headers that sign a body.
type Signer = dyn Fn(&[u8]) -> Vec<(&'static str, String)>;

/// One scheme: the source's verification, a function that signs a body correctly, and one
/// that signs it wrongly.
struct Case {
    verification: Value,
    good: Box<Signer>,
    bad: Box<Signer>,
    code: &'static str,
}

async fn every_scheme_accepts_a_correctly_signed_request_and_rejects_a_wrong_one(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let whsec_key = b"0123456789abcdef0123456789abcdef".to_vec();
    let whsec = format!("whsec_{}", STANDARD.encode(&whsec_key));
    let ed_key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let whpk = format!("whpk_{}", STANDARD.encode(ed_key.verifying_key().to_bytes()));
    let standard = |key: Vec<u8>| {
        move |body: &[u8]| {
            let (msg, ts) = (format!("msg_{}", ulid::Ulid::generate()), now().to_string());
            let sig = STANDARD.encode(hmac_sha256(&key, &[format!("{msg}.{ts}.").as_bytes(), body].concat()));
            vec![("webhook-id", msg), ("webhook-timestamp", ts), ("webhook-signature", format!("v1,{sig}"))]
        }
    };
    let v1a = {
        let key = ed_key.clone();
        move |body: &[u8]| {
            use ed25519_dalek::Signer;
            let (msg, ts) = (format!("msg_{}", ulid::Ulid::generate()), now().to_string());
            let sig = key.sign(&[format!("{msg}.{ts}.").as_bytes(), body].concat());
            vec![
                ("webhook-id", msg),
                ("webhook-timestamp", ts),
                ("webhook-signature", format!("v1a,{}", STANDARD.encode(sig.to_bytes()))),
            ]
        }
    };
    let stripe = |secret: &'static str| {
        move |body: &[u8]| {
            let ts = now();
            let sig = hex(&hmac_sha256(secret.as_bytes(), &[format!("{ts}.").as_bytes(), body].concat()));
            vec![("Stripe-Signature", format!("t={ts},v1={sig}"))]
        }
    };
    let github = |secret: &'static str| {
        move |body: &[u8]| {
            vec![
                ("X-Hub-Signature-256", format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body)))),
                ("X-GitHub-Delivery", ulid::Ulid::generate().to_string()),
            ]
        }
    };
    let shopify = |secret: &'static str| {
        move |body: &[u8]| {
            vec![("X-Shopify-Hmac-Sha256", STANDARD.encode(hmac_sha256(secret.as_bytes(), body)))]
        }
    };
    let slack = |secret: &'static str| {
        move |body: &[u8]| {
            let ts = now().to_string();
            let sig = hex(&hmac_sha256(secret.as_bytes(), &[format!("v0:{ts}:").as_bytes(), body].concat()));
            vec![("X-Slack-Signature", format!("v0={sig}")), ("X-Slack-Request-Timestamp", ts)]
        }
    };
    let basic = |user: &'static str, password: &'static str| {
        move |_: &[u8]| {
            vec![("Authorization", format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))]
        }
    };
    let cases: Vec<(&str, Case)> = vec![
        (
            "standard_webhooks",
            Case {
                verification: json!({"type": "standard_webhooks", "secret": whsec}),
                good: Box::new(standard(whsec_key.clone())),
                bad: Box::new(standard(b"another key".to_vec())),
                code: "signature_mismatch",
            },
        ),
        (
            "standard_webhooks_v1a",
            Case {
                verification: json!({"type": "standard_webhooks", "public_key": whpk}),
                good: Box::new(v1a),
                bad: Box::new(standard(whsec_key.clone())),
                code: "signature_mismatch",
            },
        ),
        (
            "stripe",
            Case {
                verification: json!({"type": "stripe", "secret": "whsec_stripe_test"}),
                good: Box::new(stripe("whsec_stripe_test")),
                bad: Box::new(stripe("whsec_other")),
                code: "signature_mismatch",
            },
        ),
        (
            "github",
            Case {
                verification: json!({"type": "github", "secret": "gh-secret"}),
                good: Box::new(github("gh-secret")),
                bad: Box::new(github("gh-other")),
                code: "signature_mismatch",
            },
        ),
        (
            "shopify",
            Case {
                verification: json!({"type": "shopify", "secret": "shpss_1"}),
                good: Box::new(shopify("shpss_1")),
                bad: Box::new(|_: &[u8]| Vec::new()),
                code: "signature_missing",
            },
        ),
        (
            "hmac",
            Case {
                verification: json!({"type": "hmac", "secret": "slack-secret", "header": "X-Slack-Signature",
                    "prefix": "v0=", "template": "v0:{timestamp}:{body}", "timestamp_header": "X-Slack-Request-Timestamp"}),
                good: Box::new(slack("slack-secret")),
                bad: Box::new(slack("not-slack")),
                code: "signature_mismatch",
            },
        ),
        (
            "basic",
            Case {
                verification: json!({"type": "basic", "username": "prov", "password": "pw-123"}),
                good: Box::new(basic("prov", "pw-123")),
                bad: Box::new(basic("prov", "pw-124")),
                code: "credentials_invalid",
            },
        ),
        (
            "api_key",
            Case {
                verification: json!({"type": "api_key", "header": "X-Api-Key", "value": "k".repeat(24)}),
                good: Box::new(|_: &[u8]| vec![("X-Api-Key", "k".repeat(24))]),
                bad: Box::new(|_: &[u8]| vec![("X-Api-Key", "k".repeat(23))]),
                code: "credentials_invalid",
            },
        ),
    ];
    let mut expected_messages = cases.len() + 1;
    for (name, case) in &cases {
        let source =
            create_source(&api, json!({"name": name, "app": "a", "verification": case.verification})).await;
        assert_eq!(
            source["verification"]["type"],
            if *name == "standard_webhooks_v1a" { "standard_webhooks" } else { name }
        );
        assert!(source["verification"].get("secret").is_none(), "secrets are write-only: {source}");
        let path = ingest_path(&source);
        let body = format!(r#"{{"id":"evt_{name}","n":1}}"#).into_bytes();
        let good = deliver(&server, &path, &(case.good)(&body), &body).await;
        assert_eq!(good.status, 202, "{name}: {}", good.text);
        assert!(good.body["message"].as_str().unwrap().starts_with("msg_"), "{name}: {}", good.text);
        let bad_body = format!(r#"{{"id":"evt_{name}_bad","n":2}}"#).into_bytes();
        let bad = deliver(&server, &path, &(case.bad)(&bad_body), &bad_body).await;
        assert_eq!(bad.status, 401, "{name}: {}", bad.text);
        assert_eq!(bad.body["code"], case.code, "{name}");
        // The right signature over another body does not pass either.
        let tampered = deliver(&server, &path, &(case.good)(&body), &bad_body).await;
        if matches!(*name, "basic" | "api_key") {
            // Credentials do not cover the body: the request is accepted.
            assert_eq!(tampered.status, 202, "{name}");
            expected_messages += 1;
        } else {
            assert_eq!(tampered.status, 401, "{name}: a signature over another body");
        }
    }
    // `none` accepts anything.
    let open =
        create_source(&api, json!({"name": "open", "app": "a", "verification": {"type": "none"}})).await;
    assert_eq!(deliver(&server, &ingest_path(&open), &[], b"{}").await.status, 202);
    // Each accepted request is one message of the application.
    let messages = hookline_e2e::count_all(&api, "/api/v1/app/a/msg").await;
    assert_eq!(messages, expected_messages);
}

async fn a_timestamp_outside_the_tolerance_is_rejected(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "stripe", "app": "a", "verification": {"type": "stripe", "secret": "whsec_s", "tolerance_seconds": 60}}),
    )
    .await;
    assert_eq!(source["verification"]["tolerance_seconds"], 60);
    let path = ingest_path(&source);
    let body = br#"{"id":"evt_1"}"#;
    for (offset, expected) in [(-120, 401), (120, 401), (-30, 202)] {
        let ts = now() + offset;
        let sig = hex(&hmac_sha256(b"whsec_s", &[format!("{ts}.").as_bytes(), body.as_slice()].concat()));
        let answer = deliver(&server, &path, &[("Stripe-Signature", format!("t={ts},v1={sig}"))], body).await;
        assert_eq!(answer.status, expected, "offset {offset}: {}", answer.text);
        if expected == 401 {
            assert_eq!(answer.body["code"], "timestamp_out_of_tolerance");
        }
    }
}

async fn the_same_event_id_twice_is_one_message_and_the_second_answer_says_duplicate(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/in")).await;
    let source = create_source(
        &api,
        json!({"name": "gh", "app": "a", "verification": {"type": "github", "secret": "s"}}),
    )
    .await;
    let path = ingest_path(&source);
    let body = br#"{"action":"opened"}"#;
    let headers = github_headers(body, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    let first = deliver(&server, &path, &headers, body).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let second = deliver(&server, &path, &headers, body).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(
        second.body,
        json!({"message": first.body["message"], "duplicate": true, "stale": false, "filtered": false})
    );
    // Ten concurrent repeats: still one message.
    let repeats: Vec<_> = (0..10).map(|_| deliver(&server, &path, &headers, body)).collect();
    for answer in futures_util::future::join_all(repeats).await {
        assert_eq!((answer.status, answer.body["duplicate"].clone()), (200, json!(true)), "{}", answer.text);
        assert_eq!(answer.body["message"], first.body["message"]);
    }
    assert_eq!(hookline_e2e::count_all(&api, "/api/v1/app/a/msg").await, 1);
    let message =
        api.get(&format!("/api/v1/app/a/msg/{}", first.body["message"].as_str().unwrap())).await.expect(200);
    assert_eq!(message["event_id"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "delivered once");
    let log = wait_requests(&api, id(&source).as_str(), 12).await;
    let duplicates = log.iter().filter(|r| r["outcome"] == "duplicate").count();
    assert_eq!(duplicates, 11, "{log:?}");
    // The message names the request that became it — the accepted one, not a duplicate naming it.
    let accepted: Vec<&Value> = log.iter().filter(|r| r["outcome"] == "accepted").collect();
    assert_eq!(accepted.len(), 1, "{log:?}");
    let message_path = format!("/api/v1/app/a/msg/{}", first.body["message"].as_str().unwrap());
    let message = api.get(&message_path).await.expect(200);
    assert_eq!(
        message["received_by"],
        json!({"source_id": id(&source), "source_name": "gh", "request_id": accepted[0]["id"]}),
        "{message}"
    );
    // A portal token reads the message but not the tenant's sources.
    let token = api.post("/api/v1/app/a/portal-token", json!({})).await.expect(201);
    let portal = server.client_with_key(token["token"].as_str().unwrap());
    let seen = portal.get(&message_path).await.expect(200);
    assert!(seen.get("received_by").is_none(), "{seen}");
    assert_eq!(seen["id"], first.body["message"], "{seen}");
}

/// `HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS` (7 days by default, 2 s here): a provider's retry
/// within it is a duplicate; the same id after it is a new event.
async fn an_event_id_is_a_duplicate_only_within_the_sources_dedup_window(db: Backend) {
    let server = TestServer::start_with(db, options().env("HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS", "2")).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "gh", "app": "a", "verification": {"type": "github", "secret": "s"}}),
    )
    .await;
    let path = ingest_path(&source);
    let body = br#"{"action":"opened"}"#;
    let headers = github_headers(body, "d-1");
    let first = deliver(&server, &path, &headers, body).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let repeat = deliver(&server, &path, &headers, body).await;
    assert_eq!((repeat.status, repeat.body["duplicate"].clone()), (200, json!(true)), "{}", repeat.text);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let later = deliver(&server, &path, &headers, body).await;
    assert_eq!(later.status, 202, "past the window: a new event; {}", later.text);
    assert_ne!(later.body["message"], first.body["message"]);
    let again = deliver(&server, &path, &headers, body).await;
    assert_eq!(
        (again.status, again.body["message"].clone()),
        (200, later.body["message"].clone()),
        "{}",
        again.text
    );
    assert_eq!(hookline_e2e::count_all(&api, "/api/v1/app/a/msg").await, 2);
}

async fn past_the_burst_requests_get_429_with_retry_after(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "limited", "app": "a", "verification": {"type": "none"}, "rate_limit": 1, "burst": 3}),
    )
    .await;
    let path = ingest_path(&source);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..6 {
        let answer = deliver(&server, &path, &[], format!("{{\"n\":{n}}}").as_bytes()).await;
        if answer.status == 429 {
            assert_eq!(answer.body["code"], "rate_limited");
            retry_after = answer.headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(answer.status);
    }
    assert_eq!(&statuses[..3], &[202, 202, 202], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(deliver(&server, &path, &[], b"{\"n\":9}").await.status, 202, "a token came back");
}

async fn a_body_over_the_limit_gets_413_declared_or_streamed(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "small", "app": "a", "verification": {"type": "none"}, "max_body_bytes": 1000}),
    )
    .await;
    assert_eq!(source["max_body_bytes"], 1000);
    let path = ingest_path(&source);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let declared =
        deliver(&server, &path, &[("content-type", "application/json".to_owned())], big.as_bytes()).await;
    assert_eq!(declared.status, 413, "{}", declared.text);
    assert_eq!(declared.body["code"], "payload_too_large");
    // Without a Content-Length (chunked): refused once the limit is passed.
    let status = chunked_post(&server, &path, &[600, 600]).await;
    assert_eq!(status, 413);
    let fits = deliver(&server, &path, &[], format!("{{\"pad\":\"{}\"}}", "x".repeat(900)).as_bytes()).await;
    assert_eq!(fits.status, 202);
    // Above the plan's limit: refused when saved.
    let over = api
        .post(
            "/api/v1/source",
            json!({"name": "huge", "app": "a", "verification": {"type": "none"}, "max_body_bytes": 1_000_000_000u64}),
        )
        .await
        .expect(422);
    assert_eq!(over["errors"][0]["loc"], json!(["body", "max_body_bytes"]));
}

async fn an_accepted_request_reaches_the_endpoint_signed_with_standard_webhooks_and_forwarded_headers(
    db: Backend,
) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = api.create_endpoint("a", &receiver.url("/mine")).await;
    let secret =
        api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200)["key"]
            .as_str()
            .unwrap()
            .to_owned();
    let source = create_source(
        &api,
        json!({"name": "GitHub", "app": "a", "verification": {"type": "github", "secret": "s"},
               "event_type": {"header": "X-GitHub-Event"}, "forward_headers": ["X-GitHub-Event", "X-GitHub-Hook-ID"]}),
    )
    .await;
    // Spacing and key order as the provider sent them: the endpoint gets the same bytes.
    let body = b"{ \"zen\" : \"Keep it logically awesome.\",\n  \"hook_id\": 12 }";
    let mut headers = github_headers(body, "d-1");
    headers.extend([
        ("X-GitHub-Event", "ping".to_owned()),
        ("X-GitHub-Hook-ID", "12".to_owned()),
        ("X-Not-Forwarded", "no".to_owned()),
        ("content-type", "application/json".to_owned()),
    ]);
    let answer = deliver(&server, &ingest_path(&source), &headers, body).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let received = receiver.wait_for(1, WAIT).await;
    let request = &received[0];
    assert_eq!(request.body, body.to_vec(), "the exact bytes");
    assert!(verify_signature(&secret, request), "signed with the endpoint's Standard Webhooks secret");
    assert_eq!(request.msg_id(), answer.body["message"].as_str().unwrap());
    assert_eq!(request.header("x-github-event"), Some("ping"));
    assert_eq!(request.header("x-github-hook-id"), Some("12"));
    assert_eq!(request.header("x-not-forwarded"), None);
    assert_eq!(request.header("x-hub-signature-256"), None, "the provider's signature stays here");
    let message = api.get(&format!("/api/v1/app/a/msg/{}", request.msg_id())).await.expect(200);
    assert_eq!(message["event_type"], "ping");
    assert_eq!(message["payload"], json!({"zen": "Keep it logically awesome.", "hook_id": 12}));
    // The payload is searchable like any message's.
    let found = api.get("/api/v1/app/a/msg?q=logically").await.expect(200);
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
}

async fn a_stale_ordered_event_is_kept_but_not_delivered(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/orders")).await;
    let source = create_source(
        &api,
        json!({"name": "orders", "app": "a", "verification": {"type": "none"}, "event_id": {"pointer": "/id"},
               "ordering": {"sequence": {"pointer": "/updated_at"}, "key": {"pointer": "/order"}}}),
    )
    .await;
    let path = ingest_path(&source);
    let event = |id: &str, order: &str, at: &str| {
        json!({"id": id, "order": order, "updated_at": at}).to_string().into_bytes()
    };
    assert_eq!(deliver(&server, &path, &[], &event("e1", "o1", "2026-12-06T10:00:00Z")).await.status, 202);
    assert_eq!(deliver(&server, &path, &[], &event("e2", "o1", "2026-12-06T10:05:00Z")).await.status, 202);
    let stale = deliver(&server, &path, &[], &event("e3", "o1", "2026-12-06T10:01:00Z")).await;
    assert_eq!((stale.status, stale.body["stale"].clone()), (200, json!(true)), "{}", stale.text);
    // Another key has its own order.
    assert_eq!(deliver(&server, &path, &[], &event("e4", "o2", "2026-12-06T09:00:00Z")).await.status, 202);
    receiver.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: HashSet<String> =
        receiver.received().iter().map(|r| r.json()["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, HashSet::from(["e1".to_owned(), "e2".to_owned(), "e4".to_owned()]));
    let log = wait_requests(&api, &id(&source), 4).await;
    let stale_row = log.iter().find(|r| r["outcome"] == "stale").expect("a stale row");
    assert!(stale_row["body"].as_str().unwrap().contains("e3"), "the stale event is kept: {stale_row}");
    assert!(stale_row["message_id"].is_null());
}

async fn unknown_tokens_are_404_disabled_sources_410_and_rotation_keeps_the_old_url_working(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "s", "uid": "my-src", "app": "a", "verification": {"type": "none"}}),
    )
    .await;
    let old = ingest_path(&source);
    let unknown = deliver(&server, "/in/not-a-token", &[], b"{}").await;
    assert_eq!((unknown.status, unknown.body["code"].clone()), (404, json!("not_found")));
    let rotated = api.post("/api/v1/source/my-src/token/rotate", json!({})).await.expect(200);
    let new = ingest_path(&rotated);
    assert_ne!(old, new);
    assert!(rotated["previous_url_expires_at"].is_string());
    assert_eq!(deliver(&server, &new, &[], b"{}").await.status, 202);
    assert_eq!(deliver(&server, &old, &[], b"{\"old\":1}").await.status, 202, "the old URL works for 24 h");
    api.patch("/api/v1/source/my-src", json!({"disabled": true})).await.expect(200);
    let gone = deliver(&server, &new, &[], b"{}").await;
    assert_eq!((gone.status, gone.body["code"].clone()), (410, json!("source_disabled")));
    api.delete("/api/v1/source/my-src").await.expect(204);
    assert_eq!(deliver(&server, &new, &[], b"{}").await.status, 404);
    // Another tenant cannot see or touch the source.
    let other = server.tenant("other");
    let source2 =
        create_source(&api, json!({"name": "t", "app": "a", "verification": {"type": "none"}})).await;
    let src = id(&source2);
    other.get(&format!("/api/v1/source/{src}")).await.expect(404);
    other.get(&format!("/api/v1/source/{src}/request")).await.expect(404);
    other.patch(&format!("/api/v1/source/{src}"), json!({"disabled": true})).await.expect(404);
    other.post(&format!("/api/v1/source/{src}/token/rotate"), json!({})).await.expect(404);
    other.post(&format!("/api/v1/source/{src}/test-request"), json!({})).await.expect(404);
    other.delete(&format!("/api/v1/source/{src}")).await.expect(404);
    assert!(other.get("/api/v1/source").await.expect(200)["data"].as_array().unwrap().is_empty());
    // Validation names the bad fields.
    let bad = api
        .post(
            "/api/v1/source",
            json!({"name": "", "app": "nope", "verification": {"type": "hmac", "secret": "x", "header": "bad header",
                   "template": "{timestamp}"}, "forward_headers": ["Host"]}),
        )
        .await
        .expect(422);
    let locs: Vec<String> = bad["errors"].as_array().unwrap().iter().map(|e| e["loc"].to_string()).collect();
    for expected in [
        r#"["body","name"]"#,
        r#"["body","verification","header"]"#,
        r#"["body","verification","template"]"#,
        r#"["body","verification","timestamp_header"]"#,
        r#"["body","forward_headers","0"]"#,
    ] {
        assert!(locs.iter().any(|l| l == expected), "{expected} in {locs:?}");
    }
}

async fn the_request_log_shows_outcomes_and_redacts_credentials(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "keyed", "app": "a", "verification": {"type": "api_key", "header": "X-Api-Key", "value": "v".repeat(20)}}),
    )
    .await;
    let path = ingest_path(&source);
    let accepted = deliver(&server, &path, &[("X-Api-Key", "v".repeat(20))], b"{\"ok\":true}").await;
    assert_eq!(accepted.status, 202);
    let rejected = deliver(&server, &path, &[("X-Api-Key", "w".repeat(20))], b"{\"ok\":false}").await;
    assert_eq!(rejected.status, 401);
    let log = wait_requests(&api, &id(&source), 2).await;
    assert_eq!(log[0]["outcome"], "rejected", "newest first: {log:?}");
    assert_eq!(log[0]["reason"], "credentials_invalid");
    assert_eq!(log[0]["status"], 401);
    assert_eq!(log[0]["headers"]["x-api-key"], "[redacted]");
    assert_eq!(log[0]["body"], "{\"ok\":false}");
    assert_eq!(log[1]["outcome"], "accepted");
    assert_eq!(log[1]["message_id"], accepted.body["message"]);
    assert_eq!(log[1]["headers"]["x-api-key"], "[redacted]");
    let only = api.get(&format!("/api/v1/source/{}/request?outcome=rejected", id(&source))).await.expect(200);
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    api.get(&format!("/api/v1/source/{}/request?outcome=eaten", id(&source))).await.expect(422);
    // The test request helper signs with the current secret: its curl line is what the log accepts.
    let example =
        api.post(&format!("/api/v1/source/{}/test-request", id(&source)), json!({})).await.expect(200);
    assert!(example["curl"].as_str().unwrap().starts_with("curl -X POST"));
    let headers = test_request_headers(&example);
    assert!(example.get("unsigned").is_none(), "{example}");
    let sent = deliver(&server, &path, &headers, example["body"].as_str().unwrap().as_bytes()).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
}

/// A Standard Webhooks `v1a` source holds only the provider's public key: its test request has no
/// signature, says why, and is rejected if sent.
async fn a_v1a_sources_test_request_says_it_cannot_be_signed_and_is_rejected(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let whpk = format!("whpk_{}", STANDARD.encode(key.verifying_key().to_bytes()));
    let source = create_source(
        &api,
        json!({"name": "v1a", "app": "a", "verification": {"type": "standard_webhooks", "public_key": whpk}}),
    )
    .await;
    let example =
        api.post(&format!("/api/v1/source/{}/test-request", id(&source)), json!({})).await.expect(200);
    assert!(example["unsigned"].as_str().unwrap().contains("public key"), "{example}");
    assert!(example["headers"].get("webhook-signature").is_none(), "{example}");
    let headers = test_request_headers(&example);
    let sent =
        deliver(&server, &ingest_path(&source), &headers, example["body"].as_str().unwrap().as_bytes()).await;
    assert_eq!((sent.status, sent.body["code"].clone()), (401, json!("signature_missing")), "{}", sent.text);
}

async fn handshakes_are_answered(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let slack = create_source(
        &api,
        json!({"name": "slack", "app": "a", "verification": {"type": "hmac", "secret": "sl", "header": "X-Slack-Signature",
               "prefix": "v0=", "template": "v0:{timestamp}:{body}", "timestamp_header": "X-Slack-Request-Timestamp"}}),
    )
    .await;
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now().to_string();
    let sig = hex(&hmac_sha256(b"sl", &[format!("v0:{ts}:").as_bytes(), body.as_slice()].concat()));
    let headers = vec![("X-Slack-Signature", format!("v0={sig}")), ("X-Slack-Request-Timestamp", ts)];
    let answer = deliver(&server, &ingest_path(&slack), &headers, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}));
    // An unsigned challenge is refused like any unsigned request.
    assert_eq!(deliver(&server, &ingest_path(&slack), &[], body).await.status, 401);
    assert_eq!(hookline_e2e::count_all(&api, "/api/v1/app/a/msg").await, 0, "a handshake is no message");
    let hub = send(
        &server,
        reqwest::Method::GET,
        &format!("{}?hub.mode=subscribe&hub.challenge=abc123", ingest_path(&slack)),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!((hub.status, hub.text.as_str()), (200, "abc123"));
    let crc = send(
        &server,
        reqwest::Method::GET,
        &format!("{}?crc_token=tok", ingest_path(&slack)),
        &[],
        Vec::new(),
    )
    .await;
    let expected = format!("sha256={}", STANDARD.encode(hmac_sha256(b"sl", b"tok")));
    assert_eq!(crc.body, json!({"response_token": expected}));
    assert_eq!(send(&server, reqwest::Method::GET, &ingest_path(&slack), &[], Vec::new()).await.status, 401);
}

async fn the_free_plan_has_one_source_and_inbound_requests_are_metered(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant_on("small", "free");
    api.create_app("A", Some("a")).await;
    let source =
        create_source(&api, json!({"name": "one", "app": "a", "verification": {"type": "none"}})).await;
    let second = api
        .post("/api/v1/source", json!({"name": "two", "app": "a", "verification": {"type": "none"}}))
        .await
        .expect(403);
    assert_eq!(second["code"], "plan_limit_reached");
    for n in 0..3 {
        assert_eq!(
            deliver(&server, &ingest_path(&source), &[], format!("{{\"n\":{n}}}").as_bytes()).await.status,
            202
        );
    }
    // Each accepted request counts as an inbound request and as a message.
    let usage = api.get("/api/v1/usage?granularity=hour").await.expect(200);
    assert_eq!(usage["totals"]["inbound_requests"], 3, "{usage}");
    assert_eq!(usage["totals"]["messages_accepted"], 3, "{usage}");
    let billing = api.get("/api/v1/billing").await.expect(200);
    assert_eq!(billing["quota"]["limits"]["max_sources"], 1, "{billing}");
}

async fn a_kill_during_an_inbound_burst_loses_no_request_that_got_a_2xx(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let source = create_source(
        &api,
        json!({"name": "burst", "app": "a", "verification": {"type": "none"}, "event_id": {"pointer": "/id"}}),
    )
    .await;
    let path = ingest_path(&source);
    let key = api.api_key().to_owned();
    let url = server.url(&path);
    let accepted: Arc<std::sync::Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for client in 0..16 {
        let (url, accepted, stop) = (url.clone(), accepted.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let event = format!("evt_{client}_{n}");
                let Ok(response) = http.post(&url).body(json!({"id": event}).to_string()).send().await else {
                    break; // the server is gone
                };
                if response.status().as_u16() == 202
                    && let Ok(body) = response.json::<Value>().await
                {
                    accepted.lock().unwrap().insert(event, body["message"].as_str().unwrap().to_owned());
                }
            }
        }));
    }
    let deadline = Instant::now() + WAIT;
    while accepted.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "too few accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (data_dir, database_url) = server.stop(); // SIGKILL mid-burst
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let restarted = TestServer::spawn(db, data_dir, database_url, options());
    let api = restarted.client_with_key(&key);
    for (event, message) in &accepted {
        let found = api.get(&format!("/api/v1/app/a/msg?event_id={event}")).await.expect(200);
        assert_eq!(found["data"][0]["id"], message.as_str(), "{event} got a 202 and must be stored");
    }
}
