//! Thin delivery: an endpoint in `thin` mode (or `auto` above its threshold, or after a 413)
//! receives `{"id", "type", "timestamp", "data_url", "data_url_expires_at", "size", "sha256"}`,
//! signed like any delivery, and fetches the payload from `data_url`: the exact bytes with their
//! `ETag`, logged on the delivery and metered. Altered or foreign URLs are 403, expired ones 410.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, Reply, verify_signature},
    s3::S3Server,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

both_databases!(
    a_thin_endpoint_gets_a_signed_thin_body_whose_data_url_answers_the_exact_payload,
    an_altered_or_foreign_data_url_is_403_an_expired_one_410_and_a_purged_payload_410,
    an_auto_endpoint_that_answers_413_gets_the_thin_body_in_the_same_attempt,
    auto_sends_full_up_to_its_threshold_and_thin_above_it,
    a_thin_cloudevents_endpoint_gets_the_url_in_dataref,
    a_claim_checked_payload_on_s3_is_fetched_byte_for_byte_from_its_data_url,
    payload_mode_settings_are_validated_and_shown_back,
);

const WAIT: Duration = Duration::from_secs(30);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
}

/// A server, a receiver, tenant `acme` with application `a`, and an endpoint of `a` on the
/// receiver's `path` with `settings` (the endpoint's answer).
async fn with_endpoint(
    db: Backend,
    receiver: Receiver,
    path: &str,
    settings: Value,
) -> (TestServer, Receiver, Client, Value) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let mut body = settings;
    body["url"] = json!(receiver.url(path));
    let endpoint = api.post("/api/v1/app/a/endpoint", body).await.expect(201);
    (server, receiver, api, endpoint)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A JSON payload of `bytes` bytes (serialized).
fn sized_payload(bytes: usize) -> Value {
    let frame = json!({"text": ""}).to_string().len();
    let payload = json!({"text": "x".repeat(bytes - frame)});
    assert_eq!(payload.to_string().len(), bytes);
    payload
}

/// `url` with one query parameter's value replaced.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

async fn fetch(url: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url).header("user-agent", "thin-consumer/1.0");
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    request.send().await.unwrap()
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn a_thin_endpoint_gets_a_signed_thin_body_whose_data_url_answers_the_exact_payload(db: Backend) {
    let (server, receiver, api, endpoint) =
        with_endpoint(db, Receiver::start(), "/thin", json!({"payload_mode": "thin"})).await;
    assert_eq!(endpoint["payload_mode"], "thin");
    let secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200);
    let payload = json!({"invoice": "in_1042", "amount_cents": 4900, "note": "gr\u{fc}n"});
    let message = api.send_message("a", "invoice.paid", payload.clone()).await;
    let payload_bytes = serde_json::to_vec(&payload).unwrap();

    let received = receiver.wait_for(1, WAIT).await;
    let delivery = &received[0];
    assert!(verify_signature(secret["key"].as_str().unwrap(), delivery), "the thin body is signed");
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    assert_eq!(delivery.header("hookline-payload"), Some("thin"), "marked as thin");
    let thin = delivery.json();
    let keys: Vec<&str> = thin.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["data_url", "data_url_expires_at", "id", "sha256", "size", "timestamp", "type"],
        "{thin}"
    );
    assert_eq!(thin["id"], message["id"]);
    assert_eq!(thin["type"], "invoice.paid");
    let instant = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(instant(&thin["timestamp"]), instant(&message["created_at"]), "the message's time");
    assert_eq!(thin["size"], payload_bytes.len());
    assert_eq!(thin["sha256"], sha256_hex(&payload_bytes));
    let data_url = thin["data_url"].as_str().unwrap();
    assert!(data_url.starts_with(&server.url(&format!(
        "/api/v1/payload/{}?ep={}&",
        id(&message),
        id(&endpoint)
    ))));
    let expires =
        chrono::DateTime::parse_from_rfc3339(thin["data_url_expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((86_000..=86_400).contains(&lifetime), "24 hours by default: {lifetime} s");

    // The URL answers the exact bytes, with their SHA-256 as the ETag.
    let answer = fetch(data_url, None).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let etag = answer.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&payload_bytes)));
    assert_eq!(answer.bytes().await.unwrap().to_vec(), payload_bytes, "the payload, byte for byte");
    // Again with the ETag: 304, no body.
    let again = fetch(data_url, Some(&etag)).await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // The attempt shows the thin body that was sent; the fetches are logged and metered.
    let attempts = api.get(&format!("/api/v1/app/a/msg/{}/attempt", id(&message))).await.expect(200);
    let attempt = &attempts["data"][0];
    assert_eq!(attempt["payload_mode"], "thin");
    assert_eq!(attempt["request_body"].as_str().unwrap().as_bytes(), delivery.body, "the body as sent");
    let fetches = api.get(&format!("/api/v1/app/a/msg/{}/payload-fetch", id(&message))).await.expect(200);
    let fetches = fetches["data"].as_array().unwrap();
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert_eq!(fetches[0]["status"], 304, "newest first");
    assert_eq!(fetches[0]["bytes"], 0);
    assert_eq!(fetches[1]["status"], 200);
    assert_eq!(fetches[1]["bytes"], payload_bytes.len());
    assert_eq!(fetches[1]["endpoint_id"], endpoint["id"]);
    assert_eq!(fetches[1]["ip"], "127.0.0.1");
    assert_eq!(fetches[1]["user_agent"], "thin-consumer/1.0");
    let usage = api.get("/api/v1/usage").await.expect(200);
    assert_eq!(usage["totals"]["payload_fetches"], 2, "{usage}");

    // The URL was for that endpoint: deleted, it no longer answers.
    api.delete(&format!("/api/v1/app/a/endpoint/{}", id(&endpoint))).await.expect(204);
    assert_eq!(error_code(fetch(data_url, None).await).await, (404, "not_found".to_owned()));

    // Another tenant cannot list them.
    let other = server.tenant("other");
    other.create_app("A", Some("a")).await;
    other
        .get(&format!("/api/v1/app/a/msg/{}/payload-fetch", id(&message)))
        .await
        .expect_error(404, "not_found");
}

