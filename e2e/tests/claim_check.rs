//! Large payloads: a payload over `HOOKLINE_CLAIM_CHECK_BYTES` (default 256 KiB) lives in the
//! object store (local files under `<data dir>/objects` here), is delivered whole, read back by the
//! API, searchable by its start, and removed with its message (expunge, retention, application
//! delete). The plans' payload limits are SPEC §5's.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, verify_ed25519_signature, verify_signature},
    s3::S3Server,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

both_databases!(
    a_large_payload_is_stored_as_an_object_delivered_whole_read_back_and_expunged_with_its_message,
    a_large_received_webhook_is_kept_as_an_object_and_delivered_byte_for_byte,
    a_large_broadcast_shares_one_object_until_its_last_message_lets_go,
    retention_and_application_delete_remove_the_objects,
    plan_payload_limits_are_one_five_and_twenty_mebibytes,
    on_an_s3_compatible_store_large_payloads_are_objects_delivered_whole_and_expunged,
    a_stored_payload_is_streamed_to_hmac_endpoints_and_read_whole_for_ed25519_and_cloudevents,
);

const WAIT: Duration = Duration::from_secs(30);

fn options() -> ServerOptions {
    ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", "1")
}

/// A JSON payload of `bytes` bytes (serialized), `marker` its first word.
fn large_payload(marker: &str, bytes: usize) -> Value {
    let frame = json!({"marker": marker, "text": ""}).to_string().len();
    let words = "lorem ipsum dolor sit amet ".repeat(bytes / 27 + 1);
    let payload = json!({"marker": marker, "text": &words[..bytes - frame]});
    assert_eq!(payload.to_string().len(), bytes);
    payload
}

/// Every object file under the server's object store, relative to it.
fn objects(server: &TestServer) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root: PathBuf = server.data_dir.path().join("objects");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

fn object_bytes(server: &TestServer, key: &str) -> Vec<u8> {
    std::fs::read(server.data_dir.path().join("objects").join(key)).expect("the object's file")
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

async fn a_large_payload_is_stored_as_an_object_delivered_whole_read_back_and_expunged_with_its_message(
    db: Backend,
) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = api.create_endpoint("a", &receiver.url("/large")).await;
    let secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200);

    // A small payload stays in its row.
    let small = api.send_message("a", "doc.small", json!({"marker": "smallmarker"})).await;
    // 2 MiB: over the default 256 KiB threshold.
    let payload = large_payload("zanzibarmarker", 2 * 1024 * 1024);
    let large = api.send_message("a", "doc.large", payload.clone()).await;
    let stored = objects(&server);
    assert_eq!(stored.len(), 1, "only the large payload is an object: {stored:?}");
    let key = stored[0].clone();
    assert!(key.starts_with("payloads/") && key.ends_with(&format!("/{}", id(&large))), "{key}");
    let stored = object_bytes(&server, &key);
    assert_eq!(stored.len(), 2 * 1024 * 1024, "the whole payload");
    assert_eq!(serde_json::from_slice::<Value>(&stored).unwrap(), payload, "the object is the payload");

    // Delivered whole, signed over the whole body.
    receiver.wait_for(2, WAIT).await;
    let received = receiver.received();
    let delivery = received.iter().find(|r| r.msg_id() == id(&large)).expect("the large message arrived");
    assert_eq!(delivery.body, stored, "the request body is the stored payload, byte for byte");
    assert!(verify_signature(secret["key"].as_str().unwrap(), delivery), "signed over the whole body");
    assert!(received.iter().any(|r| r.msg_id() == id(&small)));

    // Read back by the API, and found by a word of its start.
    let read = api.get(&format!("/api/v1/app/a/msg/{}", id(&large))).await.expect(200);
    assert_eq!(read["payload"], payload);
    assert_eq!(read["payload_size"], 2 * 1024 * 1024);
    assert_eq!(read["payload_in_object_store"], true);
    let small_read = api.get(&format!("/api/v1/app/a/msg/{}", id(&small))).await.expect(200);
    assert_eq!(small_read["payload_in_object_store"], false, "{small_read}");
    // Downloaded byte for byte, streamed from the store.
    let download = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/app/a/msg/{}/payload", id(&large))))
        .bearer_auth(api.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.headers()["content-disposition"].to_str().unwrap().contains(&id(&large)));
    assert_eq!(download.bytes().await.unwrap().to_vec(), stored, "the download is the object");
    let listed = api.get("/api/v1/app/a/msg?event_type=doc.large").await.expect(200);
    assert_eq!(listed["data"][0]["payload"], payload, "the list reads it back too");
    let bare = api.get("/api/v1/app/a/msg?with_content=false").await.expect(200);
    let bare = bare["data"].as_array().unwrap();
    assert_eq!(bare.len(), 2, "{bare:?}");
    assert!(bare.iter().all(|m| m["payload"].is_null()), "with_content=false leaves payloads out: {bare:?}");
    let bad = api.get("/api/v1/app/a/msg?with_content=no").await.expect_error(422, "validation_error");
    assert_eq!(bad["errors"][0]["loc"], json!(["query", "with_content"]), "{bad}");
    let found = api.get("/api/v1/app/a/msg?q=zanzibarmarker").await.expect(200);
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["data"][0]["id"], large["id"]);

    // Expunged: the object goes with the payload row.
    api.delete(&format!("/api/v1/app/a/msg/{}/content", id(&large))).await.expect(204);
    assert!(objects(&server).is_empty(), "the object is deleted: {:?}", objects(&server));
    let read = api.get(&format!("/api/v1/app/a/msg/{}", id(&large))).await.expect(200);
    assert!(read["payload"].is_null(), "{read}");
    assert_eq!(read["payload_size"], 2 * 1024 * 1024, "the size outlives the payload");
    api.get(&format!("/api/v1/app/a/msg/{}/payload", id(&large))).await.expect_error(410, "payload_purged");
}

