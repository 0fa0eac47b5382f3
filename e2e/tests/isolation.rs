//! Tenant isolation, route by route: every route of the served OpenAPI document is called with a
//! second tenant's credentials against the first tenant's objects, and must answer 404 with none
//! of the first tenant's data (never 403, never data). A route this test does not know fails it,
//! so a new route cannot ship without its isolation case.

use std::collections::BTreeMap;

use hookline_e2e::{Backend, Client, TestServer, both_databases, id};
use reqwest::Method;
use serde_json::{Value, json};

both_databases!(every_route_hides_other_tenants_objects, portal_tokens_reach_only_their_application);

/// How a route is checked.
enum Case {
    /// Names one of tenant A's objects in its path: must answer 404 to tenant B. The body (for
    /// writes) is valid, so the 404 comes from the lookup and not from validation.
    Scoped(Option<Value>),
    /// A collection of the caller's own objects: tenant B's answer must not mention A's objects.
    Collection(Option<Value>),
    /// Not tenant data (health, docs, sign-up): nothing to hide.
    Public,
    /// The caller's own tenant-wide action, refused with this status here: no other tenant's
    /// data in the answer.
    Refused(u16),
    /// A URL that is its own credential (a thin delivery's `data_url`): with tenant A's ids and
    /// no signature minted for them, whoever calls is refused 403 `data_url_invalid`.
    Capability,
}

