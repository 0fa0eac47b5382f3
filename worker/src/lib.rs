//! Hookline's background workers, on the same database as the API: the delivery engine
//! ([`engine`]), and apalis queues (apalis-sqlite on the embedded default, apalis-postgres in
//! production) for scheduled work: retry wake-ups that carry batches of delivery ids, and
//! maintenance. This crate is the only one that calls webhook endpoints ([`http`], [`send`]).
//!
//! Jobs carry ids or nothing, never bodies, and are idempotent: a retry wake-up only claims
//! deliveries that are still due, so a duplicate job, or the claim loop getting there first,
//! sends nothing twice.

pub mod engine;
pub mod handshake;
pub mod http;
pub mod retry;
pub mod send;
pub mod send_threads;
pub mod signing;
pub mod transforms;

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use apalis::prelude::*;
use chrono::{DateTime, Utc};
use hookline_core::{Context, ingest::idempotency, store::db::RawPool};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub use engine::{Engine, EngineConfig};

/// How often the scheduler enqueues each maintenance job.
const PURGE_BATCH: u64 = 1_000;
/// Rows per retention transaction: small, so the single SQLite writer is never held for long.
const RETENTION_BATCH: u64 = 500;
/// How often an apalis worker looks for due jobs. Retry wake-ups are due to the second, and the
/// engine's claim loop finds due deliveries on its own besides; each poll is a write statement on
/// the one SQLite writer connection.
const QUEUE_POLL: Duration = Duration::from_millis(250);
/// The longest the engine waits for in-flight attempts at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How long the job queues may take to stop once the engine has (its attempts recorded, its
/// leases handed back). Their jobs are idempotent and a stopped worker's are taken up again, so
/// nothing waits on them; but on SQLite, stopping them in the middle of a fetch has left the one
/// writer connection unavailable until the pool's 30 s acquire timeout (seen in ≈ 1 of 10–40
/// quick start-and-SIGTERM runs: every waiter on the writer pool, Hookline's and apalis' alike,
/// stalled for exactly that long), which held the process's exit up as long.
const QUEUE_STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaintenanceJob {
    /// Delete `Idempotency-Key` records past their 24 hours, in small batches, and expired
    /// dashboard sessions.
    PurgeIdempotencyKeys,
    /// Delete payloads and clear attempt bodies past each tenant's retention, in small batches.
    PurgeRetention,
    /// Report finished hours of overage to Stripe; downgrade tenants whose grace period ran out.
    Billing,
}

/// Wakes the engine for deliveries whose retry is due; scheduled with apalis' `run_after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryWakeup {
    pub delivery_ids: Vec<String>,
}

