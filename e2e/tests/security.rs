//! Black-box tests of the security fixes: each scenario is what a hostile or careless caller did
//! to a running server before the fix (stop it for every tenant, bypass a quota, read another
//! principal's secret, publish through a portal, carry credentials to a new host, multiply a rate
//! limit, reuse a session after logout, frame the dashboard, scrape metrics from outside).

use std::time::{Duration, Instant};

use hookline_e2e::{
    Auth, Backend, Client, ServerOptions, TestServer, both_databases, id, receiver::Receiver,
};
use reqwest::Method;
use serde_json::{Value, json};

both_databases!(
    a_cyclic_schema_is_refused_and_the_server_keeps_serving,
    a_schema_pattern_costs_linear_time_and_backtracking_constructs_are_refused,
    a_broadcast_counts_against_the_quota_and_the_payload_limit_at_acceptance,
    an_idempotency_key_belongs_to_the_principal_that_used_it,
    a_response_carrying_a_secret_is_never_stored_or_replayed,
    portal_tokens_manage_endpoints_but_cannot_publish_messages,
    changing_an_endpoints_origin_drops_its_stored_credentials,
    the_api_rate_limit_is_per_tenant_whatever_the_number_of_keys,
    logout_revokes_the_session_on_the_server,
    sign_in_is_throttled_per_account_and_per_address_whatever_the_forwarded_header,
);

const WAIT: Duration = Duration::from_secs(20);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
}

/// `hookline plan set` for a running server, then wait out its 2-second limits cache.
async fn set_plan(server: &TestServer, tenant: &str, plan: &str, overrides: &[&str]) {
    let mut args = vec!["plan", "set", "--tenant", tenant, "--plan", plan];
    args.extend_from_slice(overrides);
    server.cli(&args);
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

async fn post_with_key(client: &Client, path: &str, body: Value, key: &str) -> hookline_e2e::Response {
    client.request(Method::POST, path, Some(&body), &[("Idempotency-Key", key)]).await
}

async fn a_cyclic_schema_is_refused_and_the_server_keeps_serving(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let cyclic =
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    // With an example (validated at creation) and without one (validated at the first message).
    for body in [
        json!({"name": "a.b", "schema": cyclic, "example": {}}),
        json!({"name": "a.b", "schema": cyclic}),
        json!({"name": "a.c", "schema": {"$ref": "#"}}),
        json!({"name": "a.d", "schema": {"allOf": [{"$ref": "#/allOf/0"}]}}),
        json!({"name": "a.e", "schema": {"properties": {"x": {"not": {"$ref": "#/properties/x"}}}}}),
    ] {
        let refused = api.post("/api/v1/event-type", body.clone()).await;
        assert_eq!(refused.error_locs(), ["body.schema"], "{body}: {}", refused.text);
        assert!(refused.text.contains("$ref"), "the error names the $ref: {}", refused.text);
        refused.expect_error(422, "validation_error");
        // Still serving, for this tenant and every other.
        server.anonymous().get("/healthz").await.expect(200);
    }
    // PATCH is checked the same way.
    api.post("/api/v1/event-type", json!({"name": "a.b"})).await.expect(201);
    let refused = api.patch("/api/v1/event-type/a.b", json!({"schema": cyclic})).await;
    assert_eq!(refused.error_locs(), ["body.schema"], "{}", refused.text);
    let app = id(&api.create_app("A", None).await);
    api.send_message(&app, "a.b", json!({"anything": 1})).await;

    // Recursion that walks down the payload terminates and stays allowed: a tree of nodes.
    let tree = json!({
        "$defs": {"node": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
        }}},
        "$ref": "#/$defs/node"
    });
    api.post("/api/v1/event-type", json!({"name": "tree.made", "schema": tree})).await.expect(201);
    api.send_message(
        &app,
        "tree.made",
        json!({"name": "root", "children": [{"name": "leaf", "children": []}]}),
    )
    .await;
    let refused = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"event_type": "tree.made", "payload": {"name": "root", "children": [{"children": []}]}}),
        )
        .await;
    assert_eq!(refused.error_locs(), ["body.payload.children.0"], "{}", refused.text);
    server.anonymous().get("/healthz").await.expect(200);
}