fn cases() -> BTreeMap<&'static str, Case> {
    use Case::*;
    BTreeMap::from([
        ("GET /healthz", Public),
        ("GET /readyz", Public),
        // Operator metrics, no tenant data (open in this test: HOOKLINE_METRICS_TOKEN is unset).
        ("GET /metrics", Public),
        ("POST /api/v1/auth/signup", Public),
        ("POST /api/v1/auth/login", Public),
        ("POST /api/v1/auth/logout", Public),
        // Session-only: with an API key it answers 403 session_required, with no tenant data.
        ("GET /api/v1/auth/me", Public),
        ("GET /api/v1/api-key", Collection(None)),
        ("POST /api/v1/api-key", Collection(Some(json!({"name": "b key"})))),
        ("DELETE /api/v1/api-key/{id}", Scoped(None)),
        ("GET /api/v1/event-type", Collection(None)),
        ("POST /api/v1/event-type", Collection(Some(json!({"name": "b.event"})))),
        ("GET /api/v1/event-type/{name}", Scoped(None)),
        ("PATCH /api/v1/event-type/{name}", Scoped(Some(json!({"description": "hijacked"})))),
        ("DELETE /api/v1/event-type/{name}", Scoped(None)),
        // Pure: matches a pattern on the body's sample message, reads nothing stored.
        (
            "POST /api/v1/filter/test",
            Collection(Some(json!({"filter": {"event_type": ["a.b"]}, "event_type": "a.b", "payload": {}}))),
        ),
        // Pure: runs a program on the body's sample message in a sandbox, reads only the plan.
        (
            "POST /api/v1/transform/test",
            Collection(Some(json!({"transform": "{payload: .payload}", "event_type": "a.b", "payload": {}}))),
        ),
        ("GET /api/v1/app", Collection(None)),
        ("POST /api/v1/app", Collection(Some(json!({"name": "b app"})))),
        ("GET /api/v1/app/{app}", Scoped(None)),
        ("PATCH /api/v1/app/{app}", Scoped(Some(json!({"name": "hijacked"})))),
        ("DELETE /api/v1/app/{app}", Scoped(None)),
        ("GET /api/v1/app/{app}/endpoint", Scoped(None)),
        ("POST /api/v1/app/{app}/endpoint", Scoped(Some(json!({"url": "https://evil.example/hook"})))),
        ("GET /api/v1/app/{app}/endpoint/{ep}", Scoped(None)),
        ("PATCH /api/v1/app/{app}/endpoint/{ep}", Scoped(Some(json!({"url": "https://evil.example/hook"})))),
        ("DELETE /api/v1/app/{app}/endpoint/{ep}", Scoped(None)),
        ("GET /api/v1/app/{app}/endpoint/{ep}/secret", Scoped(None)),
        ("POST /api/v1/app/{app}/endpoint/{ep}/secret/rotate", Scoped(Some(json!({})))),
        ("GET /api/v1/app/{app}/msg", Scoped(None)),
        ("POST /api/v1/app/{app}/msg", Scoped(Some(json!({"event_type": "a.b", "payload": {"x": 1}})))),
        ("GET /api/v1/app/{app}/msg/{msg}", Scoped(None)),
        ("POST /api/v1/app/{app}/endpoint/{ep}/test", Scoped(Some(json!({})))),
        ("GET /api/v1/app/{app}/msg/{msg}/attempt", Scoped(None)),
        ("GET /api/v1/app/{app}/msg/{msg}/delivery", Scoped(None)),
        ("GET /api/v1/app/{app}/msg/{msg}/payload-fetch", Scoped(None)),
        ("GET /api/v1/app/{app}/msg/{msg}/payload", Scoped(None)),
        ("GET /api/v1/app/{app}/payload-fetch", Scoped(None)),
        // A thin delivery's data_url: the signed URL is the credential, not a tenant's key
        // (forgeries and other messages' signatures: e2e/tests/thin_delivery.rs).
        ("GET /api/v1/payload/{msg}", Capability),
        ("GET /api/v1/app/{app}/attempt", Scoped(None)),
        ("GET /api/v1/app/{app}/attempt/{attempt}", Scoped(None)),
        (
            "POST /api/v1/msg/broadcast",
            Collection(Some(json!({"event_type": "a.secret", "payload": {"b": 1}}))),
        ),
        ("GET /api/v1/msg/broadcast/{id}", Scoped(None)),
        ("POST /api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend", Scoped(None)),
        ("DELETE /api/v1/app/{app}/msg/{msg}/content", Scoped(None)),
        (
            "POST /api/v1/app/{app}/endpoint/{ep}/recover",
            Scoped(Some(json!({"since": "2020-01-01T00:00:00Z"}))),
        ),
        (
            "POST /api/v1/app/{app}/endpoint/{ep}/replay-missing",
            Scoped(Some(json!({"since": "2020-01-01T00:00:00Z"}))),
        ),
        ("GET /api/v1/app/{app}/endpoint/{ep}/stats", Scoped(None)),
        // The caller's own tenant-wide numbers: none of A's endpoints (A's are failing) in B's.
        ("GET /api/v1/stats", Collection(None)),
        ("POST /api/v1/app/{app}/portal-token", Scoped(Some(json!({})))),
        ("GET /api/v1/job/{id}", Scoped(None)),
        ("POST /api/v1/job/{id}/cancel", Scoped(None)),
        ("GET /api/v1/usage", Collection(None)),
        ("GET /api/v1/app/{app}/usage", Scoped(None)),
        ("GET /api/v1/billing", Collection(None)),
        // Billing is off in this test's server: the answer names that, and nothing else.
        ("POST /api/v1/billing/checkout", Refused(409)),
        ("POST /api/v1/billing/portal", Refused(409)),
        ("GET /api/v1/source", Collection(None)),
        // B's source on B's application (a source on A's application: checked after the walk).
        (
            "POST /api/v1/source",
            Collection(Some(
                json!({"name": "b source", "app": "b-customer", "verification": {"type": "none"}}),
            )),
        ),
        ("GET /api/v1/source/{src}", Scoped(None)),
        ("PATCH /api/v1/source/{src}", Scoped(Some(json!({"name": "hijacked"})))),
        ("DELETE /api/v1/source/{src}", Scoped(None)),
        ("POST /api/v1/source/{src}/token/rotate", Scoped(Some(json!({})))),
        ("POST /api/v1/source/{src}/test-request", Scoped(Some(json!({})))),
        ("GET /api/v1/source/{src}/request", Scoped(None)),
        // The ingest URL's token is the credential, not a tenant's key (unknown and rotated
        // tokens: e2e/tests/sources.rs).
        ("POST /in/{token}", Public),
        ("GET /in/{token}", Public),
        // Signed by Stripe, not by a tenant's credential (forgery: e2e/tests/billing.rs).
        ("POST /stripe/webhook", Public),
    ])
}

/// Tenant A's objects, by path parameter.
struct Victim {
    params: BTreeMap<&'static str, Vec<String>>,
    /// Strings that must never appear in tenant B's responses.
    secrets: Vec<String>,
}

