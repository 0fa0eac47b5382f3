//! Hookline's domain. Knows no HTTP framework: handlers in `hookline-api` call the services here,
//! which own their transactions and return [`CoreError`]s that say what went wrong in domain terms.
//!
//! Every tenant-owned query starts from [`store::scope::TenantScoped::scoped`]; the tenant always
//! comes from an authenticated [`tenancy::principal::Principal`], never from a request body.
//!
//! One folder per capability, each a layer that uses only those before it:
//!
//! ```text
//! foundation (domain, ids, error, config, crypto, metrics) → store → objects → tenancy → routing
//!     → transform → handshake → catalog → billing → delivery → thin → ingest → sources → logs
//! ```
//!
//! This file, the composition root ([`Context`], [`Caches`]), may use them all. `tests/layers.rs`
//! fails when a module imports a later layer.

pub mod billing;
pub mod catalog;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod handshake;
pub mod ids;
pub mod ingest;
pub mod logs;
pub mod metrics;
pub mod objects;
pub mod routing;
pub mod sources;
pub mod store;
pub mod tenancy;
pub mod thin;
pub mod transform;

pub use config::Config;
pub use error::{CoreError, CoreResult};
pub use store::db::Db;
pub use tenancy::principal::Principal;

/// Everything a service needs, cheap to clone: the database, the key material, and the in-process
/// signals between the API and the workers.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub keys: std::sync::Arc<crypto::Keys>,
    pub config: std::sync::Arc<Config>,
    pub signals: std::sync::Arc<Signals>,
    pub ingest: std::sync::Arc<ingest::IngestQueue>,
    pub caches: std::sync::Arc<Caches>,
    /// The delivery engine of this process, once it runs: the ingest writer fans out small
    /// applications' messages itself and hands the engine what it leased.
    pub inline_engine: ingest::InlineEngineSlot,
    /// Where tenants' JSON Schemas are compiled and run (never on the async workers).
    pub schema_threads: std::sync::Arc<catalog::schemas::SchemaThreads>,
    /// The inbound sources' request log, written in batches.
    pub source_log: std::sync::Arc<sources::requests::RequestLog>,
    /// Where payloads over `HOOKLINE_CLAIM_CHECK_BYTES` are kept.
    pub objects: objects::Objects,
    /// Mints and checks thin deliveries' `data_url`s (on `HOOKLINE_PUBLIC_URL`).
    pub links: thin::Links,
    /// The sandbox processes transforms run in (started on first use).
    pub transformer: std::sync::Arc<transform::Transformer>,
}

impl Context {
    /// Builds the context, opens the object store and starts the ingest writer (needs a tokio
    /// runtime).
    pub fn new(db: Db, keys: crypto::Keys, config: Config) -> anyhow::Result<Context> {
        let objects = objects::Objects::open(&config)?;
        let signals = std::sync::Arc::new(Signals::default());
        let inline_engine = ingest::InlineEngineSlot::default();
        let ingest = ingest::IngestQueue::start(db.clone(), signals.clone(), inline_engine.clone());
        let source_log = std::sync::Arc::new(sources::requests::RequestLog::start(db.clone()));
        let keys = std::sync::Arc::new(keys);
        let links = thin::Links::new(&config.public_url, keys.clone());
        Ok(Context {
            db,
            keys,
            config: std::sync::Arc::new(config),
            signals,
            ingest: std::sync::Arc::new(ingest),
            caches: std::sync::Arc::new(Caches::default()),
            inline_engine,
            schema_threads: std::sync::Arc::new(catalog::schemas::SchemaThreads::start(2)),
            source_log,
            objects,
            links,
            transformer: std::sync::Arc::new(transform::Transformer::current_exe()),
        })
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

/// The in-process caches of the lookups every request repeats ([`store::cache::TtlCache`]).
pub struct Caches {
    /// By SHA-256 of the key.
    pub api_keys: store::cache::TtlCache<String, tenancy::api_keys::CachedKey>,
    pub applications: store::cache::TtlCache<
        (hookline_types::TenantId, catalog::applications::AppRef),
        store::entities::applications::Model,
    >,
    /// The compiled JSON Schema of an event type, or `None` when it has none (or does not exist).
    pub schemas: store::cache::TtlCache<
        (hookline_types::TenantId, String),
        Option<std::sync::Arc<catalog::schemas::Validator>>,
    >,
    /// A tenant's plan limits (overrides applied).
    pub limits: store::cache::TtlCache<hookline_types::TenantId, std::sync::Arc<tenancy::plans::Limits>>,
    /// API rate-limit buckets per credential (and inbound sources' buckets).
    pub rate_limits: store::cache::TokenBuckets,
    /// Inbound sources by the SHA-256 of an ingest token, decrypted and parsed.
    pub sources: store::cache::TtlCache<String, std::sync::Arc<sources::receive::Resolved>>,
    /// Sign-up and log-in attempts per client address and per account.
    pub sign_in: store::cache::TokenBuckets,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            api_keys: store::cache::TtlCache::new(std::time::Duration::from_secs(5), 10_000),
            applications: store::cache::TtlCache::new(std::time::Duration::from_secs(2), 10_000),
            schemas: store::cache::TtlCache::new(std::time::Duration::from_secs(2), 10_000),
            limits: store::cache::TtlCache::new(std::time::Duration::from_secs(2), 10_000),
            rate_limits: store::cache::TokenBuckets::default(),
            sources: store::cache::TtlCache::new(std::time::Duration::from_secs(2), 10_000),
            sign_in: store::cache::TokenBuckets::default(),
        }
    }
}

/// The exposition text for `GET /metrics`: this process's counters ([`metrics`]), then the
/// backlog gauges read from the database. When the database does not answer, the gauges are left
/// out (and the failure logged); the process counters are still served.
pub async fn render_metrics(ctx: &Context) -> String {
    let mut text = metrics::Text::default();
    metrics::render_process(&mut text);
    match (delivery::gauges::read(ctx).await, logs::gauges::read(ctx).await) {
        (Ok(backlog), Ok(jobs)) => {
            backlog.render(&mut text);
            jobs.render(&mut text);
        }
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "metrics: could not read the backlog; left out of this scrape")
        }
    }
    text.into_string()
}
