//! Group commit for accepted messages. Handlers validate in parallel, then hand their message to
//! one writer task, which stores everything that is waiting in a single transaction (message
//! rows, payload rows, usage counters, fan-out queue entries) and answers each handler after the
//! commit. Under load, batches grow by themselves; a lone message is committed at once.
//!
//! Per-statement overhead on the single SQLite writer capped ingest at ~700 messages/s with one
//! transaction per message; batching amortises it across the batch, and the batch's rows go to
//! the database as a few JSON parameters of one fixed statement ([`crate::store::bulk`]).
//!
//! When this process also runs the delivery engine, the writer fans small applications' messages
//! out in the same transaction ([`InlineEngine`]): it creates their deliveries, leases those whose
//! endpoint has room to the engine, and hands them over with their payloads in memory, so a
//! message costs one transaction before its first attempt instead of two and a payload read.
//! Applications with more than [`INLINE_MAX_ENDPOINTS`] endpoints, messages whose tenant plan is
//! not known here, and every message when no engine runs in this process go through the fan-out
//! queue and the worker's fan-out loop as before.
//!
//! The engine's recorder hands its batches of attempt outcomes to the same writer
//! ([`IngestQueue::record`]): messages and outcomes waiting together share one transaction, one
//! commit and one turn at the writer connection.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hookline_types::{AppId, TenantId};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::{
    billing::usage,
    delivery::{self, AttemptOutcome, Claimed, EngineLimits, RecordRows, Recorded},
    error::{CoreError, CoreResult},
    store::bulk::{self, BatchSql, Insert, Other, Rows, ts},
    store::db::Db,
    store::is_unique_violation,
};

/// Applications with more enabled endpoints than this are fanned out by the worker, so accepting
/// a message stays bounded work however many endpoints its application has.
pub const INLINE_MAX_ENDPOINTS: usize = 50;

/// The delivery engine running in this process, as the ingest writer sees it.
pub trait InlineEngine: delivery::Capacity + Send + Sync {
    /// The worker id leases are taken under.
    fn worker_id(&self) -> &str;
    /// How long a lease lasts.
    fn lease(&self) -> chrono::Duration;
    /// Deliveries were created at acceptance without a lease (their endpoint was full, FIFO or
    /// rate-limited): the claim loop has work.
    fn left_for_claim(&self);
    /// Sends deliveries leased at acceptance; `payloads` holds their messages' payloads.
    fn hand_over(&self, leased: Vec<Claimed>, payloads: HashMap<String, Arc<delivery::Payload>>);
    /// Whether the tenant's lane is congested (every request slot taken, or more of its
    /// deliveries waiting for a send thread than it queues): the tenant's new deliveries could not
    /// be sent now, only queued behind the ones waiting ([`MAX_HOLD`]).
    fn congested(&self, tenant_id: &str) -> bool;
    /// Resolves once a request slot frees after this call (or at once, when one freed since the
    /// last call: a spurious wake-up only means one more look).
    fn slot_freed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
    /// The longest the writer holds a congested lane's messages.
    fn max_hold(&self) -> Duration {
        MAX_HOLD
    }
}

/// How long the writer holds new messages of a congested lane ([`InlineEngine::congested`]),
/// waiting for it to drain, before it stores them anyway (their deliveries then wait in the
/// database for the claim loop). Accepting faster than the lane delivers only grows a queue whose
/// newest deliveries were leased at acceptance ahead of older ones left for the claims: bench
/// (c)'s clients were accepted at ≈ 1,100 messages/s while ≈ 940/s were delivered, and the last
/// messages waited up to 2 s (p99 0.4–2.2 s). Held, a client waits for its 202 instead, the lane's
/// backlog stays in memory, and a message is delivered soon after it is accepted. Never longer than
/// this: a lane whose slots are all held by slow endpoints delays acceptance by at most this much.
pub const MAX_HOLD: Duration = Duration::from_millis(100);

/// Where the engine registers itself once it runs (see [`crate::Context::inline_engine`]).
pub type InlineEngineSlot = Arc<OnceLock<Arc<dyn InlineEngine>>>;

/// The largest batch the writer commits at once.
const MAX_BATCH: usize = 256;

/// A validated message, ready to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub tenant_id: TenantId,
    pub app_id: AppId,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: serde_json::Value,
    /// The whole payload (the engine gets it at acceptance), also when it is claim-checked.
    pub payload_text: String,
    /// Where the payload was put when it is over the claim-check threshold: its row then keeps
    /// only the searchable start ([`crate::objects::search_prefix`]).
    pub object: Option<crate::objects::StoredObject>,
    /// Request headers a received webhook forwards to its endpoints (none for API messages).
    pub headers: Vec<(String, String)>,
    pub only_endpoint: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The tenant's monthly message quota, when this message counts against one.
    pub quota: Option<Quota>,
    /// Counted as accepted usage (false for Hookline's own operational events).
    pub counts_as_usage: bool,
    /// A received webhook (an inbound source's request): also counted as `inbound_requests`.
    pub inbound: bool,
    /// The tenant plan's per-endpoint delivery rate, when the request read the plan: only such
    /// messages may be fanned out at acceptance (the rate decides which deliveries wait for the
    /// claim loop).
    pub plan_rate: Option<PlanRate>,
}

/// A plan's per-endpoint delivery rate (deliveries/s), `None` for unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanRate(pub Option<u32>);

/// A monthly message quota: `hard` stops at `monthly` (free plan); otherwise it is only watched
/// (paid plans go into overage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub monthly: i64,
    pub hard: bool,
}

/// A quota threshold this message crossed: the caller emits the operational event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaCrossing {
    /// `usage.quota.warning` (80 %) or `usage.quota.reached` (100 %).
    pub event_type: &'static str,
    pub percent: u32,
    pub used: i64,
    pub monthly: i64,
}

/// How long a process trusts its running count of a tenant's month before re-reading the
/// counters (other API processes accept messages too).
const COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(10);

struct MonthCount {
    month: DateTime<Utc>,
    used: i64,
    loaded: std::time::Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another message of the application has this `event_id`.
    #[error("duplicate event_id")]
    DuplicateEventId,
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error("the ingest writer stopped")]
    Stopped,
    /// The tenant's hard monthly quota is used up until `resets_at`.
    #[error("the monthly message quota of {limit} is used up")]
    QuotaExceeded { limit: i64, resets_at: DateTime<Utc> },
}

type Reply = Result<Option<QuotaCrossing>, StoreError>;
type Request = (NewMessage, oneshot::Sender<Reply>);

/// Messages a broadcast will become, counted against the tenant's hard monthly quota when it is
/// accepted (see [`IngestQueue::reserve`]).
struct Reservation {
    tenant: TenantId,
    messages: i64,
    quota: Quota,
    at: DateTime<Utc>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Outcomes to record ([`delivery::record`]) in the writer's next transaction.
struct RecordRequest {
    worker: String,
    outcomes: Vec<AttemptOutcome>,
    limits: EngineLimits,
    reply: oneshot::Sender<(Vec<AttemptOutcome>, CoreResult<Recorded>)>,
}

pub struct IngestQueue {
    requests: mpsc::Sender<Request>,
    records: mpsc::UnboundedSender<RecordRequest>,
    reservations: mpsc::UnboundedSender<Reservation>,
    db: Db,
}

impl IngestQueue {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(db: Db, signals: Arc<crate::Signals>, engine: InlineEngineSlot) -> IngestQueue {
        let (requests, rx) = mpsc::channel(4 * MAX_BATCH);
        let (records, records_rx) = mpsc::unbounded_channel();
        let (reservations, reservations_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(db.clone(), rx, records_rx, reservations_rx, signals, engine));
        IngestQueue { requests, records, reservations, db }
    }

