//! Black-box tests of the foundation API: the real binary, over HTTP, on SQLite and PostgreSQL.

use hookline_e2e::{Auth, Backend, TestServer, both_databases, id};
use reqwest::Method;
use serde_json::{Value, json};

both_databases!(
    health_and_readiness_answer,
    unknown_api_paths_answer_a_json_404_and_wrong_methods_a_405_never_the_dashboard,
    the_quick_start_works_end_to_end,
    signup_login_and_csrf_protect_the_dashboard_session,
    api_keys_are_shown_once_scoped_and_revocable,
    a_key_stops_working_when_it_expires_even_while_cached,
    a_key_revoked_through_another_api_process_is_refused_once_its_cache_expires,
    event_types_validate_their_schema_and_the_messages_of_their_type,
    applications_are_addressable_by_uid_and_patches_tell_null_from_absent,
    endpoints_validate_their_fields_and_keep_secrets_encrypted,
    signing_secrets_rotate,
    idempotency_keys_replay_the_first_response,
    event_ids_deduplicate_messages,
    an_event_id_deduplicates_within_its_window_and_is_new_after_it,
    message_lists_paginate_and_filter,
    bad_input_gets_clear_errors,
    nul_text_extreme_numbers_and_far_times_get_the_same_answer_on_both_databases,
    deleting_an_application_removes_its_endpoints_and_messages,
);

async fn health_and_readiness_answer(db: Backend) {
    let server = TestServer::start(db).await;
    let anon = server.anonymous();
    assert_eq!(anon.get("/healthz").await.expect(200), json!({"status": "ok"}));
    assert_eq!(anon.get("/readyz").await.expect(200), json!({"status": "ok"}));
    anon.get("/api/v1/app").await.expect_error(401, "unauthorized");
}

async fn unknown_api_paths_answer_a_json_404_and_wrong_methods_a_405_never_the_dashboard(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let anon = server.anonymous();
    // A typo or a route this version does not have: a JSON 404 whatever the method and the caller.
    let invitation = json!({"email": "a@example.com", "role": "viewer"});
    for (client, method, path) in [
        (&api, Method::POST, "/api/v1/invitation"),
        (&api, Method::GET, "/api/v1/aplication"),
        (&api, Method::DELETE, "/api/v2/app"),
        (&api, Method::GET, "/api/v1/app/"),
        (&anon, Method::GET, "/api"),
        (&anon, Method::POST, "/in/"),
        (&anon, Method::GET, "/healthz/deep"),
    ] {
        let response = client.request(method.clone(), path, Some(&invitation), &[]).await;
        assert_eq!(
            response.headers["content-type"], "application/json",
            "{method} {path}: {}",
            response.text
        );
        response.expect_error(404, "not_found");
    }
    // A known path with a method it does not answer: 405 naming the methods it does.
    for (client, method, path, allow) in [
        (&api, Method::DELETE, "/api/v1/app", "GET, HEAD, POST"),
        (&api, Method::PUT, "/api/v1/app/app_1", "GET, HEAD, PATCH, DELETE"),
        (&anon, Method::DELETE, "/in/sometoken", "GET, HEAD, POST"),
        (&anon, Method::POST, "/healthz", "GET, HEAD"),
        (&anon, Method::GET, "/stripe/webhook", "POST"),
        (&anon, Method::POST, "/api/openapi.json", "GET, HEAD"),
        (&anon, Method::POST, "/apps", "GET, HEAD"),
    ] {
        let response = client.request(method.clone(), path, None, &[]).await;
        assert_eq!(response.headers["allow"], allow, "{method} {path}");
        response.expect_error(405, "method_not_allowed");
    }
    // HEAD answers wherever GET does (load balancers probe with it): GET's status and headers,
    // no body.
    for (client, path) in
        [(&anon, "/healthz"), (&anon, "/readyz"), (&anon, "/api/openapi.json"), (&api, "/api/v1/app")]
    {
        let head = client.request(Method::HEAD, path, None, &[]).await;
        assert_eq!(head.status.as_u16(), 200, "HEAD {path}");
        assert!(head.text.is_empty(), "HEAD {path} sent a body");
        assert_eq!(head.headers["content-type"], "application/json", "HEAD {path}");
    }
    assert_eq!(anon.request(Method::HEAD, "/api/v1/app", None, &[]).await.status.as_u16(), 401);
    assert_eq!(api.request(Method::HEAD, "/api/v1/aplication", None, &[]).await.status.as_u16(), 404);
    // The application is still untouched, and dashboard pages still load.
    assert_eq!(api.get("/api/v1/app").await.expect(200)["data"], json!([]));
    let page = anon.request(Method::GET, "/apps", None, &[]).await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"), "{:?}", page.headers);
}

