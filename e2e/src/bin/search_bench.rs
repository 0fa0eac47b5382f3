//! The search benchmark: starts the release binary on a fresh database, seeds one application
//! with 1,000,000 messages spread over the last 30 days (payloads, one delivery each in a mix of
//! states) straight into the database, then times filtered searches through the HTTP API and
//! prints p50 / p95 / max per kind of search.
//!
//! ```text
//! cargo build --release -p hookline -p hookline-e2e --bin search_bench
//! target/release/search_bench [--db sqlite|postgres] [--messages 1000000]
//! ```
//!
//! It is a program that prints figures, not a test: nothing here passes or fails on timing.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use chrono::Utc;
use hookline_e2e::{Backend, TestServer, id};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value as DbValue};
use serde_json::json;

const EVENT_TYPES: [&str; 10] = [
    "invoice.paid",
    "invoice.created",
    "invoice.refunded",
    "user.created",
    "user.deleted",
    "order.placed",
    "order.shipped",
    "order.cancelled",
    "payment.failed",
    "payment.succeeded",
];
const CHANNELS: [&str; 3] = ["eu", "us", "apac"];
const CUSTOMERS: usize = 2_000;
const DAYS: i64 = 30;
const ROWS_PER_STATEMENT: usize = 500;

struct Args {
    db: Backend,
    messages: usize,
}