async fn a_schema_pattern_costs_linear_time_and_backtracking_constructs_are_refused(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    // Lookarounds and backreferences need a backtracking engine: refused at creation.
    for pattern in ["^(?=a)a+$", "^(a)\\1$", "(?<!x)y"] {
        let body = json!({"name": "x.y", "schema": {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}});
        let refused = api.post("/api/v1/event-type", body).await;
        assert_eq!(refused.error_locs(), ["body.schema"], "{pattern}: {}", refused.text);
    }
    let body = json!({"name": "x.y", "schema": {"type": "object", "patternProperties": {"^(?!id)": {"type": "string"}}}});
    assert_eq!(api.post("/api/v1/event-type", body).await.error_locs(), ["body.schema"]);

    // A pattern that is exponential for a backtracking matcher, over a large array of strings that
    // almost match: the server's CPU for the message stays far below what backtracking costs
    // (seconds per string).
    let schema = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "pattern": "^(a|a?)+$"}}}});
    api.post("/api/v1/event-type", json!({"name": "tags.set", "schema": schema})).await.expect(201);
    let app = id(&api.create_app("A", None).await);
    let tags: Vec<String> = (0..2_000).map(|_| format!("{}b", "a".repeat(40))).collect();
    let before = hookline_e2e::cpu_time(server.pid());
    let refused = api
        .post(&format!("/api/v1/app/{app}/msg"), json!({"event_type": "tags.set", "payload": {"tags": tags}}))
        .await;
    let spent = hookline_e2e::cpu_time(server.pid()) - before;
    refused.expect_error(422, "validation_error");
    assert!(spent < Duration::from_secs(2), "validating the payload cost {spent:?} of CPU");
    api.send_message(&app, "tags.set", json!({"tags": ["aaa", "a"]})).await;
}