async fn an_altered_or_foreign_data_url_is_403_an_expired_one_410_and_a_purged_payload_410(db: Backend) {
    let settings = json!({"payload_mode": "thin", "data_url_ttl_seconds": 10});
    let (_server, receiver, api, _) = with_endpoint(db, Receiver::start(), "/thin", settings).await;
    let first = api.send_message("a", "doc.first", json!({"n": 1})).await;
    let second = api.send_message("a", "doc.second", json!({"n": 2})).await;
    let received = receiver.wait_for(2, WAIT).await;
    let url_of = |message: &Value| {
        let delivery = received.iter().find(|r| r.msg_id() == id(message)).expect("delivered");
        delivery.json()["data_url"].as_str().unwrap().to_owned()
    };
    let (first_url, second_url) = (url_of(&first), url_of(&second));
    assert_eq!(fetch(&first_url, None).await.status(), 200, "genuine and fresh");

    // Altered: another signature, a later expiry, another endpoint, or the other message's
    // signature on this message.
    let exp: i64 = reqwest::Url::parse(&first_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "exp")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let second_sig = reqwest::Url::parse(&second_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    let foreign = first_url.replace(&id(&first), &id(&second));
    let other_endpoint = api.create_endpoint("a", &receiver.url("/other")).await;
    for (what, url) in [
        ("another signature", with_param(&first_url, "sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        ("a later expiry", with_param(&first_url, "exp", &(exp + 3600).to_string())),
        ("another endpoint", with_param(&first_url, "ep", &id(&other_endpoint))),
        ("the other message's signature", with_param(&first_url, "sig", &second_sig)),
        ("another message's id", foreign),
        ("no signature", first_url.split("&sig=").next().unwrap().to_owned()),
    ] {
        assert_eq!(error_code(fetch(&url, None).await).await, (403, "data_url_invalid".to_owned()), "{what}");
    }
    let unknown = format!("{first_url}&extra=1");
    assert_eq!(error_code(fetch(&unknown, None).await).await.0, 422, "an unknown parameter");

    // Expunged: the genuine URL of the second message now finds no payload.
    api.delete(&format!("/api/v1/app/a/msg/{}/content", id(&second))).await.expect(204);
    assert_eq!(error_code(fetch(&second_url, None).await).await, (410, "payload_purged".to_owned()));

    // Expired: the endpoint's URLs last 10 s.
    let wait = exp - chrono::Utc::now().timestamp() + 1;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64 + 1)).await;
    assert_eq!(error_code(fetch(&first_url, None).await).await, (410, "data_url_expired".to_owned()));

    // Only the one genuine fetch was logged.
    let fetches = api.get(&format!("/api/v1/app/a/msg/{}/payload-fetch", id(&first))).await.expect(200);
    assert_eq!(fetches["data"].as_array().unwrap().len(), 1, "{fetches}");
    let usage = api.get("/api/v1/usage").await.expect(200);
    assert_eq!(usage["totals"]["payload_fetches"], 1, "{usage}");
}

async fn an_auto_endpoint_that_answers_413_gets_the_thin_body_in_the_same_attempt(db: Backend) {
    // A receiver with a 4 KiB body limit.
    let receiver = Receiver::start_with(
        Arc::new(|request, _| if request.body.len() > 4096 { Reply::status(413) } else { Reply::ok() }),
        2,
    );
    let (_server, receiver, api, endpoint) =
        with_endpoint(db, receiver, "/limited", json!({"payload_mode": "auto"})).await;
    let secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200);
    // 10 KiB: under auto's 256 KiB threshold, so sent full first.
    let payload = sized_payload(10 * 1024);
    let message = api.send_message("a", "doc.big", payload.clone()).await;
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(received[0].status, 413, "the full body was refused");
    assert_eq!(received[0].body, serde_json::to_vec(&payload).unwrap());
    assert_eq!(received[1].status, 200, "the thin body was taken");
    let thin = received[1].json();
    assert_eq!(thin["id"], message["id"]);
    assert_eq!(thin["size"], 10 * 1024);
    assert!(verify_signature(secret["key"].as_str().unwrap(), &received[1]));
    let fetched = fetch(thin["data_url"].as_str().unwrap(), None).await;
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), serde_json::to_vec(&payload).unwrap());

    // One attempt, succeeded, marked as the thin retry; the delivery succeeded at once.
    let deadline = Instant::now() + WAIT;
    let attempts = loop {
        let attempts = api.get(&format!("/api/v1/app/a/msg/{}/attempt", id(&message))).await.expect(200);
        if !attempts["data"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break attempts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let attempts = attempts["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["payload_mode"], "thin_after_413");
    assert_eq!(attempts[0]["status"], "succeeded");
    assert_eq!(attempts[0]["response_status_code"], 200);
    let deliveries = api.get(&format!("/api/v1/app/a/msg/{}/delivery", id(&message))).await.expect(200);
    assert_eq!(deliveries[0]["status"], "succeeded", "{deliveries}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 2, "no retry followed");

    // A full endpoint that answers 413 is not sent thin: it fails and retries as usual.
    let full = api.create_endpoint("a", &receiver.url("/full")).await;
    let other = api.send_message("a", "doc.big", payload).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let deliveries = api.get(&format!("/api/v1/app/a/msg/{}/delivery", id(&other))).await.expect(200);
        let failed = deliveries
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["endpoint_id"] == full["id"] && d["last_response_status_code"] == 413);
        if failed {
            break;
        }
        assert!(Instant::now() < deadline, "the full endpoint's 413 was recorded: {deliveries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to_full: Vec<_> = receiver.received().into_iter().filter(|r| r.path == "/full").collect();
    assert!(to_full.iter().all(|r| r.body.len() > 4096), "never thin: {}", to_full.len());
}

async fn auto_sends_full_up_to_its_threshold_and_thin_above_it(db: Backend) {
    let settings = json!({"payload_mode": "auto", "thin_above_bytes": 2048});
    let (_server, receiver, api, _) = with_endpoint(db, Receiver::start(), "/auto", settings).await;
    let small = api.send_message("a", "doc.small", sized_payload(2048)).await;
    let large = api.send_message("a", "doc.large", sized_payload(2049)).await;
    let received = receiver.wait_for(2, WAIT).await;
    let request_of = |message: &Value| received.iter().find(|r| r.msg_id() == id(message)).unwrap();
    let body_of = |message: &Value| request_of(message).json();
    assert_eq!(body_of(&small), sized_payload(2048), "at the threshold: full");
    assert_eq!(request_of(&small).header("hookline-payload"), None, "a full body is not marked");
    assert_eq!(request_of(&large).header("hookline-payload"), Some("thin"));
    let thin = body_of(&large);
    assert_eq!(thin["size"], 2049, "above it: thin ({thin})");
    assert!(thin["data_url"].is_string());
}

async fn a_thin_cloudevents_endpoint_gets_the_url_in_dataref(db: Backend) {
    // The body only: the CloudEvents handshake has its own tests (handshake.rs).
    let settings = json!({"payload_mode": "thin", "format": "cloudevents_structured", "handshake": false});
    let (_server, receiver, api, _) = with_endpoint(db, Receiver::start(), "/ce", settings).await;
    let payload = json!({"order": 7});
    let message = api.send_message("a", "order.shipped", payload.clone()).await;
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].header("content-type"), Some("application/cloudevents+json"));
    let event = received[0].json();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], message["id"]);
    assert_eq!(event["type"], "order.shipped");
    let dataref = event["dataref"].as_str().expect("the dataref extension");
    assert_eq!(event["data"]["data_url"], dataref, "{event}");
    assert_eq!(event["data"]["sha256"], sha256_hex(&serde_json::to_vec(&payload).unwrap()));
    let fetched: Value = fetch(dataref, None).await.json().await.unwrap();
    assert_eq!(fetched, payload);
}

