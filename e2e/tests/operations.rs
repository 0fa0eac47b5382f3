//! The binary as an operator meets it: no configuration, signals, the CLI.

use std::{
    collections::{BTreeMap, HashSet},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, binary, both_databases,
    receiver::{Received, Receiver, Reply},
};
use serde_json::json;

both_databases!(sigterm_stops_the_server_gracefully);

/// SIGTERM with attempts in flight: the process waits for them, records their outcome and exits
/// cleanly; after a restart every message is delivered, and none twice (an attempt in flight at
/// SIGTERM that was not recorded would be sent again).
async fn sigterm_stops_the_server_gracefully(db: Backend) {
    let receiver = Receiver::start_with(Arc::new(|_, _| Reply::ok().after(Duration::from_millis(1500))), 8);
    let options = ServerOptions::default().env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32");
    let mut server = TestServer::start_with(db, options.clone()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/")).await;
    let mut ids = HashSet::new();
    for n in 0..6 {
        ids.insert(hookline_e2e::id(&api.send_message("a", "a.b", json!({"n": n})).await));
    }
    // Attempts have reached the receiver, which answers each 1.5 s later: they are in flight.
    receiver.wait_for(3, Duration::from_secs(20)).await;
    let status = Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)),
        Some(true),
        "hookline did not exit cleanly on SIGTERM"
    );
    let key = api.api_key().to_owned();
    let (data_dir, database_url) = server.stop();
    let restarted = TestServer::spawn(db, data_dir, database_url, options);
    receiver
        .wait_until(Duration::from_secs(30), "every message after the restart", |r| {
            ids.iter().all(|id| r.iter().any(|received| received.msg_id() == id))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    for id in &ids {
        let times = received.iter().filter(|r| r.msg_id() == id).count();
        assert_eq!(times, 1, "{id} was sent {times} times");
    }
    let api = restarted.client_with_key(&key);
    for id in &ids {
        let deliveries = api.get(&format!("/api/v1/app/a/msg/{id}/delivery")).await.expect(200);
        let delivery = &deliveries[0];
        assert_eq!(
            (delivery["status"].as_str(), delivery["attempt_count"].as_u64()),
            (Some("succeeded"), Some(1)),
            "{deliveries}"
        );
    }
}

#[tokio::test]
async fn with_no_configuration_it_creates_its_data_directory_and_master_key() {
    let cwd = tempfile::tempdir().unwrap();
    // Only the port is set (8080 may be taken on a test machine); everything else is default.
    let mut child = Command::new(binary())
        .arg("serve")
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKLINE_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = cwd.path().join("data");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(data.join("hookline.db").exists() && data.join("master.key").exists()) {
        assert!(std::time::Instant::now() < deadline, "no ./data/hookline.db and master.key after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no HOOKLINE_MASTER_KEY configured"),
        "no warning about the generated key: {stderr}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the master key must be private");
}

#[tokio::test]
async fn help_lists_every_setting() {
    let output = Command::new(binary()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for setting in [
        "HOOKLINE_LISTEN",
        "HOOKLINE_DATABASE_URL",
        "HOOKLINE_MASTER_KEY",
        "HOOKLINE_SSRF_ALLOW",
        "HOOKLINE_RETRY_SCHEDULE",
    ] {
        assert!(help.contains(setting), "--help does not mention {setting}");
    }
}

#[tokio::test]
async fn a_bad_setting_stops_the_binary_with_a_clear_message() {
    let output = Command::new(binary())
        .arg("serve")
        .env("HOOKLINE_DATABASE_URL", "mysql://nope")
        .env("HOOKLINE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HOOKLINE_DATABASE_URL"));
}

#[tokio::test]
async fn secrets_are_encrypted_under_the_configured_master_key() {
    let key = "B3bWJ5Ur2vIqlEi2jwqU0f6QUbUr1vsrOxSO9SjxvkQ=";
    let other_key = "Yw8M2cQe3nJ0h5kP1sT7uV9xZ2bD4fG6iL8oR0tW3yA=";
    let with_key = |k: &str| ServerOptions::default().env("HOOKLINE_MASTER_KEY", k);
    let server = TestServer::start_with(Backend::Sqlite, with_key(key)).await;
    assert!(!server.data_dir.path().join("master.key").exists(), "no key file when the key is configured");
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.post("/api/v1/app/a/endpoint", serde_json::json!({"url": "https://x.example", "uid": "e"}))
        .await
        .expect(201);
    let secret = api.get("/api/v1/app/a/endpoint/e/secret").await.expect(200);
    let key_line = api.clone();
    let (data_dir, database_url) = server.stop();

    // The same key after a restart reads the secret back.
    let restarted = TestServer::spawn(Backend::Sqlite, data_dir, database_url, with_key(key));
    let api = restarted.client_with_key(key_line.api_key());
    assert_eq!(api.get("/api/v1/app/a/endpoint/e/secret").await.expect(200), secret);
    let (data_dir, database_url) = restarted.stop();

    // Another key cannot decrypt it: the API fails closed with a generic 500, leaking nothing.
    // The body names the request id, and so do the log lines of that request.
    let logging = with_key(other_key).env("HOOKLINE_LOG", "warn,hookline::http=info").log_to_file();
    let wrong = TestServer::spawn(Backend::Sqlite, data_dir, database_url, logging);
    let api = wrong.client_with_key(key_line.api_key());
    let response = api.get("/api/v1/app/a/endpoint/e/secret").await;
    assert!(!response.text.contains("whsec_"), "{}", response.text);
    let request_id = response.headers["x-request-id"].to_str().unwrap().to_owned();
    let body = response.expect_error(500, "internal_error");
    assert_eq!(body["request_id"], request_id.as_str());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = wrong.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&request_id)).collect();
        if lines.iter().any(|l| l.contains("request failed")) && lines.iter().any(|l| l.contains("/secret")) {
            break;
        }
        assert!(Instant::now() < deadline, "no log line names {request_id}:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every response carries `X-Request-Id`: the caller's when it sent a plausible one, else a new
/// `req_…`; 4xx bodies do not repeat it (5xx ones do: the test above).
#[tokio::test]
async fn every_response_carries_a_request_id_passed_through_or_generated() {
    let server = TestServer::start(Backend::Sqlite).await;
    let anon = server.anonymous();
    let id_of =
        |response: &hookline_e2e::Response| response.headers["x-request-id"].to_str().unwrap().to_owned();
    let health = anon.get("/healthz").await;
    assert!(id_of(&health).starts_with("req_"), "{:?}", health.headers);
    let other = anon.get("/healthz").await;
    assert_ne!(id_of(&other), id_of(&health), "a new id per request");
    let traced =
        anon.request(reqwest::Method::GET, "/api/v1/app", None, &[("X-Request-Id", "trace-7f0c:1")]).await;
    assert_eq!(id_of(&traced), "trace-7f0c:1");
    assert!(traced.body.get("request_id").is_none(), "{}", traced.text);
    traced.expect_error(401, "unauthorized");
    let odd = anon.request(reqwest::Method::GET, "/api/v1/app", None, &[("X-Request-Id", "two words")]).await;
    assert!(id_of(&odd).starts_with("req_"), "an implausible id is replaced");
    for path in ["/api/v1/nope", "/api/openapi.json", "/"] {
        let response = anon.get(path).await;
        assert!(response.headers.contains_key("x-request-id"), "{path}");
    }
}

both_databases!(a_restart_on_the_same_database_keeps_every_component_running);

/// After a SIGKILL (the first process's worker registrations still look alive) a restarted
/// server runs every component: the API, fan-out and delivery, retries through the job queue,
/// and maintenance.
async fn a_restart_on_the_same_database_keeps_every_component_running(db: Backend) {
    let options = ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_RETRY_SCHEDULE", "1")
        .env("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", "2");
    let server = TestServer::start_with(db, options.clone()).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    let lapsed = server.tenant_on("lapsed", "pro");
    let key = api.api_key().to_owned();
    let lapsed_key = lapsed.api_key().to_owned();
    let (data_dir, database_url) = server.stop();
    let mut restarted = TestServer::spawn(db, data_dir, database_url, options);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(restarted.wait_exit(Duration::from_millis(10)), None, "the restarted server exited");
    // The API.
    let api = restarted.client_with_key(&key);
    api.get("/api/v1/app/a").await.expect(200);
    // Fan-out, delivery and a retry: the first attempt fails, the job queue wakes the retry.
    let receiver = Receiver::start_with(
        Arc::new(|_, before| if before == 0 { Reply::status(503) } else { Reply::ok() }),
        2,
    );
    api.create_endpoint("a", &receiver.url("/")).await;
    let message = hookline_e2e::id(&api.send_message("a", "a.b", json!({})).await);
    receiver.wait_for(2, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let deliveries = api.get(&format!("/api/v1/app/a/msg/{message}/delivery")).await.expect(200);
        if deliveries[0]["status"] == "succeeded" {
            assert_eq!(deliveries[0]["attempt_count"], 2, "{deliveries}");
            break;
        }
        assert!(Instant::now() < deadline, "the retry was not recorded: {deliveries}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Maintenance: a tenant whose grace period after a failed payment ran out goes back to free.
    let url = match db {
        Backend::Sqlite => format!("{}?mode=rwc", restarted.database_url),
        Backend::Postgres => restarted.database_url.clone(),
    };
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    use sea_orm::ConnectionTrait;
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE tenants SET billing_state = 'past_due', grace_until = $1 WHERE name = 'lapsed'"
        }
        _ => "UPDATE tenants SET billing_state = 'past_due', grace_until = ? WHERE name = 'lapsed'",
    };
    let expired = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let updated = conn
        .execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [expired.into()]))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    // Three maintenance jobs are queued every interval and run one at a time: under a loaded
    // test machine the billing job can wait behind a few rounds of purges.
    let lapsed = restarted.client_with_key(&lapsed_key);
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let billing = lapsed.get("/api/v1/billing").await.expect(200);
        if billing["plan"] == "free" {
            break;
        }
        assert!(Instant::now() < deadline, "maintenance never ran after the restart: {billing}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

both_databases!(an_idle_server_does_not_spin);

/// Nothing to do must cost (almost) nothing: background loops wait for work or poll at
/// intervals. Two apalis workers polled in one task once woke each other after every empty fetch
/// and kept a core busy querying the job table.
async fn an_idle_server_does_not_spin(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = hookline_e2e::cpu_time(server.pid());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = hookline_e2e::cpu_time(server.pid()) - before;
    assert!(used < Duration::from_millis(400), "an idle server used {used:?} of CPU in 4 s");
}

both_databases!(
    metrics_count_messages_attempts_and_requests,
    metrics_are_open_without_a_token,
    a_worker_process_serves_its_health_and_metrics,
);

/// One sample line of the Prometheus text format: `name{label="value",…} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of an exposition text. Panics on a malformed line, on a sample whose family has
/// no `# TYPE` line before it, and on a histogram whose buckets are not cumulative or whose
/// `+Inf` bucket differs from its `_count`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP "), "unexpected comment: {line}");
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a name");
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            loop {
                let (start, c) = chars.next().expect("an unterminated label set");
                if c == '}' {
                    rest = &inner[start + 1..];
                    break;
                }
                if c == ',' {
                    continue;
                }
                let eq = inner[start..].find("=\"").expect("label=\"value\"") + start;
                let label = inner[start..eq].to_owned();
                while chars.next().is_some_and(|(i, _)| i < eq + 1) {}
                let mut value = String::new();
                loop {
                    match chars.next().expect("an unterminated label value").1 {
                        '"' => break,
                        '\\' => match chars.next().expect("an escape").1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        other => value.push(other),
                    }
                }
                labels.insert(label, value);
            }
        }
        let value = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("not a value in {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix).filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{line}: no # TYPE line for {family} before it");
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    // Histograms: cumulative buckets, +Inf last and equal to _count.
    for (family, _) in types.iter().filter(|(_, kind)| *kind == "histogram") {
        let counts: Vec<&Sample> = samples.iter().filter(|s| s.name == format!("{family}_count")).collect();
        for count in counts {
            let mut buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
                .filter(|s| s.labels.iter().filter(|(k, _)| *k != "le").eq(count.labels.iter()))
                .map(|s| {
                    let le = &s.labels["le"];
                    (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, s.value)
                })
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} buckets not cumulative: {buckets:?}"
            );
            assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{family} has no +Inf bucket");
            assert_eq!(buckets.last().unwrap().1, count.value, "{family}: +Inf bucket != _count");
        }
    }
    samples
}