async fn the_quick_start_works_end_to_end(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let app = api.create_app("Customer 42", Some("customer-42")).await;
    assert!(id(&app).starts_with("app_"));
    let endpoint = api
        .post(
            "/api/v1/app/customer-42/endpoint",
            json!({"url": "https://hooks.example.com/in", "filter_types": ["invoice.*"]}),
        )
        .await
        .expect(201);
    assert!(id(&endpoint).starts_with("ep_"));
    assert_eq!(endpoint["filter_types"], json!(["invoice.*"]));
    let message =
        api.send_message("customer-42", "invoice.paid", json!({"invoice": "in_1", "amount": 4200})).await;
    assert!(id(&message).starts_with("msg_"));
    let fetched = api.get(&format!("/api/v1/app/{}/msg/{}", id(&app), id(&message))).await.expect(200);
    assert_eq!(fetched["payload"], json!({"invoice": "in_1", "amount": 4200}));
    assert_eq!(fetched["event_type"], "invoice.paid");
    let list = api.get("/api/v1/app/customer-42/msg").await.expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["done"], true);
}

fn session_cookie(response: &hookline_e2e::Response) -> String {
    let header = response
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("hookline_session="))
        .expect("a session cookie");
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    header.split(';').next().unwrap().to_owned()
}

async fn signup_login_and_csrf_protect_the_dashboard_session(db: Backend) {
    let server = TestServer::start(db).await;
    let anon = server.anonymous();
    let signup = anon
        .post(
            "/api/v1/auth/signup",
            json!({"email": "Owner@Example.com", "password": "correct horse battery", "organization_name": "Example"}),
        )
        .await;
    let cookie = session_cookie(&signup);
    let body = signup.expect(201);
    assert_eq!(body["user"]["email"], "owner@example.com");
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["tenant"]["plan"], "free");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    // The same email cannot sign up twice; a short password is refused with its field.
    anon.post(
        "/api/v1/auth/signup",
        json!({"email": "owner@example.com", "password": "another long one", "organization_name": "Other"}),
    )
    .await
    .expect_error(409, "email_taken");
    let short = anon
        .post(
            "/api/v1/auth/signup",
            json!({"email": "x@example.com", "password": "short", "organization_name": "X"}),
        )
        .await;
    assert_eq!(short.error_locs(), ["body.password"]);
    short.expect_error(422, "validation_error");

    // Reads work with the cookie alone; writes need the CSRF token too.
    let session = anon.with_auth(Auth::Session { cookie: cookie.clone(), csrf: None });
    let me = session.get("/api/v1/auth/me").await.expect(200);
    assert_eq!(me["user"]["email"], "owner@example.com");
    session.get("/api/v1/app").await.expect(200);
    session.post("/api/v1/app", json!({"name": "A"})).await.expect_error(403, "csrf_token_invalid");
    let wrong = anon.with_auth(Auth::Session { cookie: cookie.clone(), csrf: Some("forged".to_owned()) });
    wrong.post("/api/v1/app", json!({"name": "A"})).await.expect_error(403, "csrf_token_invalid");
    let good = anon.with_auth(Auth::Session { cookie: cookie.clone(), csrf: Some(csrf) });
    good.post("/api/v1/app", json!({"name": "A"})).await.expect(201);

    // Login: wrong password and unknown email answer alike; the right one gives a new session.
    anon.post("/api/v1/auth/login", json!({"email": "owner@example.com", "password": "wrong password"}))
        .await
        .expect_error(401, "unauthorized");
    anon.post("/api/v1/auth/login", json!({"email": "nobody@example.com", "password": "wrong password"}))
        .await
        .expect_error(401, "unauthorized");
    let login = anon
        .post(
            "/api/v1/auth/login",
            json!({"email": "OWNER@example.com", "password": "correct horse battery"}),
        )
        .await;
    let cookie2 = session_cookie(&login);
    login.expect(200);
    let session2 = anon.with_auth(Auth::Session { cookie: cookie2, csrf: None });
    assert_eq!(session2.get("/api/v1/app").await.expect(200)["data"].as_array().unwrap().len(), 1);

    // Logout clears the cookie; a forged cookie is refused.
    let logout = anon.post("/api/v1/auth/logout", json!({})).await;
    let cleared = logout.headers.get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cleared.starts_with("hookline_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    logout.expect(204);
    let forged = anon.with_auth(Auth::Session {
        cookie: "hookline_session=eyJhbGciOiJIUzI1NiJ9.e30.x".to_owned(),
        csrf: None,
    });
    forged.get("/api/v1/app").await.expect_error(401, "unauthorized");
    // /auth/me is for sessions, not API keys.
    server.tenant("keyed").get("/api/v1/auth/me").await.expect_error(403, "session_required");
}

