//! Black-box tests of the delivery engine's security fixes: what an endpoint owner's OAuth2 token
//! server could do to a running server before them (a token that "never expires" panicked the
//! delivery task, leaving its delivery `sending` until a restart; a huge token response was read
//! whole into memory).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, Reply},
};
use serde_json::{Value, json};

both_databases!(
    a_token_that_never_expires_does_not_stop_the_delivery,
    a_token_response_over_64_kib_fails_the_attempt_and_the_server_keeps_serving,
);

const WAIT: Duration = Duration::from_secs(20);

fn options() -> ServerOptions {
    ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32").env("HOOKLINE_RETRY_SCHEDULE", "1")
}

/// A token server answering every request with `reply`.
fn token_server(reply: Reply) -> Receiver {
    Receiver::start_with(Arc::new(move |_, _| reply.clone()), 1)
}

async fn oauth_endpoint(api: &Client, app: &str, url: &str, token_url: &str) -> Value {
    api.post(
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": url, "auth": {"type": "oauth2_client_credentials", "token_url": token_url, "client_id": "ci", "client_secret": "cs"}}),
    )
    .await
    .expect(201)
}

/// Polls the message's deliveries until `predicate` holds.
async fn wait_deliveries(
    api: &Client,
    app: &str,
    msg: &str,
    what: &str,
    predicate: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let deliveries = api.get(&format!("/api/v1/app/{app}/msg/{msg}/delivery")).await.expect(200);
        let deliveries = deliveries.as_array().unwrap().clone();
        if predicate(&deliveries) {
            return deliveries;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {deliveries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `last_error` of the message's deliveries, read from the database (the API shows the
/// error's class, not its text).
async fn last_errors(server: &TestServer, message: &str) -> Vec<Option<String>> {
    use sea_orm::ConnectionTrait;
    let url = match server.backend {
        Backend::Sqlite => format!("{}?mode=ro", server.database_url),
        Backend::Postgres => server.database_url.clone(),
    };
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT last_error FROM deliveries WHERE message_id = $1",
        _ => "SELECT last_error FROM deliveries WHERE message_id = ?",
    };
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [message.into()]))
        .await
        .unwrap();
    rows.iter().map(|row| row.try_get::<Option<String>>("", "last_error").unwrap()).collect()
}

/// `expires_in` of u64::MAX seconds overflowed the token's expiry instant and panicked the task
/// sending the delivery: the webhook never arrived.
async fn a_token_that_never_expires_does_not_stop_the_delivery(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let tokens = token_server(Reply::ok().json(json!({"access_token": "t", "expires_in": u64::MAX})));
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    oauth_endpoint(&api, "a", &receiver.url("/hook"), &tokens.url("/token")).await;
    let first = id(&api.send_message("a", "a.b", json!({"n": 1})).await);
    receiver.wait_for(1, WAIT).await;
    wait_deliveries(&api, "a", &first, "the delivery to succeed", |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    })
    .await;
    let second = id(&api.send_message("a", "a.b", json!({"n": 2})).await);
    wait_deliveries(&api, "a", &second, "the second delivery to succeed", |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.header("authorization") == Some("Bearer t")), "{received:?}");
    assert_eq!(tokens.count(), 1, "the token is cached");
}

/// A token endpoint answering 1 MiB is a failed attempt (read up to the 64 KiB cap, no further),
/// retried on the schedule; the server goes on serving and delivering.
async fn a_token_response_over_64_kib_fails_the_attempt_and_the_server_keeps_serving(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let padding = "x".repeat(1024 * 1024);
    let tokens =
        token_server(Reply::ok().json(json!({"access_token": "t", "expires_in": 60, "padding": padding})));
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    oauth_endpoint(&api, "a", &receiver.url("/oauth"), &tokens.url("/token")).await;
    let message = id(&api.send_message("a", "a.b", json!({})).await);
    // The schedule "1": a retry after a second, then dead.
    let deliveries = wait_deliveries(&api, "a", &message, "the delivery to die", |d| {
        d.len() == 1 && d[0]["status"] == "dead"
    })
    .await;
    assert_eq!(deliveries[0]["attempt_count"], 2, "{deliveries:?}");
    let attempts = api.get(&format!("/api/v1/app/a/msg/{message}/attempt")).await.expect(200);
    let attempts = attempts["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts.iter().all(|a| a["status"] == "failed" && a["error_class"] == "status"), "{attempts:?}");
    assert_eq!(last_errors(&server, &message).await, [Some("OAuth2 token response over 64 KiB".to_owned())]);
    assert_eq!(tokens.count(), 2, "one token request per attempt");
    assert_eq!(receiver.count(), 0, "nothing was sent without a token");

    // The server goes on: another endpoint gets its messages.
    api.create_app("B", Some("b")).await;
    api.post("/api/v1/app/b/endpoint", json!({"url": receiver.url("/plain")})).await.expect(201);
    let plain = id(&api.send_message("b", "a.b", json!({})).await);
    receiver.wait_until(WAIT, "the plain endpoint's message", |r| r.iter().any(|r| r.path == "/plain")).await;
    wait_deliveries(&api, "b", &plain, "the plain delivery to succeed", |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    })
    .await;
}
