//! The delivery engine of one worker process.
//!
//! ```text
//!  API commit ──notify──▶ fan-out loop ──lease──▶ send tasks ──outcome──▶ recorder ──▶ DB
//!                          (queue → deliveries)      (≤ cap per endpoint,      (one txn per batch)
//!  claim loop (due, retries, leftovers) ──lease──▶    ≤ global in flight)          │
//!  apalis RetryWakeup jobs ──▶ claim of exactly those ids                        retries ──▶ apalis
//! ```
//!
//! The database is the truth: leases expire and are reclaimed, so a crash of this process at any
//! point loses nothing and leaves nothing stuck; the in-process channels only make it fast.

use std::{
    collections::HashMap,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use futures_util::FutureExt;
use hookline_core::{
    Context, CoreResult,
    delivery::{self, AttemptOutcome, Capacity, Claimed, EngineLimits, Headers, TenantFilter},
    domain::RetrySchedule,
    ingest::InlineEngine,
};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::{
    handshake::{self, Handshakes},
    http::{self, SsrfPolicy},
    retry,
    send::{Sender, Sent, Target, TokenCache},
    send_threads::SendThreads,
    transforms::{self, Transformed},
};

/// Tunables; the defaults suit the embedded single process.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Deliveries in flight at once in the shared lane, all endpoints together.
    pub max_in_flight: usize,
    /// Deliveries in flight at once in the dedicated lane (tenants whose plan has a dedicated
    /// queue): its own slots, so a backlog in the shared lane never delays them.
    pub dedicated_in_flight: usize,
    /// Deliveries in flight at once to one endpoint: a slow endpoint holds at most this many
    /// slots and cannot delay anyone else's deliveries. As many again may be leased and wait in
    /// this process for one of the endpoint's slots ([`LEASED_PER_SLOT`]).
    pub per_endpoint: usize,
    /// Messages taken off the fan-out queue per transaction.
    pub fanout_batch: u64,
    /// How often the claim loop looks for due work without being woken.
    pub claim_interval: Duration,
    /// Threads that send webhooks, each a single-threaded runtime ([`SendThreads`]).
    pub send_threads: usize,
    pub limits: EngineLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_in_flight: 1024,
            dedicated_in_flight: 256,
            per_endpoint: 64,
            fanout_batch: 500,
            claim_interval: Duration::from_millis(250),
            send_threads: hookline_core::config::default_send_threads(),
            limits: EngineLimits::default(),
        }
    }
}

impl EngineConfig {
    /// The defaults, with the operator's settings applied.
    pub fn from_config(config: &hookline_core::Config) -> EngineConfig {
        let mut engine = EngineConfig {
            max_in_flight: config.max_in_flight.max(1),
            dedicated_in_flight: config.dedicated_in_flight.max(1),
            per_endpoint: config.endpoint_in_flight.max(1),
            send_threads: config.send_threads.max(1),
            ..EngineConfig::default()
        };
        engine.limits.lease = chrono::Duration::seconds(i64::from(config.delivery_lease_seconds));
        engine.limits.circuit_threshold = i32::try_from(config.circuit_threshold).unwrap_or(i32::MAX).max(1);
        engine.limits.circuit_cooldown =
            chrono::Duration::seconds(i64::from(config.circuit_cooldown_seconds));
        engine.limits.disable_after =
            chrono::Duration::seconds(i64::try_from(config.disable_after_seconds).unwrap_or(i64::MAX));
        engine
    }
}

pub struct Engine {
    ctx: Context,
    pub worker_id: String,
    config: EngineConfig,
    /// Where deliveries are sent, each thread with its own client ([`SendThreads`]).
    send_threads: SendThreads,
    policy: SsrfPolicy,
    tokens: TokenCache,
    /// The CloudEvents handshakes this process made ([`Handshakes`]).
    handshakes: Handshakes,
    schedule: RetrySchedule,
    /// Deliveries leased and not yet answered, per endpoint, with the endpoint's request slots.
    inflight: Mutex<HashMap<String, EndpointLoad>>,
    /// Consecutive failed attempts per endpoint, as this process saw them (only endpoints whose
    /// last answer here failed): at the circuit's threshold, new deliveries of the endpoint are
    /// no longer leased as they are created ([`Capacity::paused`]).
    failures: Mutex<HashMap<String, i32>>,
    /// Attempts sent or being sent whose outcome is not yet recorded.
    unrecorded: AtomicUsize,
    slots: Arc<Semaphore>,
    dedicated_slots: Arc<Semaphore>,
    /// The tenants of the dedicated lane, and when the list was read.
    dedicated: Mutex<(Option<Instant>, Arc<Vec<String>>)>,
    outcomes: mpsc::UnboundedSender<AttemptOutcome>,
    /// Deliveries the ingest writer leased to this engine at acceptance, with their payloads.
    inline: mpsc::UnboundedSender<InlineBatch>,
    /// Deliveries leased at acceptance whose endpoint's circuit opened while they waited for a
    /// slot: handed back to the database, due when the cool-down ends ([`Engine::hold_back_loop`]).
    held_back: mpsc::UnboundedSender<Claimed>,
    targets: Mutex<HashMap<String, (Instant, Arc<Target>)>>,
    /// Event types' retry schedules by (tenant, type), read when an attempt fails at an endpoint
    /// without a schedule of its own; cached like the endpoints ([`TARGET_TTL`]).
    type_schedules: Mutex<HashMap<(String, String), CachedSchedule>>,
    wake_claim: Notify,
    /// Told when a request slot frees while the ingest writer holds messages for one
    /// ([`InlineEngine::slot_freed`]); `writer_waits` says whether anyone listens.
    slot_freed: Notify,
    writer_waits: AtomicBool,
    /// Per lane (shared, dedicated): deliveries handed to the send threads that no thread has
    /// started yet — the queue in front of CPUs that are all busy ([`QUEUED_LIMIT`]).
    queued: [AtomicUsize; 2],
    /// Per lane (shared, dedicated): whether the database may hold deliveries the lane's claim
    /// loop would take now. Set by whatever leaves deliveries unleased; cleared by a claim that
    /// took everything it saw. A finished attempt wakes the claim loop only while it is set: an
    /// empty claim after every recorded batch was a wasted query (and a re-prepare: its LIMIT is a
    /// bound value) hundreds of times a second.
    claimable: [AtomicBool; 2],
    stopping: AtomicBool,
    /// Where retry times go to become apalis scheduled jobs (set once the queue is up).
    pub retry_sink: std::sync::OnceLock<RetrySink>,
}