fn args() -> Args {
    let mut args = Args { db: Backend::Sqlite, messages: 1_000_000 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--db" => {
                args.db = match it.next().as_deref() {
                    Some("postgres") => Backend::Postgres,
                    Some("sqlite") => Backend::Sqlite,
                    other => panic!("--db sqlite|postgres, not {other:?}"),
                }
            }
            "--messages" => args.messages = it.next().and_then(|n| n.parse().ok()).expect("--messages N"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// `?` placeholders, numbered for PostgreSQL.
fn sql(backend: DbBackend, text: &str) -> String {
    if backend != DbBackend::Postgres {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

async fn insert(db: &DatabaseConnection, table: &str, columns: &[&str], rows: Vec<Vec<DbValue>>) {
    let backend = db.get_database_backend();
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    let text =
        format!("INSERT INTO {table} ({}) VALUES {}", columns.join(", "), vec![one; rows.len()].join(", "));
    let values: Vec<DbValue> = rows.into_iter().flatten().collect();
    db.execute_raw(Statement::from_sql_and_values(backend, sql(backend, &text), values)).await.expect(table);
}

async fn seed(db: &DatabaseConnection, tenant: &str, app: &str, endpoints: &[String], n: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let now = Utc::now();
    let start = now - chrono::Duration::days(DAYS);
    let span_ms = (now - start).num_milliseconds() as u64;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let chunk = ROWS_PER_STATEMENT.min(n - done);
        let (mut messages, mut payloads, mut deliveries) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..chunk {
            let i = done + k;
            let ms = start.timestamp_millis() as u64 + span_ms * i as u64 / n as u64;
            let created = chrono::DateTime::from_timestamp_millis(ms as i64).expect("a time");
            let msg_id = format!("msg_{}", ulid::Ulid::from_parts(ms, rng.random::<u128>()));
            let event_type = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
            let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
            let customer = format!("cust{:04}", rng.random_range(0..CUSTOMERS));
            let payload = json!({
                "customer": customer,
                "order": i,
                "amount": rng.random_range(1..100_000),
                "note": "lorem ipsum dolor sit amet consectetur adipiscing elit",
            })
            .to_string();
            messages.push(vec![
                msg_id.clone().into(),
                tenant.into(),
                app.into(),
                event_type.into(),
                DbValue::String(None),
                DbValue::Json(Some(Box::new(json!([channel])))),
                (payload.len() as i64).into(),
                created.into(),
            ]);
            payloads.push(vec![msg_id.clone().into(), tenant.into(), payload.into(), created.into()]);
            let roll = rng.random_range(0..100);
            let status = if roll < 90 {
                "succeeded"
            } else if roll < 95 {
                "dead"
            } else {
                "failed"
            };
            let far = now + chrono::Duration::days(3650);
            deliveries.push(vec![
                format!("dlv_{}", ulid::Ulid::from_parts(ms, rng.random::<u128>())).into(),
                tenant.into(),
                app.into(),
                msg_id.into(),
                endpoints[i % endpoints.len()].clone().into(),
                status.into(),
                1i32.into(),
                // Far in the future: the engine must not pick the seeded "failed" ones up.
                DbValue::from((status == "failed").then_some(far)),
                created.into(),
                created.into(),
                created.into(),
                false.into(),
            ]);
        }
        insert(
            db,
            "messages",
            &[
                "id",
                "tenant_id",
                "app_id",
                "event_type",
                "event_id",
                "channels",
                "payload_size",
                "created_at",
            ],
            messages,
        )
        .await;
        insert(db, "message_payloads", &["message_id", "tenant_id", "payload", "created_at"], payloads).await;
        insert(
            db,
            "deliveries",
            &[
                "id",
                "tenant_id",
                "app_id",
                "message_id",
                "endpoint_id",
                "status",
                "attempt_count",
                "next_attempt_at",
                "last_attempt_at",
                "created_at",
                "updated_at",
                "one_shot",
            ],
            deliveries,
        )
        .await;
        done += chunk;
        if done % 100_000 == 0 {
            println!("#   seeded {done} messages ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.expect("analyze");
    } else {
        db.execute_unprepared("PRAGMA optimize").await.expect("optimize");
    }
    println!("# seeded {n} messages, payloads and deliveries in {:.0} s", started.elapsed().as_secs_f64());
}

/// Makes one search's query string.
type QueryMaker<'a> = Box<dyn Fn(&mut StdRng) -> String + 'a>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = args();
    if std::env::var("HOOKLINE_BIN").is_err() {
        let release = hookline_e2e::workspace_root().join("target/release/hookline");
        assert!(release.exists(), "build the release binary first: cargo build --release -p hookline");
        hookline_e2e::set_binary(release);
    }
    println!(
        "# Hookline search benchmark ({:?}), {} messages, {} cores",
        args.db,
        args.messages,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let server = TestServer::start(args.db).await;
    let api = server.tenant("bench");
    let app = id(&api.create_app("Bench", Some("bench")).await);
    let mut endpoints = Vec::new();
    for n in 0..3 {
        let ep = api
            .post(
                "/api/v1/app/bench/endpoint",
                json!({"url": format!("https://example.com/{n}"), "disabled": true}),
            )
            .await
            .expect(201);
        endpoints.push(id(&ep));
    }
    let url = match args.db {
        Backend::Sqlite => format!("{}?mode=rwc", server.database_url),
        Backend::Postgres => server.database_url.clone(),
    };
    let db = Database::connect(url.as_str()).await.expect("connecting to the benchmark database");
    let tenant: String = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql(db.get_database_backend(), "SELECT tenant_id FROM applications WHERE id = ?"),
            [app.clone().into()],
        ))
        .await
        .expect("query")
        .expect("the app")
        .try_get("", "tenant_id")
        .expect("tenant_id");
    seed(&db, &tenant, &app, &endpoints, args.messages).await;
    drop(db);

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# load average before the searches: {}", load.trim());
    let week_ago =
        (Utc::now() - chrono::Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let day_ago = (Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut rng = StdRng::seed_from_u64(7);
    let kinds: Vec<(&str, QueryMaker)> = vec![
        ("newest page (no filter)", Box::new(|_| String::new())),
        ("event_type", Box::new(|r| format!("event_type={}", EVENT_TYPES[r.random_range(0..10)]))),
        ("channel", Box::new(|r| format!("channel={}", CHANNELS[r.random_range(0..3)]))),
        ("status=dead", Box::new(|_| "status=dead".to_owned())),
        (
            "status=failed&endpoint",
            Box::new(|r| format!("status=failed&endpoint={}", endpoints[r.random_range(0..3)])),
        ),
        ("q=<customer> (30 days)", Box::new(|r| format!("q=cust{:04}", r.random_range(0..CUSTOMERS)))),
        (
            "q=<customer>&after=7d",
            Box::new(move |r| format!("q=cust{:04}&after={week_ago}", r.random_range(0..CUSTOMERS))),
        ),
        (
            "q + event_type + status",
            Box::new(|r| {
                format!(
                    "q=cust{:04}&event_type={}&status=succeeded",
                    r.random_range(0..CUSTOMERS),
                    EVENT_TYPES[r.random_range(0..10)]
                )
            }),
        ),
        (
            "event_type + channel, last day",
            Box::new(move |r| {
                format!(
                    "event_type={}&channel={}&after={day_ago}",
                    EVENT_TYPES[r.random_range(0..10)],
                    CHANNELS[r.random_range(0..3)]
                )
            }),
        ),
        ("q=<common word> (30 days)", Box::new(|_| "q=lorem".to_owned())),
    ];
    println!(
        "{:<34} {:>9} {:>9} {:>9}   (50 searches each, limit 50, over HTTP)",
        "search", "p50", "p95", "max"
    );
    let mut all = Vec::new();
    for (name, make) in &kinds {
        let mut times = Vec::new();
        for _ in 0..50 {
            let query = make(&mut rng);
            let started = Instant::now();
            let page = api.get(&format!("/api/v1/app/bench/msg?limit=50&{query}")).await.expect(200);
            times.push(started.elapsed());
            assert!(page["data"].is_array());
        }
        times.sort();
        all.extend(times.iter().copied());
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{name:<34} {:>9} {:>9} {:>9}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().unwrap())
        );
    }
    all.sort();
    println!(
        "{:<34} {:>9.1} ms {:>6.1} ms",
        "all filtered searches",
        percentile(&all, 0.5).as_secs_f64() * 1000.0,
        percentile(&all, 0.95).as_secs_f64() * 1000.0
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# load average after: {}", load.trim());
}
