//! Black-box tests of the fixes to bulk jobs, retention and payload search: one tenant's bulk
//! jobs cannot hold back another's, a job's request does no counting, expensive reads end in a
//! clear error instead of running on, retention leaves no headers or broadcast payloads behind,
//! and a payload with more words than PostgreSQL's full-text index can hold is still accepted.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases, id,
    receiver::{Receiver, Reply},
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

both_databases!(
    a_tenant_at_its_job_cap_is_refused_and_another_tenants_small_job_still_completes,
    a_job_is_created_before_its_candidates_are_counted_and_counts_them_itself,
    retention_clears_attempt_headers_and_expanded_broadcast_payloads,
    a_payload_with_over_a_mebibyte_of_words_is_accepted_and_searchable_by_its_first_words,
);

const WAIT: Duration = Duration::from_secs(30);

/// Running bulk jobs a tenant may have at once (`replay::MAX_RUNNING_JOBS_PER_TENANT`).
const MAX_RUNNING_JOBS: usize = 5;

fn options() -> ServerOptions {
    ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_RETRY_SCHEDULE", "1")
        // These tests fail many deliveries on purpose; the circuit breaker is tested elsewhere.
        .env("HOOKLINE_CIRCUIT_THRESHOLD", "1000")
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

/// Waits until every message's one delivery is `dead`.
async fn all_dead(api: &Client, app: &str, messages: &[String]) {
    for msg in messages {
        until("the delivery to die", async || {
            let list = api.get(&format!("/api/v1/app/{app}/msg/{msg}/delivery")).await.expect(200);
            (list[0]["status"] == "dead").then_some(())
        })
        .await;
    }
}

async fn finished_job(api: &Client, job: &str) -> Value {
    until("the job to finish", async || {
        let job = api.get(&format!("/api/v1/job/{job}")).await.expect(200);
        (job["state"] != "running").then_some(job)
    })
    .await
}

/// `hookline plan set` for a running server, then wait out its 2-second limits cache.
async fn set_plan(server: &TestServer, tenant: &str, plan: &str, overrides: &[&str]) {
    let mut args = vec!["plan", "set", "--tenant", tenant, "--plan", plan];
    args.extend_from_slice(overrides);
    server.cli(&args);
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

/// A connection of the test's own to the server's database, for what the API does not show.
async fn database(server: &TestServer) -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(server.database_url.as_str()).await.expect("the server's database")
}

/// One tenant fills its quota of running jobs with recoveries that cannot finish soon (their
/// endpoint holds every request open); the next one it asks for is refused, and a second
/// tenant's small recovery runs to completion meanwhile. Before, the job runner stepped the 50
/// oldest running jobs of all tenants, and one tenant could start as many as it liked.
async fn a_tenant_at_its_job_cap_is_refused_and_another_tenants_small_job_still_completes(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    // Two failed attempts make each delivery dead; a recovery's attempt is then held for a minute.
    let slow =
        Receiver::start_with(
            Arc::new(|_, before| {
                if before < 2 { Reply::status(500) } else { Reply::ok().after(Duration::from_secs(60)) }
            }),
            4,
        );
    let healthy = Receiver::start_with(
        Arc::new(|_, before| if before < 2 { Reply::status(500) } else { Reply::ok() }),
        2,
    );
    let busy = server.tenant("busy");
    let small = server.tenant("small");
    busy.create_app("A", Some("a")).await;
    small.create_app("A", Some("a")).await;
    let busy_endpoint = id(&busy.create_endpoint("a", &slow.url("/")).await);
    let small_endpoint = id(&small.create_endpoint("a", &healthy.url("/")).await);
    let since = Utc::now();
    let mut busy_messages = Vec::new();
    for n in 0..20 {
        busy_messages.push(id(&busy.send_message("a", "a.b", json!({"n": n})).await));
    }
    let mut small_messages = Vec::new();
    for n in 0..2 {
        small_messages.push(id(&small.send_message("a", "a.b", json!({"n": n})).await));
    }
    all_dead(&busy, "a", &busy_messages).await;
    all_dead(&small, "a", &small_messages).await;

    let recover = format!("/api/v1/app/a/endpoint/{busy_endpoint}/recover");
    let mut busy_jobs = Vec::new();
    for _ in 0..MAX_RUNNING_JOBS {
        busy_jobs.push(id(&busy.post(&recover, json!({"since": since})).await.expect(202)));
    }
    let refused = busy.post(&recover, json!({"since": since})).await.expect_error(429, "too_many_jobs");
    assert!(refused["detail"].as_str().unwrap().contains(&MAX_RUNNING_JOBS.to_string()), "{refused}");

    let job = small
        .post(&format!("/api/v1/app/a/endpoint/{small_endpoint}/recover"), json!({"since": since}))
        .await
        .expect(202);
    let finished = finished_job(&small, &id(&job)).await;
    assert_eq!(
        (finished["state"].as_str(), finished["total"].as_u64(), finished["done"].as_u64()),
        (Some("completed"), Some(2), Some(2)),
        "{finished}"
    );
    // The busy tenant's jobs are all still running, and its oldest one is sending.
    for job in &busy_jobs {
        let job = busy.get(&format!("/api/v1/job/{job}")).await.expect(200);
        assert_eq!(job["state"], "running", "{job}");
    }
    until("the busy tenant's recovery attempts", async || (slow.count() > 40).then_some(())).await;
    // Cancelling one makes room for another.
    busy.post(&format!("/api/v1/job/{}/cancel", busy_jobs[MAX_RUNNING_JOBS - 1]), json!({}))
        .await
        .expect(200);
    busy.post(&recover, json!({"since": since})).await.expect(202);
}

/// The request that starts a job only stores it: the candidates (here every message sent before
/// the endpoint existed) are counted by the job's own steps, and its total is right once they
/// are. Before, the request counted them all, however long the history.
async fn a_job_is_created_before_its_candidates_are_counted_and_counts_them_itself(db: Backend) {
    let server = TestServer::start_with(db, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let since = Utc::now();
    const MESSAGES: u64 = 150;
    for n in 0..MESSAGES {
        api.send_message("a", "a.b", json!({"n": n})).await;
    }
    let endpoint = id(&api.create_endpoint("a", &receiver.url("/")).await);
    let job = api
        .post(&format!("/api/v1/app/a/endpoint/{endpoint}/replay-missing"), json!({"since": since}))
        .await
        .expect(202);
    assert_eq!(
        (job["state"].as_str(), job["total"].as_u64()),
        (Some("running"), Some(0)),
        "the request counted the candidates itself: {job}"
    );
    let finished = finished_job(&api, &id(&job)).await;
    assert_eq!(
        (finished["state"].as_str(), finished["total"].as_u64(), finished["done"].as_u64()),
        (Some("completed"), Some(MESSAGES), Some(MESSAGES)),
        "{finished}"
    );
    receiver.wait_for(MESSAGES as usize, WAIT).await;
}

/// Retention clears what an attempt logged of the request and the response (headers as well as
/// the body, with or without a response), and the payload a broadcast kept after its expansion.
/// Before, only response bodies were cleared: headers and broadcast payloads were kept forever.
async fn retention_clears_attempt_headers_and_expanded_broadcast_payloads(db: Backend) {
    let server =
        TestServer::start_with(db, options().env("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", "1")).await;
    let receiver = Receiver::start_with(
        Arc::new(|_, _| Reply::ok().header("x-receiver-marker", "kept-header").json(json!({"ok": true}))),
        2,
    );
    // A port nothing listens on: attempts fail without a response.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let api = server.tenant("purged");
    api.create_app("Answers", Some("answers")).await;
    api.create_endpoint("answers", &receiver.url("/")).await;
    api.create_app("Down", Some("down")).await;
    api.create_endpoint("down", &format!("http://{closed}/")).await;

    let broadcast = api
        .post(
            "/api/v1/msg/broadcast",
            json!({"event_type": "a.b", "payload": {"secret": "broadcast-payload"}}),
        )
        .await
        .expect(202);
    until("the broadcast's expansion", async || {
        let b = api.get(&format!("/api/v1/msg/broadcast/{}", id(&broadcast))).await.expect(200);
        (b["state"] == "expanded").then_some(())
    })
    .await;
    let answered = until("the answered attempt", async || {
        let list = api.get("/api/v1/app/answers/msg").await.expect(200);
        let msg = list["data"].as_array()?.first().map(id)?;
        let d = api.get(&format!("/api/v1/app/answers/msg/{msg}/delivery")).await.expect(200);
        (d[0]["status"] == "succeeded").then_some(msg)
    })
    .await;
    let unanswered = until("the unanswered attempts", async || {
        let list = api.get("/api/v1/app/down/msg").await.expect(200);
        let msg = list["data"].as_array()?.first().map(id)?;
        let d = api.get(&format!("/api/v1/app/down/msg/{msg}/delivery")).await.expect(200);
        (d[0]["status"] == "dead").then_some(msg)
    })
    .await;
    let attempts = |app: &'static str, msg: String| {
        let api = api.clone();
        async move { api.get(&format!("/api/v1/app/{app}/msg/{msg}/attempt")).await.expect(200) }
    };
    // What is kept until the purge.
    let before = attempts("answers", answered.clone()).await;
    assert!(before["data"][0]["request_headers"]["webhook-id"].is_string(), "{before}");
    assert_eq!(before["data"][0]["response_headers"]["x-receiver-marker"], "kept-header", "{before}");
    let before = attempts("down", unanswered.clone()).await;
    assert!(before["data"][0]["request_headers"]["webhook-id"].is_string(), "{before}");
    let broadcast_payload = async || -> String {
        let db = database(&server).await;
        let sql = if server.backend == Backend::Sqlite {
            "SELECT payload FROM broadcasts WHERE id = ?"
        } else {
            "SELECT payload FROM broadcasts WHERE id = $1"
        };
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                [id(&broadcast).into()],
            ))
            .await
            .unwrap()
            .expect("the broadcast row");
        let payload: String = row.try_get("", "payload").unwrap();
        db.close().await.unwrap();
        payload
    };
    // Expansion keeps no copy of the payload in the broadcast: the messages carry it.
    assert_eq!(broadcast_payload().await, "");
    // A broadcast expanded before expansion emptied payloads still holds one: retention clears it.
    {
        let db = database(&server).await;
        let sql = if server.backend == Backend::Sqlite {
            "UPDATE broadcasts SET payload = '{\"broadcast-payload\":true}' WHERE id = ?"
        } else {
            "UPDATE broadcasts SET payload = '{\"broadcast-payload\":true}' WHERE id = $1"
        };
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [id(&broadcast).into()],
        ))
        .await
        .unwrap();
        db.close().await.unwrap();
    }
    assert!(broadcast_payload().await.contains("broadcast-payload"));

    set_plan(&server, "purged", "free", &["--retention-days", "0"]).await;
    for (app, msg) in [("answers", answered), ("down", unanswered)] {
        let cleared = until("the attempts' headers to be cleared", async || {
            let list = attempts(app, msg.clone()).await;
            let data = list["data"].as_array().unwrap().clone();
            data.iter()
                .all(|a| a["request_headers"] == json!({}) && a["response_headers"].is_null())
                .then_some(data)
        })
        .await;
        assert!(cleared.iter().all(|a| a["response_body"].is_null()), "{cleared:?}");
        assert!(cleared.iter().all(|a| a["url"].is_string()), "attempt metadata stays: {cleared:?}");
    }
    until("the broadcast's payload to be purged", async || {
        broadcast_payload().await.is_empty().then_some(())
    })
    .await;
    let kept = api.get(&format!("/api/v1/msg/broadcast/{}", id(&broadcast))).await.expect(200);
    assert_eq!(
        (kept["state"].as_str(), kept["message_count"].as_u64()),
        (Some("expanded"), Some(2)),
        "{kept}"
    );
}

