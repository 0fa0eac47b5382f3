//! Hookline's domain. Knows no HTTP framework: handlers in `hookline-api` call the services here,
//! which own their transactions and return [`CoreError`]s that say what went wrong in domain terms.
//!
//! Every tenant-owned query starts from [`scope::TenantScoped::scoped`]; the tenant always comes
//! from an authenticated [`principal::Principal`], never from a request body.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod entities;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod pagination;
pub mod principal;
pub mod schemas;
pub mod scope;
pub mod services;

pub use config::Config;
pub use db::Db;
pub use error::{CoreError, CoreResult};
pub use principal::Principal;

/// Everything a service needs, cheap to clone: the database, the key material, and the in-process
/// signals between the API and the workers.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub keys: std::sync::Arc<crypto::Keys>,
    pub config: std::sync::Arc<Config>,
    pub signals: std::sync::Arc<Signals>,
    pub ingest: std::sync::Arc<services::ingest::IngestQueue>,
    pub caches: std::sync::Arc<cache::Caches>,
    /// The delivery engine of this process, once it runs: the ingest writer fans out small
    /// applications' messages itself and hands the engine what it leased.
    pub inline_engine: services::ingest::InlineEngineSlot,
    /// Where tenants' JSON Schemas are compiled and run (never on the async workers).
    pub schema_threads: std::sync::Arc<schemas::SchemaThreads>,
}

impl Context {
    /// Builds the context and starts its ingest writer (needs a tokio runtime).
    pub fn new(db: Db, keys: crypto::Keys, config: Config) -> Context {
        let signals = std::sync::Arc::new(Signals::default());
        let inline_engine = services::ingest::InlineEngineSlot::default();
        let ingest = services::ingest::IngestQueue::start(db.clone(), signals.clone(), inline_engine.clone());
        Context {
            db,
            keys: std::sync::Arc::new(keys),
            config: std::sync::Arc::new(config),
            signals,
            ingest: std::sync::Arc::new(ingest),
            caches: std::sync::Arc::new(cache::Caches::default()),
            inline_engine,
            schema_threads: std::sync::Arc::new(schemas::SchemaThreads::start(2)),
        }
    }
}

/// Wake-ups from the API to workers in the same process. They only shorten latency: a worker in
/// another process finds the same work by polling the database, which stays the source of truth.
#[derive(Default)]
pub struct Signals {
    /// A message was accepted: the fan-out loop has work.
    pub fanout: tokio::sync::Notify,
    /// Deliveries became due outside the engine (a resend, a bulk job): the claim loop has work.
    pub claim: tokio::sync::Notify,
    /// A bulk job was created: the job loop has work.
    pub jobs: tokio::sync::Notify,
}