async fn seed_victim(a: &Client) -> Victim {
    let app = a.create_app("A's customer", Some("a-customer")).await;
    let endpoint = a
        .post(
            "/api/v1/app/a-customer/endpoint",
            json!({"url": "http://127.0.0.1:9/a-hook", "uid": "a-endpoint"}),
        )
        .await
        .expect(201);
    let message = a.send_message("a-customer", "a.secret", json!({"a_payload": "a-payload-marker"})).await;
    a.post("/api/v1/event-type", json!({"name": "a.private"})).await.expect(201);
    let key = a.post("/api/v1/api-key", json!({"name": "a extra key"})).await.expect(201);
    let broadcast = a
        .post("/api/v1/msg/broadcast", json!({"event_type": "a.broadcast", "payload": {}}))
        .await
        .expect(202);
    let secret = a.get("/api/v1/app/a-customer/endpoint/a-endpoint/secret").await.expect(200);
    // An attempt of A's: the endpoint is unreachable (no SSRF allow-list), so it fails fast.
    let attempt = wait_for_attempt(a, &id(&message)).await;
    // A running job of A's: replay-missing over a window with A's message in it.
    let other = a
        .post("/api/v1/app/a-customer/endpoint", json!({"url": "http://127.0.0.1:9/a-other"}))
        .await
        .expect(201);
    let job = a
        .post(
            &format!("/api/v1/app/a-customer/endpoint/{}/replay-missing", id(&other)),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await
        .expect(202);
    // A source of A's, on an application of its own (its messages stay out of a-customer's list).
    let inbox = a.create_app("A's inbox", Some("a-inbox")).await;
    let source = a
        .post("/api/v1/source", json!({"name": "A's GitHub", "uid": "a-source", "app": "a-inbox", "verification": {"type": "none"}}))
        .await
        .expect(201);
    let ingest_url = source["ingest_url"].as_str().unwrap().to_owned();
    let token = ingest_url.rsplit('/').next().unwrap().to_owned();
    a.post(&format!("/in/{token}"), json!({"a_inbound": "a-inbound-marker"})).await.expect(202);
    Victim {
        params: BTreeMap::from([
            ("src", vec![id(&source), "a-source".to_owned()]),
            ("token", vec![token.clone()]),
            ("app", vec![id(&app), "a-customer".to_owned()]),
            ("ep", vec![id(&endpoint), "a-endpoint".to_owned()]),
            ("msg", vec![id(&message)]),
            ("name", vec!["a.private".to_owned()]),
            ("id", vec![id(&key["api_key"]), id(&broadcast), id(&job)]),
            ("attempt", vec![id(&attempt)]),
        ]),
        secrets: vec![
            id(&app),
            id(&endpoint),
            id(&message),
            id(&key["api_key"]),
            id(&attempt),
            id(&broadcast),
            id(&job),
            "a-customer".to_owned(),
            "a-payload-marker".to_owned(),
            "a.private".to_owned(),
            id(&source),
            id(&inbox),
            "a-source".to_owned(),
            token,
            "a-inbound-marker".to_owned(),
            secret["key"].as_str().unwrap().to_owned(),
        ],
    }
}

async fn wait_for_attempt(a: &Client, message: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let attempts = a.get(&format!("/api/v1/app/a-customer/msg/{message}/attempt")).await.expect(200);
        if let Some(first) = attempts["data"].as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every way of filling the path's parameters: all of A's objects, and, for nested routes, B's
/// own application with A's inner object (so a check on the parent alone is not enough).
fn fillings(path: &str, victim: &Victim, b_app: &str) -> Vec<String> {
    let names: Vec<&str> =
        victim.params.keys().copied().filter(|name| path.contains(&format!("{{{name}}}"))).collect();
    let mut paths = vec![path.to_owned()];
    for name in &names {
        paths = paths
            .into_iter()
            .flat_map(|p| {
                victim.params[name]
                    .iter()
                    .map(move |value| p.replace(&format!("{{{name}}}"), value))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    if names.len() > 1 && names.contains(&"app") {
        let mut mixed = path.replace("{app}", b_app);
        for name in names.iter().filter(|n| **n != "app") {
            mixed = mixed.replace(&format!("{{{name}}}"), &victim.params[name][0]);
        }
        paths.push(mixed);
    }
    paths
}

fn assert_no_leak(victim: &Victim, what: &str, text: &str) {
    for secret in &victim.secrets {
        assert!(!text.contains(secret.as_str()), "{what} leaked {secret}: {text}");
    }
}

async fn every_route_hides_other_tenants_objects(db: Backend) {
    let server = TestServer::start(db).await;
    let a = server.tenant("alpha");
    let b = server.tenant("beta");
    let victim = seed_victim(&a).await;
    let b_app = id(&b.create_app("B's customer", Some("b-customer")).await);
    b.create_endpoint("b-customer", "https://b.example/hook").await;

    let document = server.anonymous().get("/api/openapi.json").await.expect(200);
    let cases = cases();
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let route = format!("{} {path}", method.to_uppercase());
            let case = cases.get(route.as_str()).unwrap_or_else(|| {
                panic!("route {route} has no isolation case: add it to e2e/tests/isolation.rs")
            });
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            match case {
                Case::Public => {}
                Case::Scoped(body) => {
                    for concrete in fillings(path, &victim, &b_app) {
                        let response = b.request(method.clone(), &concrete, body.as_ref(), &[]).await;
                        assert_eq!(
                            response.status, 404,
                            "{method} {concrete} as tenant B: {}",
                            response.text
                        );
                        assert_eq!(response.body["code"], "not_found", "{method} {concrete}");
                        assert_no_leak(&victim, &format!("{method} {concrete}"), &response.text);
                        checked += 1;
                    }
                }
                Case::Collection(body) => {
                    let response = b.request(method.clone(), path, body.as_ref(), &[]).await;
                    assert!(response.status.is_success(), "{method} {path} as tenant B: {}", response.text);
                    assert_no_leak(&victim, &format!("{method} {path}"), &response.text);
                    checked += 1;
                }
                Case::Refused(status) => {
                    let response = b.request(method.clone(), path, Some(&json!({})), &[]).await;
                    assert_eq!(response.status, *status, "{method} {path} as tenant B: {}", response.text);
                    assert_no_leak(&victim, &format!("{method} {path}"), &response.text);
                    checked += 1;
                }
                Case::Capability => {
                    for concrete in fillings(path, &victim, &b_app) {
                        let response = b.request(method.clone(), &concrete, None, &[]).await;
                        assert_eq!(
                            response.status, 403,
                            "{method} {concrete} as tenant B: {}",
                            response.text
                        );
                        assert_eq!(response.body["code"], "data_url_invalid", "{method} {concrete}");
                        assert_no_leak(&victim, &format!("{method} {concrete}"), &response.text);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(
        checked_routes(&document),
        cases.len(),
        "the isolation cases and the served routes differ: remove cases for routes that are gone"
    );
    assert!(checked > 30, "only {checked} requests checked");

    // Tenant A's objects are untouched.
    let app = a.get("/api/v1/app/a-customer").await.expect(200);
    assert_eq!(app["name"], "A's customer");
    a.get("/api/v1/app/a-customer/endpoint/a-endpoint").await.expect(200);
    assert_eq!(a.get("/api/v1/event-type/a.private").await.expect(200)["description"], "");
    let secret = a.get("/api/v1/app/a-customer/endpoint/a-endpoint/secret").await.expect(200);
    assert!(victim.secrets.contains(&secret["key"].as_str().unwrap().to_owned()), "the secret was rotated");
    // A's own message and A's own broadcast; nothing tenant B sent (B's broadcast is also of
    // type a.secret, and must have reached only B's applications).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let messages = a.get("/api/v1/app/a-customer/msg").await.expect(200);
        let mut kinds: Vec<String> = messages["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["event_type"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        if kinds.len() >= 2 || std::time::Instant::now() > deadline {
            assert_eq!(kinds, ["a.broadcast", "a.secret"]);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // B cannot point a source at A's application: the answer is the one for an application that
    // does not exist. A's source kept its name and token.
    let source_on = |app: &str| json!({"name": "b source 2", "app": app, "verification": {"type": "none"}});
    let refused = b.post("/api/v1/source", source_on("a-customer")).await;
    let unknown = b.post("/api/v1/source", source_on("no-such-app")).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.body, unknown.body, "A's application is told apart from a missing one");
    assert_no_leak(&victim, "POST /api/v1/source naming A's application", &refused.text);
    let source = a.get("/api/v1/source/a-source").await.expect(200);
    assert_eq!(source["name"], "A's GitHub", "{source}");
    assert!(source["previous_url_expires_at"].is_null(), "A's token was rotated: {source}");
    assert!(source["ingest_url"].as_str().unwrap().ends_with(&victim.params["token"][0]), "{source}");
    let keys = a.get("/api/v1/api-key").await.expect(200);
    assert!(keys["data"].as_array().unwrap().iter().all(|k| k["revoked_at"].is_null()), "{keys}");
    assert_victim_untouched(&a, &victim).await;
}

/// What every pass must leave as it was: A's payload, A's endpoint list, A's job.
async fn assert_victim_untouched(a: &Client, victim: &Victim) {
    let message = a.get(&format!("/api/v1/app/a-customer/msg/{}", victim.params["msg"][0])).await.expect(200);
    assert_eq!(message["payload"]["a_payload"], "a-payload-marker", "the payload was expunged: {message}");
    let endpoints = a.get("/api/v1/app/a-customer/endpoint").await.expect(200);
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 2, "{endpoints}");
    let job = a.get(&format!("/api/v1/job/{}", victim.params["id"][2])).await.expect(200);
    assert_ne!(job["state"], "cancelled", "{job}");
}

/// A portal token sees its own application and nothing else: not another application of the same
/// tenant, not another tenant, and no tenant-wide route (except reading the event-type catalog,
/// which the portal needs to pick filters).
async fn portal_tokens_reach_only_their_application(db: Backend) {
    let server = TestServer::start(db).await;
    let a = server.tenant("alpha");
    let b = server.tenant("beta");
    let victim = seed_victim(&a).await;
    // The portal's own application, in tenant A, with an endpoint and a message of its own.
    a.create_app("A's other customer", Some("a-other")).await;
    a.create_endpoint("a-other", "https://other.example/hook").await;
    a.send_message("a-other", "other.event", json!({"mine": true})).await;
    let b_app = id(&b.create_app("B's customer", Some("b-customer")).await);
    let document = server.anonymous().get("/api/openapi.json").await.expect(200);
    let cases = cases();

    for (owner, app) in [(&a, "a-other"), (&b, "b-customer")] {
        let minted = owner.post(&format!("/api/v1/app/{app}/portal-token"), json!({})).await.expect(201);
        let token = minted["token"].as_str().unwrap().to_owned();
        assert!(minted["url"].as_str().unwrap().ends_with(&token), "{minted}");
        let portal = server.client_with_key(&token);
        // Its own application answers.
        portal.get(&format!("/api/v1/app/{app}")).await.expect(200);
        portal.get(&format!("/api/v1/app/{app}/endpoint")).await.expect(200);
        portal.get(&format!("/api/v1/app/{app}/msg")).await.expect(200);
        let mut checked = 0;
        for (path, operations) in document["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                let route = format!("{} {path}", method.to_uppercase());
                let case = cases
                    .get(route.as_str())
                    .unwrap_or_else(|| panic!("route {route} has no isolation case"));
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let catalog_read = method == Method::GET && path.starts_with("/api/v1/event-type");
                let concrete_paths = match case {
                    Case::Public => continue,
                    Case::Scoped(_) | Case::Capability => fillings(path, &victim, &b_app),
                    Case::Collection(_) | Case::Refused(_) => vec![path.clone()],
                };
                let body = match case {
                    Case::Scoped(body) | Case::Collection(body) => body.clone(),
                    Case::Public | Case::Refused(_) | Case::Capability => None,
                };
                for concrete in concrete_paths {
                    let response = portal.request(method.clone(), &concrete, body.as_ref(), &[]).await;
                    let same_tenant = std::ptr::eq(owner, &a);
                    if matches!(case, Case::Capability) {
                        // The token is not what the URL checks: refused like any caller.
                        assert_eq!(
                            response.status, 403,
                            "{method} {concrete} with a portal token: {}",
                            response.text
                        );
                    } else if catalog_read && (same_tenant || matches!(case, Case::Collection(_))) {
                        // The token's own tenant's event-type catalog is readable, and that is all.
                        assert!(
                            response.status.is_success(),
                            "{method} {concrete} with a portal token: {}",
                            response.text
                        );
                        if !same_tenant {
                            assert_no_leak(&victim, &format!("{method} {concrete}"), &response.text);
                        }
                    } else {
                        assert_eq!(
                            response.status, 404,
                            "{method} {concrete} with a portal token of {app}: {}",
                            response.text
                        );
                        assert_no_leak(&victim, &format!("{method} {concrete}"), &response.text);
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "only {checked} requests checked");
    }
    // A read-only token reads but does not write.
    let minted = a.post("/api/v1/app/a-other/portal-token", json!({"read_only": true})).await.expect(201);
    let read_only = server.client_with_key(minted["token"].as_str().unwrap());
    read_only.get("/api/v1/app/a-other/endpoint").await.expect(200);
    read_only
        .post("/api/v1/app/a-other/endpoint", json!({"url": "https://x.example/h"}))
        .await
        .expect_error(403, "insufficient_scope");
    // A tampered or expired token is refused.
    let forged = format!("{}x", minted["token"].as_str().unwrap());
    server.client_with_key(&forged).get("/api/v1/app/a-other").await.expect_error(401, "unauthorized");
    a.post("/api/v1/app/a-other/portal-token", json!({"expires_in": 5})).await.expect(422);
    assert_victim_untouched(&a, &victim).await;
}

fn checked_routes(document: &Value) -> usize {
    document["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum()
}
