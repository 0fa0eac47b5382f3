//! Micro-benchmark of the ingest writer alone (no HTTP, no delivery): `CONC` tasks (64) store
//! `N` messages (20,000) through the group-commit writer, on SQLite or PostgreSQL (`DB=postgres`).
//! Prints messages/s; `BENCH_LOG=hookline::batch=debug` adds each transaction's size and time.
//!
//! ```text
//! cargo run --release -p hookline-core --example store_bench
//! ```
#![allow(clippy::print_stdout)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use hookline_core::{Config, Context, Db, crypto::Keys, ids::NewId, ingest::NewMessage};
use hookline_e2e::Backend;
use hookline_types::{AppId, MessageId, TenantId};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("BENCH_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let backend =
        if std::env::var("DB").as_deref() == Ok("postgres") { Backend::Postgres } else { Backend::Sqlite };
    let dir = tempfile::tempdir().expect("temp dir");
    let url = hookline_e2e::fresh_database(backend, dir.path());
    let config = Config::with_database(&url, dir.path()).expect("config");
    let db = Db::connect(&config).await.expect("database");
    db.migrate(&config).await.expect("migrations");
    let ctx = Context::new(db, Keys::for_tests(), config).unwrap();
    let (tenant, app) = (TenantId::new_id(), AppId::new_id());
    let (n, concurrency) = (setting("N", 20_000), setting("CONC", 64));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ctx, tenant, app, next) = (ctx.clone(), tenant.clone(), app.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let message = NewMessage {
                    id: MessageId::new_id().to_string(),
                    tenant_id: tenant.clone(),
                    app_id: app.clone(),
                    event_type: "bench.event".into(),
                    event_id: None,
                    channels: serde_json::json!([]),
                    payload_text: serde_json::json!({"i": i, "pad": "x".repeat(200)}).to_string(),
                    object: None,
                    headers: Vec::new(),
                    only_endpoint: None,
                    created_at: chrono::Utc::now(),
                    quota: None,
                    counts_as_usage: true,
                    inbound: false,
                    plan_rate: None,
                };
                ctx.ingest.store(message).await.expect("stored");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "{backend:?}: stored {n} messages with {concurrency} concurrent writers in {:.2} s = {:.0} messages/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