async fn api_keys_are_shown_once_scoped_and_revocable(db: Backend) {
    let server = TestServer::start(db).await;
    let admin = server.tenant("acme");
    let created = admin.post("/api/v1/api-key", json!({"name": "ci", "scopes": ["read"]})).await.expect(201);
    let read_key = created["key"].as_str().unwrap().to_owned();
    assert!(read_key.starts_with("hl_live_"));
    assert_eq!(created["api_key"]["prefix"], &read_key[..12]);
    let test_key = admin
        .post("/api/v1/api-key", json!({"name": "sandbox", "mode": "test", "scopes": ["write"]}))
        .await
        .expect(201);
    assert!(test_key["key"].as_str().unwrap().starts_with("hl_test_"));

    // The list never shows keys.
    let list = admin.get("/api/v1/api-key").await.expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert!(!list.to_string().contains(&read_key));
    assert!(list["data"].as_array().unwrap().iter().all(|k| k.get("key").is_none()));

    // A read key reads but cannot write, and cannot manage keys.
    let reader = server.client_with_key(&read_key);
    reader.get("/api/v1/app").await.expect(200);
    reader.post("/api/v1/app", json!({"name": "x"})).await.expect_error(403, "insufficient_scope");
    reader.get("/api/v1/api-key").await.expect_error(403, "insufficient_scope");
    // last_used_at is recorded.
    let list = admin.get("/api/v1/api-key").await.expect(200);
    let entry = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["api_key"]["id"])
        .unwrap()
        .clone();
    assert!(entry["last_used_at"].is_string(), "{entry}");

    // A write key cannot mint an admin key.
    let writer = server.client_with_key(test_key["key"].as_str().unwrap());
    writer
        .post("/api/v1/api-key", json!({"name": "x", "scopes": ["admin"]}))
        .await
        .expect_error(403, "insufficient_scope");

    // Revocation takes effect at once.
    let revoked = admin
        .delete(&format!("/api/v1/api-key/{}", created["api_key"]["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert!(revoked["revoked_at"].is_string());
    reader.get("/api/v1/app").await.expect_error(401, "unauthorized");
    // Expiry must be in the future (an expired key at work: the next test).
    admin
        .post("/api/v1/api-key", json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"}))
        .await
        .expect_error(422, "validation_error");
    server
        .client_with_key("hl_live_doesnotexist000000000000000000000")
        .get("/api/v1/app")
        .await
        .expect_error(401, "unauthorized");
    server.client_with_key("not-a-key").get("/api/v1/app").await.expect_error(401, "unauthorized");
}

async fn a_key_stops_working_when_it_expires_even_while_cached(db: Backend) {
    let server = TestServer::start(db).await;
    let admin = server.tenant("acme");
    let expires_at = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    let created = admin
        .post("/api/v1/api-key", json!({"name": "short", "expires_at": expires_at.to_rfc3339()}))
        .await
        .expect(201);
    let short = server.client_with_key(created["key"].as_str().unwrap());
    // Used before it expires: accepted, and now in the API's key cache (5 s).
    short.get("/api/v1/app").await.expect(200);
    let wait = (expires_at - chrono::Utc::now()).to_std().unwrap_or_default()
        + std::time::Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    short.get("/api/v1/app").await.expect_error(401, "unauthorized");
    short.post("/api/v1/app", json!({"name": "x"})).await.expect_error(401, "unauthorized");
    admin.get("/api/v1/app").await.expect(200);
}

/// Two API processes on one database: a key revoked through one stays cached in the other for
/// at most its TTL (5 s); after that the other refuses it on every request — not only on the one
/// request that reloads it while the rest keep the cached principal.
async fn a_key_revoked_through_another_api_process_is_refused_once_its_cache_expires(db: Backend) {
    let server = TestServer::start(db).await;
    let other = TestServer::spawn(
        db,
        tempfile::tempdir().unwrap(),
        server.database_url.clone(),
        hookline_e2e::ServerOptions::default().api_only(),
    );
    let admin = server.tenant("acme");
    let created = admin.post("/api/v1/api-key", json!({"name": "ci", "scopes": ["read"]})).await.expect(201);
    let reader = server.client_with_key(created["key"].as_str().unwrap());
    reader.get("/api/v1/app").await.expect(200);
    let Auth::Bearer(admin_key) = &admin.auth else { panic!("the tenant's client holds its key") };
    other
        .client_with_key(admin_key)
        .delete(&format!("/api/v1/api-key/{}", created["api_key"]["id"].as_str().unwrap()))
        .await
        .expect(200);
    other
        .client_with_key(created["key"].as_str().unwrap())
        .get("/api/v1/app")
        .await
        .expect_error(401, "unauthorized");
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
    for _ in 0..3 {
        reader.get("/api/v1/app").await.expect_error(401, "unauthorized");
    }
}

async fn event_types_validate_their_schema_and_the_messages_of_their_type(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let schema = json!({
        "type": "object",
        "required": ["amount"],
        "properties": {"amount": {"type": "integer", "minimum": 0}, "currency": {"type": "string"}}
    });
    let created = api
        .post(
            "/api/v1/event-type",
            json!({"name": "invoice.paid", "description": "An invoice was paid", "schema": schema, "example": {"amount": 10}}),
        )
        .await
        .expect(201);
    assert_eq!(created["name"], "invoice.paid");
    api.post("/api/v1/event-type", json!({"name": "invoice.paid"}))
        .await
        .expect_error(409, "event_type_exists");
    // A schema that is not a schema, and an example that does not match, name their fields.
    let bad =
        api.post("/api/v1/event-type", json!({"name": "x.y", "schema": {"type": "no-such-type"}})).await;
    assert_eq!(bad.error_locs(), ["body.schema"]);
    let bad = api
        .post("/api/v1/event-type", json!({"name": "x.y", "schema": schema, "example": {"amount": -1}}))
        .await;
    assert_eq!(bad.error_locs(), ["body.example"]);

    let app = api.create_app("A", None).await;
    let app_id = id(&app);
    let rejected = api
        .post(
            &format!("/api/v1/app/{app_id}/msg"),
            json!({"event_type": "invoice.paid", "payload": {"amount": "ten"}}),
        )
        .await;
    assert_eq!(rejected.error_locs(), ["body.payload.amount"]);
    rejected.expect_error(422, "validation_error");
    api.send_message(&app_id, "invoice.paid", json!({"amount": 10})).await;
    // Types without an entry in the catalog are accepted as they are.
    api.send_message(&app_id, "user.created", json!({"anything": true})).await;

    // Patch: description kept when absent, schema cleared by null.
    let patched = api
        .patch("/api/v1/event-type/invoice.paid", json!({"schema": null, "archived": true}))
        .await
        .expect(200);
    assert_eq!(patched["schema"], Value::Null);
    assert_eq!(patched["description"], "An invoice was paid");
    assert_eq!(patched["archived"], true);
    api.send_message(&app_id, "invoice.paid", json!({"amount": "ten"})).await;
    assert_eq!(api.get("/api/v1/event-type").await.expect(200)["data"].as_array().unwrap().len(), 1);
    api.delete("/api/v1/event-type/invoice.paid").await.expect(204);
    api.get("/api/v1/event-type/invoice.paid").await.expect_error(404, "not_found");
}

async fn applications_are_addressable_by_uid_and_patches_tell_null_from_absent(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let app = api
        .post(
            "/api/v1/app",
            json!({"name": "Customer", "uid": "cust-1", "metadata": {"tier": "gold"}, "rate_limit": 50}),
        )
        .await
        .expect(201);
    api.post("/api/v1/app", json!({"name": "Again", "uid": "cust-1"})).await.expect_error(409, "uid_taken");
    assert_eq!(api.get("/api/v1/app/cust-1").await.expect(200)["id"], app["id"]);
    assert_eq!(api.get(&format!("/api/v1/app/{}", id(&app))).await.expect(200)["uid"], "cust-1");

    let patched = api.patch("/api/v1/app/cust-1", json!({"name": "Renamed"})).await.expect(200);
    assert_eq!(patched["uid"], "cust-1");
    assert_eq!(patched["rate_limit"], 50);
    let patched = api.patch("/api/v1/app/cust-1", json!({"rate_limit": null, "uid": null})).await.expect(200);
    assert_eq!(patched["rate_limit"], Value::Null);
    assert_eq!(patched["uid"], Value::Null);
    assert_eq!(patched["metadata"], json!({"tier": "gold"}));
    api.get("/api/v1/app/cust-1").await.expect_error(404, "not_found");

    // Pagination over applications, oldest first.
    for n in 0..4 {
        api.create_app(&format!("App {n}"), None).await;
    }
    let first = api.get("/api/v1/app?limit=2").await.expect(200);
    assert_eq!(first["done"], false);
    assert_eq!(first["data"][0]["id"], app["id"]);
    let iterator = first["iterator"].as_str().unwrap();
    let second = api.get(&format!("/api/v1/app?limit=2&iterator={iterator}")).await.expect(200);
    let third = api
        .get(&format!("/api/v1/app?limit=2&iterator={}", second["iterator"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(third["done"], true);
    let all: Vec<_> =
        [&first, &second, &third].iter().flat_map(|p| p["data"].as_array().unwrap().clone()).collect();
    assert_eq!(all.len(), 5);
}

async fn endpoints_validate_their_fields_and_keep_secrets_encrypted(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let app = id(&api.create_app("A", Some("a")).await);
    let bad = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({
                "url": "ftp://example.com",
                "filter_types": ["ok.type", "bad type"],
                "rate_limit": 0,
                "timeout_ms": 10,
                "headers": {"webhook-signature": "x", "X-Ok": "fine"},
                "secret": "nope",
                "auth": {"type": "basic", "username": "", "password": "p"}
            }),
        )
        .await;
    let mut locs = bad.error_locs();
    locs.sort();
    assert_eq!(
        locs,
        [
            "body.auth.username",
            "body.filter_types.1",
            "body.headers.webhook-signature",
            "body.rate_limit",
            "body.secret",
            "body.timeout_ms",
            "body.url"
        ]
    );
    bad.expect_error(422, "validation_error");
    let unknown_field =
        api.post("/api/v1/app/a/endpoint", json!({"url": "https://x.example", "colour": "red"})).await;
    assert_eq!(unknown_field.error_locs(), ["body.colour"]);

    let endpoint = api
        .post(
            "/api/v1/app/a/endpoint",
            json!({
                "url": "https://hooks.example.com/x",
                "uid": "primary",
                "filter_types": ["invoice.*"],
                "channels": ["eu"],
                "headers": {"X-Api-Key": "header-secret-value"},
                "auth": {"type": "basic", "username": "hook", "password": "basic-secret-value"},
                "format": "cloudevents_structured",
                "ordering": "fifo",
                "timeout_ms": 5000,
                "retry_schedule": [1, 2, 3],
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            }),
        )
        .await
        .expect(201);
    assert_eq!(endpoint["header_names"], json!(["X-Api-Key"]));
    assert_eq!(endpoint["auth"], json!({"type": "basic", "username": "hook"}));
    assert_eq!(endpoint["format"], "cloudevents_structured");
    assert_eq!(endpoint["handshake"], true, "on by default for CloudEvents");
    assert_eq!(endpoint["ordering"], "fifo");
    let text = endpoint.to_string();
    assert!(!text.contains("secret-value") && !text.contains("whsec_"), "{text}");
    let secret = api.get("/api/v1/app/a/endpoint/primary/secret").await.expect(200);
    assert_eq!(secret["key"], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

    // At rest, none of the secrets appear in clear.
    let stored = match db {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for file in ["hookline.db", "hookline.db-wal"] {
                bytes.extend(std::fs::read(server.data_dir.path().join(file)).unwrap_or_default());
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Backend::Postgres => hookline_e2e::postgres::cluster().psql(
            &server.database_url,
            "SELECT secret_ciphertext, auth_ciphertext, headers_ciphertext FROM endpoints",
        ),
    };
    assert!(stored.contains("v1."), "ciphertexts are stored");
    for clear in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "basic-secret-value", "header-secret-value"] {
        assert!(!stored.contains(clear), "{clear} is stored in clear");
    }

    // Patch and delete, by uid.
    let patched = api
        .patch(
            "/api/v1/app/a/endpoint/primary",
            json!({"disabled": true, "filter_types": null, "auth": null}),
        )
        .await
        .expect(200);
    assert_eq!(patched["disabled"], true);
    assert_eq!(patched["disabled_reason"], "disabled by the tenant");
    assert_eq!(patched["filter_types"], Value::Null);
    assert_eq!(patched["auth"], Value::Null);
    assert_eq!(patched["channels"], json!(["eu"]));
    assert_eq!(
        api.get(&format!("/api/v1/app/{app}/endpoint")).await.expect(200)["data"].as_array().unwrap().len(),
        1
    );
    api.delete(&format!("/api/v1/app/{app}/endpoint/{}", id(&endpoint))).await.expect(204);
    api.get("/api/v1/app/a/endpoint/primary").await.expect_error(404, "not_found");
}

async fn signing_secrets_rotate(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = id(&api.create_endpoint("a", "https://hooks.example.com").await);
    let path = format!("/api/v1/app/a/endpoint/{endpoint}/secret");
    let first = api.get(&path).await.expect(200)["key"].as_str().unwrap().to_owned();
    assert!(first.starts_with("whsec_"));
    api.request(Method::POST, &format!("{path}/rotate"), None, &[]).await.expect(204);
    let second = api.get(&path).await.expect(200)["key"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    api.post(&format!("{path}/rotate"), json!({"key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .await
        .expect(204);
    assert_eq!(api.get(&path).await.expect(200)["key"], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let bad = api.post(&format!("{path}/rotate"), json!({"key": "not-a-secret"})).await;
    assert_eq!(bad.error_locs(), ["body.key"]);
}

async fn idempotency_keys_replay_the_first_response(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let body = json!({"event_type": "order.created", "payload": {"n": 1}});
    let send = |key: &'static str, body: Value| {
        let api = api.clone();
        async move {
            api.request(Method::POST, "/api/v1/app/a/msg", Some(&body), &[("Idempotency-Key", key)]).await
        }
    };
    let first = send("order-1", body.clone()).await;
    assert!(first.headers.get("idempotent-replayed").is_none());
    let first = first.expect(202);
    let again = send("order-1", body.clone()).await;
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.expect(202), first);
    // The same key for a different request is refused; another key creates another message.
    send("order-1", json!({"event_type": "order.created", "payload": {"n": 2}}))
        .await
        .expect_error(422, "idempotency_key_reused");
    let other = send("order-2", body.clone()).await.expect(202);
    assert_ne!(other["id"], first["id"]);
    assert_eq!(api.get("/api/v1/app/a/msg").await.expect(200)["data"].as_array().unwrap().len(), 2);
    // Errors (4xx) are replayed too, so a retried bad request does not suddenly succeed twice.
    let bad = send("bad-1", json!({"event_type": "no spaces", "payload": {}})).await;
    bad.expect_error(422, "validation_error");
    send("bad-1", json!({"event_type": "no spaces", "payload": {}}))
        .await
        .expect_error(422, "validation_error");
    // Keys are per tenant: another tenant may use the same key for its own request.
    let other_tenant = server.tenant("globex");
    other_tenant.create_app("G", Some("g")).await;
    let theirs = other_tenant
        .request(Method::POST, "/api/v1/app/g/msg", Some(&body), &[("Idempotency-Key", "order-1")])
        .await;
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    assert_ne!(theirs.expect(202)["id"], first["id"]);
    // An overlong key is refused.
    let long = "k".repeat(300);
    let response =
        api.request(Method::POST, "/api/v1/app/a/msg", Some(&body), &[("Idempotency-Key", &long)]).await;
    assert_eq!(response.error_locs(), ["header.idempotency-key"]);
}

async fn event_ids_deduplicate_messages(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_app("B", Some("b")).await;
    let body = json!({"event_type": "order.created", "event_id": "evt-1", "payload": {"n": 1}});
    let first = api.post("/api/v1/app/a/msg", body.clone()).await.expect(202);
    let again = api
        .post(
            "/api/v1/app/a/msg",
            json!({"event_type": "order.created", "event_id": "evt-1", "payload": {"n": 2}}),
        )
        .await
        .expect(200);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["payload"], json!({"n": 1}), "the original message is returned");
    // Concurrent duplicates still create exactly one message.
    let sends = (0..8).map(|_| {
        api.post(
            "/api/v1/app/a/msg",
            json!({"event_type": "order.created", "event_id": "evt-2", "payload": {}}),
        )
    });
    let results = futures_util::future::join_all(sends).await;
    let ids: std::collections::BTreeSet<_> = results
        .into_iter()
        .map(|r| {
            assert!(r.status == 200 || r.status == 202, "{}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    // The same event_id in another application is another message.
    let other = api.post("/api/v1/app/b/msg", body).await.expect(202);
    assert_ne!(other["id"], first["id"]);
    assert_eq!(api.get("/api/v1/app/a/msg").await.expect(200)["data"].as_array().unwrap().len(), 2);
}

/// Before: an `event_id` de-duplicated for as long as its message lived; SPEC §2 says 24 hours
/// (`HOOKLINE_EVENT_ID_WINDOW_SECONDS`, 2 s here).
async fn an_event_id_deduplicates_within_its_window_and_is_new_after_it(db: Backend) {
    let options = hookline_e2e::ServerOptions::default().env("HOOKLINE_EVENT_ID_WINDOW_SECONDS", "2");
    let server = TestServer::start_with(db, options).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let send = |n: u32| {
        api.post(
            "/api/v1/app/a/msg",
            json!({"event_type": "order.created", "event_id": "evt-1", "payload": {"n": n}}),
        )
    };
    let broadcast = |n: u32| {
        api.post(
            "/api/v1/msg/broadcast",
            json!({"event_type": "order.created", "event_id": "bc-1", "payload": {"n": n}}),
        )
    };
    let first = send(1).await.expect(202);
    assert_eq!(send(2).await.expect(200)["id"], first["id"], "within the window: the first message");
    let first_broadcast = broadcast(1).await.expect(202);
    assert_eq!(broadcast(2).await.expect(200)["id"], first_broadcast["id"]);
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    // Past the window the id is new again, and the new message holds it for its own window.
    let second = send(3).await.expect(202);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["payload"], json!({"n": 3}));
    assert_eq!(send(4).await.expect(200)["id"], second["id"]);
    let second_broadcast = broadcast(3).await.expect(202);
    assert_ne!(second_broadcast["id"], first_broadcast["id"]);
    assert_eq!(broadcast(4).await.expect(200)["id"], second_broadcast["id"]);
    // Both messages keep their event_id: the filter finds them, newest first.
    let found = api.get("/api/v1/app/a/msg?event_id=evt-1").await.expect(200);
    let ids: Vec<&Value> = found["data"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, [&second["id"], &first["id"]], "{found}");
    let original = api.get(&format!("/api/v1/app/a/msg/{}", id(&first))).await.expect(200);
    assert_eq!(original["event_id"], "evt-1");
}

async fn message_lists_paginate_and_filter(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let event_type = if n % 2 == 0 { "order.created" } else { "order.paid" };
        let channels = if n < 3 { json!(["eu"]) } else { json!(["us"]) };
        let message = api
            .post(
                "/api/v1/app/a/msg",
                json!({"event_type": event_type, "payload": {"n": n}, "channels": channels}),
            )
            .await
            .expect(202);
        ids.push(id(&message));
    }
    let middle_time = {
        let message = api.get(&format!("/api/v1/app/a/msg/{}", ids[3])).await.expect(200);
        message["created_at"].as_str().unwrap().to_owned()
    };
    // Newest first, three pages of 3, 3, 1.
    let mut seen = Vec::new();
    let mut iterator: Option<String> = None;
    loop {
        let path = match &iterator {
            None => "/api/v1/app/a/msg?limit=3".to_owned(),
            Some(it) => format!("/api/v1/app/a/msg?limit=3&iterator={it}"),
        };
        let page = api.get(&path).await.expect(200);
        seen.extend(page["data"].as_array().unwrap().iter().map(id));
        if page["done"] == true {
            break;
        }
        iterator = Some(page["iterator"].as_str().unwrap().to_owned());
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let count = |body: Value| body["data"].as_array().unwrap().len();
    assert_eq!(count(api.get("/api/v1/app/a/msg?event_type=order.created").await.expect(200)), 4);
    assert_eq!(
        count(api.get("/api/v1/app/a/msg?event_type=order.created&event_type=order.paid").await.expect(200)),
        7
    );
    assert_eq!(count(api.get("/api/v1/app/a/msg?channel=eu").await.expect(200)), 3);
    let after = api.get(&format!("/api/v1/app/a/msg?after={}", urlencode(&middle_time))).await.expect(200);
    assert!(after["data"].as_array().unwrap().iter().all(|m| id(m) >= ids[3]), "{after}");
    assert!(after["data"].as_array().unwrap().iter().any(|m| id(m) == ids[6]));
    let before =
        api.get(&format!("/api/v1/app/a/msg?before={}", urlencode("2000-01-01T00:00:00Z"))).await.expect(200);
    assert_eq!(count(before), 0);
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

async fn bad_input_gets_clear_errors(db: Backend) {
    let server = TestServer::start_with(
        db,
        hookline_e2e::ServerOptions::default().env("HOOKLINE_MAX_PAYLOAD_BYTES", "2048"),
    )
    .await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let cases: &[(&str, &str)] = &[
        ("/api/v1/app/a/msg?limit=0", "query.limit"),
        ("/api/v1/app/a/msg?limit=1000", "query.limit"),
        ("/api/v1/app/a/msg?iterator=garbage", "query.iterator"),
        ("/api/v1/app/a/msg?iterator=app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2", "query.iterator"),
        ("/api/v1/app/a/msg?after=yesterday", "query.after"),
        ("/api/v1/app/a/msg?event_type=bad%20type", "query.event_type.0"),
        ("/api/v1/app/a/msg?colour=red", "query.colour"),
    ];
    for (path, loc) in cases {
        let response = api.get(path).await;
        assert_eq!(response.error_locs(), [*loc], "{path}: {}", response.text);
        response.expect_error(422, "validation_error");
    }
    // Not JSON: 400. Wrong content type: 415. Over the size limit: 413.
    api.post_raw("/api/v1/app/a/msg", "application/json", "{\"event_type\": ")
        .await
        .expect_error(400, "invalid_json");
    api.post_raw("/api/v1/app/a/msg", "text/plain", "{}").await.expect_error(415, "unsupported_media_type");
    let big = "x".repeat(4000);
    api.post("/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {"big": big}}))
        .await
        .expect_error(413, "payload_too_large");
    let huge = "x".repeat(200_000);
    api.post("/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {"big": huge}}))
        .await
        .expect_error(413, "payload_too_large");
    // Nothing of the refused requests was stored.
    assert_eq!(api.get("/api/v1/app/a/msg").await.expect(200)["data"].as_array().unwrap().len(), 0);
    // Missing required fields name the field.
    let missing = api.post("/api/v1/app/a/msg", json!({"payload": {}})).await;
    assert_eq!(missing.error_locs(), ["body"]);
    assert!(missing.text.contains("event_type"), "{}", missing.text);
    // Unknown ids are 404, never 500.
    api.get("/api/v1/app/a/msg/msg_01JDQ2M3W4X5Y6Z7A8B9C0D1E2").await.expect_error(404, "not_found");
    api.get("/api/v1/app/a/msg/not-an-id").await.expect_error(404, "not_found");
    api.delete("/api/v1/api-key/nope").await.expect_error(404, "not_found");
}

async fn deleting_an_application_removes_its_endpoints_and_messages(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    let app = id(&api.create_app("A", Some("a")).await);
    let keep = id(&api.create_app("B", Some("b")).await);
    api.create_endpoint("a", "https://x.example").await;
    let message = id(&api.send_message("a", "a.b", json!({})).await);
    api.send_message("b", "a.b", json!({})).await;
    api.delete("/api/v1/app/a").await.expect(204);
    api.get(&format!("/api/v1/app/{app}")).await.expect_error(404, "not_found");
    api.get(&format!("/api/v1/app/{app}/msg/{message}")).await.expect_error(404, "not_found");
    assert_eq!(
        api.get(&format!("/api/v1/app/{keep}/msg")).await.expect(200)["data"].as_array().unwrap().len(),
        1
    );
    // The uid is free again.
    api.create_app("A again", Some("a")).await;
    assert_eq!(api.get("/api/v1/app/a/endpoint").await.expect(200)["data"].as_array().unwrap().len(), 0);
}

async fn nul_text_extreme_numbers_and_far_times_get_the_same_answer_on_both_databases(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;

    // U+0000 cannot be stored in a PostgreSQL text or jsonb column: refused in any text field
    // (it used to be a 500 there), kept in a payload (stored as JSON text, returned exactly).
    let named = api.post("/api/v1/app", json!({"name": "bad\u{0}name"})).await;
    assert_eq!(named.error_locs(), ["body.name"], "{}", named.text);
    named.expect_error(422, "validation_error");
    let metadata = api.post("/api/v1/app", json!({"name": "ok", "metadata": {"k": "v\u{0}"}})).await;
    assert_eq!(metadata.error_locs(), ["body.metadata.k"], "{}", metadata.text);
    let login =
        server.anonymous().post("/api/v1/auth/login", json!({"email": "a\u{0}@b.c", "password": "x"})).await;
    login.expect_error(422, "validation_error");
    let message = api
        .post("/api/v1/app/a/msg", json!({"event_type": "a.b", "payload": {"text": "nul\u{0}inside"}}))
        .await
        .expect(202);
    let stored = api.get(&format!("/api/v1/app/a/msg/{}", message["id"].as_str().unwrap())).await.expect(200);
    assert_eq!(stored["payload"]["text"], "nul\u{0}inside");
    api.get("/api/v1/app/a%00/msg").await.expect_error(404, "not_found");
    let query = api.get("/api/v1/app/a/msg?event_id=x%00").await;
    assert_eq!(query.error_locs(), ["query.event_id"], "{}", query.text);

    // A whole number written with a fraction is an integer (JSON Schema says so).
    let app = api.post("/api/v1/app", json!({"name": "Rated", "rate_limit": 50.0})).await.expect(201);
    assert_eq!(app["rate_limit"], 50);
    api.post("/api/v1/app", json!({"name": "Rated", "rate_limit": 50.5}))
        .await
        .expect_error(422, "validation_error");

    // PostgreSQL's jsonb keeps a number's decimal digits (1.7976931348623155e308 comes back as a
    // 309-digit integer); reading it back must give the same number, not a 500.
    let extreme = json!({"near_max": 1.797_693_134_862_315_5e308, "tiny": 5e-324, "negative": -1.5e300});
    api.post("/api/v1/event-type", json!({"name": "extreme.numbers", "example": extreme})).await.expect(201);
    let listed = api.get("/api/v1/event-type").await.expect(200);
    let stored = listed["data"].as_array().unwrap().iter().find(|t| t["name"] == "extreme.numbers").unwrap();
    assert_eq!(stored["example"], extreme);
    let app =
        api.post("/api/v1/app", json!({"name": "Numbers", "metadata": {"n": "1e400"}})).await.expect(201);
    assert_eq!(app["metadata"]["n"], "1e400");

    // An empty or inverted time window is a search that matches nothing, not an error.
    for window in [
        "after=2026-02-01T00:00:00Z&before=2026-01-01T00:00:00Z",
        "after=2026-01-01T00:00:00Z&before=2026-01-01T00:00:00Z",
    ] {
        let page = api.get(&format!("/api/v1/app/a/msg?{window}")).await.expect(200);
        assert_eq!(page["data"].as_array().unwrap().len(), 0, "{window}");
    }
    assert_eq!(api.get("/api/v1/app/a/msg").await.expect(200)["data"].as_array().unwrap().len(), 1);

    // Usage for a time after 2262 (where nanosecond clocks overflow) answers; it used to end the
    // worker thread and drop the connection.
    let usage = api.get("/api/v1/usage?to=2263-01-01T00:00:00Z").await.expect(200);
    assert!(
        usage["data"].as_array().unwrap().iter().all(|bucket| bucket["messages_accepted"] == 0),
        "{usage}"
    );
    api.get("/api/v1/usage?from=9999-12-30T00:00:00Z&to=9999-12-31T00:00:00Z&granularity=hour")
        .await
        .expect(200);
}