type InlineBatch = (Vec<Claimed>, HashMap<String, Arc<delivery::Payload>>);

/// How the engine came to hold a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leased {
    /// Leased by the ingest writer as the message was accepted.
    AtAcceptance,
    /// Taken by a claim, which follows the endpoint's circuit as the database records it.
    ByClaim,
}

/// Deliveries to retry, with their due time.
pub type RetrySink = mpsc::UnboundedSender<Vec<(String, chrono::DateTime<Utc>)>>;

/// Deliveries an endpoint may have leased to this process, per request slot: the ones beyond its
/// slots wait here, in memory, for the next free slot, instead of being left in the database for
/// a claim (one more write of each row on the serial writer, and a read of its payload). A
/// backlog of one endpoint still sends at most `per_endpoint` requests at once, and the tasks
/// waiting for the endpoint hold no lane slot: nobody else waits behind them.
const LEASED_PER_SLOT: usize = 2;

/// A lane is congested (the ingest writer holds its tenants' new messages, `ingest::MAX_HOLD`)
/// while this many of its deliveries wait for a send thread to start them, or while all its
/// request slots are taken. Counted from the hand-over to the first poll only: deliveries waiting
/// for a slow endpoint's own slots do not count, so a slow endpoint never holds anyone's ingest.
const QUEUED_LIMIT: usize = 256;

/// How often one outcome is tried before its delivery is handed back ([`Engine::record_batch`]).
const RECORD_TRIES: u32 = 8;

/// One endpoint's deliveries held by this process.
struct EndpointLoad {
    /// Leased and not yet answered, whether sending or waiting for a slot.
    held: usize,
    /// The endpoint's request slots (`per_endpoint`).
    slots: Arc<Semaphore>,
}

/// Endpoint settings (and event types' retry schedules) are cached this long; a change takes
/// effect within it.
const TARGET_TTL: Duration = Duration::from_secs(1);

/// An event type's retry schedule (or its lack of one) and when it was read.
type CachedSchedule = (Instant, Option<RetrySchedule>);

/// At most this many event types' retry schedules are cached; past it the cache starts over.
const MAX_CACHED_TYPE_SCHEDULES: usize = 10_000;

/// The engine runs two lanes, each with its own slots and claim loop: one for tenants whose plan
/// has a dedicated queue, one shared by everyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Shared,
    Dedicated,
}

/// How often the dedicated lane's tenant list is re-read (as long as plan limits are cached: a
/// tenant moves lanes within 2 s of a plan change).
const DEDICATED_TTL: Duration = Duration::from_secs(2);

/// Room for a delivery: per endpoint, and the free slots of its tenant's lane.
struct LaneCapacity<'a> {
    engine: &'a Engine,
    /// The tenants of the dedicated lane, sorted.
    dedicated: &'a [String],
}

impl LaneCapacity<'_> {
    fn lane_of(&self, tenant_id: &str) -> Lane {
        if self.dedicated.binary_search_by(|t| t.as_str().cmp(tenant_id)).is_ok() {
            Lane::Dedicated
        } else {
            Lane::Shared
        }
    }

    /// Splits deliveries by lane: (dedicated, shared).
    fn split(&self, claimed: Vec<Claimed>) -> (Vec<Claimed>, Vec<Claimed>) {
        claimed.into_iter().partition(|c| self.lane_of(&c.tenant_id) == Lane::Dedicated)
    }
}

/// What the ingest writer asks of the engine when it fans out at acceptance.
impl Capacity for Engine {
    fn available(&self, endpoint_id: &str, tenant_id: &str) -> usize {
        if self.is_stopping() {
            return 0; // Created pending: the database keeps them for whoever runs next.
        }
        let dedicated = self.last_dedicated();
        LaneCapacity { engine: self, dedicated: &dedicated }.available(endpoint_id, tenant_id)
    }

    fn paused(&self, endpoint_id: &str) -> bool {
        self.circuit_tripped(endpoint_id)
    }

    fn room(&self) -> usize {
        self.room()
    }
}

impl InlineEngine for Engine {
    fn worker_id(&self) -> &str {
        &self.worker_id
    }

    fn lease(&self) -> chrono::Duration {
        self.config.limits.lease
    }

    fn left_for_claim(&self) {
        self.mark_claimable();
    }

    fn hand_over(&self, leased: Vec<Claimed>, payloads: HashMap<String, Arc<delivery::Payload>>) {
        if self.inline.send((leased, payloads)).is_err() {
            tracing::warn!(
                "the engine stopped; deliveries leased at acceptance wait for their lease to expire"
            );
        }
    }

    fn congested(&self, tenant_id: &str) -> bool {
        if self.is_stopping() {
            return false;
        }
        let dedicated = self.last_dedicated();
        let lane = LaneCapacity { engine: self, dedicated: &dedicated }.lane_of(tenant_id);
        self.slots(lane).available_permits() == 0 || self.queued(lane).load(Ordering::Acquire) >= QUEUED_LIMIT
    }

    fn slot_freed(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.writer_waits.store(true, Ordering::Release);
        Box::pin(self.slot_freed.notified())
    }
}

impl Capacity for LaneCapacity<'_> {
    fn available(&self, endpoint_id: &str, tenant_id: &str) -> usize {
        let inflight = self.engine.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let used = inflight.get(endpoint_id).map_or(0, |load| load.held);
        let slots = self.engine.slots(self.lane_of(tenant_id)).available_permits();
        self.engine.leasable().saturating_sub(used).min(slots)
    }

    fn paused(&self, endpoint_id: &str) -> bool {
        self.engine.circuit_tripped(endpoint_id)
    }

    fn room(&self) -> usize {
        self.engine.room()
    }
}