async fn a_broadcast_counts_against_the_quota_and_the_payload_limit_at_acceptance(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant_on("freebie", "free");
    set_plan(&server, "freebie", "free", &["--monthly-messages", "3", "--max-payload-bytes", "1000"]).await;
    api.create_app("A", Some("a")).await;
    api.create_app("B", Some("b")).await;
    api.create_endpoint("a", &receiver.url("/a")).await;
    api.post("/api/v1/app/b/endpoint", json!({"url": receiver.url("/b"), "filter_types": ["b.*"]}))
        .await
        .expect(201);
    api.send_message("a", "a.one", json!({"n": 1})).await;
    api.send_message("a", "a.one", json!({"n": 2})).await;

    // b.thing would become two messages (A takes everything, B takes b.*): 2 + 2 > 3.
    api.post("/api/v1/msg/broadcast", json!({"event_type": "b.thing", "payload": {}}))
        .await
        .expect_error(429, "quota_exceeded");
    // Over the plan's payload limit: refused whatever the quota.
    let big = "x".repeat(2_000);
    api.post("/api/v1/msg/broadcast", json!({"event_type": "a.thing", "payload": {"big": big}}))
        .await
        .expect_error(413, "payload_too_large");
    // a.thing becomes one message: 2 + 1 = 3, accepted; after it, nothing more fits.
    api.post("/api/v1/msg/broadcast", json!({"event_type": "a.thing", "payload": {}})).await.expect(202);
    api.post("/api/v1/app/a/msg", json!({"event_type": "a.one", "payload": {}}))
        .await
        .expect_error(429, "quota_exceeded");
    api.post("/api/v1/msg/broadcast", json!({"event_type": "a.thing", "payload": {}}))
        .await
        .expect_error(429, "quota_exceeded");
    // The expansion made exactly the message counted, and it arrived.
    let deadline = Instant::now() + WAIT;
    while receiver.count() < 3 {
        assert!(Instant::now() < deadline, "only {} of 3 deliveries arrived", receiver.count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 3);
    assert_eq!(api.get("/api/v1/usage").await.expect(200)["quota"]["used"], 3);
}

async fn an_idempotency_key_belongs_to_the_principal_that_used_it(db: Backend) {
    let server = TestServer::start(db).await;
    let admin = server.tenant("acme");
    let created =
        admin.post("/api/v1/api-key", json!({"name": "reader", "scopes": ["read"]})).await.expect(201);
    let reader = server.client_with_key(created["key"].as_str().unwrap());
    let writer_key =
        admin.post("/api/v1/api-key", json!({"name": "writer", "scopes": ["write"]})).await.expect(201);
    let writer = server.client_with_key(writer_key["key"].as_str().unwrap());
    admin.create_app("A", Some("a")).await;

    // The admin creates an application with a key; the reader repeating it is not answered with
    // the admin's response (its own request runs, and is refused for its scope).
    let body = json!({"name": "Made by admin"});
    post_with_key(&admin, "/api/v1/app", body.clone(), "k-1").await.expect(201);
    let repeated = post_with_key(&reader, "/api/v1/app", body.clone(), "k-1").await;
    assert!(repeated.headers.get("idempotent-replayed").is_none(), "{:?}", repeated.headers);
    repeated.expect_error(403, "insufficient_scope");
    // The admin still gets its replay.
    let replay = post_with_key(&admin, "/api/v1/app", body.clone(), "k-1").await;
    assert_eq!(replay.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    replay.expect(201);

    // A lower-privileged caller cannot pre-claim a key: the reader uses k-2 first, then the
    // writer's request with k-2 runs (neither a replay of the 403 nor a "reused" refusal).
    post_with_key(&reader, "/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {}}), "k-2")
        .await
        .expect_error(403, "insufficient_scope");
    let sent =
        post_with_key(&writer, "/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {}}), "k-2").await;
    assert!(sent.headers.get("idempotent-replayed").is_none());
    sent.expect(202);
    // And a different body from another principal with the same key is not "reused" either.
    post_with_key(&admin, "/api/v1/app/a/msg", json!({"event_type": "c.d", "payload": {}}), "k-2")
        .await
        .expect(202);
}

async fn a_response_carrying_a_secret_is_never_stored_or_replayed(db: Backend) {
    let server = TestServer::start(db).await;
    let admin = server.tenant("acme");
    admin.create_app("A", Some("a")).await;
    let body = json!({"name": "deploy"});
    let first = post_with_key(&admin, "/api/v1/api-key", body.clone(), "mint-1").await.expect(201);
    let plaintext = first["key"].as_str().unwrap().to_owned();
    // The same principal repeating it gets no second copy of the key, and no new key either.
    let again = post_with_key(&admin, "/api/v1/api-key", body.clone(), "mint-1").await;
    assert!(!again.text.contains(&plaintext), "the key was replayed: {}", again.text);
    again.expect_error(409, "idempotency_secret_not_replayed");
    let keys = admin.get("/api/v1/api-key").await.expect(200);
    let named: Vec<&Value> =
        keys["data"].as_array().unwrap().iter().filter(|k| k["name"] == "deploy").collect();
    assert_eq!(named.len(), 1, "{keys}");
    // A different request with that key is still refused as a reuse.
    post_with_key(&admin, "/api/v1/api-key", json!({"name": "other"}), "mint-1")
        .await
        .expect_error(422, "idempotency_key_reused");

    // Portal tokens are secrets too.
    let token = post_with_key(&admin, "/api/v1/app/a/portal-token", json!({}), "portal-1").await.expect(201);
    let again = post_with_key(&admin, "/api/v1/app/a/portal-token", json!({}), "portal-1").await;
    assert!(!again.text.contains(token["token"].as_str().unwrap()));
    again.expect_error(409, "idempotency_secret_not_replayed");

    // Nothing of the key or the token is stored in the database.
    let stored = stored_idempotent_bodies(&server).await;
    assert!(!stored.is_empty());
    for body in stored {
        assert!(!body.contains(&plaintext) && !body.contains(token["token"].as_str().unwrap()), "{body}");
    }
}

/// Every response body the idempotency records hold, read straight from the database.
async fn stored_idempotent_bodies(server: &TestServer) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let url = match server.backend {
        Backend::Sqlite => format!("{}?mode=ro", server.database_url),
        Backend::Postgres => server.database_url.clone(),
    };
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT COALESCE(response_body, '') AS body, state FROM idempotency_keys",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            format!(
                "{} {}",
                row.try_get::<String>("", "state").unwrap(),
                row.try_get::<String>("", "body").unwrap()
            )
        })
        .collect()
}

async fn portal_tokens_manage_endpoints_but_cannot_publish_messages(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let minted = api.post("/api/v1/app/a/portal-token", json!({})).await.expect(201);
    assert_eq!(minted["read_only"], false);
    let portal = api.with_auth(Auth::Bearer(minted["token"].as_str().unwrap().to_owned()));
    portal
        .post("/api/v1/app/a/msg", json!({"event_type": "invoice.paid", "payload": {"forged": true}}))
        .await
        .expect_error(403, "portal_cannot_publish");
    // What the portal is for still works.
    let endpoint = portal
        .post("/api/v1/app/a/endpoint", json!({"url": "https://hooks.example.com/in"}))
        .await
        .expect(201);
    portal.get("/api/v1/app/a/msg").await.expect(200);
    portal.post(&format!("/api/v1/app/a/endpoint/{}/test", id(&endpoint)), json!({})).await.expect(202);
    // Nothing the portal tried to publish was stored or counted.
    let messages = api.get("/api/v1/app/a/msg").await.expect(200);
    assert!(
        messages["data"].as_array().unwrap().iter().all(|m| m["event_type"] == "hookline.test"),
        "{messages}"
    );
}