/// The value of the sample with exactly these labels.
#[track_caller]
fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .unwrap_or_else(|| panic!("no sample {name}{wanted:?}"))
        .value
}

async fn scrape(client: &Client) -> Vec<Sample> {
    let response = client.get("/metrics").await;
    assert_eq!(response.status, 200, "{}", response.text);
    let content_type = response.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse_exposition(&response.text)
}

async fn metrics_count_messages_attempts_and_requests(db: Backend) {
    const TOKEN: &str = "scrape-me-7f3a";
    let server = TestServer::start_with(
        db,
        ServerOptions::default()
            .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
            .env("HOOKLINE_RETRY_SCHEDULE", "1")
            .env("HOOKLINE_METRICS_TOKEN", TOKEN),
    )
    .await;
    // n % 3 == 0: the first attempt fails (503), the retry succeeds; n == 7: always 500, dead
    // after its one retry; the others succeed at once.
    let receiver = Receiver::start_with(
        Arc::new(|request: &Received, before: usize| {
            let n = request.json()["n"].as_u64().unwrap();
            if n == 7 {
                Reply::status(500)
            } else if n.is_multiple_of(3) && before == 0 {
                Reply::status(503)
            } else {
                Reply::ok()
            }
        }),
        2,
    );
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/hook")).await;
    const N: u64 = 10;
    for n in 0..N {
        api.send_message("a", "order.created", json!({"n": n})).await;
    }
    // 0, 3, 6, 9: two attempts each; 7: two attempts; five more succeed at once.
    let expected_attempts = 15;
    receiver.wait_for(expected_attempts, Duration::from_secs(30)).await;

    // The recorder counts after its batch commits, and the queue settles: poll until both show.
    let scraper = server.client_with_key(TOKEN);
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let samples = scrape(&scraper).await;
        let attempts = metric(&samples, "hookline_delivery_attempts_total", &[("outcome", "succeeded")])
            + metric(&samples, "hookline_delivery_attempts_total", &[("outcome", "failed")]);
        let queued: f64 = ["pending", "failed", "sending"]
            .iter()
            .map(|state| metric(&samples, "hookline_queue_depth", &[("state", state)]))
            .sum::<f64>()
            + metric(&samples, "hookline_fanout_queue_depth", &[]);
        if attempts >= expected_attempts as f64 && queued == 0.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "not settled: {attempts} attempts counted, {queued} queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let received = receiver.received();
    assert_eq!(received.len(), expected_attempts, "nothing else arrives");
    let ok = received.iter().filter(|r| (200..300).contains(&r.status)).count() as f64;
    let failed = received.len() as f64 - ok;
    assert_eq!((ok, failed), (9.0, 6.0));

    assert!(metric(&samples, "hookline_messages_accepted_total", &[]) >= N as f64);
    assert_eq!(metric(&samples, "hookline_delivery_attempts_total", &[("outcome", "succeeded")]), ok);
    assert_eq!(metric(&samples, "hookline_delivery_attempts_total", &[("outcome", "failed")]), failed);
    assert_eq!(metric(&samples, "hookline_delivery_attempt_errors_total", &[("class", "status")]), failed);
    for class in ["dns", "connect", "tls", "timeout", "ssrf", "config"] {
        assert_eq!(
            metric(&samples, "hookline_delivery_attempt_errors_total", &[("class", class)]),
            0.0,
            "{class}"
        );
    }
    assert_eq!(
        metric(&samples, "hookline_delivery_attempt_duration_seconds_count", &[]),
        expected_attempts as f64
    );
    assert!(metric(&samples, "hookline_delivery_attempt_duration_seconds_sum", &[]) >= 0.0);
    // One latency per delivered delivery (the dead one has none).
    assert_eq!(metric(&samples, "hookline_delivery_latency_seconds_count", &[]), 9.0);
    assert!(metric(&samples, "hookline_delivery_latency_seconds_sum", &[]) > 0.0);
    assert_eq!(metric(&samples, "hookline_deliveries_dead_total", &[]), 1.0);
    for state in ["pending", "failed", "sending"] {
        assert_eq!(metric(&samples, "hookline_queue_depth", &[("state", state)]), 0.0, "{state}");
    }
    assert_eq!(metric(&samples, "hookline_fanout_queue_depth", &[]), 0.0);
    assert_eq!(metric(&samples, "hookline_bulk_jobs_running", &[]), 0.0);
    let posts = [("method", "POST"), ("route", "/api/v1/app/{app}/msg"), ("status", "202")];
    assert_eq!(metric(&samples, "hookline_http_requests_total", &posts), N as f64);
    let durations = [("method", "POST"), ("route", "/api/v1/app/{app}/msg")];
    assert!(metric(&samples, "hookline_http_request_duration_seconds_count", &durations) >= N as f64);
    let build = samples.iter().find(|s| s.name == "hookline_build_info").expect("build info");
    assert_eq!((build.value, build.labels.contains_key("version")), (1.0, true));

    // Without the token, or with another one: 401.
    for client in [
        server.anonymous(),
        server.client_with_key("scrape-me-7f3b"),
        server.client_with_key(TOKEN.trim_end_matches('a')),
    ] {
        let response = client.get("/metrics").await;
        assert_eq!(response.headers.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
        response.expect_error(401, "unauthorized");
    }
    // The refusals are counted too, under the route pattern.
    let samples = scrape(&scraper).await;
    assert_eq!(
        metric(
            &samples,
            "hookline_http_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "401")]
        ),
        3.0
    );
}

async fn metrics_are_open_without_a_token(db: Backend) {
    let server = TestServer::start(db).await;
    let anonymous = server.anonymous();
    anonymous.get("/healthz").await.expect(200);
    // A raw path no route matches (the dashboard's fallback) must not become a label value.
    anonymous.get("/apps/raw-path-marker-5c1d").await;
    let samples = scrape(&anonymous).await;
    assert_eq!(
        metric(
            &samples,
            "hookline_http_requests_total",
            &[("method", "GET"), ("route", "/healthz"), ("status", "200")]
        ),
        1.0
    );
    let routes: HashSet<&str> =
        samples.iter().filter_map(|s| s.labels.get("route").map(String::as_str)).collect();
    assert!(routes.contains("unmatched"), "{routes:?}");
    assert!(routes.iter().all(|r| !r.contains("raw-path-marker")), "{routes:?}");
    assert_eq!(metric(&samples, "hookline_messages_accepted_total", &[]), 0.0);
    for state in ["pending", "failed", "sending"] {
        assert_eq!(metric(&samples, "hookline_queue_depth", &[("state", state)]), 0.0, "{state}");
    }
}

/// A separate `hookline worker` (`HOOKLINE_WORKER_LISTEN`) serves `/healthz`, `/readyz` and
/// `/metrics` — behind the metrics token like the API's — and nothing else; its metrics count the
/// attempts that worker made (the API process beside it runs no engine and counts none).
async fn a_worker_process_serves_its_health_and_metrics(db: Backend) {
    const TOKEN: &str = "worker-scrape-91c2";
    let options = ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_METRICS_TOKEN", TOKEN);
    let server = TestServer::start_with(db, options.clone().api_only()).await;
    let (_worker, worker_url) = server.spawn_listening_worker(&options);
    let scraper = Client {
        base_url: worker_url.clone(),
        http: reqwest::Client::new(),
        auth: hookline_e2e::Auth::Bearer(TOKEN.to_owned()),
    };
    let anonymous = scraper.with_auth(hookline_e2e::Auth::None);
    anonymous.get("/healthz").await.expect(200);
    anonymous.get("/readyz").await.expect(200);
    anonymous.get("/metrics").await.expect_error(401, "unauthorized");
    scraper.get("/api/v1/app").await.expect_error(404, "not_found");

    let receiver = Receiver::start();
    let api = server.tenant("acme");
    api.create_app("A", Some("a")).await;
    api.create_endpoint("a", &receiver.url("/hook")).await;
    for n in 0..3 {
        api.send_message("a", "order.created", json!({"n": n})).await;
    }
    receiver.wait_for(3, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(&scraper).await;
        let succeeded = metric(&samples, "hookline_delivery_attempts_total", &[("outcome", "succeeded")]);
        if succeeded == 3.0 {
            break;
        }
        assert!(succeeded < 3.0 && Instant::now() < deadline, "the worker counts {succeeded} attempts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api_samples =
        scrape(&server.anonymous().with_auth(hookline_e2e::Auth::Bearer(TOKEN.to_owned()))).await;
    assert_eq!(
        metric(&api_samples, "hookline_delivery_attempts_total", &[("outcome", "succeeded")]),
        0.0,
        "the API process sent nothing"
    );
}