impl Engine {
    /// Starts the engine's loops; they run until [`Engine::stop`].
    pub fn start(
        ctx: Context,
        config: EngineConfig,
        worker_id: String,
    ) -> std::io::Result<(Arc<Engine>, Vec<tokio::task::JoinHandle<()>>)> {
        let policy = SsrfPolicy { allow: ctx.config.ssrf_allow.clone() };
        let idle_per_host = config.max_in_flight + config.dedicated_in_flight;
        let send_threads = SendThreads::start(config.send_threads, || http::client(&policy, idle_per_host))?;
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        let (inline, inline_rx) = mpsc::unbounded_channel();
        let (held_back, held_back_rx) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            schedule: ctx.config.retry_schedule.clone(),
            send_threads,
            policy,
            tokens: TokenCache::default(),
            handshakes: Handshakes::new(&ctx.config.public_url),
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            dedicated_slots: Arc::new(Semaphore::new(config.dedicated_in_flight)),
            dedicated: Mutex::new((None, Arc::new(Vec::new()))),
            inflight: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            unrecorded: AtomicUsize::new(0),
            outcomes,
            inline,
            held_back,
            targets: Mutex::new(HashMap::new()),
            type_schedules: Mutex::new(HashMap::new()),
            wake_claim: Notify::new(),
            slot_freed: Notify::new(),
            writer_waits: AtomicBool::new(false),
            queued: [AtomicUsize::new(0), AtomicUsize::new(0)],
            claimable: [AtomicBool::new(true), AtomicBool::new(true)],
            stopping: AtomicBool::new(false),
            retry_sink: std::sync::OnceLock::new(),
            ctx,
            worker_id,
            config,
        });
        let tasks = vec![
            tokio::spawn(engine.clone().fan_out_loop()),
            tokio::spawn(engine.clone().claim_loop(Lane::Shared)),
            tokio::spawn(engine.clone().claim_loop(Lane::Dedicated)),
            tokio::spawn(engine.clone().record_loop(outcomes_rx)),
            tokio::spawn(engine.clone().lease_loop()),
            tokio::spawn(engine.clone().jobs_loop()),
            tokio::spawn(engine.clone().inline_loop(inline_rx)),
            tokio::spawn(engine.clone().hold_back_loop(held_back_rx)),
        ];
        // From now on the API's ingest writer in this process fans small applications out itself.
        let inline: Arc<dyn InlineEngine> = engine.clone();
        if engine.ctx.inline_engine.set(inline).is_err() {
            tracing::warn!("another engine already takes deliveries at acceptance in this process");
        }
        Ok((engine, tasks))
    }

    /// Deliveries were left in the database for the claim loops: wake them.
    fn mark_claimable(&self) {
        for flag in &self.claimable {
            flag.store(true, Ordering::Release);
        }
        self.wake_claim.notify_waiters();
    }

    /// A slot freed, or the queue shrank: the ingest writer, if it holds messages, looks again.
    fn wake_writer(&self) {
        if self.writer_waits.swap(false, Ordering::AcqRel) {
            self.slot_freed.notify_one();
        }
    }

    fn queued(&self, lane: Lane) -> &AtomicUsize {
        match lane {
            Lane::Shared => &self.queued[0],
            Lane::Dedicated => &self.queued[1],
        }
    }

    fn claimable(&self, lane: Lane) -> &AtomicBool {
        &self.claimable[lane as usize]
    }

    fn slots(&self, lane: Lane) -> &Arc<Semaphore> {
        match lane {
            Lane::Shared => &self.slots,
            Lane::Dedicated => &self.dedicated_slots,
        }
    }

    /// The dedicated lane's tenants as last read, without reading them again.
    fn last_dedicated(&self) -> Arc<Vec<String>> {
        self.dedicated.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// The dedicated lane's tenants, sorted (re-read every [`DEDICATED_TTL`]).
    async fn dedicated_tenants(&self) -> Arc<Vec<String>> {
        let fresh = {
            let cached = self.dedicated.lock().unwrap_or_else(|p| p.into_inner());
            cached.0.filter(|at| at.elapsed() < DEDICATED_TTL).map(|_| cached.1.clone())
        };
        if let Some(list) = fresh {
            return list;
        }
        match hookline_core::tenancy::plans::dedicated_tenants(&self.ctx).await {
            Ok(list) => {
                let list = Arc::new(list);
                *self.dedicated.lock().unwrap_or_else(|p| p.into_inner()) =
                    (Some(Instant::now()), list.clone());
                list
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the dedicated tenants; using the last list");
                self.last_dedicated()
            }
        }
    }

    /// Which tenants a lane's claims take; `None` when the dedicated lane has no tenants.
    fn tenant_filter(lane: Lane, dedicated: &[String]) -> Option<TenantFilter> {
        match lane {
            Lane::Dedicated if dedicated.is_empty() => None,
            Lane::Dedicated => Some(TenantFilter { only: Some(dedicated.to_vec()), except: Vec::new() }),
            Lane::Shared => Some(TenantFilter { only: None, except: dedicated.to_vec() }),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Stops taking new work and waits (up to `grace`) for in-flight attempts to be recorded;
    /// anything still held after that is handed back to the database.
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        self.ctx.signals.fanout.notify_waiters();
        self.wake_claim.notify_waiters();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && (self.total_inflight() > 0 || self.unrecorded.load(Ordering::Acquire) > 0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match delivery::release_leases_of(&self.ctx, &self.worker_id, None, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "handed back deliveries still in flight at shutdown"),
            Err(err) => tracing::warn!(error = %err, "could not hand back leases; they will expire"),
        }
    }

    /// Ends the send threads, once [`Engine::stop`] has waited for the attempts in flight (any
    /// still running are dropped; their leases were handed back).
    pub fn stop_sending(&self) {
        self.send_threads.stop();
    }

    fn total_inflight(&self) -> usize {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner()).values().map(|load| load.held).sum()
    }

    /// How many more deliveries this process may hold now, across all endpoints: twice its
    /// request slots ([`LEASED_PER_SLOT`]). Fan-out (at acceptance and in the loop) and claims
    /// lease no more than this, so what the engine leases, loads and renews at once is bounded
    /// by `HOOKLINE_MAX_IN_FLIGHT` and `HOOKLINE_DEDICATED_IN_FLIGHT`, whatever a burst creates:
    /// 100 messages to 1,000 endpoints each leased 100,000 deliveries at once, and loading their
    /// payloads passed SQLite's bind limit, again after every lease expiry.
    fn room(&self) -> usize {
        let most = LEASED_PER_SLOT * (self.config.max_in_flight + self.config.dedicated_in_flight);
        most.saturating_sub(self.total_inflight())
    }

    /// How many deliveries of one endpoint this process may hold ([`LEASED_PER_SLOT`]).
    fn leasable(&self) -> usize {
        self.config.per_endpoint * LEASED_PER_SLOT
    }

    /// Whether the endpoint's last `circuit_threshold` answers to this process all failed. Its
    /// circuit in the database is then open (or about to be, once the batch is recorded): new
    /// deliveries wait for the claims, which send one probe per cool-down. Without this, a
    /// message accepted while the circuit is open was sent at once, circuit or not. A success
    /// (the probe's) clears it.
    fn circuit_tripped(&self, endpoint_id: &str) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(endpoint_id).is_some_and(|n| *n >= self.config.limits.circuit_threshold)
    }

    fn answered(&self, endpoint_id: &str, succeeded: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if succeeded {
            // Most answers succeed at endpoints that never failed: nothing to remove.
            if !failures.is_empty() {
                failures.remove(endpoint_id);
            }
        } else {
            *failures.entry(endpoint_id.to_owned()).or_default() += 1;
        }
    }

    /// Endpoints holding all they may: a claim does not look at their deliveries.
    fn saturated(&self) -> Vec<String> {
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.iter().filter(|(_, load)| load.held >= self.leasable()).map(|(id, _)| id.clone()).collect()
    }

    async fn fan_out_loop(self: Arc<Self>) {
        while !self.is_stopping() {
            let woken = self.ctx.signals.fanout.notified();
            if let Err(err) = hookline_core::ingest::broadcasts::expand_queued(&self.ctx, 20).await {
                tracing::error!(error = %err, "expanding broadcasts failed; retrying");
            }
            // One pass for both lanes: fan-out does no network I/O and drains thousands of
            // messages a second; what the lanes keep apart is the sending (slots and claims).
            let dedicated = self.dedicated_tenants().await;
            let capacity = LaneCapacity { engine: &self, dedicated: &dedicated };
            let started = Instant::now();
            match delivery::fan_out(
                &self.ctx,
                &self.worker_id,
                self.config.fanout_batch,
                &capacity,
                &self.config.limits,
            )
            .await
            {
                Ok(fan_out) => {
                    tracing::debug!(target: "hookline::batch", kind = "fanout", us = started.elapsed().as_micros() as u64, n = fan_out.messages, deliveries = fan_out.deliveries, leased = fan_out.leased.len());
                    let left_for_claim = fan_out.leased.len() < fan_out.deliveries;
                    let full = fan_out.messages as u64 == self.config.fanout_batch;
                    let (dedicated_leased, shared_leased) = capacity.split(fan_out.leased);
                    self.dispatch(dedicated_leased, Lane::Dedicated).await;
                    self.dispatch(shared_leased, Lane::Shared).await;
                    if left_for_claim {
                        self.mark_claimable();
                    }
                    if full {
                        continue; // More is queued: no waiting.
                    }
                }
                Err(err) => {
                    hookline_core::metrics::engine_error("fanout");
                    tracing::error!(error = %err, "fan-out failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            // Another process may have accepted messages: poll too, as often as the claim loops
            // do (this process's own messages wake the loop at once).
            let _ = tokio::time::timeout(Duration::from_millis(250), woken).await;
        }
    }

    /// Feeds bulk jobs (recover, replay-missing) to the claim loop and keeps their progress.
    async fn jobs_loop(self: Arc<Self>) {
        let mut rotation = hookline_core::logs::replay::JobRotation::default();
        while !self.is_stopping() {
            let woken = self.ctx.signals.jobs.notified();
            if let Err(err) = hookline_core::logs::replay::run_jobs(&self.ctx, &mut rotation).await {
                tracing::error!(error = %err, "running bulk jobs failed; retrying");
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), woken).await;
        }
    }

    async fn claim_loop(self: Arc<Self>, lane: Lane) {
        // Claim on the interval and when another process signals; when this engine wakes the
        // loops, only if this lane may have something to take (the wake-up is shared by both).
        let mut due = true;
        // Not reset by a wake-up that claims nothing: the periodic claim must not starve.
        let mut next_poll = Instant::now();
        while !self.is_stopping() {
            let woken = self.wake_claim.notified();
            let elsewhere = self.ctx.signals.claim.notified();
            if due || self.claimable(lane).load(Ordering::Acquire) {
                next_poll = Instant::now() + self.config.claim_interval;
                match self.claim(lane, None).await {
                    Ok(n) if n > 0 => {
                        due = true;
                        continue;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        hookline_core::metrics::engine_error("claim");
                        tracing::error!(error = %err, "claiming due deliveries failed; retrying");
                    }
                }
            }
            due = tokio::select! {
                _ = woken => false,
                _ = elsewhere => true,
                _ = tokio::time::sleep_until(next_poll.into()) => true,
            };
        }
    }

    /// Claims the lane's due deliveries (all, or only `ids`) and sends them. Returns how many.
    pub async fn claim(self: &Arc<Self>, lane: Lane, ids: Option<&[String]>) -> CoreResult<usize> {
        let room = self.slots(lane).available_permits().min(500).min(self.room());
        if room == 0 || self.is_stopping() {
            return Ok(0);
        }
        let dedicated = self.dedicated_tenants().await;
        let Some(tenants) = Self::tenant_filter(lane, &dedicated) else {
            // A lane without tenants has nothing to claim.
            self.claimable(lane).store(false, Ordering::Release);
            return Ok(0);
        };
        let saturated = self.saturated();
        let capacity = LaneCapacity { engine: self, dedicated: &dedicated };
        let scope = delivery::ClaimScope {
            limit: room as u64,
            capacity: &capacity,
            saturated: &saturated,
            only: ids,
            tenants: &tenants,
        };
        let started = Instant::now();
        if ids.is_none() {
            // Cleared before looking: whatever is left behind from now on sets it again.
            self.claimable(lane).store(false, Ordering::Release);
        }
        let claims = delivery::claim_due(&self.ctx, &self.worker_id, scope, &self.config.limits).await;
        let claims = match claims {
            Ok(claims) => claims,
            Err(err) => {
                self.claimable(lane).store(true, Ordering::Release);
                return Err(err);
            }
        };
        // Endpoints at their cap were not even looked at: their deliveries may be waiting.
        if claims.left_behind || !saturated.is_empty() {
            self.claimable(lane).store(true, Ordering::Release);
        }
        let claimed = claims.claimed;
        let n = claimed.len();
        tracing::debug!(target: "hookline::batch", kind = "claim", n, us = started.elapsed().as_micros() as u64);
        self.dispatch(claimed, lane).await;
        Ok(n)
    }

    async fn targets_for(&self, endpoint_ids: Vec<String>) -> HashMap<String, Arc<Target>> {
        let now = Instant::now();
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            for id in endpoint_ids {
                match cache.get(&id) {
                    Some((at, target)) if now.duration_since(*at) < TARGET_TTL => {
                        found.insert(id, target.clone());
                    }
                    _ => missing.push(id),
                }
            }
        }
        if !missing.is_empty() {
            match delivery::load_targets(&self.ctx, &missing).await {
                Ok(loaded) => {
                    let mut cache = self.targets.lock().unwrap_or_else(|p| p.into_inner());
                    for (id, target) in loaded {
                        let target = Arc::new(Target::new(target));
                        cache.insert(id.clone(), (now, target.clone()));
                        found.insert(id, target);
                    }
                }
                Err(err) => {
                    hookline_core::metrics::engine_error("targets");
                    tracing::error!(error = %err, "loading endpoints failed");
                }
            }
        }
        found
    }

    /// The retry schedule of the tenant's event type, if it has one. A read that fails falls back
    /// to the default schedule (counted as an engine error): the retry is never lost.
    async fn type_schedule(&self, tenant_id: &str, event_type: &str) -> Option<RetrySchedule> {
        let key = (tenant_id.to_owned(), event_type.to_owned());
        let now = Instant::now();
        if let Some((at, schedule)) = self.type_schedules.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && now.duration_since(*at) < TARGET_TTL
        {
            return schedule.clone();
        }
        let tenant = hookline_types::TenantId::parse(tenant_id).ok()?;
        match hookline_core::catalog::event_types::retry_schedule(&self.ctx.db.conn, &tenant, event_type)
            .await
        {
            Ok(schedule) => {
                let mut cache = self.type_schedules.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED_TYPE_SCHEDULES {
                    cache.clear();
                }
                cache.insert(key, (now, schedule.clone()));
                schedule
            }
            Err(err) => {
                hookline_core::metrics::engine_error("type_schedule");
                tracing::error!(error = %err, event_type, "reading the event type's retry schedule failed; the default applies");
                None
            }
        }
    }

    /// Counts the deliveries as held for their endpoints.
    fn hold(&self, claimed: &[Claimed]) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for c in claimed {
            let load = inflight.entry(c.endpoint_id.clone()).or_insert_with(|| EndpointLoad {
                held: 0,
                slots: Arc::new(Semaphore::new(self.config.per_endpoint)),
            });
            load.held += 1;
        }
    }

    /// The request slots of endpoints whose deliveries are held ([`Engine::hold`]).
    fn endpoint_slots(&self, endpoint_ids: &[String]) -> HashMap<String, Arc<Semaphore>> {
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        endpoint_ids
            .iter()
            .filter_map(|id| inflight.get(id).map(|load| (id.clone(), load.slots.clone())))
            .collect()
    }

    /// Sends the claimed deliveries, each in its own task; outcomes go to the recorder.
    async fn dispatch(self: &Arc<Self>, claimed: Vec<Claimed>, lane: Lane) {
        if claimed.is_empty() {
            return;
        }
        self.hold(&claimed);
        let message_ids: Vec<String> = claimed.iter().map(|c| c.message_id.clone()).collect();
        let payloads = match delivery::load_payloads(&self.ctx, &message_ids).await {
            Ok(payloads) => payloads,
            Err(err) => {
                hookline_core::metrics::engine_error("payloads");
                tracing::error!(error = %err, n = claimed.len(), "loading payloads failed; handing the deliveries back");
                self.release(&claimed).await;
                return;
            }
        };
        self.send_all(claimed, lane, payloads, Leased::ByClaim).await;
    }

    /// Deliveries leased at acceptance: their payloads came along, nothing to read.
    async fn inline_loop(self: Arc<Self>, mut batches: mpsc::UnboundedReceiver<InlineBatch>) {
        while let Some((leased, payloads)) = batches.recv().await {
            self.hold(&leased);
            if self.is_stopping() {
                self.release(&leased).await;
                continue;
            }
            let dedicated = self.last_dedicated();
            let (dedicated_leased, shared_leased) =
                LaneCapacity { engine: &self, dedicated: &dedicated }.split(leased);
            if !dedicated_leased.is_empty() {
                self.send_all(dedicated_leased, Lane::Dedicated, payloads.clone(), Leased::AtAcceptance)
                    .await;
            }
            self.send_all(shared_leased, Lane::Shared, payloads, Leased::AtAcceptance).await;
        }
    }

    /// Sends deliveries already counted in flight ([`Engine::hold`]) with their payloads.
    async fn send_all(
        self: &Arc<Self>,
        claimed: Vec<Claimed>,
        lane: Lane,
        mut payloads: HashMap<String, Arc<delivery::Payload>>,
        leased: Leased,
    ) {
        if claimed.is_empty() {
            return;
        }
        let mut endpoint_ids: Vec<String> = claimed.iter().map(|c| c.endpoint_id.clone()).collect();
        endpoint_ids.sort();
        endpoint_ids.dedup();
        let endpoint_slots = self.endpoint_slots(&endpoint_ids);
        let targets = self.targets_for(endpoint_ids).await;
        let mut unsendable = Vec::new();
        for c in claimed {
            let Some(target) = targets.get(&c.endpoint_id).cloned().filter(|t| !t.disabled) else {
                unsendable.push(c);
                continue;
            };
            // A message fanned out to several endpoints shares its payload text.
            let payload = payloads.get(&c.message_id).cloned();
            // Held since it was leased, so its endpoint's entry exists until it is answered.
            let Some(endpoint_slots) = endpoint_slots.get(&c.endpoint_id).cloned() else {
                debug_assert!(false, "a delivery sent without being held");
                unsendable.push(c);
                continue;
            };
            let engine = self.clone();
            self.unrecorded.fetch_add(1, Ordering::AcqRel);
            self.queued(lane).fetch_add(1, Ordering::AcqRel);
            let (send_thread, client) = self.send_threads.next();
            let client = client.clone();
            send_thread.spawn(async move {
                if engine.queued(lane).fetch_sub(1, Ordering::AcqRel) <= QUEUED_LIMIT {
                    engine.wake_writer();
                }
                // The endpoint's slot first: a delivery waiting for its endpoint holds no lane slot.
                let endpoint_permit = endpoint_slots.acquire_owned().await;
                if leased == Leased::AtAcceptance && engine.circuit_tripped(&c.endpoint_id) {
                    // The endpoint failed `circuit_threshold` times in a row while this delivery
                    // waited for a slot: it waits for the circuit instead. (A claimed delivery was
                    // taken under the circuit's rules in the database — it may be the probe.)
                    drop(endpoint_permit);
                    let _ = engine.held_back.send(c);
                    return;
                }
                let permit = engine.slots(lane).clone().acquire_owned().await;
                let outcome = engine.attempt(c, &target, payload.as_ref(), &client).await;
                // Counted before the slot frees: the next delivery waiting for it sees this answer.
                // A delivery its transform skipped sent nothing: it says nothing of the endpoint.
                if !outcome.filtered {
                    engine.answered(&outcome.claimed.endpoint_id, outcome.succeeded);
                }
                drop(permit);
                if engine.slots(lane).available_permits() == 1 {
                    // The lane had no free slot: the writer may be holding for one.
                    engine.wake_writer();
                }
                drop(endpoint_permit);
                // The endpoint's slot frees with its answer, not with the record: the cap bounds
                // the requests an endpoint has open, and a batch waiting for the recorder does not
                // hold the endpoint back (the lease keeps the delivery from being sent twice).
                engine.done(std::iter::once(outcome.claimed.endpoint_id.as_str()));
                let _ = engine.outcomes.send(outcome);
            });
        }
        payloads.clear();
        // Deleted or disabled since they were claimed: hand them back untouched.
        self.release(&unsendable).await;
    }

    /// One attempt and the decision about the next one.
    async fn attempt(
        &self,
        claimed: Claimed,
        target: &Target,
        payload: Option<&Arc<delivery::Payload>>,
        client: &reqwest::Client,
    ) -> AttemptOutcome {
        let Some(payload) = payload else {
            // The payload was purged (retention) or expunged: nothing left to send.
            return AttemptOutcome {
                url: target.url.clone(),
                request_headers: Headers::default(),
                response_status: None,
                response_headers: None,
                response_body: None,
                duration_ms: 0,
                error_class: Some("config"),
                error_detail: Some("the message's payload is no longer stored".to_owned()),
                trigger: trigger(&claimed),
                payload_mode: None,
                request_body: None,
                next_attempt_at: None,
                disable_endpoint: false,
                succeeded: false,
                filtered: false,
                handshake_refused: false,
                claimed,
            };
        };
        let sender = Sender {
            client,
            policy: &self.policy,
            tokens: &self.tokens,
            links: &self.ctx.links,
            objects: &self.ctx.objects,
        };
        let mut filtered = false;
        let mut handshake_refused = false;
        let handshake = match target.handshake {
            true => {
                let started = Instant::now();
                self.handshakes
                    .ensure(&self.ctx, target, client, &self.policy)
                    .await
                    .map_err(|f| (f, started))
            }
            false => Ok(()),
        };
        let sent = match (handshake, &target.transform) {
            (Err((handshake::Failed::Refused(detail), started)), _) => {
                handshake_refused = true;
                Sent::unsent(&target.url, "handshake", detail, started.elapsed())
            }
            (Err((handshake::Failed::Unreachable(class, detail), started)), _) => {
                Sent::unsent(&target.url, class, detail, started.elapsed())
            }
            (Ok(()), None) => {
                unless_panicked(&claimed.endpoint_id, &target.url, sender.send(&claimed, target, payload))
                    .await
            }
            (Ok(()), Some(program)) => {
                match transforms::apply(&self.ctx, &claimed, target, payload, program).await {
                    Transformed::Send { claimed: as_sent, target: transformed_target, payload: body } => {
                        let mut sent = unless_panicked(
                            &claimed.endpoint_id,
                            &target.url,
                            sender.send(&as_sent, &transformed_target, &body),
                        )
                        .await;
                        // The attempt log shows what was sent (a thin body shows itself).
                        if sent.request_body.is_none() {
                            sent.request_body = Some(body.text.clone());
                        }
                        sent
                    }
                    Transformed::Skip(started) => {
                        filtered = true;
                        Sent::unsent(
                            &target.url,
                            "filtered",
                            "the transform returned null: nothing was sent".to_owned(),
                            started.elapsed(),
                        )
                    }
                    Transformed::Failed(detail, started) => {
                        Sent::unsent(&target.url, "transform", detail, started.elapsed())
                    }
                }
            }
        };
        let succeeded = sent.succeeded();
        let gone = sent.status == Some(reqwest::StatusCode::GONE);
        let next_attempt_at = if succeeded || gone || claimed.one_shot || filtered {
            None
        } else {
            // The endpoint's schedule, else its message's event type's, else the default.
            let by_type = match &target.retry_schedule {
                Some(_) => None,
                None => self.type_schedule(&claimed.tenant_id, &claimed.event_type).await,
            };
            let schedule = target.retry_schedule.as_ref().or(by_type.as_ref()).unwrap_or(&self.schedule);
            retry::next_attempt(
                schedule,
                claimed.attempt_number,
                sent.retry_after,
                Utc::now(),
                &mut rand::rng(),
            )
        };
        AttemptOutcome {
            url: sent.url,
            request_headers: sent.request_headers,
            response_status: sent.status.map(|s| s.as_u16()),
            response_headers: sent.response_headers,
            response_body: sent.response_body,
            duration_ms: i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX),
            error_class: sent.error_class,
            error_detail: sent.error_detail,
            trigger: trigger(&claimed),
            payload_mode: sent.payload_mode,
            request_body: sent.request_body,
            next_attempt_at,
            disable_endpoint: gone,
            succeeded,
            filtered,
            handshake_refused,
            claimed,
        }
    }

    /// Hands deliveries held back by an open circuit ([`Engine::send_all`]) back to the
    /// database in batches, due when the circuit's cool-down ends: then the claims take them
    /// under the circuit's rules (one probe at a time while it stays open). Due at once, a claim
    /// could take them before the failures that opened the circuit are recorded, and send them.
    async fn hold_back_loop(self: Arc<Self>, mut held_back: mpsc::UnboundedReceiver<Claimed>) {
        let mut batch = Vec::new();
        while held_back.recv_many(&mut batch, 1000).await > 0 {
            let ids: Vec<String> = batch.iter().map(|c| c.delivery_id.clone()).collect();
            // Retried: a lease this process keeps is renewed, so it would never expire.
            loop {
                let due = Utc::now() + self.config.limits.circuit_cooldown;
                match delivery::release_leases_of(&self.ctx, &self.worker_id, Some(&ids), due).await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not hand back deliveries held back by an open circuit; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            self.done(batch.iter().map(|c| c.endpoint_id.as_str()));
            self.unrecorded.fetch_sub(batch.len(), Ordering::AcqRel);
            batch.clear();
        }
    }

    async fn release(&self, claimed: &[Claimed]) {
        if claimed.is_empty() {
            return;
        }
        let ids: Vec<String> = claimed.iter().map(|c| c.delivery_id.clone()).collect();
        if let Err(err) =
            delivery::release_leases_of(&self.ctx, &self.worker_id, Some(&ids), Utc::now()).await
        {
            hookline_core::metrics::engine_error("release");
            tracing::warn!(error = %err, "could not release leases; they will expire");
        }
        self.done(claimed.iter().map(|c| c.endpoint_id.as_str()));
        self.mark_claimable();
    }

    fn done<'a>(&self, endpoint_ids: impl Iterator<Item = &'a str>) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for id in endpoint_ids {
            if let Some(load) = inflight.get_mut(id) {
                load.held = load.held.saturating_sub(1);
                if load.held == 0 {
                    inflight.remove(id);
                }
            }
        }
    }

    /// Records outcomes in batches: whatever has arrived, up to 1000, in one transaction (on
    /// SQLite the ingest writer's next one, shared with the messages accepted meanwhile; see
    /// `IngestQueue::record`). A batch that fails is recorded in halves ([`Engine::record_batch`]);
    /// if the process dies first, the leases expire and the deliveries are sent again
    /// (at-least-once).
    async fn record_loop(self: Arc<Self>, mut outcomes: mpsc::UnboundedReceiver<AttemptOutcome>) {
        let mut batch = Vec::with_capacity(1000);
        while outcomes.recv_many(&mut batch, 1000).await > 0 {
            let n = batch.len();
            self.record_batch(std::mem::take(&mut batch)).await;
            self.unrecorded.fetch_sub(n, Ordering::AcqRel);
            batch.clear();
            // Slots freed: what a claim had to leave behind may go now.
            if self.claimable.iter().any(|flag| flag.load(Ordering::Acquire)) {
                self.wake_claim.notify_waiters();
            }
        }
    }

    fn after_record(&self, mut recorded: delivery::Recorded) {
        for disabled in &recorded.disabled {
            tracing::warn!(endpoint = %disabled.endpoint_id, reason = %disabled.reason, "endpoint disabled");
            self.targets.lock().unwrap_or_else(|p| p.into_inner()).remove(&disabled.endpoint_id);
        }
        for paused in &recorded.paused {
            tracing::warn!(endpoint = %paused.endpoint_id, reason = %paused.reason, "endpoint paused: it refused the handshake");
        }
        if !recorded.disabled.is_empty() || !recorded.paused.is_empty() || !recorded.events.is_empty() {
            let ctx = self.ctx.clone();
            let disabled = std::mem::take(&mut recorded.disabled);
            let paused = std::mem::take(&mut recorded.paused);
            let events = std::mem::take(&mut recorded.events);
            tokio::spawn(async move { emit_operational(&ctx, disabled, paused, events).await });
        }
        if !recorded.retries.is_empty()
            && let Some(retries) = self.retry_sink.get()
        {
            let _ = retries.send(recorded.retries);
        }
    }

    /// Records one batch of outcomes. A batch that fails is split in halves, each recorded on its
    /// own, so one outcome the database refuses holds no other back; a single outcome is retried
    /// with a growing pause (a database that is down), and after [`RECORD_TRIES`] its delivery
    /// is handed back to be sent again, with the cause in the log. Every failure counts in
    /// `hookline_engine_errors_total{stage="record"}`.
    async fn record_batch(&self, batch: Vec<AttemptOutcome>) {
        let mut queue: Vec<(Vec<AttemptOutcome>, u32)> = vec![(batch, 0)];
        while let Some((batch, failures)) = queue.pop() {
            let n = batch.len();
            let started = Instant::now();
            let Some((mut batch, recorded)) =
                self.ctx.ingest.record(&self.worker_id, batch, &self.config.limits).await
            else {
                // The writer is gone (shutting down): the leases expire and the deliveries are
                // sent again by whoever runs next.
                let left = n + queue.iter().map(|(b, _)| b.len()).sum::<usize>();
                tracing::error!(n = left, "the ingest writer stopped; attempts left unrecorded");
                return;
            };
            tracing::debug!(target: "hookline::batch", kind = "record", n, us = started.elapsed().as_micros() as u64);
            let err = match recorded {
                Ok(recorded) => {
                    delivery::attempts_recorded(&batch);
                    self.after_record(recorded);
                    continue;
                }
                Err(err) => err,
            };
            hookline_core::metrics::engine_error("record");
            if n > 1 {
                tracing::error!(error = %err, n, "recording attempts failed; recording the batch in halves");
                let second = batch.split_off(n / 2);
                queue.push((second, 0));
                queue.push((batch, 0));
                continue;
            }
            let delivery_id = batch[0].claimed.delivery_id.clone();
            if failures + 1 < RECORD_TRIES {
                tracing::error!(error = %err, delivery = %delivery_id, "recording an attempt failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 << failures.min(5))).await;
                queue.push((batch, failures + 1));
                continue;
            }
            tracing::error!(error = %err, delivery = %delivery_id, "recording an attempt keeps failing; handing its delivery back to be sent again");
            // A lease this process keeps is renewed, so it would never expire: retried until
            // the database takes it.
            while let Err(err) = delivery::release_leases_of(
                &self.ctx,
                &self.worker_id,
                Some(std::slice::from_ref(&delivery_id)),
                Utc::now(),
            )
            .await
            {
                hookline_core::metrics::engine_error("release");
                tracing::warn!(error = %err, delivery = %delivery_id, "could not hand the delivery back; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Its endpoint's slot was freed with its answer ([`Engine::done`] in `send_all`).
        }
    }

    /// Every third of a lease: renew ours, take back expired ones.
    async fn lease_loop(self: Arc<Self>) {
        let period = (self.config.limits.lease / 3).to_std().unwrap_or(Duration::from_secs(1));
        while !self.is_stopping() {
            tokio::time::sleep(period).await;
            if let Err(err) = delivery::renew_leases(&self.ctx, &self.worker_id, &self.config.limits).await {
                hookline_core::metrics::engine_error("leases");
                tracing::error!(error = %err, "renewing leases failed");
            }
            match delivery::release_expired_leases(&self.ctx).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(n, "took back deliveries whose lease expired");
                    self.mark_claimable();
                }
                Err(err) => {
                    hookline_core::metrics::engine_error("leases");
                    tracing::error!(error = %err, "sweeping expired leases failed");
                }
            }
        }
    }
}