async fn a_claim_checked_payload_on_s3_is_fetched_byte_for_byte_from_its_data_url(db: Backend) {
    let s3 = S3Server::start().await;
    s3.create_bucket("thin-objects").await;
    let server = TestServer::start_with(db, s3.options(options(), "thin-objects", "")).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/thin"), "payload_mode": "auto"}))
        .await
        .expect(201);
    let secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200);
    // 2 MiB: claim-checked into the bucket, and over auto's 256 KiB threshold.
    let payload = sized_payload(2 * 1024 * 1024);
    let bytes = serde_json::to_vec(&payload).unwrap();
    let message = api.send_message("a", "doc.huge", payload).await;
    assert_eq!(s3.objects("thin-objects", "").await.len(), 1, "the payload is an object in the bucket");
    let received = receiver.wait_for(1, WAIT).await;
    assert!(received[0].body.len() < 1024, "a thin body, not 2 MiB: {} bytes", received[0].body.len());
    assert!(verify_signature(secret["key"].as_str().unwrap(), &received[0]));
    let thin = received[0].json();
    assert_eq!(thin["sha256"], sha256_hex(&bytes));
    let answer = fetch(thin["data_url"].as_str().unwrap(), None).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-length"], bytes.len().to_string().as_str());
    let fetched = answer.bytes().await.unwrap();
    assert_eq!(sha256_hex(&fetched), sha256_hex(&bytes), "the object, byte for byte");
    let fetches = api.get(&format!("/api/v1/app/a/msg/{}/payload-fetch", id(&message))).await.expect(200);
    assert_eq!(fetches["data"][0]["bytes"], bytes.len());
}