    /// Counts `messages` (what a broadcast becomes) against the tenant's hard monthly `quota`,
    /// in the writer's running count, before the broadcast is stored: `QuotaExceeded` when they
    /// do not all fit. The writer takes it in turn with the messages it stores, so the two
    /// cannot together pass the cap.
    pub async fn reserve(
        &self,
        tenant: &TenantId,
        messages: i64,
        quota: Quota,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let reservation = Reservation { tenant: tenant.clone(), messages, quota, at, reply };
        self.reservations.send(reservation).map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores the message; returns once it is committed, with the quota threshold it crossed.
    pub async fn store(&self, message: NewMessage) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.requests.send((message, reply)).await.map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Records a batch of attempt outcomes like [`delivery::record`]. On SQLite it is written in
    /// the transaction that also stores the messages waiting at that moment: the engine's
    /// recorder and the ingest writer otherwise take turns at the one writer connection, each
    /// paying its own commit and hand-over. On PostgreSQL it is its own transaction, on its own
    /// connection, beside the writer's (there the two commit in parallel, and serialising them
    /// measured slower). Returns the outcomes (for the caller's metrics and retries) with what
    /// recording them changed; `None` when the writer has stopped.
    pub async fn record(
        &self,
        worker: &str,
        outcomes: Vec<AttemptOutcome>,
        limits: &EngineLimits,
    ) -> Option<(Vec<AttemptOutcome>, CoreResult<Recorded>)> {
        if !self.db.is_sqlite() {
            let recorded = delivery::record(&self.db, worker, &outcomes, limits).await;
            return Some((outcomes, recorded));
        }
        let (reply, answer) = oneshot::channel();
        let request = RecordRequest { worker: worker.to_owned(), outcomes, limits: limits.clone(), reply };
        self.records.send(request).ok()?;
        answer.await.ok()
    }
}

async fn writer(
    db: Db,
    mut rx: mpsc::Receiver<Request>,
    mut records_rx: mpsc::UnboundedReceiver<RecordRequest>,
    mut reservations_rx: mpsc::UnboundedReceiver<Reservation>,
    signals: Arc<crate::Signals>,
    engine: InlineEngineSlot,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let mut records: Vec<RecordRequest> = Vec::new();
    let mut counts: HashMap<TenantId, MonthCount> = HashMap::new();
    let mut large_apps = LargeApps::default();
    let mut endpoint_cache = EndpointCache::default();
    // Messages held while their lane is congested ([`MAX_HOLD`]), oldest first, and since when.
    let mut held: Vec<Request> = Vec::new();
    let mut held_since: Option<Instant> = None;
    // The queue closed (shutdown) while messages were held: they are stored, then the writer ends.
    let mut closed = false;
    loop {
        if closed && held.is_empty() {
            return;
        }
        let room = if closed { 0 } else { MAX_BATCH.saturating_sub(held.len()) };
        let max_hold = engine.get().map_or(MAX_HOLD, |engine| engine.max_hold());
        let held_until = held_since.map(|since| since + max_hold);
        let slot_freed = async {
            match (held_until, engine.get()) {
                (Some(until), Some(engine)) => {
                    let _ = tokio::time::timeout_at(until.into(), engine.slot_freed()).await;
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv_many(&mut batch, room), if room > 0 => if n == 0 {
                if held.is_empty() { return }
                closed = true;
            },
            Some(request) = records_rx.recv() => records.push(request),
            Some(reservation) = reservations_rx.recv() => {
                reserve(&db, &mut counts, reservation).await;
                continue;
            }
            () = slot_freed => {}
        }
        // Whatever else waits joins this transaction.
        while held.len() + batch.len() < MAX_BATCH
            && let Ok(request) = rx.try_recv()
        {
            batch.push(request);
        }
        while let Ok(request) = records_rx.try_recv() {
            records.push(request);
        }
        // The held messages go first; those of a congested lane stay held (up to MAX_HOLD).
        held.append(&mut batch);
        std::mem::swap(&mut held, &mut batch);
        if let Some(inline) = engine.get()
            && !closed
            && held_since.is_none_or(|since| since.elapsed() < max_hold)
        {
            let (wait, go): (Vec<Request>, Vec<Request>) =
                batch.drain(..).partition(|(message, _)| inline.congested(message.tenant_id.as_str()));
            held = wait;
            batch = go;
        }
        held_since = if held.is_empty() { None } else { Some(held_since.unwrap_or_else(Instant::now)) };
        // Quotas first: what would go over a hard cap is refused, the rest is stored.
        let admitted = admit(&db, &mut counts, &mut batch).await;
        let messages: Vec<&NewMessage> = admitted.iter().map(|(m, _)| m).collect();
        if messages.is_empty() && records.is_empty() {
            continue;
        }
        let started = Instant::now();
        let engine = engine.get();
        let record_rows: Vec<(RecordRows<'_>, &EngineLimits)> =
            records.iter().map(|r| (RecordRows::new(&r.worker, &r.outcomes), &r.limits)).collect();
        // On PostgreSQL a batch of messages alone is one statement (CTEs), a transaction of its
        // own: no `BEGIN` and `COMMIT` round trips around it.
        let one_statement = !db.is_sqlite() && records.is_empty();
        // On SQLite a round that reads nothing inside its transaction (at most one batch of
        // outcomes, all of them successes: no endpoint health to read, none to disable) is one
        // text, `BEGIN IMMEDIATE` … `COMMIT`: one round trip to the writer's thread, not three.
        let one_text = db.is_sqlite()
            && records.len() <= 1
            && records.iter().all(|r| delivery::reads_nothing(&r.outcomes));
        let mut tries = 0;
        let (fan_out, deliveries, written) = loop {
            tries += 1;
            // The endpoints for fan-out at acceptance (from the cache, or read on a reader) while
            // the writer begins (a round in one text begins with its statements, after this).
            let begin = async { if one_statement || one_text { None } else { Some(db.begin_write().await) } };
            let (begun, mut fan_out) = tokio::join!(begin, async {
                match &engine {
                    Some(engine) if !messages.is_empty() => {
                        inline_fan_out(&db, engine.as_ref(), &messages, &mut large_apps, &mut endpoint_cache)
                            .await
                    }
                    _ => InlineFanOut::default(),
                }
            });
            let deliveries = std::mem::take(&mut fan_out.rows);
            let written = match begun {
                None if one_text => {
                    store_in_one_text(
                        &db,
                        &messages,
                        &fan_out.fanned_out,
                        fan_out.guard_version,
                        &deliveries,
                        record_rows.first(),
                    )
                    .await
                }
                None => {
                    store_one_statement(
                        &db,
                        &messages,
                        &fan_out.fanned_out,
                        fan_out.guard_version,
                        &deliveries,
                    )
                    .await
                }
                Some(begun) => {
                    // A failed `BEGIN` is told to each message and outcome by the store below.
                    let begun = begun.ok().map(|txn| (txn, started));
                    store_batch(
                        &db,
                        begun,
                        &messages,
                        &fan_out.fanned_out,
                        fan_out.guard_version,
                        &deliveries,
                        &record_rows,
                    )
                    .await
                }
            };
            if let Err(err) = &written {
                // Endpoints changed since they were cached (or the batch failed otherwise):
                // read them afresh.
                endpoint_cache.clear();
                if is_stale_endpoints(err) && tries < 3 {
                    continue;
                }
            }
            break (fan_out, deliveries, written);
        };
        drop(record_rows);
        let created = deliveries.len();
        let mut stored = Ok(());
        if records.is_empty() {
            stored = written.map(drop);
        } else {
            match written {
                Ok(written) => {
                    for (request, written) in records.drain(..).zip(written) {
                        let recorded = written.recorded(&request.outcomes);
                        let _ = request.reply.send((request.outcomes, Ok(recorded)));
                    }
                }
                Err(err) => {
                    // Apart, so that neither fails for the other.
                    tracing::debug!(error = %err, "a batch of messages and outcomes failed together; storing them apart");
                    for request in records.drain(..) {
                        let recorded =
                            delivery::record(&db, &request.worker, &request.outcomes, &request.limits).await;
                        let _ = request.reply.send((request.outcomes, recorded));
                    }
                    if !messages.is_empty() {
                        stored = store_batch(
                            &db,
                            None,
                            &messages,
                            &fan_out.fanned_out,
                            fan_out.guard_version,
                            &deliveries,
                            &[],
                        )
                        .await
                        .map(drop);
                    }
                }
            }
        }
        if messages.is_empty() {
            continue;
        }
        tracing::debug!(target: "hookline::batch", kind = "ingest", n = messages.len(), deliveries = created, leased = fan_out.leased.len(), us = started.elapsed().as_micros() as u64);
        // A failed batch is stored again message by message, through the fan-out queue.
        let queued = stored.is_err() || messages.len() > fan_out.fanned_out.len();
        answer(&db, &mut counts, engine, admitted, fan_out, created, stored).await;
        if queued {
            // The fan-out loop has work.
            signals.fanout.notify_one();
        }
    }
}

/// The batch's messages that fit under their tenants' hard caps (a message over one is refused
/// `QuotaExceeded` here). Each tenant's count is loaded before the batch commits, so the count
/// after it is exact and each message knows which threshold it crossed.
async fn admit(
    db: &Db,
    counts: &mut HashMap<TenantId, MonthCount>,
    batch: &mut Vec<Request>,
) -> Vec<Request> {
    let mut admitted: Vec<Request> = Vec::with_capacity(batch.len());
    let mut pending: HashMap<TenantId, i64> = HashMap::new();
    for (message, reply) in batch.drain(..) {
        let Some(quota) = message.quota else {
            admitted.push((message, reply));
            continue;
        };
        // Loaded before the batch commits, so the count after it is exact and each message
        // knows which threshold it crossed.
        let used = match month_count(db, counts, &message.tenant_id, message.created_at).await {
            Ok(used) => used,
            Err(err) => {
                let _ = reply.send(Err(StoreError::Database(err)));
                continue;
            }
        };
        if !quota.hard {
            admitted.push((message, reply));
            continue;
        }
        let waiting = pending.entry(message.tenant_id.clone()).or_default();
        if used + *waiting >= quota.monthly {
            let resets_at = crate::billing::usage::next_month_start(message.created_at);
            let _ = reply.send(Err(StoreError::QuotaExceeded { limit: quota.monthly, resets_at }));
            continue;
        }
        *waiting += 1;
        admitted.push((message, reply));
    }
    admitted
}

/// Answers the batch's messages once it is stored (handing the engine what was leased at
/// acceptance), or stores them one by one when the batch failed.
async fn answer(
    db: &Db,
    counts: &mut HashMap<TenantId, MonthCount>,
    engine: Option<&Arc<dyn InlineEngine>>,
    mut admitted: Vec<Request>,
    fan_out: InlineFanOut,
    created: usize,
    stored: Result<(), StoreError>,
) {
    match stored {
        Ok(()) => {
            if let Some(engine) = engine
                && created > fan_out.leased.len()
            {
                engine.left_for_claim();
            }
            if let Some(engine) = engine
                && !fan_out.leased.is_empty()
            {
                let payloads = admitted
                    .iter()
                    .filter(|(m, _)| fan_out.payload_wanted.contains(&m.id))
                    .map(|(m, _)| {
                        // A claim-checked payload is streamed from the store by its deliveries,
                        // like any other: the request's copy is not kept for them.
                        let payload = match &m.object {
                            Some(object) => delivery::Payload::in_store(
                                delivery::StoredPayload {
                                    key: object.key.clone(),
                                    size: std::cmp::max(object.size, 0) as usize,
                                    sha256: object.sha256.clone(),
                                },
                                m.headers.clone(),
                            ),
                            None => delivery::Payload::new(m.payload_text.clone(), m.headers.clone()),
                        };
                        (m.id.clone(), Arc::new(payload))
                    })
                    .collect();
                engine.hand_over(fan_out.leased, payloads);
            }
            for (message, reply) in admitted.drain(..) {
                let crossing = count(db, counts, &message).await;
                let _ = reply.send(Ok(crossing));
            }
        }
        Err(_) if admitted.len() > 1 => {
            // One bad message (a duplicate event_id) must not fail the others: store each
            // on its own, through the fan-out queue.
            for (message, reply) in admitted.drain(..) {
                let result = store_batch(db, None, &[&message], &HashSet::new(), None, &Rows::default(), &[])
                    .await
                    .map(drop);
                let _ = reply.send(match result {
                    Ok(()) => Ok(count(db, counts, &message).await),
                    Err(err) => Err(err),
                });
            }
        }
        Err(err) => {
            for (_, reply) in admitted.drain(..) {
                let _ = reply.send(Err(match &err {
                    StoreError::DuplicateEventId => StoreError::DuplicateEventId,
                    StoreError::Database(db_err) => StoreError::Database(DbErr::Custom(db_err.to_string())),
                    StoreError::Stopped => StoreError::Stopped,
                    StoreError::QuotaExceeded { limit, resets_at } => {
                        StoreError::QuotaExceeded { limit: *limit, resets_at: *resets_at }
                    }
                }));
            }
        }
    }
}

/// Takes a broadcast's messages into the running count when they fit under the hard cap.
async fn reserve(db: &Db, counts: &mut HashMap<TenantId, MonthCount>, reservation: Reservation) {
    let Reservation { tenant, messages, quota, at, reply } = reservation;
    let used = match month_count(db, counts, &tenant, at).await {
        Ok(used) => used,
        Err(err) => {
            let _ = reply.send(Err(StoreError::Database(err)));
            return;
        }
    };
    if quota.hard && used + messages > quota.monthly {
        let resets_at = crate::billing::usage::next_month_start(at);
        let _ = reply.send(Err(StoreError::QuotaExceeded { limit: quota.monthly, resets_at }));
        return;
    }
    if let Some(count) = counts.get_mut(&tenant) {
        count.used += messages;
    }
    let _ = reply.send(Ok(()));
}

/// Messages the tenant has had accepted this month, from the running count (re-read when the
/// month changed or the count is older than [`COUNT_TTL`]: the counters, plus what queued
/// broadcasts were counted as when they were accepted and have not yet become).
async fn month_count(
    db: &Db,
    counts: &mut HashMap<TenantId, MonthCount>,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let month = crate::billing::usage::month_start(now);
    if let Some(count) = counts.get(tenant)
        && count.month == month
        && count.loaded.elapsed() < COUNT_TTL
    {
        return Ok(count.used);
    }
    let used = crate::billing::usage::messages_this_month(&db.writer, tenant, now).await?
        + crate::ingest::broadcasts::reserved(&db.writer, tenant).await?;
    counts.insert(tenant.clone(), MonthCount { month, used, loaded: std::time::Instant::now() });
    Ok(used)
}

/// Counts one stored message against its tenant's month; returns the threshold it crossed.
async fn count(
    db: &Db,
    counts: &mut HashMap<TenantId, MonthCount>,
    message: &NewMessage,
) -> Option<QuotaCrossing> {
    let quota = message.quota?;
    if !message.counts_as_usage {
        return None;
    }
    // Loads the count (including this message, already committed) when it is not cached.
    let cached = counts.get(&message.tenant_id).is_some_and(|c| {
        c.month == crate::billing::usage::month_start(message.created_at) && c.loaded.elapsed() < COUNT_TTL
    });
    let after = if cached {
        let count = counts.get_mut(&message.tenant_id).expect("checked");
        count.used += 1;
        count.used
    } else {
        month_count(db, counts, &message.tenant_id, message.created_at).await.ok()?
    };
    let before = after - 1;
    [(100, "usage.quota.reached"), (80, "usage.quota.warning")].into_iter().find_map(
        |(percent, event_type)| {
            let threshold = (quota.monthly * percent as i64 + 99) / 100;
            (before < threshold && after >= threshold).then_some(QuotaCrossing {
                event_type,
                percent,
                used: after,
                monthly: quota.monthly,
            })
        },
    )
}

/// A write transaction begun beside other work, and when its beginning started.
type Begun = (sea_orm::DatabaseTransaction, Instant);

/// Stores messages and records outcomes in one transaction (either may be empty); returns what
/// recording each batch of outcomes changed. `begun` is the transaction if the caller began it
/// (the writer begins it while it reads the endpoints for fan-out at acceptance).
async fn store_batch(
    db: &Db,
    begun: Option<Begun>,
    batch: &[&NewMessage],
    fanned_out: &HashSet<String>,
    guard: Option<i64>,
    deliveries: &Rows,
    records: &[(RecordRows<'_>, &EngineLimits)],
) -> Result<Vec<delivery::Written>, StoreError> {
    let (txn, started) = match begun {
        Some(begun) => begun,
        None => {
            let started = Instant::now();
            (db.begin_write().await?, started)
        }
    };
    let begun = started.elapsed();
    let kind = if records.is_empty() { "ingest" } else { "ingest+record" };
    let mut records = records.iter();
    let mut written = Vec::with_capacity(records.len());
    match records.next() {
        // The first batch of outcomes travels with the messages: one round trip for both (and a
        // read before it only when an endpoint's last outcome failed).
        Some((rows, limits)) if !batch.is_empty() => {
            let health = rows.health(&txn, limits).await.map_err(store_error)?;
            let ingest = IngestRows::new(batch, fanned_out, guard);
            let params = ingest_and_record_params(&ingest, deliveries, rows.params(&health));
            let returned = bulk::query(&txn, INGEST_AND_RECORD_SQL.get(db.backend()), &params)
                .await
                .map_err(ingest_error)?;
            written.push(rows.finish(&txn, health, returned).await.map_err(store_error)?);
        }
        Some((rows, limits)) => written.push(rows.write(&txn, limits).await.map_err(store_error)?),
        None => insert_batch(&txn, batch, fanned_out, guard, deliveries).await?,
    }
    for (rows, limits) in records {
        written.push(rows.write(&txn, limits).await.map_err(store_error)?);
    }
    let wrote = started.elapsed();
    txn.commit().await?;
    crate::store::db::log_txn(kind, started, begun, wrote);
    crate::metrics::messages_accepted(batch.len());
    Ok(written)
}

/// Stores messages (no outcomes) as one statement, without a transaction around it: PostgreSQL
/// runs a statement given alone as a transaction of its own, committed (and, with
/// `synchronous_commit` on, flushed) before it answers, so the batch is as atomic and as durable
/// as in `BEGIN … COMMIT`, in one round trip instead of three.
async fn store_one_statement(
    db: &Db,
    batch: &[&NewMessage],
    fanned_out: &HashSet<String>,
    guard: Option<i64>,
    deliveries: &Rows,
) -> Result<Vec<delivery::Written>, StoreError> {
    let started = Instant::now();
    insert_batch(&db.writer, batch, fanned_out, guard, deliveries).await?;
    let wrote = started.elapsed();
    crate::store::db::log_txn("ingest", started, Duration::ZERO, wrote);
    crate::metrics::messages_accepted(batch.len());
    Ok(Vec::new())
}

/// Stores messages and at most one batch of successful outcomes on SQLite as one text with its
/// own `BEGIN IMMEDIATE` and `COMMIT` ([`bulk::sqlite_transaction`]): one round trip. The
/// outcomes need nothing else of the transaction ([`delivery::reads_nothing`]).
async fn store_in_one_text(
    db: &Db,
    batch: &[&NewMessage],
    fanned_out: &HashSet<String>,
    guard: Option<i64>,
    deliveries: &Rows,
    record: Option<&(RecordRows<'_>, &EngineLimits)>,
) -> Result<Vec<delivery::Written>, StoreError> {
    let started = Instant::now();
    let ingest = IngestRows::new(batch, fanned_out, guard);
    let (kind, written) = match record {
        Some((rows, limits)) => {
            let health = rows.health(&db.writer, limits).await.map_err(store_error)?;
            let returned = if batch.is_empty() {
                bulk::sqlite_transaction(&db.writer, &delivery::RECORD_SQL, &rows.params(&health)).await?
            } else {
                let params = ingest_and_record_params(&ingest, deliveries, rows.params(&health));
                bulk::sqlite_transaction(&db.writer, &INGEST_AND_RECORD_SQL, &params)
                    .await
                    .map_err(ingest_error)?
            };
            let kind = if batch.is_empty() { "record" } else { "ingest+record" };
            (kind, vec![rows.finish(&db.writer, health, returned).await.map_err(store_error)?])
        }
        None => {
            let [messages, payloads, usage, queue, guard] = ingest.params();
            let params = [messages, payloads, usage, queue, deliveries, guard];
            bulk::sqlite_transaction(&db.writer, &INGEST_SQL, &params).await.map_err(ingest_error)?;
            ("ingest", Vec::new())
        }
    };
    crate::store::db::log_txn(kind, started, Duration::ZERO, started.elapsed());
    crate::metrics::messages_accepted(batch.len());
    Ok(written)
}

/// What the writer fanned out itself: delivery rows, the deliveries leased to the engine, and
/// which messages need no fan-out queue entry.
#[derive(Default)]
struct InlineFanOut {
    rows: Rows,
    leased: Vec<Claimed>,
    fanned_out: HashSet<String>,
    /// Messages with a leased delivery: the engine gets their payloads.
    payload_wanted: HashSet<String>,
    /// The `endpoint_changes` version of the cached endpoints the fan-out used (checked by the
    /// batch, [`ENDPOINT_GUARD`]); `None` when it used none.
    guard_version: Option<i64>,
}

/// The enabled endpoints of the applications the writer fans out for, as of `version` of
/// `endpoint_changes` (migration 8: a trigger bumps it on every write to `endpoints`, from any
/// process). Reading them for every batch was a third of the writer's serial section; a batch
/// that used them checks the version in its transaction ([`ENDPOINT_GUARD`]) and is repeated
/// with endpoints read afresh when it changed.
#[derive(Default)]
struct EndpointCache {
    version: Option<i64>,
    apps: HashMap<String, Vec<delivery::FanOutEndpoint>>,
}

/// At most this many applications' endpoints are cached; past it the cache starts over.
const MAX_CACHED_APPS: usize = 10_000;

impl EndpointCache {
    /// Makes sure the cache holds `apps`' endpoints. A miss reads the version first, then the
    /// endpoints: a change committed in between makes the version older than the endpoints,
    /// which the guard takes for stale (once), never the other way round.
    async fn load(&mut self, db: &Db, apps: &HashSet<&str>) -> Result<(), DbErr> {
        if apps.iter().all(|app| self.apps.contains_key(*app)) {
            return Ok(());
        }
        let statement = sea_orm::Statement::from_string(
            db.backend(),
            "SELECT version FROM endpoint_changes WHERE id = 1",
        );
        let version = db
            .conn
            .query_one_raw(statement)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("endpoint_changes".to_owned()))?
            .try_get::<i64>("", "version")?;
        if self.version != Some(version) || self.apps.len() >= MAX_CACHED_APPS {
            self.apps.clear();
            self.version = Some(version);
        }
        let missing: Vec<&str> = apps.iter().copied().filter(|app| !self.apps.contains_key(*app)).collect();
        let endpoints =
            delivery::FanOutEndpoint::enabled_of(&db.conn, missing.iter().map(|app| (*app).to_owned()))
                .await?;
        for app in missing {
            self.apps.insert(app.to_owned(), Vec::new());
        }
        for endpoint in endpoints {
            self.apps.entry(endpoint.app_id.clone()).or_default().push(endpoint);
        }
        // A large application is fanned out by the worker: its endpoints are not kept here
        // (`inline_fan_out` sees it as large from its cached count).
        for list in self.apps.values_mut() {
            if list.len() > INLINE_MAX_ENDPOINTS {
                list.truncate(INLINE_MAX_ENDPOINTS + 1);
                list.shrink_to_fit();
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        *self = EndpointCache::default();
    }
}

/// Fails a batch whose fan-out at acceptance used cached endpoints of an older
/// `endpoint_changes` version than the database's: `endpoint_cache_guard` refuses the row
/// (constraint `endpoint_cache_stale`). Its rows are one `{"version": n}`, or none when the batch
/// used no cached endpoints.
const ENDPOINT_GUARD: Other = Other {
    sqlite: "INSERT INTO endpoint_cache_guard (stale) SELECT 1 FROM endpoint_changes, jsonb_each(?) \
             WHERE endpoint_changes.version <> value ->> 'version'",
    postgres: "INSERT INTO endpoint_cache_guard (stale) SELECT 1 FROM endpoint_changes, \
               jsonb_to_recordset({p}::jsonb) AS j(version bigint) WHERE endpoint_changes.version <> j.version",
};

/// True when a batch failed because its cached endpoints were stale ([`ENDPOINT_GUARD`]).
fn is_stale_endpoints(err: &StoreError) -> bool {
    matches!(err, StoreError::Database(err) if err.to_string().contains("endpoint_cache_stale"))
}

/// Applications found to have more than [`INLINE_MAX_ENDPOINTS`] endpoints, remembered for a
/// while so their endpoint lists are not read for every batch.
#[derive(Default)]
struct LargeApps(HashMap<String, Instant>);

const LARGE_APP_TTL: Duration = Duration::from_secs(10);

impl LargeApps {
    fn contains(&self, app_id: &str) -> bool {
        self.0.get(app_id).is_some_and(|at| at.elapsed() < LARGE_APP_TTL)
    }
}

/// Creates the deliveries of the batch's messages to small applications and leases those whose
/// endpoint has room, like the worker's fan-out does (FIFO and rate-limited endpoints wait for
/// the claim loop, which enforces them). The endpoints are read before the write transaction, on
/// a reader: everything committed before the batch was taken is seen.
async fn inline_fan_out(
    db: &Db,
    engine: &dyn InlineEngine,
    batch: &[&NewMessage],
    large_apps: &mut LargeApps,
    cache: &mut EndpointCache,
) -> InlineFanOut {
    let mut fan_out = InlineFanOut::default();
    let apps: HashSet<&str> = batch
        .iter()
        .filter(|m| m.plan_rate.is_some() && !large_apps.contains(m.app_id.as_str()))
        .map(|m| m.app_id.as_str())
        .collect();
    if apps.is_empty() {
        return fan_out;
    }
    if let Err(err) = cache.load(db, &apps).await {
        tracing::warn!(error = %err, "reading endpoints for fan-out at acceptance failed; the worker fans out");
        cache.clear();
        return fan_out;
    }
    fan_out.guard_version = cache.version;
    let endpoints = apps.iter().filter_map(|app| cache.apps.get(*app)).flatten();
    let mut by_app: HashMap<&str, Vec<&delivery::FanOutEndpoint>> = HashMap::new();
    for endpoint in endpoints {
        by_app.entry(endpoint.app_id.as_str()).or_default().push(endpoint);
    }
    for (app, list) in &by_app {
        if list.len() > INLINE_MAX_ENDPOINTS {
            large_apps.0.insert((*app).to_owned(), Instant::now());
        }
    }
    let mut plan = delivery::FanOutPlan::new(engine.worker_id(), engine, engine.lease());
    for message in batch {
        let Some(PlanRate(plan_rate)) = message.plan_rate else { continue };
        let app_id = message.app_id.as_str();
        if !apps.contains(app_id) || large_apps.contains(app_id) {
            continue;
        }
        let Ok(channels) = serde_json::from_value::<Vec<String>>(message.channels.clone()) else { continue };
        // The payload is parsed only if one of the application's endpoints has a content filter.
        let content = delivery::MatchContent::new(Some(&message.payload_text), &message.headers);
        let fan_out_message = delivery::FanOutMessage {
            id: &message.id,
            tenant_id: message.tenant_id.as_str(),
            app_id,
            event_type: &message.event_type,
            channels: &channels,
            only_endpoint: message.only_endpoint.as_deref(),
            created_at: message.created_at,
            content: &content,
        };
        let endpoints = by_app.get(app_id).map(Vec::as_slice).unwrap_or_default();
        match plan.add(&fan_out_message, endpoints, plan_rate) {
            Ok(0) => {}
            Ok(_) => {
                fan_out.payload_wanted.insert(message.id.clone());
            }
            // An unreadable filter: the worker's fan-out reports it.
            Err(_) => continue,
        }
        fan_out.fanned_out.insert(message.id.clone());
    }
    fan_out.rows = plan.rows;
    fan_out.leased = plan.leased;
    fan_out
}

/// Accepting a batch: messages, payloads, usage counters, fan-out queue entries and the
/// deliveries created at acceptance, in one round trip.
static INGEST_SQL: BatchSql = BatchSql::with_others(
    &[MESSAGES, PAYLOADS, usage::COUNTERS, FANOUT_QUEUE, delivery::DELIVERIES],
    &[ENDPOINT_GUARD],
);

/// [`INGEST_SQL`] and recording a batch of outcomes (`delivery::RECORD_SQL`) as one batch, for the
/// SQLite writer's transactions that hold both: one round trip to the database's thread instead
/// of two. (PostgreSQL records apart; its CTEs could not both touch the usage counters either.)
static INGEST_AND_RECORD_SQL: BatchSql = BatchSql::with_last(
    &[
        MESSAGES,
        PAYLOADS,
        usage::COUNTERS,
        FANOUT_QUEUE,
        delivery::DELIVERIES,
        delivery::ATTEMPTS,
        usage::COUNTERS,
        delivery::HEALTH,
    ],
    &[ENDPOINT_GUARD, delivery::HEALTH_RESET, delivery::RECORD_SUCCEEDED],
    delivery::RECORD_LAST,
);

pub(crate) const MESSAGES: Insert = Insert {
    table: "messages",
    columns: &[
        "id",
        "tenant_id",
        "app_id",
        "event_type",
        "event_id",
        "channels",
        "payload_size",
        "created_at",
    ],
    tail: "",
};

const PAYLOADS: Insert = Insert {
    table: "message_payloads",
    columns: &[
        "message_id",
        "tenant_id",
        "payload",
        "headers",
        "created_at",
        "object_key",
        "object_size",
        "object_sha256",
    ],
    tail: "",
};

pub(crate) const FANOUT_QUEUE: Insert = Insert {
    table: "fanout_queue",
    columns: &["message_id", "tenant_id", "app_id", "endpoint_id", "created_at"],
    tail: "",
};

/// Inserts the messages, their payloads, usage and fan-out queue rows in the caller's transaction.
pub(crate) async fn insert_messages<C: sea_orm::ConnectionTrait>(
    txn: &C,
    batch: &[&NewMessage],
) -> Result<(), StoreError> {
    insert_batch(txn, batch, &HashSet::new(), None, &Rows::default()).await
}

/// Inserts the batch and the deliveries created for it; messages not in `fanned_out` get a
/// fan-out queue entry.
async fn insert_batch<C: sea_orm::ConnectionTrait>(
    txn: &C,
    batch: &[&NewMessage],
    fanned_out: &HashSet<String>,
    guard: Option<i64>,
    deliveries: &Rows,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let rows = IngestRows::new(batch, fanned_out, guard);
    let sql = INGEST_SQL.get(txn.get_database_backend());
    let [messages, payloads, counters, queue, guard] = rows.params();
    bulk::run(txn, sql, &[messages, payloads, counters, queue, deliveries, guard]).await.map_err(ingest_error)
}

/// The rows of [`INGEST_AND_RECORD_SQL`]'s statements, in its order: the messages' inserts and
/// their deliveries, recording's inserts, the endpoint guard, recording's other statements.
fn ingest_and_record_params<'a>(
    ingest: &'a IngestRows,
    deliveries: &'a Rows,
    record: [&'a Rows; 6],
) -> [&'a Rows; 12] {
    let [messages, payloads, usage, queue, guard] = ingest.params();
    let [attempts, counters, failing, healthy, succeeded, failed] = record;
    [
        messages, payloads, usage, queue, deliveries, attempts, counters, failing, guard, healthy, succeeded,
        failed,
    ]
}

/// Recording's failure as the batch's error.
fn store_error(err: CoreError) -> StoreError {
    match err {
        CoreError::Database(err) => StoreError::Database(err),
        other => StoreError::Database(DbErr::Custom(other.to_string())),
    }
}

/// A batch's failure as the messages' error: a unique violation is a repeated `event_id`.
fn ingest_error(err: DbErr) -> StoreError {
    if is_unique_violation(&err) { StoreError::DuplicateEventId } else { err.into() }
}

/// The rows of accepting a batch of messages (without their deliveries).
struct IngestRows {
    messages: Rows,
    payloads: Rows,
    counters: Rows,
    queue: Rows,
    /// [`ENDPOINT_GUARD`]'s row: the version of the cached endpoints the deliveries came from.
    guard: Rows,
}

impl IngestRows {
    fn new(batch: &[&NewMessage], fanned_out: &HashSet<String>, guard: Option<i64>) -> IngestRows {
        #[derive(serde::Serialize)]
        struct MessageRow<'a> {
            id: &'a str,
            tenant_id: &'a str,
            app_id: &'a str,
            event_type: &'a str,
            event_id: Option<&'a str>,
            channels: &'a Value,
            payload_size: usize,
            created_at: &'a str,
        }
        #[derive(serde::Serialize)]
        struct PayloadRow<'a> {
            message_id: &'a str,
            tenant_id: &'a str,
            payload: &'a str,
            headers: Option<String>,
            created_at: &'a str,
            object_key: Option<&'a str>,
            object_size: Option<i64>,
            object_sha256: Option<&'a str>,
        }
        #[derive(serde::Serialize)]
        struct QueueRow<'a> {
            message_id: &'a str,
            tenant_id: &'a str,
            app_id: &'a str,
            endpoint_id: Option<&'a str>,
            created_at: &'a str,
        }
        let times: Vec<String> = batch.iter().map(|m| ts(m.created_at)).collect();
        let messages = batch
            .iter()
            .zip(&times)
            .map(|(m, created_at)| MessageRow {
                id: &m.id,
                tenant_id: m.tenant_id.as_str(),
                app_id: m.app_id.as_str(),
                event_type: &m.event_type,
                event_id: m.event_id.as_deref(),
                channels: &m.channels,
                payload_size: m.payload_text.len(),
                created_at,
            })
            .collect();
        let payloads = batch
            .iter()
            .zip(&times)
            .map(|(m, created_at)| PayloadRow {
                message_id: &m.id,
                tenant_id: m.tenant_id.as_str(),
                payload: match &m.object {
                    Some(_) => crate::objects::search_prefix(&m.payload_text),
                    None => &m.payload_text,
                },
                object_key: m.object.as_ref().map(|o| o.key.as_str()),
                object_size: m.object.as_ref().map(|o| o.size),
                object_sha256: m.object.as_ref().map(|o| o.sha256.as_str()),
                headers: (!m.headers.is_empty()).then(|| {
                    let map: std::collections::BTreeMap<&str, &str> =
                        m.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    serde_json::to_string(&map).expect("strings serialize")
                }),
                created_at,
            })
            .collect();
        // Usage: a couple of rows per batch.
        let counters = usage::counter_rows(batch.iter().filter(|m| m.counts_as_usage).flat_map(|m| {
            let (tenant, app) = (m.tenant_id.as_str(), m.app_id.as_str());
            let inbound = m.inbound.then_some((tenant, app, m.created_at, usage::Metric::InboundRequests, 1));
            [
                (tenant, app, m.created_at, usage::Metric::MessagesAccepted, 1),
                (tenant, app, m.created_at, usage::Metric::PayloadBytes, m.payload_text.len() as i64),
            ]
            .into_iter()
            .chain(inbound)
        }));
        let queue = batch
            .iter()
            .zip(&times)
            .filter(|(m, _)| !fanned_out.contains(&m.id))
            .map(|(m, created_at)| QueueRow {
                message_id: &m.id,
                tenant_id: m.tenant_id.as_str(),
                app_id: m.app_id.as_str(),
                endpoint_id: m.only_endpoint.as_deref(),
                created_at,
            })
            .collect();
        #[derive(serde::Serialize)]
        struct Guard {
            version: i64,
        }
        let guard = guard.map(|version| Guard { version }).into_iter().collect();
        IngestRows { messages, payloads, counters, queue, guard }
    }

    /// The messages', payloads', usage, fan-out queue and guard rows.
    fn params(&self) -> [&Rows; 5] {
        [&self.messages, &self.payloads, &self.counters, &self.queue, &self.guard]
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use hookline_types::{AppId, DeliveryId, MessageId, TenantId};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

    use super::{NewMessage, StoreError};
    use crate::{
        Context,
        delivery::{AttemptOutcome, Claimed, EngineLimits, FAILED, Headers, SENDING, SUCCEEDED},
        ids::NewId,
        store::entities::{attempts, deliveries, endpoint_health, messages},
    };

    fn message(tenant: &TenantId, app: &AppId, event_id: &str) -> NewMessage {
        NewMessage {
            id: MessageId::new_id().to_string(),
            tenant_id: tenant.clone(),
            app_id: app.clone(),
            event_type: "invoice.paid".to_owned(),
            event_id: Some(event_id.to_owned()),
            channels: serde_json::json!([]),
            payload_text: "{}".to_owned(),
            object: None,
            headers: Vec::new(),
            only_endpoint: None,
            created_at: Utc::now(),
            quota: None,
            counts_as_usage: true,
            inbound: false,
            plan_rate: None,
        }
    }

    /// A delivery of `message_id` to `endpoint_id`, leased to worker `w1`; returns its id.
    async fn leased_delivery(
        ctx: &Context,
        tenant: &TenantId,
        app: &AppId,
        message_id: &str,
        endpoint_id: &str,
    ) -> String {
        let now = Utc::now();
        let delivery_id = DeliveryId::new_id().to_string();
        deliveries::ActiveModel {
            id: Set(delivery_id.clone()),
            tenant_id: Set(tenant.to_string()),
            app_id: Set(app.to_string()),
            message_id: Set(message_id.to_owned()),
            endpoint_id: Set(endpoint_id.to_owned()),
            status: Set(SENDING.to_owned()),
            attempt_count: Set(0),
            next_attempt_at: Set(Some(now)),
            last_attempt_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            lease_owner: Set(Some("w1".to_owned())),
            lease_until: Set(Some(now + chrono::Duration::seconds(30))),
            last_response_status: Set(None),
            last_error: Set(None),
            job_id: Set(None),
            one_shot: Set(false),
        }
        .insert(&ctx.db.writer)
        .await
        .unwrap();
        delivery_id
    }

    /// The first attempt's outcome for a delivery: a 200, or a 503 retried in a minute.
    fn outcome(
        tenant: &TenantId,
        app: &AppId,
        message_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        succeeded: bool,
    ) -> AttemptOutcome {
        let now = Utc::now();
        AttemptOutcome {
            claimed: Claimed {
                delivery_id: delivery_id.to_owned(),
                tenant_id: tenant.to_string(),
                app_id: app.to_string(),
                message_id: message_id.to_owned(),
                endpoint_id: endpoint_id.to_owned(),
                event_type: "invoice.paid".to_owned(),
                attempt_number: 1,
                message_created_at: now,
                one_shot: false,
            },
            url: "https://example.com/hook".to_owned(),
            request_headers: Headers(vec![("webhook-id".to_owned(), message_id.to_owned())]),
            response_status: Some(if succeeded { 200 } else { 503 }),
            response_headers: Some(Headers::default()),
            response_body: Some(String::new()),
            duration_ms: 3,
            error_class: (!succeeded).then_some("status"),
            error_detail: (!succeeded).then(|| "the endpoint answered 503".to_owned()),
            trigger: "scheduled",
            payload_mode: None,
            request_body: None,
            next_attempt_at: (!succeeded).then(|| now + chrono::Duration::minutes(1)),
            disable_endpoint: false,
            succeeded,
            filtered: false,
            handshake_refused: false,
        }
    }

    /// Each test on both databases, on a current-thread runtime: the requests a test queues
    /// together (`tokio::join!`) are all waiting before the writer task first runs, so on SQLite
    /// they meet in one writer transaction (PostgreSQL records outside the writer: the tests hold
    /// there too).
    macro_rules! together_on_both_databases {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(hookline_e2e::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name(hookline_e2e::Backend::Postgres).await;
                }
            }
        )*};
    }

    together_on_both_databases!(
        outcomes_batched_with_a_failing_message_are_recorded_apart,
        messages_and_outcomes_written_together_keep_endpoint_health,
        a_batch_changes_only_the_deliveries_its_worker_still_holds,
        a_congested_lanes_message_waits_for_a_free_slot_while_other_tenants_are_stored,
        a_message_held_for_a_congested_lane_is_stored_once_the_hold_runs_out,
    );

    /// An engine whose lane is congested for one tenant while `congested` is set; it holds
    /// the writer's messages for at most `max_hold`.
    struct CongestedFor {
        tenant: TenantId,
        congested: std::sync::atomic::AtomicBool,
        /// Set once the writer asked about the tenant and was told to hold.
        held: std::sync::atomic::AtomicBool,
        freed: tokio::sync::Notify,
        max_hold: std::time::Duration,
    }

    impl crate::delivery::Capacity for CongestedFor {
        fn available(&self, _endpoint_id: &str, _tenant_id: &str) -> usize {
            0
        }
    }

    impl super::InlineEngine for CongestedFor {
        fn worker_id(&self) -> &str {
            "w1"
        }

        fn lease(&self) -> chrono::Duration {
            chrono::Duration::seconds(30)
        }

        fn left_for_claim(&self) {}

        fn hand_over(
            &self,
            _leased: Vec<Claimed>,
            _payloads: std::collections::HashMap<String, std::sync::Arc<crate::delivery::Payload>>,
        ) {
        }

        fn congested(&self, tenant_id: &str) -> bool {
            let congested =
                self.congested.load(std::sync::atomic::Ordering::SeqCst) && tenant_id == self.tenant.as_str();
            if congested {
                self.held.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            congested
        }

        fn slot_freed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
            Box::pin(self.freed.notified())
        }

        fn max_hold(&self) -> std::time::Duration {
            self.max_hold
        }
    }

    /// A migrated database whose writer sees `engine`, congested for a new tenant.
    async fn with_congestion(
        backend: hookline_e2e::Backend,
        max_hold: std::time::Duration,
    ) -> (tempfile::TempDir, Context, std::sync::Arc<CongestedFor>) {
        let (dir, config, db) = crate::store::db::migrated_for_test(backend).await;
        let ctx = Context::new(db, crate::crypto::Keys::for_tests(), config).unwrap();
        let engine = std::sync::Arc::new(CongestedFor {
            tenant: TenantId::new_id(),
            congested: std::sync::atomic::AtomicBool::new(true),
            held: std::sync::atomic::AtomicBool::new(false),
            freed: tokio::sync::Notify::new(),
            max_hold,
        });
        let inline: std::sync::Arc<dyn super::InlineEngine> = engine.clone();
        assert!(ctx.inline_engine.set(inline).is_ok());
        (dir, ctx, engine)
    }

    async fn stored(ctx: &Context, id: &str) -> bool {
        messages::Entity::find_by_id(id.to_owned()).one(&ctx.db.writer).await.unwrap().is_some()
    }

    async fn a_congested_lanes_message_waits_for_a_free_slot_while_other_tenants_are_stored(
        backend: hookline_e2e::Backend,
    ) {
        // A hold far longer than the test: only a freed slot lets the message through.
        let (_dir, ctx, engine) = with_congestion(backend, std::time::Duration::from_secs(600)).await;
        let held = message(&engine.tenant, &AppId::new_id(), "held");
        let held_id = held.id.clone();
        let ingest = ctx.clone();
        let held_store = tokio::spawn(async move { ingest.ingest.store(held).await });
        // The writer has the message and holds it.
        while !engine.held.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        let other = message(&TenantId::new_id(), &AppId::new_id(), "other");
        let other_id = other.id.clone();
        ctx.ingest.store(other).await.unwrap();
        assert!(stored(&ctx, &other_id).await, "another tenant's message is stored while one lane is held");
        assert!(!stored(&ctx, &held_id).await, "the congested lane's message waits");
        assert!(!held_store.is_finished(), "its client has no answer yet");

        engine.congested.store(false, std::sync::atomic::Ordering::SeqCst);
        engine.freed.notify_one();
        held_store.await.unwrap().unwrap();
        assert!(stored(&ctx, &held_id).await);
    }

    async fn a_message_held_for_a_congested_lane_is_stored_once_the_hold_runs_out(
        backend: hookline_e2e::Backend,
    ) {
        let max_hold = std::time::Duration::from_millis(300);
        let (_dir, ctx, engine) = with_congestion(backend, max_hold).await;
        // Congested throughout, no slot ever frees: the hold ends, the message is stored.
        let held = message(&engine.tenant, &AppId::new_id(), "held");
        let held_id = held.id.clone();
        let started = std::time::Instant::now();
        ctx.ingest.store(held).await.unwrap();
        assert!(
            started.elapsed() >= max_hold,
            "stored after {:?}, before the hold ran out",
            started.elapsed()
        );
        assert!(stored(&ctx, &held_id).await);
    }

    /// A migrated database with one stored message; returns it with its tenant and application.
    async fn with_a_message(
        backend: hookline_e2e::Backend,
    ) -> (tempfile::TempDir, Context, TenantId, AppId, String) {
        let (dir, config, db) = crate::store::db::migrated_for_test(backend).await;
        let ctx = Context::new(db, crate::crypto::Keys::for_tests(), config).unwrap();
        let (tenant, app) = (TenantId::new_id(), AppId::new_id());
        let first = message(&tenant, &app, "evt-1");
        let message_id = first.id.clone();
        ctx.ingest.store(first).await.unwrap();
        (dir, ctx, tenant, app, message_id)
    }

    async fn outcomes_batched_with_a_failing_message_are_recorded_apart(backend: hookline_e2e::Backend) {
        let (_dir, ctx, tenant, app, message_id) = with_a_message(backend).await;
        let delivery_id = leased_delivery(&ctx, &tenant, &app, &message_id, "ep_1").await;
        let outcome = outcome(&tenant, &app, &message_id, "ep_1", &delivery_id, true);

        let limits = EngineLimits::default();
        let (stored, recorded) = tokio::join!(
            ctx.ingest.store(message(&tenant, &app, "evt-1")),
            ctx.ingest.record("w1", vec![outcome], &limits)
        );

        assert!(matches!(stored, Err(StoreError::DuplicateEventId)), "{stored:?}");
        let (outcomes, recorded) = recorded.expect("the writer runs");
        assert_eq!(outcomes.len(), 1, "the outcomes come back to the recorder");
        recorded.expect("recorded despite the message that failed beside it");
        let delivery = deliveries::Entity::find_by_id(delivery_id).one(&ctx.db.conn).await.unwrap().unwrap();
        assert_eq!((delivery.status.as_str(), delivery.attempt_count), (SUCCEEDED, 1));
        assert_eq!(attempts::Entity::find().count(&ctx.db.conn).await.unwrap(), 1);
    }

    /// A success makes its endpoint healthy without reading its health (an unhealthy row is
    /// reset, a missing one stays missing); a failure counts on from the row, or starts one.
    async fn messages_and_outcomes_written_together_keep_endpoint_health(backend: hookline_e2e::Backend) {
        let (_dir, ctx, tenant, app, message_id) = with_a_message(backend).await;
        let since = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").unwrap().with_timezone(&Utc);
        let health =
            |endpoint_id: &str, failures: i32, circuit: Option<DateTime<Utc>>| endpoint_health::ActiveModel {
                endpoint_id: Set(endpoint_id.to_owned()),
                tenant_id: Set(tenant.to_string()),
                consecutive_failures: Set(failures),
                failing_since: Set(Some(since)),
                circuit_open_until: Set(circuit),
                tokens: Set(4.0),
                tokens_at: Set(Some(since)),
                updated_at: Set(since),
                ..Default::default()
            };
        health("ep_recovered", 12, Some(since + chrono::Duration::hours(1)))
            .insert(&ctx.db.writer)
            .await
            .unwrap();
        health("ep_failing", 2, None).insert(&ctx.db.writer).await.unwrap();
        // Successes only (nothing to read), then failures (their health rows read in the
        // transaction first); each beside a new message.
        let limits = EngineLimits::default();
        for (round, cases) in
            [[("ep_recovered", true), ("ep_fine", true)], [("ep_failing", false), ("ep_new_failure", false)]]
                .into_iter()
                .enumerate()
        {
            let mut outcomes = Vec::new();
            let mut ids = Vec::new();
            for (endpoint_id, succeeded) in cases {
                let delivery_id = leased_delivery(&ctx, &tenant, &app, &message_id, endpoint_id).await;
                outcomes.push(outcome(&tenant, &app, &message_id, endpoint_id, &delivery_id, succeeded));
                ids.push((delivery_id, succeeded));
            }
            let next = message(&tenant, &app, &format!("evt-{}", round + 2));
            let next_id = next.id.clone();
            let (stored, recorded) =
                tokio::join!(ctx.ingest.store(next), ctx.ingest.record("w1", outcomes, &limits));
            stored.expect("the message is stored beside the outcomes");
            assert!(messages::Entity::find_by_id(next_id).one(&ctx.db.conn).await.unwrap().is_some());
            let (_, recorded) = recorded.expect("the writer runs");
            let recorded = recorded.expect("recorded");
            let failures = ids.iter().filter(|(_, succeeded)| !succeeded).count();
            assert_eq!(recorded.retries.len(), failures, "each failure is retried: {:?}", recorded.retries);
            for (delivery_id, succeeded) in ids {
                let delivery =
                    deliveries::Entity::find_by_id(delivery_id).one(&ctx.db.conn).await.unwrap().unwrap();
                assert_eq!(delivery.status, if succeeded { SUCCEEDED } else { FAILED });
                assert_eq!(delivery.attempt_count, 1);
            }
        }
        assert_eq!(attempts::Entity::find().count(&ctx.db.conn).await.unwrap(), 4);
        let row = |endpoint_id: &'static str| {
            let conn = ctx.db.conn.clone();
            async move { endpoint_health::Entity::find_by_id(endpoint_id).one(&conn).await.unwrap() }
        };
        let recovered = row("ep_recovered").await.expect("kept");
        assert_eq!(
            (recovered.consecutive_failures, recovered.failing_since, recovered.circuit_open_until),
            (0, None, None),
            "a success resets an unhealthy endpoint"
        );
        assert_eq!(recovered.tokens, 4.0, "the rate limit's bucket is not the recorder's");
        let failing = row("ep_failing").await.expect("kept");
        assert_eq!((failing.consecutive_failures, failing.failing_since), (3, Some(since)));
        assert!(row("ep_fine").await.is_none(), "a healthy endpoint without a row gets none");
        let new_failure = row("ep_new_failure").await.expect("a first failure starts a row");
        assert_eq!(new_failure.consecutive_failures, 1);
        assert!(new_failure.failing_since.is_some());
    }

    /// Successes and failures are written by two statements (only failures report back which
    /// deliveries changed): each changes only deliveries still leased to the recording worker,
    /// every attempt is logged, and only a failure that changed its delivery is retried. Once
    /// beside a message (the writer's combined batch on SQLite), once alone.
    async fn a_batch_changes_only_the_deliveries_its_worker_still_holds(backend: hookline_e2e::Backend) {
        let (_dir, ctx, tenant, app, message_id) = with_a_message(backend).await;
        let limits = EngineLimits::default();
        for round in 0..2 {
            let mut outcomes = Vec::new();
            let mut cases = Vec::new();
            // (succeeded, the lease was taken over by another worker meanwhile)
            for (i, (succeeded, lost)) in
                [(true, false), (false, false), (true, true), (false, true)].into_iter().enumerate()
            {
                let endpoint_id = format!("ep_{round}_{i}");
                let delivery_id = leased_delivery(&ctx, &tenant, &app, &message_id, &endpoint_id).await;
                if lost {
                    deliveries::Entity::update_many()
                        .col_expr(deliveries::Column::LeaseOwner, sea_orm::sea_query::Expr::value("w2"))
                        .filter(deliveries::Column::Id.eq(delivery_id.as_str()))
                        .exec(&ctx.db.writer)
                        .await
                        .unwrap();
                }
                outcomes.push(outcome(&tenant, &app, &message_id, &endpoint_id, &delivery_id, succeeded));
                cases.push((delivery_id, succeeded, lost));
            }
            let recorded = if round == 0 {
                let next = message(&tenant, &app, "evt-beside");
                let (stored, recorded) =
                    tokio::join!(ctx.ingest.store(next), ctx.ingest.record("w1", outcomes, &limits));
                stored.expect("the message is stored beside the outcomes");
                recorded.expect("the writer runs").1.expect("recorded")
            } else {
                crate::delivery::record(&ctx.db, "w1", &outcomes, &limits).await.expect("recorded")
            };
            let retried: Vec<&str> = recorded.retries.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(
                retried,
                vec![cases[1].0.as_str()],
                "round {round}: only the failure still held is retried"
            );
            for (delivery_id, succeeded, lost) in &cases {
                let delivery = deliveries::Entity::find_by_id(delivery_id.as_str())
                    .one(&ctx.db.conn)
                    .await
                    .unwrap()
                    .unwrap();
                let seen =
                    (delivery.status.as_str(), delivery.attempt_count, delivery.lease_owner.as_deref());
                let expected = match (succeeded, lost) {
                    (_, true) => (SENDING, 0, Some("w2")),
                    (true, false) => (SUCCEEDED, 1, None),
                    (false, false) => (FAILED, 1, None),
                };
                assert_eq!(seen, expected, "round {round}: succeeded {succeeded}, lease lost {lost}");
                assert_eq!(
                    delivery.last_response_status,
                    if *lost { None } else { Some(if *succeeded { 200 } else { 503 }) }
                );
                assert_eq!(
                    delivery.last_error.is_some(),
                    !succeeded && !lost,
                    "round {round}: the error is kept for a failure only"
                );
            }
        }
        assert_eq!(attempts::Entity::find().count(&ctx.db.conn).await.unwrap(), 8, "every attempt is logged");
    }
}