/// Sends the batch's operational events to the tenants that subscribed to them.
async fn emit_operational(
    ctx: &Context,
    disabled: Vec<delivery::Disabled>,
    paused: Vec<delivery::Disabled>,
    events: Vec<delivery::DeliveryEvent>,
) {
    use hookline_core::ingest::operational;
    use hookline_types::TenantId;
    let now = Utc::now();
    let mut pending = Vec::new();
    for d in disabled {
        let payload = serde_json::json!({
            "type": "endpoint.disabled",
            "data": {"app_id": d.app_id, "endpoint_id": d.endpoint_id, "reason": d.reason, "disabled_at": now},
        });
        pending.push((d.tenant_id, d.app_id, "endpoint.disabled", payload));
    }
    for p in paused {
        let payload = serde_json::json!({
            "type": "endpoint.paused",
            "data": {"app_id": p.app_id, "endpoint_id": p.endpoint_id, "reason": p.reason, "paused_at": now},
        });
        pending.push((p.tenant_id, p.app_id, "endpoint.paused", payload));
    }
    for e in events {
        let payload = serde_json::json!({
            "type": e.event_type,
            "data": {
                "app_id": e.claimed.app_id,
                "endpoint_id": e.claimed.endpoint_id,
                "msg_id": e.claimed.message_id,
                "delivery_id": e.claimed.delivery_id,
                "attempt": e.claimed.attempt_number,
                "response_status_code": e.response_status,
                "at": now,
            },
        });
        pending.push((e.claimed.tenant_id, e.claimed.app_id, e.event_type, payload));
    }
    for (tenant, app, event_type, payload) in pending {
        let Ok(tenant) = TenantId::parse(&tenant) else { continue };
        if let Err(err) = operational::emit(ctx, &tenant, &app, event_type, payload).await {
            tracing::warn!(error = %err, event_type, "could not emit an operational webhook");
        }
    }
}

