//! Hookline's background workers, on apalis with the same database as the API (apalis-sqlite on
//! the embedded default, apalis-postgres in production). This crate is also the only one that
//! will call webhook endpoints (the delivery engine lands here next).
//!
//! Today it runs the maintenance queue: a scheduler enqueues `MaintenanceJob`s on a timer and an
//! apalis worker runs them. Jobs carry no data beyond their kind and are idempotent, so several
//! worker processes may enqueue and run them at once.

use std::{future::Future, time::Duration};

use apalis::prelude::*;
use hookline_core::{Context, db::RawPool, services::idempotency};
use serde::{Deserialize, Serialize};

/// How often the scheduler enqueues each maintenance job.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
const PURGE_BATCH: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaintenanceJob {
    /// Delete `Idempotency-Key` records past their 24 hours, in small batches.
    PurgeIdempotencyKeys,
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
            Ok(total)
        }
    }
}

async fn handle(job: MaintenanceJob, ctx: Data<Context>) -> Result<(), BoxDynError> {
    let deleted = run_maintenance(&ctx, &job).await.map_err(|err| -> BoxDynError { err.into() })?;
    tracing::info!(?job, deleted, "maintenance job done");
    Ok(())
}

/// Runs the workers until `shutdown` completes.
pub async fn run(ctx: Context, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            stopped(&mut rx).await;
            Ok::<(), std::io::Error>(())
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    macro_rules! run_on {
        ($storage:expr) => {{
            let storage = $storage;
            let scheduler = schedule(storage.clone(), stop_rx.clone());
            // apalis registers workers by name and refuses a second live one with the same name,
            // so every process gets its own (several `hookline worker`s, or a quick restart).
            let worker = WorkerBuilder::new(format!("hookline-maintenance-{}", worker_instance_id()))
                .backend(storage)
                .data(ctx.clone())
                .build(handle);
            let (worker_result, ()) = tokio::join!(worker.run_until(stopped), scheduler);
            worker_result.map_err(|err| anyhow::anyhow!("maintenance worker: {err}"))
        }};
    }

    match ctx.db.raw_pool() {
        RawPool::Sqlite(pool) => run_on!(apalis_sqlite::SqliteStorage::<MaintenanceJob>::new(pool)),
        RawPool::Postgres(pool) => run_on!(apalis_postgres::PostgresStorage::<MaintenanceJob>::new(pool)),
    }
}

/// Enqueues every maintenance job now and then every [`MAINTENANCE_INTERVAL`], until stopped.
async fn schedule<S, Kind>(mut storage: S, mut stop: tokio::sync::watch::Receiver<bool>)
where
    S: TaskSink<MaintenanceJob, Kind> + Send,
    S::Error: std::fmt::Display,
{
    let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = storage.push(MaintenanceJob::PurgeIdempotencyKeys).await {
                    tracing::warn!(error = %err, "could not enqueue a maintenance job");
                }
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the stop flag is set (or its sender is gone). Unlike `watch::Receiver::wait_for`,
/// holds no lock guard across an await, so the future stays `Send`.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let is_set = *stop.borrow_and_update();
        if is_set || stop.changed().await.is_err() {
            return;
        }
    }
}

/// A name for this process's workers, unique across processes and restarts.
fn worker_instance_id() -> String {
    format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis())
}