/// Runs one maintenance job to completion.
pub async fn run_maintenance(ctx: &Context, job: &MaintenanceJob) -> anyhow::Result<u64> {
    match job {
        MaintenanceJob::PurgeIdempotencyKeys => {
            let mut total = 0;
            loop {
                let deleted = idempotency::purge_expired(ctx, PURGE_BATCH).await?;
                total += deleted;
                if deleted < PURGE_BATCH {
                    break;
                }
                // Let API writes in between batches.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(total + hookline_core::tenancy::auth::purge_sessions(ctx).await?)
        }
        MaintenanceJob::Billing => {
            let reported = hookline_core::billing::stripe::report_usage(ctx).await?;
            let downgraded = hookline_core::billing::stripe::downgrade_expired(ctx).await?;
            Ok(reported + downgraded)
        }
        MaintenanceJob::PurgeRetention => {
            let purged = hookline_core::logs::retention::purge(ctx, RETENTION_BATCH).await?;
            Ok(purged.payloads + purged.attempt_bodies + purged.broadcast_payloads)
        }
    }
}

async fn handle_maintenance(job: MaintenanceJob, ctx: Data<Context>) -> Result<(), BoxDynError> {
    let deleted = run_maintenance(&ctx, &job).await.map_err(|err| -> BoxDynError { err.into() })?;
    tracing::info!(?job, deleted, "maintenance job done");
    Ok(())
}

async fn handle_retry(job: RetryWakeup, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    // Claims only those still due; the rest (sent meanwhile, not yet due) are the claim loop's.
    for chunk in job.delivery_ids.chunks(500) {
        for lane in [engine::Lane::Dedicated, engine::Lane::Shared] {
            engine.claim(lane, Some(chunk)).await.map_err(|err| -> BoxDynError { Box::new(err) })?;
        }
    }
    Ok(())
}

/// A name for this process's workers, unique across processes and restarts: apalis registers
/// workers by name and refuses a second live one with the same name.
fn worker_instance_id() -> String {
    format!("{}-{}", std::process::id(), Utc::now().timestamp_millis())
}

/// Runs the engine and the queues until `shutdown` completes, then stops them gracefully:
/// in-flight attempts are recorded (up to [`SHUTDOWN_GRACE`]) and what is left is handed back.
pub async fn run(
    ctx: Context,
    config: EngineConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let instance = worker_instance_id();
    let (engine, engine_tasks) = Engine::start(ctx.clone(), config, format!("worker-{instance}"))?;
    let (retry_tx, retry_rx) = mpsc::unbounded_channel();
    let _ = engine.retry_sink.set(retry_tx);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping_engine = engine.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping_engine.stop(SHUTDOWN_GRACE).await;
        let _ = stop_tx.send(true);
    });

    macro_rules! run_on {
        ($maintenance:expr, $retries:expr) => {{
            let maintenance = $maintenance;
            let retries = $retries;
            let scheduler = schedule_maintenance(
                maintenance.clone(),
                Duration::from_secs(ctx.config.maintenance_interval_seconds),
                stop_rx.clone(),
            );
            let pusher = push_retries(retries.clone(), retry_rx, stop_rx.clone());
            // One maintenance job at a time: jobs enqueued while the last one ran (a slow run,
            // a backlog after a pause) would otherwise run side by side and repeat each other's
            // work — two billing runs each reporting the same hour to Stripe.
            let maintenance_worker = WorkerBuilder::new(format!("hookline-maintenance-{instance}"))
                .backend(maintenance.poll_with_interval(QUEUE_POLL))
                .concurrency(1)
                .data(ctx.clone())
                .build(handle_maintenance);
            let retry_worker = WorkerBuilder::new(format!("hookline-retries-{instance}"))
                .backend(retries.poll_with_interval(QUEUE_POLL))
                .data(engine.clone())
                .build(handle_retry);
            // Each worker in its own task: an apalis worker polls its storage whenever its task
            // is woken, so two workers joined in one task woke each other with every finished
            // (empty) fetch and polled the writer connection hundreds of times a second.
            let a = tokio::spawn(maintenance_worker.run_until(until_stopped(stop_rx.clone())));
            let b = tokio::spawn(retry_worker.run_until(until_stopped(stop_rx.clone())));
            let aborts = [a.abort_handle(), b.abort_handle()];
            let queues = async {
                let ((), ()) = tokio::join!(scheduler, pusher);
                a.await?.map_err(|err| anyhow::anyhow!("maintenance worker: {err}"))?;
                b.await?.map_err(|err| anyhow::anyhow!("retry worker: {err}"))?;
                Ok::<(), anyhow::Error>(())
            };
            let mut stop = stop_rx.clone();
            tokio::select! {
                done = queues => done?,
                () = async { stopped(&mut stop).await; tokio::time::sleep(QUEUE_STOP_GRACE).await } => {
                    tracing::warn!(
                        grace = ?QUEUE_STOP_GRACE,
                        "the job queues did not stop in time after the engine had; exiting without them"
                    );
                    for abort in aborts {
                        abort.abort();
                    }
                }
            }
        }};
    }

    match ctx.db.raw_pool() {
        RawPool::Sqlite(pool) => run_on!(
            apalis_sqlite::SqliteStorage::<MaintenanceJob>::new(pool),
            apalis_sqlite::SqliteStorage::<RetryWakeup>::new(pool)
        ),
        RawPool::Postgres(pool) => run_on!(
            apalis_postgres::PostgresStorage::<MaintenanceJob>::new(pool),
            apalis_postgres::PostgresStorage::<RetryWakeup>::new(pool)
        ),
    }
    for task in engine_tasks {
        task.abort();
    }
    engine.stop_sending();
    Ok(())
}

async fn until_stopped(mut stop: watch::Receiver<bool>) -> Result<(), std::io::Error> {
    stopped(&mut stop).await;
    Ok(())
}

/// Enqueues every maintenance job now and then every `HOOKLINE_MAINTENANCE_INTERVAL_SECONDS`, until stopped.
async fn schedule_maintenance<S, Kind>(mut storage: S, interval: Duration, mut stop: watch::Receiver<bool>)
where
    S: TaskSink<MaintenanceJob, Kind> + Send,
    S::Error: std::fmt::Display,
{
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                for job in [MaintenanceJob::PurgeIdempotencyKeys, MaintenanceJob::PurgeRetention, MaintenanceJob::Billing] {
                    if let Err(err) = storage.push(job).await {
                        tracing::warn!(error = %err, "could not enqueue a maintenance job");
                    }
                }
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Turns the engine's retry decisions into apalis jobs: one job per second of due time, carrying
/// every delivery due in it. A failure to enqueue loses nothing: the claim loop finds due
/// deliveries in the database anyway; the job only makes the retry punctual.
async fn push_retries<S, Kind>(
    mut storage: S,
    mut retries: mpsc::UnboundedReceiver<Vec<(String, DateTime<Utc>)>>,
    mut stop: watch::Receiver<bool>,
) where
    S: TaskSink<RetryWakeup, Kind> + Send,
    S::Error: std::fmt::Display,
{
    loop {
        let batch = tokio::select! {
            batch = retries.recv() => match batch { Some(batch) => batch, None => return },
            _ = stopped(&mut stop) => return,
        };
        let mut by_second: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (id, at) in batch {
            by_second.entry(at.timestamp()).or_default().push(id);
        }
        let now = Utc::now().timestamp();
        for (second, delivery_ids) in by_second {
            let delay = Duration::from_secs(u64::try_from(second - now).unwrap_or(0));
            let task = TaskBuilder::new(RetryWakeup { delivery_ids }).run_after(delay).build();
            if let Err(err) = storage.push_task(task).await {
                tracing::warn!(error = %err, "could not enqueue a retry wake-up; the claim loop will pick it up");
            }
        }
    }
}

/// Resolves once the stop flag is set (or its sender is gone). Unlike `watch::Receiver::wait_for`,
/// holds no lock guard across an await, so the future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        let is_set = *stop.borrow_and_update();
        if is_set || stop.changed().await.is_err() {
            return;
        }
    }
}