async fn payload_mode_settings_are_validated_and_shown_back(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = api.create_endpoint("a", "https://example.com/hook").await;
    assert_eq!(endpoint["payload_mode"], "full", "the default");
    assert!(endpoint["thin_above_bytes"].is_null() && endpoint["data_url_ttl_seconds"].is_null());
    let path = format!("/api/v1/app/a/endpoint/{}", id(&endpoint));
    let patched = api
        .patch(
            &path,
            json!({"payload_mode": "auto", "thin_above_bytes": 65536, "data_url_ttl_seconds": 3600}),
        )
        .await
        .expect(200);
    assert_eq!(patched["payload_mode"], "auto");
    assert_eq!(patched["thin_above_bytes"], 65536);
    assert_eq!(patched["data_url_ttl_seconds"], 3600);
    let bad = api
        .patch(&path, json!({"thin_above_bytes": 10, "data_url_ttl_seconds": 0}))
        .await
        .expect_error(422, "validation_error");
    let locs: Vec<&str> =
        bad["errors"].as_array().unwrap().iter().map(|e| e["loc"][1].as_str().unwrap()).collect();
    assert_eq!(locs, ["thin_above_bytes", "data_url_ttl_seconds"], "{bad}");
    api.patch(&path, json!({"payload_mode": "sometimes"})).await.expect_error(422, "validation_error");
    let reset = api.patch(&path, json!({"thin_above_bytes": null})).await.expect(200);
    assert!(reset["thin_above_bytes"].is_null(), "null restores the default");
    assert_eq!(reset["payload_mode"], "auto", "untouched");
}