/// PostgreSQL refuses a `tsvector` over 1 MiB: a payload with that many distinct words failed the
/// insert of its full-text index entry, the message was refused, and a broadcast of it rolled
/// back the expansion of every broadcast beside it, again and again. The index holds the
/// payload's first 262,144 characters now (and a payload that large is claim-checked: its row
/// keeps only its first 256 KiB, on both databases): such a payload is accepted, its first words
/// are searchable, and broadcasts expand.
async fn a_payload_with_over_a_mebibyte_of_words_is_accepted_and_searchable_by_its_first_words(db: Backend) {
    const LIMIT: &str = "4194304";
    let server = TestServer::start_with(db, options().env("HOOKLINE_MAX_PAYLOAD_BYTES", LIMIT)).await;
    let receiver = Receiver::start();
    let api = server.tenant("big");
    let other = server.tenant("neighbour");
    // Its plan's limit too (set to the server's here).
    set_plan(&server, "big", "enterprise", &["--max-payload-bytes", LIMIT]).await;
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/big")).await;
    other.create_app("B", Some("b")).await;
    other.create_endpoint("b", &receiver.url("/neighbour")).await;
    // ≈ 1.35 MB of distinct words, the first near the start and the last near the end.
    let mut text = String::from("firstneedle");
    for n in 0..150_000 {
        text.push_str(&format!(" w{n:07}"));
    }
    text.push_str(" lastneedle");
    let payload = json!({"text": text});

    let msg = id(&api.send_message("a", "big.text", payload.clone()).await);
    let found = api.get("/api/v1/app/a/msg?q=firstneedle").await.expect(200);
    assert_eq!(found["data"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), [msg]);
    assert_eq!(found["data"][0]["payload"], payload, "the payload is stored whole");
    // The payload is over the claim-check threshold: it lives in the object store and its row
    // keeps (and both databases index) its first 256 KiB.
    let past_the_bound = api.get("/api/v1/app/a/msg?q=lastneedle").await.expect(200);
    assert_eq!(past_the_bound["data"].as_array().unwrap().len(), 0, "only the first 256 KiB are indexed");

    // A broadcast of it expands, and so does another tenant's beside it.
    let big = api
        .post("/api/v1/msg/broadcast", json!({"event_type": "big.text", "payload": payload}))
        .await
        .expect(202);
    let small = other
        .post("/api/v1/msg/broadcast", json!({"event_type": "small", "payload": {"n": 1}}))
        .await
        .expect(202);
    for (client, broadcast) in [(&api, &big), (&other, &small)] {
        until("the broadcasts' expansion", async || {
            let b = client.get(&format!("/api/v1/msg/broadcast/{}", id(broadcast))).await.expect(200);
            (b["state"] == "expanded" && b["message_count"] == 1).then_some(())
        })
        .await;
    }
    // Both became messages (the receiver takes bodies of 256 KiB at most, so only the small one
    // is looked for there).
    let messages = api.get("/api/v1/app/a/msg").await.expect(200);
    assert_eq!(messages["data"].as_array().unwrap().len(), 2, "{messages}");
    assert!(receiver.wait_for(1, WAIT).await.iter().any(|r| r.path == "/neighbour"));
}

