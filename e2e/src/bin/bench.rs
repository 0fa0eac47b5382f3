//! The delivery benchmark: starts the release binary and a receiver on 127.0.0.1, drives the
//! scenarios of the delivery issue, and prints ingest rate, end-to-end delivery rate, ingest →
//! receipt latency percentiles and the server's peak RSS.
//!
//! ```text
//! cargo build --release -p hookline && cargo build --release -p hookline-e2e --bin bench
//! target/release/bench [--db sqlite|postgres] [--only a,b,c,d,e,f,g,h,i,j,k,l,m]
//! ```
//!
//! (a)–(d) run by default; with `--only`: (e) and (f), the fan-out issue's wide fan-outs, (g) and
//! (h), webhooks received on a source, (i) and (j), large (claim-checked) payloads, (k), (i)'s
//! payloads to a thin endpoint (each delivery a small body with a data_url, nothing fetched), and
//! (l), (c) with a content filter on every endpoint that takes half the messages, and (m), (c)
//! with a small jq transform on every endpoint (each delivery runs it in a sandbox process).
//!
//! It is a program that prints figures, not a test: nothing here passes or fails on timing.

// Printing the figures is what this program is for.
#![allow(clippy::print_stdout)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer,
    receiver::{Receiver, Recording, Reply},
};
use serde_json::json;

struct Args {
    db: Backend,
    only: Vec<String>,
}

fn args() -> Args {
    let mut db = Backend::Sqlite;
    let mut only = vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), "d".to_owned()];
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--db" => {
                db = match it.next().as_deref() {
                    Some("postgres") => Backend::Postgres,
                    Some("sqlite") => Backend::Sqlite,
                    other => panic!("--db sqlite|postgres, not {other:?}"),
                }
            }
            "--only" => {
                only = it
                    .next()
                    .expect("--only a,b,c,d,e,f,g,h,i,j,k,l,m")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            other => panic!("unknown argument {other}"),
        }
    }
    Args { db, only }
}

/// The bench tenant's plan: enterprise (the dedicated delivery lane) unless `BENCH_PLAN` says
/// otherwise (`pro` runs in the shared lane).
fn plan() -> String {
    std::env::var("BENCH_PLAN").unwrap_or_else(|_| "enterprise".to_owned())
}

/// The bench tenant, on [`plan`], with the plan's API rate limit and quota out of the way.
fn bench_tenant(server: &TestServer) -> Client {
    let plan = plan();
    let api = server.tenant_on("bench", &plan);
    server.cli(&[
        "plan",
        "set",
        "--tenant",
        "bench",
        "--plan",
        &plan,
        "--api-rate",
        "1000000",
        "--api-burst",
        "1000000",
        "--monthly-messages",
        "1000000000",
        "--endpoint-rate-limit",
        "0",
        "--max-endpoints",
        "100000",
    ]);
    api
}