async fn a_large_received_webhook_is_kept_as_an_object_and_delivered_byte_for_byte(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("Inbox", Some("inbox")).await;
    api.create_endpoint("inbox", &receiver.url("/inbox")).await;
    let source = api
        .post("/api/v1/source", json!({"name": "bulk", "app": "inbox", "verification": {"type": "none"}}))
        .await
        .expect(201);
    let url = source["ingest_url"].as_str().unwrap();
    let path = &url[url.find("/in/").unwrap()..];
    // A provider's body with its own spacing and key order (kept exactly), about 400 KiB.
    let mut body = String::from("{ \"z\" : 1,\n  \"items\": [");
    for i in 0..8_000 {
        body.push_str(&format!(
            "{}{{\"n\": {i}, \"word\": \"quokkamarker\"}}",
            if i > 0 { ", " } else { "" }
        ));
    }
    body.push_str("] }");
    assert!(body.len() > 256 * 1024);
    let answer = reqwest::Client::new()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.unwrap();
    let message = answer["message"].as_str().unwrap().to_owned();
    let stored = objects(&server);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(&message), "{stored:?}");
    assert_eq!(object_bytes(&server, &stored[0]), body.as_bytes(), "the raw body is the object");
    receiver.wait_for(1, WAIT).await;
    assert_eq!(receiver.received()[0].body, body.as_bytes(), "delivered byte for byte");
}

async fn a_large_broadcast_shares_one_object_until_its_last_message_lets_go(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    for app in ["b1", "b2", "b3"] {
        api.create_app(app, Some(app)).await;
        api.create_endpoint(app, &receiver.url(&format!("/{app}"))).await;
    }
    let payload = large_payload("broadcastmarker", 300 * 1024);
    let broadcast = api
        .post("/api/v1/msg/broadcast", json!({"event_type": "doc.shared", "payload": payload}))
        .await
        .expect(202);
    receiver.wait_for(3, WAIT).await;
    let received = receiver.received();
    let expected = serde_json::to_vec(&payload).unwrap();
    for delivery in &received {
        assert_eq!(serde_json::from_slice::<Value>(&delivery.body).unwrap(), payload, "{}", delivery.path);
    }
    assert_eq!(received.len(), 3);
    let stored = objects(&server);
    assert_eq!(stored.len(), 1, "one object for the broadcast's three messages: {stored:?}");
    assert!(stored[0].ends_with(&id(&broadcast)), "{stored:?}");
    assert_eq!(object_bytes(&server, &stored[0]).len(), expected.len());

    // Expunging two of the three messages keeps the object; the third lets it go.
    let mut messages = Vec::new();
    for app in ["b1", "b2", "b3"] {
        let listed = api.get(&format!("/api/v1/app/{app}/msg")).await.expect(200);
        messages.push((app, listed["data"][0]["id"].as_str().unwrap().to_owned()));
    }
    for (app, message) in &messages[..2] {
        api.delete(&format!("/api/v1/app/{app}/msg/{message}/content")).await.expect(204);
    }
    assert_eq!(objects(&server), stored, "the third message still names the object");
    let (app, message) = &messages[2];
    let read = api.get(&format!("/api/v1/app/{app}/msg/{message}")).await.expect(200);
    assert_eq!(read["payload"], payload);
    api.delete(&format!("/api/v1/app/{app}/msg/{message}/content")).await.expect(204);
    assert!(objects(&server).is_empty(), "{:?}", objects(&server));
}