/// On PostgreSQL, payload searches and statistics run under a statement timeout: one that cannot
/// finish in time (here: its tables are locked) answers 503 `query_timeout` within seconds,
/// instead of holding a connection for as long as it takes. (SQLite offers no way to interrupt
/// a running statement through sqlx; there the reads are bounded by their windows instead.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_searches_and_statistics_answer_query_timeout_on_postgres() {
    let server = TestServer::start_with(Backend::Postgres, options()).await;
    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let endpoint = id(&api.create_endpoint("a", &receiver.url("/")).await);
    api.send_message("a", "a.b", json!({"word": "findme"})).await;
    receiver.wait_for(1, WAIT).await;

    let cluster = hookline_e2e::postgres::cluster();
    let url = server.database_url.clone();
    let holder = std::thread::spawn(move || {
        hookline_e2e::postgres::cluster().psql(
            &url,
            "BEGIN; LOCK TABLE message_payloads, attempts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(15); COMMIT;",
        )
    });
    until("the tables to be locked", async || {
        let held = cluster.psql(
            &server.database_url,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname IN ('message_payloads', 'attempts') AND l.mode = 'AccessExclusiveLock' AND l.granted",
        );
        (held.trim() == "2").then_some(())
    })
    .await;
    let endpoint_stats_path = format!("/api/v1/app/a/endpoint/{endpoint}/stats");
    let started = Instant::now();
    let (search, endpoint_stats, tenant_stats) = tokio::join!(
        api.get("/api/v1/app/a/msg?q=findme"),
        api.get(&endpoint_stats_path),
        api.get("/api/v1/stats"),
    );
    let elapsed = started.elapsed();
    let search = search.expect_error(503, "query_timeout");
    assert!(search["detail"].as_str().unwrap().contains("narrow"), "{search}");
    endpoint_stats.expect_error(503, "query_timeout");
    tenant_stats.expect_error(503, "query_timeout");
    assert!(elapsed < Duration::from_secs(10), "the reads waited {elapsed:?}");
    holder.join().unwrap();
    // Unlocked, the same reads answer.
    let found = api.get("/api/v1/app/a/msg?q=findme").await.expect(200);
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    api.get("/api/v1/stats").await.expect(200);
}