/// How the attempt log names what caused an attempt.
fn trigger(claimed: &Claimed) -> &'static str {
    if claimed.one_shot { "manual" } else { "scheduled" }
}

/// Runs a send; a panic in it (a bug, or an answer nobody thought of) becomes a failed attempt,
/// retried on the schedule like any other failure. Unwound out of the task instead, it left the
/// delivery `sending` until a restart (its lease renewed all the while), its outcome never
/// recorded, and its slots and counts held. The sender's shared state survives an unwind: the
/// token cache's locks tolerate poisoning and the single-flight guard is released by its drop.
async fn unless_panicked(endpoint_id: &str, url: &str, send: impl Future<Output = Sent>) -> Sent {
    let started = Instant::now();
    match AssertUnwindSafe(send).catch_unwind().await {
        Ok(sent) => sent,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            tracing::error!(endpoint = %endpoint_id, panic = %message, "a delivery's send panicked; recorded as a failed attempt");
            Sent::unsent(url, "internal", format!("the delivery task panicked: {message}"), started.elapsed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom() -> Sent {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_send_that_panics_is_a_failed_attempt() {
        let sent = unless_panicked("ep_1", "https://a.example/hook", async { boom() }).await;
        assert!(!sent.succeeded());
        assert_eq!(sent.url, "https://a.example/hook");
        assert_eq!(sent.status, None);
        assert_eq!(sent.error_class, Some("internal"));
        assert_eq!(sent.error_detail.as_deref(), Some("the delivery task panicked: boom"));
    }

    #[tokio::test]
    async fn a_send_that_returns_is_passed_through() {
        let sent = unless_panicked("ep_1", "https://a.example/hook", async {
            Sent {
                url: "https://a.example/hook".to_owned(),
                request_headers: Headers::default(),
                status: Some(reqwest::StatusCode::OK),
                response_headers: None,
                response_body: Some("ok".to_owned()),
                duration: Duration::from_millis(3),
                error_class: None,
                error_detail: None,
                retry_after: None,
                bearer: None,
                payload_mode: None,
                request_body: None,
            }
        })
        .await;
        assert!(sent.succeeded());
        assert_eq!(sent.response_body.as_deref(), Some("ok"));
    }
}