async fn retention_and_application_delete_remove_the_objects(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let api = server.tenant_on("purged", "pro");
    let other = server.tenant("kept");
    api.create_app("A", Some("a")).await;
    api.create_app("B", Some("b")).await;
    other.create_app("K", Some("k")).await;
    let payload = large_payload("retentionmarker", 300 * 1024);
    let old = api.send_message("a", "doc.old", payload.clone()).await;
    api.send_message("b", "doc.app", payload.clone()).await;
    let kept = other.send_message("k", "doc.kept", payload.clone()).await;
    assert_eq!(objects(&server).len(), 3);

    // Deleting application B removes its message's object at once.
    api.delete("/api/v1/app/b").await.expect(204);
    let left = objects(&server);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().any(|k| k.ends_with(&id(&old))) && left.iter().any(|k| k.ends_with(&id(&kept))));

    // Retention 0 days for this tenant: the next maintenance run purges its payload and object,
    // and leaves the other tenant's.
    server.cli(&["plan", "set", "--tenant", "purged", "--plan", "pro", "--retention-days", "0"]);
    until("the purge", async || {
        let m = api.get(&format!("/api/v1/app/a/msg/{}", id(&old))).await.expect(200);
        m["payload"].is_null().then_some(())
    })
    .await;
    let left = objects(&server);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(&id(&kept)), "{left:?}");
    let read = other.get(&format!("/api/v1/app/k/msg/{}", id(&kept))).await.expect(200);
    assert_eq!(read["payload"], payload);
}

async fn plan_payload_limits_are_one_five_and_twenty_mebibytes(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    for (plan, limit) in [("free", 1024 * 1024), ("pro", 5 * 1024 * 1024), ("enterprise", 20 * 1024 * 1024)] {
        let api = server.tenant_on(&format!("t-{plan}"), plan);
        api.create_app("A", Some("a")).await;
        let usage = api.get("/api/v1/usage").await.expect(200);
        assert_eq!(usage["quota"]["limits"]["max_payload_bytes"], limit, "{plan}: {}", usage["quota"]);
        // Just over the limit: refused, naming it.
        // (Over the plan's limit, under the server's body limit: the plan's check answers.)
        let over = large_payload("over", limit + 16 * 1024);
        let refused = api.post("/api/v1/app/a/msg", json!({"event_type": "doc.over", "payload": over})).await;
        let body = refused.expect_error(413, "payload_too_large");
        assert!(body["detail"].as_str().unwrap().contains(&limit.to_string()), "{plan}: {body}");
        // Just under: accepted, and its object holds every byte.
        let under = large_payload("under", limit - 64 * 1024);
        let accepted = api.send_message("a", "doc.under", under.clone()).await;
        let read = api.get(&format!("/api/v1/app/a/msg/{}", id(&accepted))).await.expect(200);
        let digest = |v: &Value| format!("{:x}", Sha256::digest(serde_json::to_vec(v).unwrap()));
        assert_eq!(digest(&read["payload"]), digest(&under), "{plan}");
    }
}