async fn changing_an_endpoints_origin_drops_its_stored_credentials(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let first = Receiver::start();
    let second = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let created = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({
                "url": first.url("/one"),
                "auth": {"type": "basic", "username": "hook", "password": "s3cret-pass"},
                "headers": {"X-Tenant-Token": "t0ken-value"}
            }),
        )
        .await
        .expect(201);
    let path = format!("/api/v1/app/a/endpoint/{}", id(&created));
    // Same origin, another path: the credentials stay.
    let same = api.patch(&path, json!({"url": first.url("/two")})).await.expect(200);
    assert_eq!(same["auth"]["type"], "basic", "{same}");
    assert_eq!(same["header_names"], json!(["X-Tenant-Token"]));
    // Another origin: they go, and the response says so.
    let moved = api.patch(&path, json!({"url": second.url("/elsewhere")})).await.expect(200);
    assert_eq!(moved["auth"], Value::Null, "{moved}");
    assert_eq!(moved["header_names"], json!([]), "{moved}");
    api.send_message("a", "a.b", json!({"n": 1})).await;
    let deadline = Instant::now() + WAIT;
    while second.count() < 1 {
        assert!(Instant::now() < deadline, "the delivery did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = &second.received()[0];
    assert_eq!(got.header("authorization"), None, "{:?}", got.headers);
    assert_eq!(got.header("x-tenant-token"), None, "{:?}", got.headers);
    assert_eq!(first.count(), 0);
    // Moving with credentials in the same request keeps the ones supplied.
    let back = api
        .patch(
            &path,
            json!({"url": first.url("/three"), "auth": {"type": "header", "name": "X-Key", "value": "v"}, "headers": {"X-Other": "o"}}),
        )
        .await
        .expect(200);
    assert_eq!(back["auth"]["type"], "header", "{back}");
    assert_eq!(back["header_names"], json!(["X-Other"]));
}

async fn the_api_rate_limit_is_per_tenant_whatever_the_number_of_keys(db: Backend) {
    let server = TestServer::start(db).await;
    let admin = server.tenant("acme");
    let mut clients = vec![admin.clone()];
    for n in 0..3 {
        let created = admin.post("/api/v1/api-key", json!({"name": format!("k{n}")})).await.expect(201);
        clients.push(server.client_with_key(created["key"].as_str().unwrap()));
    }
    set_plan(&server, "acme", "enterprise", &["--api-rate", "1", "--api-burst", "5"]).await;
    let mut allowed = 0;
    for round in 0..4 {
        for client in &clients {
            let response = client.get("/api/v1/app").await;
            match response.status.as_u16() {
                200 => allowed += 1,
                429 => assert_eq!(response.body["code"], "rate_limited"),
                other => panic!("round {round}: unexpected {other}: {}", response.text),
            }
        }
    }
    // 16 requests within about a second: the tenant's burst of 5 (+ at most two refills), not
    // 5 per key.
    assert!(allowed <= 7, "{allowed} of 16 requests were allowed");
    // Another tenant has its own bucket.
    server.tenant("other").get("/api/v1/app").await.expect(200);
}

async fn logout_revokes_the_session_on_the_server(db: Backend) {
    let server = TestServer::start(db).await;
    let anon = server.anonymous();
    let signup = anon
        .post(
            "/api/v1/auth/signup",
            json!({"email": "owner@example.com", "password": "correct horse battery", "organization_name": "Example"}),
        )
        .await;
    let cookie = set_cookie(&signup, "hookline_session").expect("a session cookie");
    signup.expect(201);
    let login = anon
        .post(
            "/api/v1/auth/login",
            json!({"email": "owner@example.com", "password": "correct horse battery"}),
        )
        .await;
    let other_cookie = set_cookie(&login, "hookline_session").expect("a session cookie");
    login.expect(200);
    let session = anon.with_auth(Auth::Session { cookie: cookie.clone(), csrf: None });
    session.get("/api/v1/auth/me").await.expect(200);
    // Logging out with the cookie ends that session for whoever holds a copy of it.
    session.post("/api/v1/auth/logout", json!({})).await.expect(204);
    session.get("/api/v1/auth/me").await.expect_error(401, "unauthorized");
    session.get("/api/v1/app").await.expect_error(401, "unauthorized");
    // The other session of the same user is untouched.
    anon.with_auth(Auth::Session { cookie: other_cookie, csrf: None })
        .get("/api/v1/auth/me")
        .await
        .expect(200);
}

/// `name=value` of a `Set-Cookie` header of the response.
fn set_cookie(response: &hookline_e2e::Response, name: &str) -> Option<String> {
    full_set_cookie(response, name).map(|v| v.split(';').next().unwrap().to_owned())
}

fn full_set_cookie(response: &hookline_e2e::Response, name: &str) -> Option<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

async fn login_response(client: &Client, headers: &[(&str, &str)]) -> hookline_e2e::Response {
    client
        .request(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"email": "owner@example.com", "password": "correct horse battery"})),
            headers,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_trusted_only_from_configured_proxies() {
    let signup = json!({"email": "owner@example.com", "password": "correct horse battery", "organization_name": "Example"});
    // No proxy configured: a client's X-Forwarded-Proto changes nothing.
    let server = TestServer::start(Backend::Sqlite).await;
    let anon = server.anonymous();
    anon.post("/api/v1/auth/signup", signup.clone()).await.expect(201);
    let login = login_response(&anon, &[("X-Forwarded-Proto", "https")]).await;
    let cookie = full_set_cookie(&login, "hookline_session").unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(login.headers.get("strict-transport-security").is_none());

    // Behind a configured proxy, its X-Forwarded-Proto counts: Secure cookie and HSTS.
    let server = TestServer::start_with(
        Backend::Sqlite,
        ServerOptions::default().env("HOOKLINE_TRUSTED_PROXIES", "127.0.0.1/32"),
    )
    .await;
    let anon = server.anonymous();
    anon.post("/api/v1/auth/signup", signup).await.expect(201);
    let login = login_response(&anon, &[("X-Forwarded-Proto", "https")]).await;
    let cookie = full_set_cookie(&login, "hookline_session").unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    let hsts = login.headers.get("strict-transport-security").expect("HSTS over https").to_str().unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    let plain = login_response(&anon, &[]).await;
    assert!(!full_set_cookie(&plain, "hookline_session").unwrap().contains("Secure"));
    assert!(plain.headers.get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_forbids_framing_and_sniffing_and_the_docs_load_only_pinned_scripts() {
    let server = TestServer::start(Backend::Sqlite).await;
    let anon = server.anonymous();
    for path in ["/", "/apps/x", "/api/docs", "/api/openapi.json", "/api/v1/app", "/healthz"] {
        let response = anon.get(path).await;
        let header = |name: &str| {
            response
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| panic!("{path} has no {name} header"))
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src"), "{path}: {csp}");
    }
    let docs = anon.get("/api/docs").await;
    let page = docs.text.clone();
    let csp = docs.headers.get("content-security-policy").unwrap().to_str().unwrap().to_owned();
    docs.expect(200);
    // Every external script names an exact version and carries its integrity hash.
    let scripts: Vec<&str> = page.split("<script").skip(1).filter(|tag| tag.contains("src=")).collect();
    assert!(!scripts.is_empty(), "{page}");
    for tag in scripts {
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(tag.contains("integrity=\"sha384-"), "{tag}");
        assert!(tag.contains("crossorigin=\"anonymous\""), "{tag}");
        let src = tag.split("src=\"").nth(1).unwrap().split('"').next().unwrap();
        let version = src.split('@').nth(2).unwrap_or_else(|| panic!("no version in {src}"));
        assert_eq!(version.split('/').next().unwrap().split('.').count(), 3, "not an exact version: {src}");
        assert!(csp.contains(src), "the page's CSP allows exactly {src}: {csp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_the_listener_is_not_loopback() {
    let open = ServerOptions::default().env("HOOKLINE_LISTEN", "0.0.0.0:0");
    let server = TestServer::start_with(Backend::Sqlite, open.clone()).await;
    server.anonymous().get("/metrics").await.expect_error(401, "metrics_token_required");
    server.anonymous().get("/healthz").await.expect(200);

    let server =
        TestServer::start_with(Backend::Sqlite, open.env("HOOKLINE_METRICS_TOKEN", "scrape-secret")).await;
    server.anonymous().get("/metrics").await.expect_error(401, "unauthorized");
    let scraper = server.client_with_key("scrape-secret");
    let metrics = scraper.get("/metrics").await;
    assert!(metrics.text.contains("hookline_"), "{}", metrics.text);
    assert_eq!(metrics.status, 200);

    // On loopback it stays open without a token (a local Prometheus or the operator's curl).
    let local = TestServer::start(Backend::Sqlite).await;
    assert_eq!(local.anonymous().get("/metrics").await.status, 200);
}

/// Before: 60 wrong passwords in a row were all answered 401, each costing an argon2 hash. Now an
/// account takes 10 attempts (then 5 a minute) and an address 20 (then 10 a minute); sign-ups 10
/// an address (then 10 an hour). `X-Forwarded-For` from a peer that is not a trusted proxy
/// changes nothing. (Buckets refill while the test runs: counts allow for the time it took.)
async fn sign_in_is_throttled_per_account_and_per_address_whatever_the_forwarded_header(db: Backend) {
    let server = TestServer::start(db).await;
    let anon = server.anonymous();
    anon.post(
        "/api/v1/auth/signup",
        json!({"email": "a@example.com", "password": "correct horse battery", "organization_name": "a"}),
    )
    .await
    .expect(201);
    let started = Instant::now();
    let refill = |per_minute: f64| (started.elapsed().as_secs_f64() * per_minute / 60.0).ceil() as usize;
    let mut n = 0;
    let mut login = |email: String, password: &'static str| {
        n += 1;
        let body = json!({"email": email, "password": password});
        let anon = anon.clone();
        // A new forwarded address every time: it must not open a new bucket.
        let forwarded = format!("203.0.113.{}", n % 250);
        async move {
            anon.request(
                Method::POST,
                "/api/v1/auth/login",
                Some(&body),
                &[("X-Forwarded-For", forwarded.as_str())],
            )
            .await
        }
    };
    // Account a: ten wrong passwords are 401, then 429 with Retry-After.
    for _ in 0..10 {
        login("a@example.com".to_owned(), "wrong password!").await.expect_error(401, "unauthorized");
    }
    let mut extra = 0;
    let refused = loop {
        let answer = login("a@example.com".to_owned(), "wrong password!").await;
        if answer.status == 429 {
            break answer;
        }
        answer.expect_error(401, "unauthorized");
        extra += 1;
        assert!(extra <= refill(5.0), "{extra} attempts past the account's 10");
    };
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert!(refused.body["detail"].as_str().unwrap().contains("account"), "{}", refused.text);
    refused.expect_error(429, "rate_limited");
    if retry_after >= 3 {
        // No token for seconds: the right password is refused too, before any hash is computed.
        login("a@example.com".to_owned(), "correct horse battery").await.expect_error(429, "rate_limited");
    }
    // The address (127.0.0.1) has 20 - 10 - extra left: one attempt each for unknown accounts (no
    // account bucket runs out) until the address's refuses.
    let mut accepted = 0;
    let refused = loop {
        let answer = login(format!("nobody{accepted}@example.com"), "wrong password!").await;
        if answer.status == 429 {
            break answer;
        }
        answer.expect_error(401, "unauthorized");
        accepted += 1;
        assert!(accepted <= 10 - extra + refill(10.0), "{accepted} attempts past the address's 20");
    };
    assert!(accepted + extra >= 10, "the address was refused after {accepted} + {extra}");
    assert!(refused.body["detail"].as_str().unwrap().contains("address"), "{}", refused.text);
    // Sign-ups: one used above, nine more, then 429.
    for n in 0..9 {
        anon.post(
            "/api/v1/auth/signup",
            json!({"email": format!("s{n}@example.com"), "password": "correct horse battery", "organization_name": format!("s{n}")}),
        )
        .await
        .expect(201);
    }
    let refused = anon
        .post(
            "/api/v1/auth/signup",
            json!({"email": "s9@example.com", "password": "correct horse battery", "organization_name": "s9"}),
        )
        .await;
    assert!(refused.headers.contains_key("retry-after"));
    refused.expect_error(429, "rate_limited");
    // API keys are not affected.
    server.tenant("keyed").get("/api/v1/app").await.expect(200);
}