/// (e) and (f): `messages` messages, posted by 64 clients, to one application with `endpoints`
/// endpoints (created 16 at a time before the clock starts).
async fn wide_fan_out(db: Backend, name: &str, messages: usize, endpoints: usize) {
    use futures_util::StreamExt;
    let server = start(db, "5").await;
    let receiver = Receiver::start_recording(Arc::new(|_, _| Reply::ok()), 2, Recording::Light);
    let api = bench_tenant(&server);
    api.create_app("Bench", Some("bench")).await;
    futures_util::stream::iter((0..endpoints).map(|n| {
        let (api, url) = (api.clone(), receiver.url(&format!("/w{n}")));
        async move { api.create_endpoint("bench", &url).await }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let sent: Sent = Arc::default();
    let cpu = CpuUse::start(&server);
    let started = Instant::now();
    let ingest = post_messages(&api, "bench", messages, burst_concurrency().min(messages), None, &sent).await;
    let expected = messages * endpoints;
    let mut figures =
        collect(name, &receiver, &sent, messages, expected, started, ingest, Duration::from_secs(300)).await;
    figures.extra = format!(
        "{} {}  peak RSS {} MiB",
        figures.extra,
        cpu.per(expected as u32),
        peak_rss_kib(server.pid()) / 1024
    );
    figures.print();
}

/// (g) and (h): `n` webhooks received on a Standard Webhooks source (1 KiB JSON bodies, each
/// signed by the client as a provider would), with `concurrency` requests in flight or paced at
/// `rate` per second; the source's application has one endpoint on the receiver. Prints the
/// accepted rate, the accept latency (request → 202) and, like the other scenarios, ingest →
/// receipt at the endpoint.
async fn inbound(db: Backend, name: &str, n: usize, concurrency: usize, rate: Option<f64>) {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use hmac::Mac;
    let server = start(db, "5").await;
    let receiver = Receiver::start_recording(Arc::new(|_, _| Reply::ok()), 2, Recording::Light);
    let api = bench_tenant(&server);
    api.create_app("Inbox", Some("inbox")).await;
    api.create_endpoint("inbox", &receiver.url("/inbox")).await;
    let key = [7u8; 32];
    let source = api
        .post(
            "/api/v1/source",
            json!({"name": "bench", "app": "inbox",
                   "verification": {"type": "standard_webhooks", "secret": format!("whsec_{}", STANDARD.encode(key))}}),
        )
        .await
        .expect(201);
    let ingest_url = source["ingest_url"].as_str().unwrap();
    let url = server.url(&ingest_url[ingest_url.find("/in/").unwrap()..]);
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let sent: Sent = Arc::default();
    let accept: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu = CpuUse::start(&server);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next, sent, accept) =
            (http.clone(), url.clone(), next.clone(), sent.clone(), accept.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Some(rate) = rate {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into())
                        .await;
                }
                let body = json!({"type": "bench.received", "id": i, "pad": "x".repeat(960)}).to_string();
                let (id, timestamp) = (format!("evt_{i}"), chrono::Utc::now().timestamp());
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
                mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
                let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
                let at = Instant::now();
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .expect("the ingest request");
                let took = at.elapsed();
                let status = response.status().as_u16();
                let answer: serde_json::Value = response.json().await.expect("a JSON answer");
                assert_eq!(status, 202, "{answer}");
                accept.lock().unwrap().push(took);
                sent.lock().unwrap().insert(answer["message"].as_str().unwrap().to_owned(), at);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let ingest = started.elapsed();
    let mut figures = collect(name, &receiver, &sent, n, n, started, ingest, Duration::from_secs(300)).await;
    let mut accepted = accept.lock().unwrap().clone();
    accepted.sort();
    figures.extra = format!(
        "{} accept p50 {} ms  p99 {} ms  {}  peak RSS {} MiB",
        figures.extra,
        ms(percentile(&accepted, 0.5)),
        ms(percentile(&accepted, 0.99)),
        cpu.per(n as u32),
        peak_rss_kib(server.pid()) / 1024
    );
    figures.print();
}

/// (c), (l) and (m): 5,000 messages from [`burst_concurrency`] clients to one application with 10
/// endpoints, each created with `settings` (an object of endpoint fields: a `filter`, a
/// `transform`) added; `expected` deliveries. Besides deliveries/s, prints messages/s (the 5,000
/// over the time to the last delivery), the figure to compare when a filter leaves fewer
/// deliveries to make.
async fn fan_out_ten(db: Backend, name: &str, settings: serde_json::Value, expected: usize) {
    let server = start(db, "5").await;
    let receiver = Receiver::start_recording(Arc::new(|_, _| Reply::ok()), 2, Recording::Light);
    let api = bench_tenant(&server);
    api.create_app("Bench", Some("bench")).await;
    for n in 0..10 {
        let mut endpoint = json!({"url": receiver.url(&format!("/c{n}"))});
        for (field, value) in settings.as_object().into_iter().flatten() {
            endpoint[field] = value.clone();
        }
        api.post("/api/v1/app/bench/endpoint", endpoint).await.expect(201);
    }
    let sent: Sent = Arc::default();
    let cpu = CpuUse::start(&server);
    let started = Instant::now();
    let ingest = post_messages(&api, "bench", 5_000, burst_concurrency(), None, &sent).await;
    let mut figures =
        collect(name, &receiver, &sent, 5_000, expected, started, ingest, Duration::from_secs(300)).await;
    let messages_per_s = figures.delivered_per_s * 5_000.0 / expected as f64;
    figures.extra = format!(
        "{} messages/s {messages_per_s:.0}  {}  peak RSS {} MiB",
        figures.extra,
        cpu.per(expected as u32),
        peak_rss_kib(server.pid()) / 1024
    );
    figures.print();
}

/// (i), (j) and (k): `messages` payloads of `bytes` bytes each (kept in the object store), posted
/// by `concurrency` clients, to one application with `endpoints` endpoints in `payload_mode`.
/// Prints MB/s delivered (payload bytes × deliveries over the time to the last one; for thin
/// endpoints the payload bytes the deliveries stand for) and the server's peak RSS.
async fn large_payloads(
    db: Backend,
    name: &str,
    messages: usize,
    bytes: usize,
    endpoints: usize,
    concurrency: usize,
    payload_mode: &str,
) {
    let server = start(db, "5").await;
    let receiver = Receiver::start_recording(Arc::new(|_, _| Reply::ok()), 2, Recording::Light);
    let api = bench_tenant(&server);
    api.create_app("Bench", Some("bench")).await;
    for n in 0..endpoints {
        api.post(
            "/api/v1/app/bench/endpoint",
            json!({"url": receiver.url(&format!("/l{n}")), "payload_mode": payload_mode}),
        )
        .await
        .expect(201);
    }
    let frame = json!({"i": 0, "pad": ""}).to_string().len();
    let pad = "x".repeat(bytes - frame - 6);
    let sent: Sent = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu = CpuUse::start(&server);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(messages) {
        let (api, next, sent, pad) = (api.clone(), next.clone(), sent.clone(), pad.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= messages {
                    break;
                }
                let at = Instant::now();
                let response = api
                    .post(
                        "/api/v1/app/bench/msg",
                        json!({"event_type": "bench.large", "payload": {"i": i, "pad": pad}}),
                    )
                    .await;
                assert_eq!(response.status.as_u16(), 202, "{}", response.text);
                sent.lock().unwrap().insert(response.body["id"].as_str().unwrap().to_owned(), at);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let ingest = started.elapsed();
    let expected = messages * endpoints;
    let mut figures =
        collect(name, &receiver, &sent, messages, expected, started, ingest, Duration::from_secs(600)).await;
    figures.extra = format!(
        "{} {:.0} MB/s delivered  {}  peak RSS {} MiB",
        figures.extra,
        figures.delivered_per_s * bytes as f64 / 1e6,
        cpu.per(expected as u32),
        peak_rss_kib(server.pid()) / 1024
    );
    figures.print();
}

/// Requests in flight during the bursts of (a) and (c): 64 unless `BENCH_CONCURRENCY` says otherwise.
fn burst_concurrency() -> usize {
    std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// Send times by message id, shared by the load generator.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

struct Figures {
    name: String,
    messages: usize,
    deliveries: usize,
    ingest_per_s: f64,
    delivered_per_s: f64,
    latencies: Vec<Duration>,
    extra: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

impl Figures {
    fn print(&self) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        println!(
            "{:<34} msgs {:>6}  deliveries {:>6}  ingest {:>8.0}/s  delivered {:>8.0}/s  latency p50 {:>7} ms  p99 {:>7} ms  max {:>7} ms  {}",
            self.name,
            self.messages,
            self.deliveries,
            self.ingest_per_s,
            self.delivered_per_s,
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.99)),
            ms(sorted.last().copied().unwrap_or_default()),
            self.extra
        );
    }
}

/// Posts `n` messages with `concurrency` requests in flight, or paced at `rate` per second.
async fn post_messages(
    api: &Client,
    app: &str,
    n: usize,
    concurrency: usize,
    rate: Option<f64>,
    sent: &Sent,
) -> Duration {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (api, app, next, sent) = (api.clone(), app.to_owned(), next.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let at = Instant::now();
                let response = api
                    .post(
                        &format!("/api/v1/app/{app}/msg"),
                        json!({"event_type": "bench.event", "payload": {"i": i, "pad": "x".repeat(200)}}),
                    )
                    .await;
                assert_eq!(response.status.as_u16(), 202, "{}", response.text);
                let id = response.body["id"].as_str().unwrap().to_owned();
                sent.lock().unwrap().insert(id, at);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Waits until `expected` first deliveries arrived (by message id and path), then computes figures.
#[allow(clippy::too_many_arguments)]
async fn collect(
    name: &str,
    receiver: &Receiver,
    sent: &Sent,
    messages: usize,
    expected: usize,
    started: Instant,
    ingest: Duration,
    timeout: Duration,
) -> Figures {
    let deadline = Instant::now() + timeout;
    // Polled every 20 ms while the deliveries arrive: only the requests new since the last look
    // are read (copying all of them each time, under the receiver's lock, cost the bench process
    // more CPU than the receiving, and held up the receiver's workers).
    let mut seen = std::collections::HashSet::new();
    // A delivery can arrive before its client has read the 202 and noted the id: such receipts
    // are looked at again on the next round.
    let mut unmatched: Vec<(String, String)> = Vec::new();
    let mut looked_at = 0;
    loop {
        looked_at += receiver.inspect_from(looked_at, |new| {
            unmatched.extend(
                new.iter().filter(|r| r.status < 300).map(|r| (r.msg_id().to_owned(), r.path.clone())),
            );
            new.len()
        });
        {
            let sent = sent.lock().unwrap();
            unmatched.retain(|receipt| {
                let known = sent.contains_key(&receipt.0);
                if known {
                    seen.insert(receipt.clone());
                }
                !known
            });
        }
        if seen.len() >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = receiver.received();
    let sent = sent.lock().unwrap();
    // First successful receipt per (message, endpoint), counting only this run's messages.
    let mut first: HashMap<(String, String), Instant> = HashMap::new();
    for r in received.iter().filter(|r| r.status < 300 && sent.contains_key(r.msg_id())) {
        first.entry((r.msg_id().to_owned(), r.path.clone())).or_insert(r.at);
    }
    let latencies: Vec<Duration> = first
        .iter()
        .filter(|(r, at)| r.0.is_empty() || sent.get(&r.0).is_some_and(|s| **at >= *s))
        .filter_map(|((id, _), at)| sent.get(id).map(|s| *at - *s))
        .collect();
    let last = first.values().max().copied().unwrap_or(started);
    Figures {
        name: name.to_owned(),
        messages,
        deliveries: first.len(),
        ingest_per_s: messages as f64 / ingest.as_secs_f64(),
        delivered_per_s: first.len() as f64 / (last - started).as_secs_f64(),
        latencies,
        extra: if first.len() < expected {
            format!("MISSING {}", expected - first.len())
        } else {
            String::new()
        },
    }
}

/// CPU used by the server and by this bench process (client and receiver) during a scenario:
/// throughput figures move with the machine, CPU per message shows where an optimisation went.
/// The server's share is also split by thread name (`sqlx-sqlite-wor` is the SQLite connections'
/// threads, the writer's among them; `hookline-send` the send threads; `tokio-rt-worker` the
/// engine's loops and the recorder; `actix-server` the API).
struct CpuUse {
    server: u32,
    at_start: (Duration, Duration),
    threads_at_start: HashMap<String, (String, u64)>,
}

/// CPU ticks (user + system, 1/100 s) of each of the process's threads, by thread id, with the
/// thread's name.
fn thread_ticks(pid: u32) -> HashMap<String, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return threads };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(name), Ok(stat)) =
            (std::fs::read_to_string(path.join("comm")), std::fs::read_to_string(path.join("stat")))
        else {
            continue;
        };
        let Some(ticks) = hookline_e2e::cpu_ticks(&stat) else { continue };
        threads.insert(task.file_name().to_string_lossy().into_owned(), (name.trim().to_owned(), ticks));
    }
    threads
}

impl CpuUse {
    fn start(server: &TestServer) -> CpuUse {
        let server = server.pid();
        CpuUse {
            server,
            at_start: (hookline_e2e::cpu_time(server), hookline_e2e::cpu_time(std::process::id())),
            threads_at_start: thread_ticks(server),
        }
    }

    /// Microseconds of CPU per item (message or delivery) since `start`.
    fn per(&self, items: u32) -> String {
        let server = hookline_e2e::cpu_time(self.server) - self.at_start.0;
        let bench = hookline_e2e::cpu_time(std::process::id()) - self.at_start.1;
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        for (tid, (name, ticks)) in thread_ticks(self.server) {
            let before = self.threads_at_start.get(&tid).map_or(0, |(_, ticks)| *ticks);
            // Numbered threads of one kind (`hookline-send-0`, `-1`, …) count together.
            let kind = name.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('-');
            *by_name.entry(kind.to_owned()).or_default() += ticks.saturating_sub(before);
        }
        let threads: Vec<String> = by_name
            .iter()
            .filter(|(_, ticks)| **ticks > 0)
            .map(|(name, ticks)| format!("{name} {:.0}", *ticks as f64 * 1e4 / f64::from(items)))
            .collect();
        format!(
            "CPU/item server {:.0} µs ({}), bench {:.0} µs",
            server.as_secs_f64() * 1e6 / f64::from(items),
            threads.join(", "),
            bench.as_secs_f64() * 1e6 / f64::from(items)
        )
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Starts the server under test. `HOOKLINE_*` settings in the bench's own environment (other than
/// `HOOKLINE_BIN`) are passed on, so a tunable can be compared without rebuilding.
async fn start(db: Backend, schedule: &str) -> TestServer {
    let mut options = ServerOptions::default()
        .env("HOOKLINE_SSRF_ALLOW", "127.0.0.1/32")
        .env("HOOKLINE_RETRY_SCHEDULE", schedule)
        .env("HOOKLINE_LOG", &std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()));
    for (name, value) in std::env::vars() {
        if name.starts_with("HOOKLINE_") && name != "HOOKLINE_BIN" {
            options = options.env(&name, &value);
        }
    }
    TestServer::start_with(db, options).await
}

#[tokio::main]
async fn main() {
    let args = args();
    // PostgreSQL as production runs it: fsync and synchronous commit on (the tests turn them off).
    hookline_e2e::postgres::use_durable_cluster();
    if std::env::var("HOOKLINE_BIN").is_err() {
        let release = hookline_e2e::workspace_root().join("target/release/hookline");
        assert!(release.exists(), "build the release binary first: cargo build --release -p hookline");
        hookline_e2e::set_binary(release);
    }
    println!(
        "# Hookline delivery benchmark ({:?}), {} cores",
        args.db,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# load average before: {}", load.trim());

    if args.only.iter().any(|s| s == "a") {
        let server = start(args.db, "5").await;
        let receiver = Receiver::start_recording(Arc::new(|_, _| Reply::ok()), 2, Recording::Light);
        let api = bench_tenant(&server);
        api.create_app("Bench", Some("bench")).await;
        api.create_endpoint("bench", &receiver.url("/a")).await;
        let sent: Sent = Arc::default();
        let cpu = CpuUse::start(&server);
        let started = Instant::now();
        let ingest = post_messages(&api, "bench", 20_000, burst_concurrency(), None, &sent).await;
        let mut figures = collect(
            "(a) burst 20,000 → 1 endpoint",
            &receiver,
            &sent,
            20_000,
            20_000,
            started,
            ingest,
            Duration::from_secs(300),
        )
        .await;
        figures.extra = format!(
            "{} {}  peak RSS {} MiB",
            figures.extra,
            cpu.per(20_000),
            peak_rss_kib(server.pid()) / 1024
        );
        figures.print();
    }
    if args.only.iter().any(|s| s == "b") {
        let server = start(args.db, "5").await;
        let receiver = Receiver::start_recording(Arc::new(|_, _| Reply::ok()), 2, Recording::Light);
        let api = bench_tenant(&server);
        api.create_app("Bench", Some("bench")).await;
        api.create_endpoint("bench", &receiver.url("/b")).await;
        for label in ["(b) 500 msg/s × 30 s, cold start", "(b) 500 msg/s × 30 s, warm"] {
            let sent: Sent = Arc::default();
            let started = Instant::now();
            let ingest = post_messages(&api, "bench", 15_000, 32, Some(500.0), &sent).await;
            let figures =
                collect(label, &receiver, &sent, 15_000, 15_000, started, ingest, Duration::from_secs(120))
                    .await;
            figures.print();
        }
    }
    if args.only.iter().any(|s| s == "c") {
        fan_out_ten(args.db, "(c) fan-out 5,000 × 10 endpoints", json!({}), 50_000).await;
    }
    if args.only.iter().any(|s| s == "l") {
        // Every endpoint's filter takes the messages with i < 2,500: half of them.
        let filter = json!({"payload": {"i": [{"numeric": ["<", 2_500]}]}});
        fan_out_ten(args.db, "(l) (c) with a content filter", json!({"filter": filter}), 25_000).await;
    }
    if args.only.iter().any(|s| s == "m") {
        // A small reshaping, as a tenant would write one: every delivery is transformed.
        let transform = r#"{payload: {n: .payload.i, kind: .event_type}, headers: {"X-Bench": "m"}}"#;
        fan_out_ten(args.db, "(m) (c) with a jq transform", json!({"transform": transform}), 50_000).await;
    }
    if args.only.iter().any(|s| s == "d") {
        let server = start(args.db, "5").await;
        // 10 % of first attempts fail (deterministically by message id).
        let receiver = Receiver::start_recording(
            Arc::new(|r, before| {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                r.msg_id().hash(&mut hasher);
                if before == 0 && hasher.finish().is_multiple_of(10) {
                    Reply::status(500)
                } else {
                    Reply::ok()
                }
            }),
            2,
            Recording::Light,
        );
        let api = bench_tenant(&server);
        api.create_app("Bench", Some("bench")).await;
        api.create_endpoint("bench", &receiver.url("/d")).await;
        let sent: Sent = Arc::default();
        let started = Instant::now();
        let ingest = post_messages(&api, "bench", 5_000, 32, Some(500.0), &sent).await;
        let mut figures = collect(
            "(d) 5,000 at 500/s, 10 % fail",
            &receiver,
            &sent,
            5_000,
            5_000,
            started,
            ingest,
            Duration::from_secs(120),
        )
        .await;
        let received = receiver.received();
        let all_in = received
            .iter()
            .filter(|r| r.status < 300)
            .map(|r| r.at)
            .max()
            .map(|t| t - started)
            .unwrap_or_default();
        let failed_first = received.iter().filter(|r| r.status >= 300).count();
        let mut per_id: HashMap<&str, usize> = HashMap::new();
        for r in &received {
            *per_id.entry(r.msg_id()).or_default() += 1;
        }
        let beyond = per_id.values().filter(|n| **n > 2).count();
        figures.extra = format!(
            "{} all delivered after {:.1} s; requests {} ({} failed); ids with >2 requests: {}",
            figures.extra,
            all_in.as_secs_f64(),
            received.len(),
            failed_first,
            beyond
        );
        figures.print();
    }
    if args.only.iter().any(|s| s == "e") {
        wide_fan_out(args.db, "(e) 100 × 1,000 endpoints", 100, 1_000).await;
    }
    if args.only.iter().any(|s| s == "f") {
        wide_fan_out(args.db, "(f) 10 × 10,000 endpoints", 10, 10_000).await;
    }
    if args.only.iter().any(|s| s == "g") {
        inbound(args.db, "(g) inbound burst 20,000, 64 clients", 20_000, 64, None).await;
    }
    if args.only.iter().any(|s| s == "h") {
        inbound(args.db, "(h) inbound 500/s × 20 s", 10_000, 32, Some(500.0)).await;
    }
    if args.only.iter().any(|s| s == "i") {
        large_payloads(args.db, "(i) 1,000 × 1 MiB → 1 endpoint", 1_000, 1024 * 1024, 1, 16, "full").await;
    }
    if args.only.iter().any(|s| s == "j") {
        large_payloads(args.db, "(j) 1 × 20 MiB → 50 endpoints", 1, 20 * 1024 * 1024, 50, 1, "full").await;
    }
    if args.only.iter().any(|s| s == "k") {
        large_payloads(args.db, "(k) 1,000 × 1 MiB → 1 thin endpoint", 1_000, 1024 * 1024, 1, 16, "thin")
            .await;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# load average after: {}", load.trim());
}