/// The same claim check against moto's S3 server: the object lands in the bucket under the
/// configured prefix, the delivery and the API read it back, and an expunge deletes it; nothing is
/// written to the local data dir.
async fn on_an_s3_compatible_store_large_payloads_are_objects_delivered_whole_and_expunged(db: Backend) {
    let s3 = S3Server::start().await;
    s3.create_bucket("hookline-objects").await;
    let server = TestServer::start_with(db, s3.options(options(), "hookline-objects", "tenants/eu")).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = api.create_endpoint("a", &receiver.url("/s3")).await;
    let secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&endpoint))).await.expect(200);
    let payload = large_payload("bucketmarker", 2 * 1024 * 1024);
    let message = api.send_message("a", "doc.s3", payload.clone()).await;

    let stored = s3.objects("hookline-objects", "tenants/eu/").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (key, size) = &stored[0];
    assert!(key.starts_with("tenants/eu/payloads/") && key.ends_with(&id(&message)), "{key}");
    let bytes = serde_json::to_vec(&payload).unwrap();
    assert_eq!(*size, bytes.len() as u64, "the object holds the whole payload");
    assert!(objects(&server).is_empty(), "nothing in the local store: {:?}", objects(&server));

    // Delivered whole, streamed from the bucket; a resend reads it from the bucket again.
    receiver.wait_for(1, WAIT).await;
    assert_eq!(receiver.received()[0].body, bytes, "delivered whole");
    api.post(&format!("/api/v1/app/a/msg/{}/endpoint/{}/resend", id(&message), id(&endpoint)), json!({}))
        .await
        .expect(202);
    receiver.wait_for(2, WAIT).await;
    let delivery = &receiver.received()[1];
    assert_eq!(delivery.body, bytes, "a resend reads the payload back from the bucket");
    assert!(verify_signature(secret["key"].as_str().unwrap(), delivery));
    let read = api.get(&format!("/api/v1/app/a/msg/{}", id(&message))).await.expect(200);
    assert_eq!(read["payload"], payload);

    api.delete(&format!("/api/v1/app/a/msg/{}/content", id(&message))).await.expect(204);
    assert!(s3.keys("hookline-objects", "tenants/eu/").await.is_empty(), "expunged from the bucket");
}

/// A resend takes a claim-checked payload from the store (not from the bytes handed over at
/// acceptance): streamed through the HMAC and onto the wire for a JSON endpoint with a `whsec_`
/// secret, read whole for an Ed25519 (`v1a`) endpoint and a CloudEvents one. Each arrives whole
/// and verifies.
async fn a_stored_payload_is_streamed_to_hmac_endpoints_and_read_whole_for_ed25519_and_cloudevents(
    db: Backend,
) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let hmac = api.create_endpoint("a", &receiver.url("/hmac")).await;
    let ed25519 = api
        .post("/api/v1/app/a/endpoint", json!({"url": receiver.url("/ed25519"), "signature_scheme": "v1a"}))
        .await
        .expect(201);
    let cloudevents = api
        .post(
            "/api/v1/app/a/endpoint",
            // The body only: the CloudEvents handshake has its own tests (handshake.rs).
            json!({"url": receiver.url("/ce"), "format": "cloudevents_structured", "handshake": false}),
        )
        .await
        .expect(201);
    let payload = large_payload("streammarker", 3 * 1024 * 1024);
    let bytes = serde_json::to_vec(&payload).unwrap();
    let message = api.send_message("a", "doc.stream", payload.clone()).await;
    receiver.wait_for(3, WAIT).await;
    for endpoint in [&hmac, &ed25519, &cloudevents] {
        api.post(&format!("/api/v1/app/a/msg/{}/endpoint/{}/resend", id(&message), id(endpoint)), json!({}))
            .await
            .expect(202);
    }
    receiver.wait_for(6, WAIT).await;
    let resent = |path: &str| receiver.received().into_iter().filter(|r| r.path == path).nth(1).expect(path);
    let hmac_secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&hmac))).await.expect(200);
    let streamed = resent("/hmac");
    assert_eq!(streamed.body, bytes, "streamed whole");
    assert_eq!(streamed.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert!(
        verify_signature(hmac_secret["key"].as_str().unwrap(), &streamed),
        "signed over the streamed bytes"
    );
    let ed_secret = api.get(&format!("/api/v1/app/a/endpoint/{}/secret", id(&ed25519))).await.expect(200);
    let signed = resent("/ed25519");
    assert_eq!(signed.body, bytes);
    assert!(verify_ed25519_signature(ed_secret["public_key"].as_str().unwrap(), &signed));
    let event = resent("/ce").json();
    assert_eq!(event["data"], payload, "the CloudEvent carries the stored payload");
}
