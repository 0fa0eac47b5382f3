//! The delivery engine's database side: turning queued messages into deliveries (fan-out),
//! claiming due deliveries with a lease, and recording attempts and outcomes. The worker crate
//! does the HTTP; every state change happens here, in short transactions that touch many rows at
//! once (batches), because per-row round trips would cap throughput far below the network's.
//!
//! Delivery states: `pending` (due at `next_attempt_at`), `sending` (leased to one worker until
//! `lease_until`), `failed` (an attempt failed; due again at `next_attempt_at`), and the terminal
//! `succeeded` and `dead`. Only a lease holder records an outcome; an expired lease returns the
//! delivery to `failed` so another worker can take it (at-least-once).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use hookline_types::{AttemptId, DeliveryId, EndpointAuthIn, EndpointFormat, EndpointOrdering};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, OnConflict, Query},
};
use serde_json::Value;

use crate::{
    Context, Db,
    billing::usage,
    catalog::endpoints as endpoint_service,
    domain::{EventTypeFilter, RetrySchedule, SigningSecret},
    error::{CoreError, CoreResult},
    ids::NewId,
    routing::{Document, Filter},
    store::bulk::{self, BatchSql, Insert, Other, Rows, ts},
    store::entities::{
        app_rate_buckets, deliveries, endpoint_health, endpoints, fanout_queue, message_payloads, messages,
    },
    store::from_json,
    tenancy::plans,
};

pub const PENDING: &str = "pending";
pub const SENDING: &str = "sending";
pub const FAILED: &str = "failed";
pub const SUCCEEDED: &str = "succeeded";
pub const DEAD: &str = "dead";
/// Finished without a request: the endpoint's transform returned `null`.
pub const FILTERED: &str = "filtered";

/// Deliveries waiting for an attempt, spelled exactly as `idx_deliveries_due`'s condition: a
/// query reaches that partial index only with this literal condition (neither SQLite nor
/// PostgreSQL can prove it from bound values).
pub const WAITING: &str = "status IN ('pending', 'failed')";
/// Deliveries in flight, spelled exactly as `idx_deliveries_lease`'s condition.
pub const LEASED: &str = "status = 'sending'";

/// A delivery this worker holds a lease on and must send.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub delivery_id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub message_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt_number: i32,
    pub message_created_at: DateTime<Utc>,
    /// A manual attempt (resend, recover, replay-missing): logged as `manual`, and no automatic
    /// retry follows a failure (the delivery is `dead` until resent again).
    pub one_shot: bool,
}

/// Everything needed to send to an endpoint, decrypted.
#[derive(Clone, Debug)]
pub struct EndpointTarget {
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub url: String,
    pub disabled: bool,
    pub secrets: Vec<SigningSecret>,
    pub headers: Vec<(String, String)>,
    pub auth: Option<EndpointAuthIn>,
    pub format: EndpointFormat,
    pub ordering: EndpointOrdering,
    pub timeout_ms: Option<u32>,
    pub retry_schedule: Option<RetrySchedule>,
    pub rate_limit: Option<u32>,
    pub payload_mode: hookline_types::PayloadMode,
    pub thin_above_bytes: Option<u32>,
    pub data_url_ttl_seconds: Option<u32>,
    /// A jq program run on each delivery's message before it is sent ([`crate::transform`]).
    pub transform: Option<String>,
    /// Whether the endpoint is asked with the CloudEvents handshake first ([`crate::handshake`]).
    pub handshake: bool,
}

/// HTTP headers as the attempt log stores them: a JSON object of name → value, in the order
/// sent or received (a repeated name keeps its last value, as a JSON object would).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl serde::Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            // A name sent twice appears once, with its last value: JSON objects have unique keys.
            if self.0[i + 1..].iter().any(|(later, _)| later == name) {
                continue;
            }
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// How one attempt ended.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub claimed: Claimed,
    pub url: String,
    pub request_headers: Headers,
    pub response_status: Option<u16>,
    pub response_headers: Option<Headers>,
    pub response_body: Option<String>,
    pub duration_ms: i32,
    /// `None` on success; else dns, connect, tls, timeout, status, ssrf, config.
    pub error_class: Option<&'static str>,
    pub error_detail: Option<String>,
    /// `manual` for a resend, `scheduled` otherwise.
    pub trigger: &'static str,
    /// `None` when the full payload was sent; `thin` or `thin_after_413` otherwise.
    pub payload_mode: Option<&'static str>,
    /// The body sent when it is not the message's payload: a thin body, or a transform's output.
    pub request_body: Option<String>,
    /// What the dispatcher decided: the next attempt's time, or none (succeeded or dead).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The endpoint answered 410 Gone: disable it.
    pub disable_endpoint: bool,
    pub succeeded: bool,
    /// The endpoint's transform returned `null`: nothing was sent and the delivery ends
    /// [`FILTERED`] (not retried, not counted against the endpoint's health).
    pub filtered: bool,
    /// The endpoint refused the CloudEvents handshake (why: `error_detail`): nothing was sent,
    /// and the endpoint is paused — its circuit opens at once ([`crate::handshake`]).
    pub handshake_refused: bool,
}

/// Tunables of the engine's database work.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// How long a lease lasts; the holder renews it every third of that while it works.
    pub lease: Duration,
    /// Consecutive failures that open the circuit.
    pub circuit_threshold: i32,
    /// How long an open circuit stays open before a probe.
    pub circuit_cooldown: Duration,
    /// Failing for this long (every attempt) disables the endpoint.
    pub disable_after: Duration,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            lease: Duration::seconds(30),
            circuit_threshold: 10,
            circuit_cooldown: Duration::seconds(30),
            disable_after: Duration::days(5),
        }
    }
}

fn lease_until(now: DateTime<Utc>, limits: &EngineLimits) -> DateTime<Utc> {
    now + limits.lease
}

/// What fan-out needs of an endpoint: read with only the columns it uses (a full row holds its
/// sealed secrets, headers and metadata), its filters parsed once rather than for every message.
/// An application with 10,000 endpoints held ≈ 10,000 full rows in the ingest writer's cache
/// and again in every fan-out batch (bench (f)).
#[derive(Clone, Debug)]
pub(crate) struct FanOutEndpoint {
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    /// The event-type filter (`None`: every type), or why the stored one is unreadable.
    filter_types: Result<Option<Vec<EventTypeFilter>>, String>,
    channels: Result<Option<Vec<String>>, String>,
    /// The content filter (`routing::filter`), compiled once.
    content: Result<Option<std::sync::Arc<Filter>>, String>,
    fifo: bool,
    rate_limit: Option<i32>,
    /// Its application has a `rate_limit`: its deliveries wait for the claim loop, which keeps it.
    app_rate_limited: bool,
    /// It makes the CloudEvents handshake (`handshake`): its deliveries wait for the claim loop,
    /// which sends one at a time until the endpoint accepted and keeps the rate it allowed.
    handshake: bool,
}

#[derive(sea_orm::FromQueryResult)]
struct FanOutEndpointRow {
    id: String,
    tenant_id: String,
    app_id: String,
    filter_types: Option<Value>,
    channels: Option<Value>,
    filter: Option<Value>,
    ordering: String,
    rate_limit: Option<i32>,
    app_rate_limited: bool,
    format: String,
    handshake: Option<bool>,
}

impl FanOutEndpoint {
    /// The enabled endpoints of `app_ids`.
    pub(crate) async fn enabled_of<C: ConnectionTrait>(
        conn: &C,
        app_ids: impl IntoIterator<Item = String>,
    ) -> Result<Vec<FanOutEndpoint>, sea_orm::DbErr> {
        use endpoints::Column as E;
        let rows = endpoints::Entity::find()
            .select_only()
            .columns([
                E::Id,
                E::TenantId,
                E::AppId,
                E::FilterTypes,
                E::Channels,
                E::Filter,
                E::Ordering,
                E::RateLimit,
                E::Format,
                E::Handshake,
            ])
            .column_as(
                Expr::cust(
                    "EXISTS (SELECT 1 FROM applications a WHERE a.id = endpoints.app_id AND a.rate_limit IS NOT NULL)",
                ),
                "app_rate_limited",
            )
            .filter(E::AppId.is_in(app_ids))
            .filter(E::Disabled.eq(false))
            .into_model::<FanOutEndpointRow>()
            .all(conn)
            .await?;
        Ok(rows.into_iter().map(FanOutEndpoint::from_row).collect())
    }

    /// The same for a full endpoint row, to match messages with [`FanOutEndpoint::wants`]
    /// (broadcasts, recover); it does not know its application's rate limit, so it never goes to
    /// [`FanOutPlan::add`].
    pub(crate) fn from_model(endpoint: &endpoints::Model) -> FanOutEndpoint {
        FanOutEndpoint::from_row(FanOutEndpointRow {
            id: endpoint.id.clone(),
            tenant_id: endpoint.tenant_id.clone(),
            app_id: endpoint.app_id.clone(),
            filter_types: endpoint.filter_types.clone(),
            channels: endpoint.channels.clone(),
            filter: endpoint.filter.clone(),
            ordering: endpoint.ordering.clone(),
            rate_limit: endpoint.rate_limit,
            app_rate_limited: false,
            format: endpoint.format.clone(),
            handshake: endpoint.handshake,
        })
    }

    fn from_row(row: FanOutEndpointRow) -> FanOutEndpoint {
        fn parse<T: serde::de::DeserializeOwned>(
            value: Option<Value>,
            what: &str,
        ) -> Result<Option<T>, String> {
            value
                .map(|v| {
                    serde_json::from_value(v).map_err(|err| format!("stored {what} is unreadable: {err}"))
                })
                .transpose()
        }
        let filter_types = parse::<Vec<String>>(row.filter_types, "filter_types")
            .map(|f| f.map(|f| f.iter().filter_map(|f| EventTypeFilter::parse(f).ok()).collect()));
        FanOutEndpoint {
            id: row.id,
            tenant_id: row.tenant_id,
            app_id: row.app_id,
            filter_types,
            channels: parse(row.channels, "channels"),
            content: row
                .filter
                .map(|pattern| {
                    Filter::compile(&pattern)
                        .map(std::sync::Arc::new)
                        .map_err(|err| format!("stored filter does not compile: {err}"))
                })
                .transpose(),
            fifo: row.ordering == "fifo",
            rate_limit: row.rate_limit,
            app_rate_limited: row.app_rate_limited,
            handshake: crate::handshake::enabled_stored(row.handshake, &row.format),
        }
    }

    /// Whether this endpoint has a content filter (its messages' payloads are then needed).
    pub(crate) fn has_content_filter(&self) -> bool {
        !matches!(self.content, Ok(None))
    }

    /// Whether a message goes to this endpoint: [`FanOutEndpoint::subscribes`] to its type and
    /// channels, and its content filter (if any) matches the message's payload and headers.
    pub(crate) fn wants(
        &self,
        event_type: &str,
        channels: &[String],
        content: &MatchContent<'_>,
    ) -> CoreResult<bool> {
        if !self.subscribes(event_type, channels)? {
            return Ok(false);
        }
        match &self.content {
            Ok(None) => Ok(true),
            Ok(Some(filter)) => Ok(filter.matches(&Document {
                event_type,
                channels,
                payload: content.payload(),
                headers: content.headers,
            })),
            Err(err) => Err(CoreError::Internal(anyhow::anyhow!("{err}"))),
        }
    }

    /// Whether a message of `event_type` on `channels` may go to this endpoint, before its
    /// content filter: its event-type filter (exact names and `prefix.*` wildcards; entries that
    /// do not parse match nothing) and its channels (any one shared).
    pub(crate) fn subscribes(&self, event_type: &str, channels: &[String]) -> CoreResult<bool> {
        let unreadable = |err: &String| CoreError::Internal(anyhow::anyhow!("{err}"));
        if let Some(filters) = self.filter_types.as_ref().map_err(unreadable)?
            && !filters.iter().any(|f| f.matches(event_type))
        {
            return Ok(false);
        }
        if let Some(wanted) = self.channels.as_ref().map_err(unreadable)?
            && !channels.iter().any(|c| wanted.contains(c))
        {
            return Ok(false);
        }
        Ok(true)
    }
}

/// The capacity each endpoint has for new leases right now, given what this worker holds.
pub trait Capacity {
    /// How many more deliveries of this endpoint (of this tenant) may be leased now.
    fn available(&self, endpoint_id: &str, tenant_id: &str) -> usize;

    /// How many more deliveries this worker may lease now, whatever their endpoints: what a
    /// worker holds (and so leases, loads and renews at once) is bounded by its configuration,
    /// not by how many deliveries a burst creates.
    fn room(&self) -> usize {
        usize::MAX
    }

    /// Whether new deliveries of this endpoint must not be leased as they are created (at
    /// acceptance or fan-out) but left to the claims, which honour its circuit in the database:
    /// the engine saw it fail `circuit_threshold` times in a row.
    fn paused(&self, _endpoint_id: &str) -> bool {
        false
    }
}

/// Which tenants' deliveries a claim takes: the engine runs one lane for tenants with a dedicated
/// queue (`only` them) and one for everyone else (`except` them), each with its own slots, so a
/// backlog in one lane never delays the other.
#[derive(Clone, Debug, Default)]
pub struct TenantFilter {
    pub only: Option<Vec<String>>,
    pub except: Vec<String>,
}

/// The `deliveries` columns a fan-out writes (see [`FanOutPlan::rows`]).
pub(crate) const DELIVERIES: Insert = Insert {
    table: "deliveries",
    columns: &[
        "id",
        "tenant_id",
        "app_id",
        "message_id",
        "endpoint_id",
        "status",
        "attempt_count",
        "next_attempt_at",
        "created_at",
        "updated_at",
        "lease_owner",
        "lease_until",
        "one_shot",
    ],
    tail: "ON CONFLICT (message_id, endpoint_id) DO NOTHING",
};

static DELIVERIES_SQL: BatchSql = BatchSql::new(&[DELIVERIES]);

/// A message's payload and forwarded headers as content filters see them: the payload is parsed
/// on the first filter that asks, once for all the endpoints of its fan-out.
pub(crate) struct MatchContent<'a> {
    text: Option<&'a str>,
    headers: &'a [(String, String)],
    parsed: std::sync::OnceLock<Option<Value>>,
}

impl<'a> MatchContent<'a> {
    pub(crate) fn new(text: Option<&'a str>, headers: &'a [(String, String)]) -> MatchContent<'a> {
        MatchContent { text, headers, parsed: std::sync::OnceLock::new() }
    }

    /// No payload to match (its application has no content filter, or it expired): a filter
    /// over `payload` then matches only what absence matches.
    pub(crate) fn none() -> MatchContent<'static> {
        MatchContent::new(None, &[])
    }

    fn payload(&self) -> Option<&Value> {
        self.parsed.get_or_init(|| self.text.and_then(|text| serde_json::from_str(text).ok())).as_ref()
    }
}

/// What fan-out needs to know of a message.
pub(crate) struct FanOutMessage<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub app_id: &'a str,
    pub event_type: &'a str,
    pub channels: &'a [String],
    pub content: &'a MatchContent<'a>,
    /// A test event names its one endpoint, whatever its filters.
    pub only_endpoint: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

/// The deliveries fan-out creates, for the worker's fan-out loop and the ingest writer's fan-out
/// at acceptance alike: one per wanted enabled endpoint, leased to `worker` at once when the
/// endpoint has room and is neither FIFO nor rate-limited (the claim loop enforces those); the
/// others are `pending`, due now.
pub(crate) struct FanOutPlan<'a> {
    worker: &'a str,
    capacity: &'a (dyn Capacity + Sync),
    leased_per_endpoint: HashMap<String, usize>,
    /// [`Capacity::room`] when the plan began: it leases no more than that in all.
    room: usize,
    /// The plan's time and its leases' end, as stored.
    now: String,
    lease_until: String,
    /// Rows for [`DELIVERIES`].
    pub rows: Rows,
    pub leased: Vec<Claimed>,
}

/// A row of [`DELIVERIES`].
#[derive(serde::Serialize)]
struct DeliveryRow<'a> {
    id: &'a str,
    tenant_id: &'a str,
    app_id: &'a str,
    message_id: &'a str,
    endpoint_id: &'a str,
    status: &'static str,
    attempt_count: i32,
    next_attempt_at: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
    lease_owner: Option<&'a str>,
    lease_until: Option<&'a str>,
    one_shot: bool,
}

impl<'a> FanOutPlan<'a> {
    pub(crate) fn new(worker: &'a str, capacity: &'a (dyn Capacity + Sync), lease: Duration) -> Self {
        let now = Utc::now();
        FanOutPlan {
            worker,
            capacity,
            leased_per_endpoint: HashMap::new(),
            room: capacity.room(),
            now: ts(now),
            lease_until: ts(now + lease),
            rows: Rows::default(),
            leased: Vec::new(),
        }
    }

    /// Adds the message's deliveries among `endpoints` (its application's enabled endpoints);
    /// returns how many of them are leased now. Nothing is added when a filter is unreadable.
    pub(crate) fn add(
        &mut self,
        message: &FanOutMessage<'_>,
        endpoints: &[&FanOutEndpoint],
        plan_rate: Option<u32>,
    ) -> CoreResult<usize> {
        let mut wanted = Vec::new();
        for endpoint in endpoints {
            let wants = match message.only_endpoint {
                Some(only) => only == endpoint.id,
                None => endpoint.wants(message.event_type, message.channels, message.content)?,
            };
            if wants {
                wanted.push(*endpoint);
            }
        }
        let mut leased_now = 0;
        for endpoint in wanted {
            let id = DeliveryId::new_id().into_string();
            let special = endpoint.fifo
                || endpoint.app_rate_limited
                || endpoint.handshake
                || plans::effective_rate(endpoint.rate_limit, plan_rate).is_some();
            let here = self.leased_per_endpoint.entry(endpoint.id.clone()).or_default();
            let lease_now = !special
                && self.leased.len() < self.room
                && !self.capacity.paused(&endpoint.id)
                && *here < self.capacity.available(&endpoint.id, &endpoint.tenant_id);
            if lease_now {
                *here += 1;
                leased_now += 1;
                self.leased.push(Claimed {
                    delivery_id: id.clone(),
                    tenant_id: message.tenant_id.to_owned(),
                    app_id: message.app_id.to_owned(),
                    message_id: message.id.to_owned(),
                    endpoint_id: endpoint.id.clone(),
                    event_type: message.event_type.to_owned(),
                    attempt_number: 1,
                    message_created_at: message.created_at,
                    one_shot: false,
                });
            }
            self.rows.push(&DeliveryRow {
                id: &id,
                tenant_id: message.tenant_id,
                app_id: message.app_id,
                message_id: message.id,
                endpoint_id: &endpoint.id,
                status: if lease_now { SENDING } else { PENDING },
                attempt_count: 0,
                next_attempt_at: &self.now,
                created_at: &self.now,
                updated_at: &self.now,
                lease_owner: lease_now.then_some(self.worker),
                lease_until: lease_now.then_some(self.lease_until.as_str()),
                one_shot: false,
            });
        }
        Ok(leased_now)
    }
}

/// What one fan-out transaction did.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Messages taken off the queue.
    pub messages: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// The deliveries leased to this worker, to send now; the others wait for the claim loop.
    pub leased: Vec<Claimed>,
}

/// Deliveries written by one statement of a fan-out: the rows of a batch are sent as they reach
/// this many, so a burst to 10,000 endpoints never holds all its rows (≈ 350 bytes each, and
/// the database's copy of them) in memory at once — 10 messages × 10,000 endpoints raised the
/// process's peak RSS by ≈ 140 MiB in one statement (bench (f)).
const FANOUT_ROWS_PER_STATEMENT: usize = 5_000;

/// Fan-out: takes up to `limit` messages off the queue, creates one delivery per matching enabled
/// endpoint, and leases to `worker` right away those whose endpoint has room (the rest are
/// `pending`, due now, for the claim loop). One transaction: a crash leaves the queue untouched.
pub async fn fan_out(
    ctx: &Context,
    worker: &str,
    limit: u64,
    capacity: &(dyn Capacity + Sync),
    limits: &EngineLimits,
) -> CoreResult<FanOut> {
    // A poll that finds the queue empty (most of them, the fan-out loop polls every 250 ms) looks
    // on a reader instead of taking the writer: `BEGIN IMMEDIATE`, a `DELETE` of nothing and a
    // commit, four times a second, were a large part of an idle server's work. A message queued
    // after the look is taken by the next poll, or at once when this process queued it (it wakes
    // the loop).
    if fanout_queue::Entity::find().one(&ctx.db.conn).await?.is_none() {
        return Ok(FanOut::default());
    }
    let started = std::time::Instant::now();
    let txn = ctx.db.begin_write().await?;
    let begun = started.elapsed();
    // Deleting first takes the rows (and, on SQLite, the write lock) before anything is read, so
    // two workers never fan out the same message.
    let oldest = Query::select()
        .column(fanout_queue::Column::MessageId)
        .from(fanout_queue::Entity)
        .order_by(fanout_queue::Column::MessageId, sea_orm::Order::Asc)
        .limit(limit)
        .to_owned();
    let delete = Query::delete()
        .from_table(fanout_queue::Entity)
        .and_where(sea_orm::sea_query::ExprTrait::in_subquery(
            Expr::col(fanout_queue::Column::MessageId),
            oldest,
        ))
        .returning(
            Query::returning().columns([fanout_queue::Column::MessageId, fanout_queue::Column::EndpointId]),
        )
        .to_owned();
    let mut only_endpoint: HashMap<String, String> = HashMap::new();
    let mut taken: Vec<String> = Vec::new();
    for row in txn.query_all(&delete).await? {
        let message_id: String = row.try_get("", "message_id")?;
        if let Some(endpoint_id) = row.try_get::<Option<String>>("", "endpoint_id")? {
            only_endpoint.insert(message_id.clone(), endpoint_id);
        }
        taken.push(message_id);
    }
    if taken.is_empty() {
        txn.commit().await?;
        return Ok(FanOut::default());
    }
    let messages =
        messages::Entity::find().filter(messages::Column::Id.is_in(taken.clone())).all(&txn).await?;
    let app_ids: HashSet<String> = messages.iter().map(|m| m.app_id.clone()).collect();
    let endpoints = FanOutEndpoint::enabled_of(&txn, app_ids).await?;
    let plan_rates =
        plans::endpoint_rates(ctx, endpoints.iter().map(|e| e.tenant_id.clone()).collect()).await?;
    let mut by_app: HashMap<&str, Vec<&FanOutEndpoint>> = HashMap::new();
    for endpoint in &endpoints {
        by_app.entry(endpoint.app_id.as_str()).or_default().push(endpoint);
    }

    // Payloads (and forwarded headers) are read only for applications with a content filter.
    let filtered_apps: HashSet<&str> =
        endpoints.iter().filter(|e| e.has_content_filter()).map(|e| e.app_id.as_str()).collect();
    let contents = match_contents(
        ctx,
        &txn,
        messages.iter().filter(|m| filtered_apps.contains(m.app_id.as_str())).map(|m| m.id.clone()).collect(),
    )
    .await?;

    let mut plan = FanOutPlan::new(worker, capacity, limits.lease);
    let mut rows_created = 0;
    for message in &messages {
        let channels: Vec<String> = from_json(message.channels.clone(), "channels")?;
        let content = match contents.get(&message.id) {
            Some((text, headers)) => MatchContent::new(Some(text), headers),
            None => MatchContent::none(),
        };
        let fan_out = FanOutMessage {
            id: &message.id,
            tenant_id: &message.tenant_id,
            app_id: &message.app_id,
            event_type: &message.event_type,
            channels: &channels,
            content: &content,
            only_endpoint: only_endpoint.get(&message.id).map(String::as_str),
            created_at: message.created_at,
        };
        let app_endpoints = by_app.get(message.app_id.as_str()).map(Vec::as_slice).unwrap_or_default();
        let plan_rate = app_endpoints.first().and_then(|e| plan_rates.get(&e.tenant_id).copied().flatten());
        plan.add(&fan_out, app_endpoints, plan_rate)?;
        if plan.rows.len() >= FANOUT_ROWS_PER_STATEMENT {
            rows_created += plan.rows.len();
            let rows = std::mem::take(&mut plan.rows);
            bulk::run(&txn, DELIVERIES_SQL.get(txn.get_database_backend()), &[&rows]).await?;
        }
    }
    rows_created += plan.rows.len();
    if plan.rows.len() > 0 {
        bulk::run(&txn, DELIVERIES_SQL.get(txn.get_database_backend()), &[&plan.rows]).await?;
    }
    let wrote = started.elapsed();
    txn.commit().await?;
    crate::store::db::log_txn("fanout", started, begun, wrote);
    Ok(FanOut { messages: taken.len(), deliveries: rows_created, leased: plan.leased })
}

/// The whole payload text and forwarded headers of these messages, for content filters (a
/// claim-checked payload is read from the object store). Read inside the fan-out's transaction,
/// so a large payload matched by a filter holds it for the read.
pub(crate) async fn match_contents<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    message_ids: Vec<String>,
) -> CoreResult<HashMap<String, (String, Vec<(String, String)>)>> {
    let mut contents = HashMap::with_capacity(message_ids.len());
    for chunk in id_chunks(&message_ids) {
        let rows = message_payloads::Entity::find()
            .filter(message_payloads::Column::MessageId.is_in(chunk))
            .all(conn)
            .await?;
        for row in rows {
            let text = crate::objects::payload_text(&ctx.objects, &row).await?;
            contents.insert(row.message_id, (text, Payload::stored_headers(row.headers.as_deref())));
        }
    }
    Ok(contents)
}

/// Claims due deliveries (`pending` or `failed` with `next_attempt_at <= now`) up to `limit`,
/// honouring each endpoint's capacity, FIFO order, open circuits and rate limit. Returns what this
/// worker now holds.
/// What a claim may take.
pub struct ClaimScope<'a> {
    /// At most this many deliveries.
    pub limit: u64,
    pub capacity: &'a (dyn Capacity + Sync),
    /// Endpoints already at their cap in this worker.
    pub saturated: &'a [String],
    /// Only these deliveries (a retry wake-up), or any due one.
    pub only: Option<&'a [String]>,
    pub tenants: &'a TenantFilter,
}

/// What a claim took, and whether it saw due deliveries it had to leave (a full endpoint, an
/// open circuit, a FIFO successor, an empty token bucket, or more due than `limit`): those become
/// claimable when an attempt finishes or time passes, the others need a new message to appear.
#[derive(Debug, Default)]
pub struct Claims {
    pub claimed: Vec<Claimed>,
    pub left_behind: bool,
}

pub async fn claim_due(
    ctx: &Context,
    worker: &str,
    scope: ClaimScope<'_>,
    limits: &EngineLimits,
) -> CoreResult<Claims> {
    let ClaimScope { limit, capacity, saturated, only, tenants } = scope;
    let now = Utc::now();
    let candidates = due_candidates(ctx, now, limit, saturated, only, tenants).await?;
    if candidates.is_empty() {
        return Ok(Claims::default());
    }
    let mut left_behind = candidates.len() as u64 >= limit;
    let plan_rates = plans::endpoint_rates(
        ctx,
        candidates.iter().filter(|c| c.endpoint.is_some()).map(|c| c.tenant_id.clone()).collect(),
    )
    .await?;
    let started = std::time::Instant::now();
    let txn = ctx.db.begin_write().await?;
    let begun = started.elapsed();
    let mut chosen: Vec<&Candidate> = Vec::new();
    let mut taken: HashMap<&str, usize> = HashMap::new();
    // Every bucket this claim may draw from, taken (and on PostgreSQL its row locked) up front
    // in one order — endpoints by id, then applications by id — so two claims never lock the
    // same rows in opposite orders and deadlock.
    let plan_rate_of = |candidate: &Candidate| plan_rates.get(&candidate.tenant_id).copied().flatten();
    let mut endpoint_rates: BTreeMap<&str, (&str, f64)> = BTreeMap::new();
    let mut app_rates: BTreeMap<&str, (&str, u32)> = BTreeMap::new();
    for candidate in &candidates {
        let Some(endpoint) = candidate.endpoint.as_ref().filter(|e| !e.disabled) else { continue };
        let own = plans::effective_rate(endpoint.rate_limit, plan_rate_of(candidate));
        let allowed = endpoint.handshake.then_some(endpoint.handshake_rate).flatten();
        if let Some(rate) = crate::handshake::effective_rate(own, allowed) {
            endpoint_rates.insert(candidate.endpoint_id.as_str(), (candidate.tenant_id.as_str(), rate));
        }
        if let Some(rate) = candidate.app_rate_limit.filter(|n| *n > 0) {
            app_rates.insert(candidate.app_id.as_str(), (candidate.tenant_id.as_str(), rate as u32));
        }
    }
    let mut buckets: HashMap<String, (f64, f64)> = HashMap::new();
    for (endpoint_id, (tenant_id, rate)) in endpoint_rates {
        let tokens = take_tokens(&txn, endpoint_id, tenant_id, rate, now).await?;
        buckets.insert(endpoint_id.to_owned(), (tokens, rate));
    }
    let mut app_buckets: HashMap<String, f64> = HashMap::new();
    for (app_id, (tenant_id, rate)) in app_rates {
        let tokens = take_app_tokens(&txn, app_id, tenant_id, rate, now).await?;
        app_buckets.insert(app_id.to_owned(), tokens);
    }
    for candidate in &candidates {
        let endpoint_id = candidate.endpoint_id.as_str();
        let Some(endpoint) = &candidate.endpoint else {
            continue; // Deleted endpoint: its deliveries go with it.
        };
        if endpoint.disabled || candidate.message.is_none() {
            continue;
        }
        let mut room = capacity.available(endpoint_id, &candidate.tenant_id);
        if endpoint.consecutive_failures >= limits.circuit_threshold {
            // Open circuit: nothing until the cool-down ends, then one probe at a time.
            room = if endpoint.circuit_open_until.is_some_and(|until| until > now) { 0 } else { room.min(1) };
        }
        let fifo = endpoint.ordering == "fifo";
        if fifo {
            room = room.min(1);
        }
        // Not asked yet (or a day ago): one delivery at a time, whose attempt makes the
        // handshake; the rest wait for the rate it allows.
        let unasked = endpoint.handshake && !crate::handshake::still_valid(endpoint.handshake_at, now);
        if unasked {
            room = room.min(1);
        }
        let used = taken.entry(endpoint_id).or_default();
        if *used >= room {
            left_behind = true;
            continue;
        }
        if fifo && !is_fifo_head(&txn, &candidate.id, endpoint_id).await? {
            left_behind = true;
            continue;
        }
        if unasked && !fifo && any_leased(&txn, endpoint_id).await? {
            left_behind = true;
            continue;
        }
        // The endpoint's bucket and the application's (taken above) must both hold a token.
        let endpoint_tokens = buckets.get(endpoint_id).copied();
        let app_tokens = app_buckets.get(candidate.app_id.as_str()).copied();
        if endpoint_tokens.is_some_and(|(tokens, _)| tokens < 1.0) || app_tokens.is_some_and(|t| t < 1.0) {
            left_behind = true;
            continue;
        }
        if let Some((tokens, rate)) = endpoint_tokens {
            buckets.insert(endpoint_id.to_owned(), (tokens - 1.0, rate));
        }
        if let Some(tokens) = app_tokens {
            app_buckets.insert(candidate.app_id.clone(), tokens - 1.0);
        }
        *used += 1;
        chosen.push(candidate);
    }
    // Give back the tokens of the bucket that were not used.
    for (endpoint_id, (tokens, _)) in &buckets {
        endpoint_health::Entity::update_many()
            .col_expr(endpoint_health::Column::Tokens, Expr::value(*tokens))
            .filter(endpoint_health::Column::EndpointId.eq(endpoint_id.as_str()))
            .exec(&txn)
            .await?;
    }
    for (app_id, tokens) in &app_buckets {
        app_rate_buckets::Entity::update_many()
            .col_expr(app_rate_buckets::Column::Tokens, Expr::value(*tokens))
            .col_expr(app_rate_buckets::Column::TokensAt, Expr::value(now))
            .filter(app_rate_buckets::Column::AppId.eq(app_id.as_str()))
            .exec(&txn)
            .await?;
    }
    if chosen.is_empty() {
        let wrote = started.elapsed();
        txn.commit().await?;
        crate::store::db::log_txn("claim", started, begun, wrote);
        return Ok(Claims { claimed: Vec::new(), left_behind });
    }
    let lease = lease_until(now, limits);
    let ids: Vec<String> = chosen.iter().map(|d| d.id.clone()).collect();
    // The ids this claim won, returned by the update itself: another claim of this same worker
    // (a retry wake-up beside the claim loop) may have leased some of them since they were read,
    // and only the update knows which rows it changed.
    let update = Query::update()
        .table(deliveries::Entity)
        .value(deliveries::Column::Status, SENDING)
        .value(deliveries::Column::LeaseOwner, worker)
        .value(deliveries::Column::LeaseUntil, lease)
        .value(deliveries::Column::UpdatedAt, now)
        .and_where(deliveries::Column::Id.is_in(ids))
        .and_where(deliveries::Column::Status.is_in([PENDING, FAILED]))
        .returning_col(deliveries::Column::Id)
        .to_owned();
    let won: HashSet<String> = txn
        .query_all(&update)
        .await?
        .into_iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;
    let wrote = started.elapsed();
    txn.commit().await?;
    crate::store::db::log_txn("claim", started, begun, wrote);

    let claimed = chosen
        .into_iter()
        .filter(|d| won.contains(&d.id))
        .filter_map(|d| {
            let (event_type, message_created_at) = d.message.clone()?;
            Some(Claimed {
                delivery_id: d.id.clone(),
                tenant_id: d.tenant_id.clone(),
                app_id: d.app_id.clone(),
                message_id: d.message_id.clone(),
                endpoint_id: d.endpoint_id.clone(),
                event_type,
                attempt_number: d.attempt_count + 1,
                message_created_at,
                one_shot: d.one_shot,
            })
        })
        .collect();
    Ok(Claims { claimed, left_behind })
}

/// A due delivery a claim looks at, with what the claim needs of its message and endpoint.
#[derive(Debug)]
struct Candidate {
    id: String,
    tenant_id: String,
    app_id: String,
    message_id: String,
    endpoint_id: String,
    attempt_count: i32,
    one_shot: bool,
    /// The message's event type and time (`None`: the message is gone).
    message: Option<(String, DateTime<Utc>)>,
    /// `None`: the endpoint is gone.
    endpoint: Option<CandidateEndpoint>,
    /// The application's `rate_limit` (deliveries per second across its endpoints).
    app_rate_limit: Option<i32>,
}

#[derive(Debug)]
struct CandidateEndpoint {
    disabled: bool,
    ordering: String,
    rate_limit: Option<i32>,
    consecutive_failures: i32,
    circuit_open_until: Option<DateTime<Utc>>,
    /// It makes the CloudEvents handshake; when it last accepted, and the rate it allowed
    /// (requests per minute).
    handshake: bool,
    handshake_at: Option<DateTime<Utc>>,
    handshake_rate: Option<i32>,
}

/// The due deliveries a claim looks at (`pending` or `failed`, due by `now`, oldest first, at
/// most `limit`), each with its message's event type and time, its endpoint's settings and
/// health. One statement that returns one row — the candidates as a JSON array: read as rows,
/// each of the ~250 deliveries of a claim and of its endpoint and health rows was a hand-over
/// between SQLite's thread and the engine, most of a claim's time when 100,000 deliveries of
/// one burst went through the claims (the fan-out issue, bench (e)).
async fn due_candidates(
    ctx: &Context,
    now: DateTime<Utc>,
    limit: u64,
    saturated: &[String],
    only: Option<&[String]>,
    tenants: &TenantFilter,
) -> CoreResult<Vec<Candidate>> {
    use deliveries::Column as D;
    let mut select = deliveries::Entity::find()
        .select_only()
        .columns([
            D::Id,
            D::TenantId,
            D::AppId,
            D::MessageId,
            D::EndpointId,
            D::AttemptCount,
            D::OneShot,
            D::NextAttemptAt,
        ])
        .filter(Expr::cust(WAITING))
        .filter(D::NextAttemptAt.lte(now))
        .order_by_asc(D::NextAttemptAt)
        .limit(limit);
    if !saturated.is_empty() {
        select = select.filter(D::EndpointId.is_not_in(saturated.to_vec()));
    }
    if let Some(ids) = only {
        select = select.filter(D::Id.is_in(ids.to_vec()));
    }
    if let Some(only) = &tenants.only {
        select = select.filter(D::TenantId.is_in(only.clone()));
    }
    if !tenants.except.is_empty() {
        select = select.filter(D::TenantId.is_not_in(tenants.except.clone()));
    }
    let backend = ctx.db.conn.get_database_backend();
    let inner = sea_orm::QueryTrait::build(&select, backend);
    // The endpoint's health and its handshake setting are nested arrays: serde reads tuples of
    // at most 16 elements.
    let array = if backend == sea_orm::DbBackend::Postgres { "json_build_array" } else { "json_array" };
    let fields = format!(
        "d.id, d.tenant_id, d.app_id, d.message_id, d.endpoint_id, d.attempt_count, d.one_shot, \
         m.event_type, m.created_at, e.id IS NOT NULL, e.disabled, e.ordering, e.rate_limit, \
         {array}(h.consecutive_failures, h.circuit_open_until, h.handshake_at, h.handshake_rate), \
         {array}(e.handshake, e.format), a.rate_limit"
    );
    let aggregate = if backend == sea_orm::DbBackend::Postgres {
        format!("COALESCE(json_agg(json_build_array({fields}) ORDER BY d.next_attempt_at, d.id), '[]')::text")
    } else {
        format!("json_group_array(json_array({fields}) ORDER BY d.next_attempt_at, d.id)")
    };
    let sql = format!(
        "SELECT {aggregate} AS candidates FROM ({}) AS d \
         LEFT JOIN messages m ON m.id = d.message_id \
         LEFT JOIN endpoints e ON e.id = d.endpoint_id \
         LEFT JOIN endpoint_health h ON h.endpoint_id = d.endpoint_id \
         LEFT JOIN applications a ON a.id = d.app_id",
        inner.sql
    );
    let statement =
        sea_orm::Statement::from_sql_and_values(backend, sql, inner.values.map(|v| v.0).unwrap_or_default());
    let Some(row) = ctx.db.conn.query_one_raw(statement).await? else {
        return Ok(Vec::new());
    };
    let text: String = row.try_get("", "candidates")?;
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i32,
        Flag,
        Option<String>,
        Option<String>,
        Flag,
        Option<Flag>,
        Option<String>,
        Option<i32>,
        (Option<i32>, Option<String>, Option<String>, Option<i32>),
        (Option<Flag>, Option<String>),
        Option<i32>,
    );
    let rows: Vec<Row> = serde_json::from_str(&text).map_err(|err| CoreError::Internal(err.into()))?;
    rows.into_iter()
        .map(|r| {
            let (id, tenant_id, app_id, message_id, endpoint_id, attempt_count, one_shot) =
                (r.0, r.1, r.2, r.3, r.4, r.5, r.6);
            let message = match (r.7, r.8) {
                (Some(event_type), Some(at)) => Some((event_type, db_time(&at)?)),
                _ => None,
            };
            let endpoint = match r.9.0 {
                false => None,
                true => Some(CandidateEndpoint {
                    disabled: r.10.is_some_and(|f| f.0),
                    ordering: r.11.unwrap_or_default(),
                    rate_limit: r.12,
                    consecutive_failures: r.13.0.unwrap_or(0),
                    circuit_open_until: r.13.1.as_deref().map(db_time).transpose()?,
                    handshake: crate::handshake::enabled_stored(
                        r.14.0.map(|f| f.0),
                        r.14.1.as_deref().unwrap_or_default(),
                    ),
                    handshake_at: r.13.2.as_deref().map(db_time).transpose()?,
                    handshake_rate: r.13.3,
                }),
            };
            Ok(Candidate {
                id,
                tenant_id,
                app_id,
                message_id,
                endpoint_id,
                attempt_count,
                one_shot: one_shot.0,
                message,
                endpoint,
                app_rate_limit: r.15,
            })
        })
        .collect()
}

/// A boolean as a JSON document built by the database has it: `true`/`false` from PostgreSQL,
/// `1`/`0` from SQLite (which stores booleans as integers).
#[derive(Clone, Copy, Debug)]
struct Flag(bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bool(bool),
            Int(i64),
        }
        Ok(Flag(match Either::deserialize(deserializer)? {
            Either::Bool(b) => b,
            Either::Int(n) => n != 0,
        }))
    }
}

/// A time as the database renders it in JSON: RFC 3339 from PostgreSQL, and from SQLite the text
/// stored (RFC 3339, with a space instead of the `T` when sqlx wrote it).
fn db_time(text: &str) -> CoreResult<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"));
    parsed
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| CoreError::Internal(anyhow::anyhow!("unreadable time {text:?}: {err}")))
}

/// Whether any delivery of the endpoint is leased (in flight, with any worker).
async fn any_leased<C: ConnectionTrait>(conn: &C, endpoint: &str) -> CoreResult<bool> {
    let backend = conn.get_database_backend();
    let param = if backend == sea_orm::DbBackend::Postgres { "$1" } else { "?" };
    let sql = format!("SELECT id FROM deliveries WHERE {LEASED} AND endpoint_id = {param} LIMIT 1");
    let row =
        conn.query_one_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [endpoint.into()])).await?;
    Ok(row.is_some())
}

/// True when `delivery` is the oldest unfinished delivery of its endpoint and none is in flight.
/// One statement (one snapshot: a recorder committing between two reads could otherwise move
/// the head from in flight to waiting unseen), whose two halves each read their partial index.
async fn is_fifo_head<C: ConnectionTrait>(conn: &C, delivery_id: &str, endpoint: &str) -> CoreResult<bool> {
    let backend = conn.get_database_backend();
    let (first, second) = if backend == sea_orm::DbBackend::Postgres { ("$1", "$2") } else { ("?", "?") };
    let oldest = |condition: &str, param: &str| {
        format!(
            "SELECT id, message_id FROM (SELECT id, message_id FROM deliveries \
             WHERE {condition} AND endpoint_id = {param} ORDER BY message_id LIMIT 1) AS oldest"
        )
    };
    let sql = format!(
        "SELECT id FROM ({} UNION ALL {}) AS unfinished ORDER BY message_id LIMIT 1",
        oldest(WAITING, first),
        oldest(LEASED, second)
    );
    let head = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [endpoint.into(), endpoint.into()],
        ))
        .await?;
    Ok(match head {
        Some(row) => row.try_get::<String>("", "id")? == delivery_id,
        None => false,
    })
}

/// Refills the endpoint's token bucket (capacity = one second of its rate) and returns the
/// tokens available. The first statement writes the row, which locks it on PostgreSQL and takes
/// the write lock on SQLite, so concurrent workers share one bucket.
async fn take_tokens<C: ConnectionTrait>(
    conn: &C,
    endpoint_id: &str,
    tenant_id: &str,
    rate: f64,
    now: DateTime<Utc>,
) -> CoreResult<f64> {
    let touched = endpoint_health::Entity::update_many()
        .col_expr(endpoint_health::Column::UpdatedAt, Expr::value(now))
        .filter(endpoint_health::Column::EndpointId.eq(endpoint_id))
        .exec(conn)
        .await?;
    if touched.rows_affected == 0 {
        let fresh = endpoint_health::ActiveModel {
            endpoint_id: Set(endpoint_id.to_owned()),
            tenant_id: Set(tenant_id.to_owned()),
            consecutive_failures: Set(0),
            failing_since: Set(None),
            circuit_open_until: Set(None),
            tokens: Set(burst(rate)),
            tokens_at: Set(Some(now)),
            updated_at: Set(now),
            handshake_at: Set(None),
            handshake_rate: Set(None),
            paused_reason: Set(None),
        };
        endpoint_health::Entity::insert(fresh)
            .on_conflict_do_nothing_on([endpoint_health::Column::EndpointId])
            .exec(conn)
            .await?;
    }
    let row = endpoint_health::Entity::find_by_id(endpoint_id)
        .one(conn)
        .await?
        .ok_or_else(|| CoreError::Internal(anyhow::anyhow!("endpoint_health row vanished")))?;
    let tokens = refilled(row.tokens, row.tokens_at, rate, now);
    endpoint_health::Entity::update_many()
        .col_expr(endpoint_health::Column::Tokens, Expr::value(tokens))
        .col_expr(endpoint_health::Column::TokensAt, Expr::value(now))
        .filter(endpoint_health::Column::EndpointId.eq(endpoint_id))
        .exec(conn)
        .await?;
    Ok(tokens)
}

/// A bucket's capacity: one second of its rate, and at least one token (a rate under one a
/// second, as a handshake's per-minute rate can be, still sends).
fn burst(rate: f64) -> f64 {
    rate.max(1.0)
}

/// A bucket of [`burst`] tokens that held `tokens` at `since`, refilled at `rate` per second
/// until `now`.
fn refilled(tokens: f64, since: Option<DateTime<Utc>>, rate: f64, now: DateTime<Utc>) -> f64 {
    let elapsed =
        since.map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(burst(rate) / rate);
    (tokens + elapsed * rate).min(burst(rate))
}

/// The tokens in the application's bucket now (created full on first use), its row locked until
/// the claim's transaction ends (PostgreSQL; SQLite's write transaction excludes other writers).
/// The claim writes back what it left.
async fn take_app_tokens<C: ConnectionTrait>(
    conn: &C,
    app_id: &str,
    tenant_id: &str,
    rate: u32,
    now: DateTime<Utc>,
) -> CoreResult<f64> {
    app_rate_buckets::Entity::insert(app_rate_buckets::ActiveModel {
        app_id: Set(app_id.to_owned()),
        tenant_id: Set(tenant_id.to_owned()),
        tokens: Set(f64::from(rate)),
        tokens_at: Set(now),
    })
    .on_conflict(OnConflict::column(app_rate_buckets::Column::AppId).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?;
    let row = app_rate_buckets::Entity::find_by_id(app_id)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| CoreError::Internal(anyhow::anyhow!("app_rate_buckets row vanished")))?;
    Ok(refilled(row.tokens, Some(row.tokens_at), f64::from(rate), now))
}

/// The most values one statement binds for an `IN (…)` list. SQLite takes at most 32,766 bound
/// variables and PostgreSQL 65,535 parameters in one statement: a list built from however many
/// deliveries are at hand is cut into chunks of this many (deduplicated first), each its own
/// statement.
pub const MAX_IDS_PER_STATEMENT: usize = 10_000;

/// `ids` without repeats, in chunks of at most [`MAX_IDS_PER_STATEMENT`].
pub fn id_chunks(ids: &[String]) -> Vec<Vec<String>> {
    let mut seen = HashSet::with_capacity(ids.len());
    let unique: Vec<String> = ids.iter().filter(|id| seen.insert(id.as_str())).cloned().collect();
    unique.chunks(MAX_IDS_PER_STATEMENT).map(<[String]>::to_vec).collect()
}

/// Loads and decrypts the endpoints' delivery settings.
pub async fn load_targets(
    ctx: &Context,
    endpoint_ids: &[String],
) -> CoreResult<HashMap<String, EndpointTarget>> {
    let mut rows = Vec::new();
    for chunk in id_chunks(endpoint_ids) {
        rows.extend(
            endpoints::Entity::find().filter(endpoints::Column::Id.is_in(chunk)).all(&ctx.db.conn).await?,
        );
    }
    let now = Utc::now();
    let mut targets = HashMap::new();
    for row in rows {
        let headers: Vec<(String, String)> = match &row.headers_ciphertext {
            Some(sealed) => {
                let map: std::collections::BTreeMap<String, String> =
                    serde_json::from_slice(&ctx.keys.decrypt(sealed)?)
                        .map_err(|err| CoreError::Internal(err.into()))?;
                map.into_iter().collect()
            }
            None => Vec::new(),
        };
        let auth = match &row.auth_ciphertext {
            Some(sealed) => Some(
                serde_json::from_slice(&ctx.keys.decrypt(sealed)?)
                    .map_err(|err| CoreError::Internal(err.into()))?,
            ),
            None => None,
        };
        let retry_schedule =
            row.retry_schedule.clone().map(endpoint_service::stored_retry_schedule).transpose()?;
        let handshake = crate::handshake::enabled_stored(row.handshake, &row.format);
        let target = EndpointTarget {
            secrets: endpoint_service::signing_secrets(&ctx.keys, &row, now)?,
            id: row.id.clone(),
            tenant_id: row.tenant_id,
            app_id: row.app_id,
            url: row.url,
            disabled: row.disabled,
            headers,
            auth,
            format: from_json(Value::String(row.format), "format")?,
            ordering: from_json(Value::String(row.ordering), "ordering")?,
            timeout_ms: row.timeout_ms.map(|n| n as u32),
            retry_schedule,
            rate_limit: row.rate_limit.map(|n| n as u32),
            payload_mode: from_json(Value::String(row.payload_mode), "payload_mode")?,
            thin_above_bytes: row.thin_above_bytes.map(|n| n as u32),
            data_url_ttl_seconds: row.data_url_ttl_seconds.map(|n| n as u32),
            handshake,
            transform: row.transform,
        };
        targets.insert(row.id, target);
    }
    Ok(targets)
}

/// A claim-checked payload the engine has not read: the sender streams it from the object store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPayload {
    pub key: String,
    pub size: usize,
    /// Lower-case hex SHA-256 of the bytes (kept in the row).
    pub sha256: String,
}

/// A message's payload as the engine sends it, shared by all of the message's deliveries: its
/// text (or, claim-checked, where it is stored), and for a received webhook the request headers
/// it forwards to its endpoints.
#[derive(Debug, Default)]
pub struct Payload {
    /// The payload; empty when `stored` is set.
    pub text: String,
    pub headers: Vec<(String, String)>,
    /// The text's SHA-256 (lower-case hex), computed the first time a thin delivery needs it.
    sha256: std::sync::OnceLock<String>,
    /// Not held in memory: the payload is this object ([`Payload::in_store`]).
    pub stored: Option<StoredPayload>,
}

impl Payload {
    pub fn new(text: String, headers: Vec<(String, String)>) -> Payload {
        Payload { text, headers, sha256: std::sync::OnceLock::new(), stored: None }
    }

    /// A claim-checked payload left in the store: senders stream it (or read it, where a whole
    /// body is needed) per request, so deliveries in flight do not hold large payloads.
    pub fn in_store(stored: StoredPayload, headers: Vec<(String, String)>) -> Payload {
        Payload {
            text: String::new(),
            headers,
            sha256: std::sync::OnceLock::from(stored.sha256.clone()),
            stored: Some(stored),
        }
    }

    /// Forwarded headers as stored (`message_payloads.headers`, a JSON object).
    pub(crate) fn stored_headers(headers: Option<&str>) -> Vec<(String, String)> {
        headers
            .and_then(|h| serde_json::from_str::<std::collections::BTreeMap<String, String>>(h).ok())
            .map(|map| map.into_iter().collect())
            .unwrap_or_default()
    }

    /// A payload with the forwarded headers as stored (`message_payloads.headers`, a JSON object).
    pub fn from_stored(text: String, headers: Option<&str>) -> Payload {
        Payload::new(text, Payload::stored_headers(headers))
    }

    /// The payload's size in bytes.
    pub fn size(&self) -> usize {
        self.stored.as_ref().map_or(self.text.len(), |stored| stored.size)
    }

    /// The SHA-256 of the payload's bytes, lower-case hex (what a thin body and the `data_url`'s
    /// `ETag` name).
    pub fn sha256(&self) -> &str {
        self.sha256.get_or_init(|| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(self.text.as_bytes()))
        })
    }
}

/// The payloads of these messages, each loaded once however many deliveries share it; missing
/// ones have expired. A claim-checked payload is not read here: its deliveries stream it.
pub async fn load_payloads(
    ctx: &Context,
    message_ids: &[String],
) -> CoreResult<HashMap<String, std::sync::Arc<Payload>>> {
    let mut payloads = HashMap::new();
    for chunk in id_chunks(message_ids) {
        let rows = message_payloads::Entity::find()
            .filter(message_payloads::Column::MessageId.is_in(chunk))
            .all(&ctx.db.conn)
            .await?;
        // A broadcast's messages name one object: they share one payload.
        let mut objects: HashMap<(String, Option<String>), std::sync::Arc<Payload>> = HashMap::new();
        for row in rows {
            let payload = match (row.object_key, row.object_size, row.object_sha256) {
                (Some(key), Some(size), Some(sha256)) => {
                    let shared = (key, row.headers);
                    if let Some(payload) = objects.get(&shared) {
                        payload.clone()
                    } else {
                        let stored = StoredPayload {
                            key: shared.0.clone(),
                            size: std::cmp::max(size, 0) as usize,
                            sha256,
                        };
                        let headers = Payload::stored_headers(shared.1.as_deref());
                        let payload = std::sync::Arc::new(Payload::in_store(stored, headers));
                        objects.insert(shared, payload.clone());
                        payload
                    }
                }
                (Some(key), _, _) => {
                    return Err(CoreError::Internal(anyhow::anyhow!(
                        "stored payload {key} has no size or digest in its row"
                    )));
                }
                _ => std::sync::Arc::new(Payload::from_stored(row.payload, row.headers.as_deref())),
            };
            payloads.insert(row.message_id, payload);
        }
    }
    Ok(payloads)
}

/// Counts committed attempts on `/metrics` ([`crate::metrics::attempts_recorded`]).
pub fn attempts_recorded(outcomes: &[AttemptOutcome]) {
    let now = Utc::now();
    crate::metrics::attempts_recorded(outcomes.iter().map(|o| crate::metrics::RecordedAttempt {
        duration_ms: o.duration_ms,
        outcome: if o.succeeded {
            // A delivery succeeds once (then it is terminal); a manual resend of a delivered
            // message is not a delivery latency.
            Ok((!o.claimed.one_shot)
                .then(|| (now - o.claimed.message_created_at).num_milliseconds().max(0) as f64 / 1000.0))
        } else {
            Err(o.error_class.unwrap_or("other"))
        },
        // No next attempt: the recorder marks the delivery dead.
        dead: !o.succeeded && o.next_attempt_at.is_none(),
    }));
}

/// After this many failed attempts of one delivery, `message.attempt.failing` is emitted, and a
/// later success emits `message.attempt.recovered`.
pub const FAILING_AFTER_ATTEMPTS: i32 = 3;

/// A delivery-level event for the tenant's operational webhooks.
#[derive(Clone, Debug)]
pub struct DeliveryEvent {
    pub event_type: &'static str,
    pub claimed: Claimed,
    pub response_status: Option<u16>,
}

/// An endpoint disabled (or paused) by a batch, and why.
#[derive(Clone, Debug)]
pub struct Disabled {
    pub tenant_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    pub reason: String,
}

/// What recording a batch changed, for the worker's follow-ups (retry wake-ups, events).
#[derive(Debug, Default)]
pub struct Recorded {
    /// Deliveries that will be retried, with their due time.
    pub retries: Vec<(String, DateTime<Utc>)>,
    /// Endpoints disabled by this batch (410 Gone, or failing for too long).
    pub disabled: Vec<Disabled>,
    /// Endpoints paused by this batch: they refused the CloudEvents handshake.
    pub paused: Vec<Disabled>,
    /// `message.attempt.exhausted`, `.failing` and `.recovered` events.
    pub events: Vec<DeliveryEvent>,
}

/// The attempt log's rows.
pub(crate) const ATTEMPTS: Insert = Insert {
    table: "attempts",
    columns: &[
        "id",
        "tenant_id",
        "app_id",
        "message_id",
        "endpoint_id",
        "delivery_id",
        "url",
        "request_headers",
        "response_status",
        "response_headers",
        "response_body",
        "duration_ms",
        "error_class",
        "error_detail",
        "trigger",
        "payload_mode",
        "request_body",
        "created_at",
    ],
    tail: "",
};

/// Endpoints whose last outcome in a batch failed: their health as computed from the row read
/// in the same transaction.
pub(crate) const HEALTH: Insert = Insert {
    table: "endpoint_health",
    columns: &[
        "endpoint_id",
        "tenant_id",
        "consecutive_failures",
        "failing_since",
        "circuit_open_until",
        "tokens",
        "tokens_at",
        "updated_at",
        "paused_reason",
    ],
    tail: "ON CONFLICT (endpoint_id) DO UPDATE SET consecutive_failures = excluded.consecutive_failures, \
               failing_since = excluded.failing_since, circuit_open_until = excluded.circuit_open_until, \
               updated_at = excluded.updated_at, paused_reason = excluded.paused_reason",
};

/// Endpoints whose last outcome in a batch succeeded are healthy again: a row that says
/// otherwise is reset, without reading it first (no row reads as healthy too). Only failures
/// need the row read, to count on from it.
pub(crate) const HEALTH_RESET: Other = Other {
    sqlite: "UPDATE endpoint_health SET consecutive_failures = 0, failing_since = NULL, circuit_open_until = NULL, \
             paused_reason = NULL, updated_at = j.at FROM (SELECT value ->> 'endpoint_id' AS endpoint_id, \
             value ->> 'at' AS at FROM jsonb_each(?)) AS j WHERE endpoint_health.endpoint_id = j.endpoint_id \
             AND (endpoint_health.consecutive_failures <> 0 OR endpoint_health.failing_since IS NOT NULL \
             OR endpoint_health.circuit_open_until IS NOT NULL OR endpoint_health.paused_reason IS NOT NULL)",
    postgres: "UPDATE endpoint_health h SET consecutive_failures = 0, failing_since = NULL, circuit_open_until = NULL, \
               paused_reason = NULL, updated_at = j.at \
               FROM jsonb_to_recordset({p}::jsonb) AS j(endpoint_id text, at timestamptz) \
               WHERE h.endpoint_id = j.endpoint_id \
               AND (h.consecutive_failures <> 0 OR h.failing_since IS NOT NULL OR h.circuit_open_until IS NOT NULL \
                    OR h.paused_reason IS NOT NULL)",
};

/// The new states of deliveries whose attempt succeeded. Only a delivery still `sending` under
/// the recording worker's lease changes. Nothing is returned: what follows a success (a
/// `recovered` event) does not depend on whether this batch changed the row, and returning a row
/// per delivery cost the writer's thread a hand-over to the async side for each (500 a round in
/// bench (c)) on the serial path.
pub(crate) const RECORD_SUCCEEDED: Other = Other {
    // Each row finds its delivery by primary key: the unary `+` keeps SQLite's planner from
    // scanning every `sending` delivery through the status index and the rows once per
    // delivery instead.
    sqlite: "UPDATE deliveries SET status = 'succeeded', attempt_count = deliveries.attempt_count + 1, \
             next_attempt_at = NULL, last_attempt_at = j.at, lease_owner = NULL, lease_until = NULL, \
             last_response_status = j.last_response_status, last_error = NULL, one_shot = 0, updated_at = j.at \
             FROM (SELECT value ->> 'id' AS id, value ->> 'at' AS at, \
             value ->> 'last_response_status' AS last_response_status, value ->> 'worker' AS worker \
             FROM jsonb_each(?)) AS j \
             WHERE deliveries.id = j.id AND +deliveries.status = 'sending' AND +deliveries.lease_owner = j.worker",
    postgres: "UPDATE deliveries d SET status = 'succeeded', attempt_count = d.attempt_count + 1, \
               next_attempt_at = NULL, last_attempt_at = j.at, lease_owner = NULL, lease_until = NULL, \
               last_response_status = j.last_response_status, last_error = NULL, one_shot = false, updated_at = j.at \
               FROM jsonb_to_recordset({p}::jsonb) AS j(id text, at timestamptz, last_response_status integer, \
               worker text) \
               WHERE d.id = j.id AND d.status = 'sending' AND d.lease_owner = j.worker",
};

/// The new states of deliveries whose attempt failed (`failed`, due again, or `dead`), returning
/// the ids that changed: only a delivery still `sending` under the recording worker's lease
/// changes, and only those get a retry wake-up or an event.
pub(crate) const RECORD_LAST: (&str, &str) = (
    // Found by primary key, as in [`RECORD_SUCCEEDED`].
    "UPDATE deliveries SET status = j.status, attempt_count = deliveries.attempt_count + 1, \
     next_attempt_at = j.next_attempt_at, last_attempt_at = j.at, lease_owner = NULL, lease_until = NULL, \
     last_response_status = j.last_response_status, last_error = j.last_error, one_shot = 0, updated_at = j.at \
     FROM (SELECT value ->> 'id' AS id, value ->> 'status' AS status, \
     value ->> 'next_attempt_at' AS next_attempt_at, value ->> 'at' AS at, \
     value ->> 'last_response_status' AS last_response_status, value ->> 'last_error' AS last_error, \
     value ->> 'worker' AS worker FROM jsonb_each(?)) AS j \
     WHERE deliveries.id = j.id AND +deliveries.status = 'sending' AND +deliveries.lease_owner = j.worker \
     RETURNING deliveries.id",
    "UPDATE deliveries d SET status = j.status, attempt_count = d.attempt_count + 1, \
     next_attempt_at = j.next_attempt_at, last_attempt_at = j.at, lease_owner = NULL, lease_until = NULL, \
     last_response_status = j.last_response_status, last_error = j.last_error, one_shot = false, updated_at = j.at \
     FROM jsonb_to_recordset({p}::jsonb) AS j(id text, status text, next_attempt_at timestamptz, at timestamptz, \
     last_response_status integer, last_error text, worker text) \
     WHERE d.id = j.id AND d.status = 'sending' AND d.lease_owner = j.worker RETURNING d.id",
);

/// Recording a batch: attempts, usage and endpoint health rows, the new states of the deliveries
/// that succeeded, then of those that failed (returning the ids this worker still held), in one
/// round trip.
pub(crate) static RECORD_SQL: BatchSql =
    BatchSql::with_last(&[ATTEMPTS, usage::COUNTERS, HEALTH], &[HEALTH_RESET, RECORD_SUCCEEDED], RECORD_LAST);

/// Records a batch of attempts and the deliveries' new states in one transaction. Only outcomes
/// of deliveries still `sending` under this worker's lease change their delivery; the attempt
/// itself is always logged. Three round trips: the endpoints' health rows are read, everything is
/// written in one batch ([`crate::store::bulk`]), and the transaction commits (plus one statement when
/// the batch disables an endpoint). The engine records through
/// [`crate::ingest::IngestQueue::record`]: on PostgreSQL that is this, on SQLite the ingest
/// writer's transaction shared with accepted messages (and this when that transaction fails).
pub async fn record(
    db: &Db,
    worker: &str,
    outcomes: &[AttemptOutcome],
    limits: &EngineLimits,
) -> CoreResult<Recorded> {
    if outcomes.is_empty() {
        return Ok(Recorded::default());
    }
    let rows = RecordRows::new(worker, outcomes);
    let started = std::time::Instant::now();
    if !db.is_sqlite() && reads_nothing(outcomes) {
        // Without failures the batch reads no health rows and disables nothing: it is one
        // statement, which PostgreSQL runs as a transaction of its own (no `BEGIN` and `COMMIT`
        // round trips). SQLite's batches are several statements and need theirs.
        let written = rows.write(&db.writer, limits).await?;
        crate::store::db::log_txn("record", started, std::time::Duration::ZERO, started.elapsed());
        return Ok(written.recorded(outcomes));
    }
    let txn = db.begin_write().await?;
    let begun = started.elapsed();
    let written = rows.write(&txn, limits).await?;
    let wrote = started.elapsed();
    txn.commit().await?;
    crate::store::db::log_txn("record", started, begun, wrote);
    Ok(written.recorded(outcomes))
}

/// True when recording `outcomes` needs nothing of the connection but its one batch: without
/// failures no endpoint's health is read and none is disabled ([`RecordRows::health`] and
/// [`RecordRows::finish`] do not touch the connection they are given), so the batch can be a
/// transaction of its own.
pub(crate) fn reads_nothing(outcomes: &[AttemptOutcome]) -> bool {
    outcomes.iter().all(|o| o.succeeded)
}

/// The rows recording a batch of outcomes writes, built before its transaction begins.
pub(crate) struct RecordRows<'a> {
    outcomes: &'a [AttemptOutcome],
    now: DateTime<Utc>,
    at: String,
    attempts: Rows,
    /// [`RECORD_SUCCEEDED`] rows.
    succeeded: Rows,
    /// [`RECORD_LAST`] rows.
    failed: Rows,
    counters: Rows,
}

/// What a recorded batch changed in its transaction.
pub(crate) struct Written {
    /// Deliveries whose failed attempt changed their state (they were still `sending` under the
    /// recording worker's lease). Successes are not reported back ([`RECORD_SUCCEEDED`]).
    failed_updated: HashSet<String>,
    disabled: Vec<Disabled>,
    paused: Vec<Disabled>,
}

impl<'a> RecordRows<'a> {
    pub(crate) fn new(worker: &str, outcomes: &'a [AttemptOutcome]) -> RecordRows<'a> {
        #[derive(serde::Serialize)]
        struct AttemptRow<'a> {
            id: String,
            tenant_id: &'a str,
            app_id: &'a str,
            message_id: &'a str,
            endpoint_id: &'a str,
            delivery_id: &'a str,
            url: &'a str,
            request_headers: &'a Headers,
            response_status: Option<u16>,
            response_headers: Option<&'a Headers>,
            response_body: Option<&'a str>,
            duration_ms: i32,
            error_class: Option<&'a str>,
            error_detail: Option<&'a str>,
            trigger: &'a str,
            payload_mode: Option<&'a str>,
            request_body: Option<&'a str>,
            created_at: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Succeeded<'a> {
            id: &'a str,
            at: &'a str,
            last_response_status: Option<u16>,
            worker: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Failed<'a> {
            id: &'a str,
            status: &'a str,
            next_attempt_at: Option<String>,
            at: &'a str,
            last_response_status: Option<u16>,
            last_error: Option<&'a str>,
            worker: &'a str,
        }
        let now = Utc::now();
        let at = ts(now);
        let attempts: Rows = outcomes
            .iter()
            .map(|o| AttemptRow {
                id: AttemptId::new_id().into_string(),
                tenant_id: &o.claimed.tenant_id,
                app_id: &o.claimed.app_id,
                message_id: &o.claimed.message_id,
                endpoint_id: &o.claimed.endpoint_id,
                delivery_id: &o.claimed.delivery_id,
                url: &o.url,
                request_headers: &o.request_headers,
                response_status: o.response_status,
                response_headers: o.response_headers.as_ref(),
                response_body: o.response_body.as_deref(),
                duration_ms: o.duration_ms,
                error_class: o.error_class,
                error_detail: o.error_detail.as_deref(),
                trigger: o.trigger,
                payload_mode: o.payload_mode,
                request_body: o.request_body.as_deref(),
                created_at: &at,
            })
            .collect();
        let mut succeeded = Rows::default();
        let mut failed = Rows::default();
        for o in outcomes {
            let last_response_status = o.response_status;
            let id = o.claimed.delivery_id.as_str();
            if o.succeeded {
                succeeded.push(&Succeeded { id, at: &at, last_response_status, worker });
                continue;
            }
            failed.push(&Failed {
                id,
                status: if o.filtered {
                    FILTERED
                } else if o.next_attempt_at.is_some() {
                    FAILED
                } else {
                    DEAD
                },
                next_attempt_at: o.next_attempt_at.map(ts),
                at: &at,
                last_response_status,
                last_error: o.error_detail.as_deref(),
                worker,
            });
        }
        let counters = usage::counter_rows(outcomes.iter().map(|o| {
            (o.claimed.tenant_id.as_str(), o.claimed.app_id.as_str(), now, usage::Metric::DeliveryAttempts, 1)
        }));
        RecordRows { outcomes, now, at, attempts, succeeded, failed, counters }
    }

    /// Writes the batch in the caller's write transaction: reads the health of the endpoints
    /// whose last outcome failed, writes attempts, usage, health and the deliveries' states in one
    /// round trip, and disables the endpoints the batch says to.
    pub(crate) async fn write<C: ConnectionTrait>(
        &self,
        txn: &C,
        limits: &EngineLimits,
    ) -> CoreResult<Written> {
        let health = self.health(txn, limits).await?;
        let sql = RECORD_SQL.get(txn.get_database_backend());
        let returned = bulk::query(txn, sql, &self.params(&health)).await?;
        self.finish(txn, health, returned).await
    }

    /// The endpoints' health after the batch. The last outcome of each endpoint decides: one
    /// that succeeded makes it healthy ([`HEALTH_RESET`], written without reading); one that
    /// failed counts on from the row, read in this transaction — a batch without failures reads
    /// nothing.
    pub(crate) async fn health<C: ConnectionTrait>(
        &self,
        txn: &C,
        limits: &EngineLimits,
    ) -> CoreResult<BatchHealth<'a>> {
        #[derive(serde::Serialize)]
        struct HealthRow<'a> {
            endpoint_id: &'a str,
            tenant_id: &'a str,
            consecutive_failures: i32,
            failing_since: Option<String>,
            circuit_open_until: Option<String>,
            tokens: f64,
            tokens_at: Option<&'a str>,
            updated_at: &'a str,
            paused_reason: Option<&'a str>,
        }
        #[derive(serde::Serialize)]
        struct Healthy<'a> {
            endpoint_id: &'a str,
            at: &'a str,
        }
        let now = self.now;
        let mut per_endpoint: HashMap<&str, (&AttemptOutcome, i32)> = HashMap::new();
        // A delivery its transform skipped sent nothing: it says nothing about the endpoint.
        for outcome in self.outcomes.iter().filter(|o| !o.filtered) {
            let entry = per_endpoint.entry(outcome.claimed.endpoint_id.as_str()).or_insert((outcome, 0));
            entry.0 = outcome;
            entry.1 = if outcome.succeeded { 0 } else { entry.1 + 1 };
        }
        let mut health = BatchHealth::default();
        let failing: Vec<&str> =
            per_endpoint.iter().filter(|(_, (last, _))| !last.succeeded).map(|(id, _)| *id).collect();
        let existing: HashMap<String, endpoint_health::Model> = if failing.is_empty() {
            HashMap::new()
        } else {
            endpoint_health::Entity::find()
                .filter(endpoint_health::Column::EndpointId.is_in(failing))
                .all(txn)
                .await?
                .into_iter()
                .map(|h| (h.endpoint_id.clone(), h))
                .collect()
        };
        for (endpoint_id, (last, failures_in_batch)) in per_endpoint {
            if last.succeeded {
                health.healthy.push(&Healthy { endpoint_id, at: &self.at });
                continue;
            }
            let before = existing.get(endpoint_id);
            let change = health_change(before, last, failures_in_batch, now, limits);
            if let Some(reason) = change.disable_reason {
                health.disable.push((endpoint_id, last, reason));
            }
            let paused_reason =
                last.handshake_refused.then(|| last.error_detail.as_deref().unwrap_or_default());
            if let Some(reason) = paused_reason
                && before.is_none_or(|h| h.paused_reason.is_none())
            {
                health.paused.push(Disabled {
                    tenant_id: last.claimed.tenant_id.clone(),
                    app_id: last.claimed.app_id.clone(),
                    endpoint_id: endpoint_id.to_owned(),
                    reason: reason.to_owned(),
                });
            }
            health.failing.push(&HealthRow {
                endpoint_id,
                tenant_id: &last.claimed.tenant_id,
                consecutive_failures: change.failures,
                failing_since: Some(ts(change.failing_since)),
                circuit_open_until: change.circuit_open_until.map(ts),
                tokens: 0.0,
                tokens_at: None,
                updated_at: &self.at,
                paused_reason,
            });
        }
        Ok(health)
    }

    /// The rows of [`RECORD_SQL`]'s statements, in order.
    pub(crate) fn params<'s>(&'s self, health: &'s BatchHealth<'_>) -> [&'s Rows; 6] {
        [&self.attempts, &self.counters, &health.failing, &health.healthy, &self.succeeded, &self.failed]
    }

    /// After the batch's statements, with the rows [`RECORD_LAST`] returned: disables the
    /// endpoints the batch says to.
    pub(crate) async fn finish<C: ConnectionTrait>(
        &self,
        txn: &C,
        health: BatchHealth<'a>,
        returned: Vec<sea_orm::QueryResult>,
    ) -> CoreResult<Written> {
        let failed_updated: HashSet<String> =
            returned.into_iter().map(|row| row.try_get::<String>("", "id")).collect::<Result<_, _>>()?;
        let mut disabled = Vec::new();
        for (endpoint_id, last, reason) in health.disable {
            let result = endpoints::Entity::update_many()
                .col_expr(endpoints::Column::Disabled, Expr::value(true))
                .col_expr(endpoints::Column::DisabledReason, Expr::value(reason.clone()))
                .col_expr(endpoints::Column::UpdatedAt, Expr::value(self.now))
                .filter(endpoints::Column::Id.eq(endpoint_id))
                .filter(endpoints::Column::Disabled.eq(false))
                .exec(txn)
                .await?;
            if result.rows_affected == 1 {
                disabled.push(Disabled {
                    tenant_id: last.claimed.tenant_id.clone(),
                    app_id: last.claimed.app_id.clone(),
                    endpoint_id: endpoint_id.to_owned(),
                    reason,
                });
            }
        }
        Ok(Written { failed_updated, disabled, paused: health.paused })
    }
}

/// What a batch of outcomes does to its endpoints' health.
#[derive(Default)]
pub(crate) struct BatchHealth<'a> {
    /// [`HEALTH`] rows: endpoints whose last outcome failed.
    failing: Rows,
    /// [`HEALTH_RESET`] rows: endpoints whose last outcome succeeded.
    healthy: Rows,
    /// Endpoints to disable (410 Gone, or failing for too long), with the outcome that did it.
    disable: Vec<(&'a str, &'a AttemptOutcome, String)>,
    /// Endpoints this batch paused (they refused the CloudEvents handshake and were not paused).
    paused: Vec<Disabled>,
}

impl Written {
    /// The follow-ups of a committed batch: retry wake-ups, and the operational events.
    pub(crate) fn recorded(self, outcomes: &[AttemptOutcome]) -> Recorded {
        let mut recorded = Recorded { disabled: self.disabled, paused: self.paused, ..Recorded::default() };
        for outcome in outcomes {
            let event = |event_type| DeliveryEvent {
                event_type,
                claimed: outcome.claimed.clone(),
                response_status: outcome.response_status,
            };
            if outcome.succeeded {
                if outcome.claimed.attempt_number > FAILING_AFTER_ATTEMPTS && !outcome.claimed.one_shot {
                    recorded.events.push(event("message.attempt.recovered"));
                }
                continue;
            }
            if !self.failed_updated.contains(&outcome.claimed.delivery_id)
                || outcome.claimed.one_shot
                || outcome.filtered
            {
                continue;
            }
            match outcome.next_attempt_at {
                Some(at) => {
                    recorded.retries.push((outcome.claimed.delivery_id.clone(), at));
                    if outcome.claimed.attempt_number == FAILING_AFTER_ATTEMPTS {
                        recorded.events.push(event("message.attempt.failing"));
                    }
                }
                None => recorded.events.push(event("message.attempt.exhausted")),
            }
        }
        recorded
    }
}

/// The health of an endpoint whose last outcome in a batch failed.
struct HealthChange {
    failures: i32,
    failing_since: DateTime<Utc>,
    circuit_open_until: Option<DateTime<Utc>>,
    disable_reason: Option<String>,
}

/// The circuit breaker and automatic disabling: `last` is the batch's last outcome for the
/// endpoint (a failure), `failures_in_batch` the failures that ended the batch.
fn health_change(
    existing: Option<&endpoint_health::Model>,
    last: &AttemptOutcome,
    failures_in_batch: i32,
    now: DateTime<Utc>,
    limits: &EngineLimits,
) -> HealthChange {
    let (failures, failing_since) =
        existing.map(|h| (h.consecutive_failures, h.failing_since)).unwrap_or((0, None));
    let mut failures = failures + failures_in_batch.max(1);
    if last.handshake_refused {
        // A refused handshake pauses the endpoint at once: the circuit opens, and the probe
        // after its cool-down asks again.
        failures = failures.max(limits.circuit_threshold);
    }
    let failing_since = failing_since.unwrap_or(now);
    let circuit_open_until = (failures >= limits.circuit_threshold).then(|| now + limits.circuit_cooldown);
    let mut disable_reason = None;
    if last.disable_endpoint {
        disable_reason = Some("the endpoint answered 410 Gone".to_owned());
    } else if now - failing_since >= limits.disable_after {
        let seconds = limits.disable_after.num_seconds();
        disable_reason = Some(if seconds >= 86_400 {
            format!("every attempt failed for {} days", seconds / 86_400)
        } else {
            format!("every attempt failed for {seconds} seconds")
        });
    }
    HealthChange { failures, failing_since, circuit_open_until, disable_reason }
}

/// An update that ends leases: the delivery becomes `status` again, due at `due`, held by nobody.
fn unlease(
    status: &'static str,
    now: DateTime<Utc>,
    due: DateTime<Utc>,
) -> sea_orm::UpdateMany<deliveries::Entity> {
    deliveries::Entity::update_many()
        .col_expr(deliveries::Column::Status, Expr::value(status))
        .col_expr(deliveries::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(deliveries::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(deliveries::Column::NextAttemptAt, Expr::value(due))
        .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
        .filter(Expr::cust(LEASED))
}

/// Returns deliveries whose lease ran out (their worker died or hung) to `failed`, due now, so
/// any worker can take them. Returns how many.
pub async fn release_expired_leases(ctx: &Context) -> CoreResult<u64> {
    let now = Utc::now();
    let result =
        unlease(FAILED, now, now).filter(deliveries::Column::LeaseUntil.lt(now)).exec(&ctx.db.writer).await?;
    Ok(result.rows_affected)
}

/// Extends every lease this worker holds: a live worker keeps its deliveries however long an
/// attempt takes, and a dead one stops renewing so its deliveries come back after one lease.
///
/// On PostgreSQL a row another transaction holds is skipped rather than waited for: that
/// transaction is recording the delivery's attempt (it ends the lease) or handing it back, and
/// waiting for it while holding the locks of the rows already renewed deadlocked with recording,
/// which locks the same rows in another order (100,000 deliveries in flight: "deadlock detected",
/// the recording batch aborted and retried in halves). A row skipped and still leased is renewed
/// by the next round, a third of a lease later.
pub async fn renew_leases(ctx: &Context, worker: &str, limits: &EngineLimits) -> CoreResult<u64> {
    let now = Utc::now();
    let mut update = deliveries::Entity::update_many()
        .col_expr(deliveries::Column::LeaseUntil, Expr::value(lease_until(now, limits)))
        .filter(Expr::cust(LEASED))
        .filter(deliveries::Column::LeaseOwner.eq(worker));
    if !ctx.db.is_sqlite() {
        update = update.filter(crate::store::custom_sql(
            false,
            &format!(
                "id IN (SELECT id FROM deliveries WHERE {LEASED} AND lease_owner = ? FOR UPDATE SKIP LOCKED)"
            ),
            [worker],
        ));
    }
    Ok(update.exec(&ctx.db.writer).await?.rows_affected)
}

/// Hands leases of this worker back untouched (`pending`, due at `due`: now, or when an open
/// circuit's cool-down ends): those of `delivery_ids`, or all it still holds (end of a graceful
/// shutdown), so no other worker waits for them to expire.
pub async fn release_leases_of(
    ctx: &Context,
    worker: &str,
    delivery_ids: Option<&[String]>,
    due: DateTime<Utc>,
) -> CoreResult<u64> {
    let now = Utc::now();
    let Some(ids) = delivery_ids else {
        let update = unlease(PENDING, now, due).filter(deliveries::Column::LeaseOwner.eq(worker));
        return Ok(update.exec(&ctx.db.writer).await?.rows_affected);
    };
    let mut released = 0;
    for chunk in id_chunks(ids) {
        released += unlease(PENDING, now, due)
            .filter(deliveries::Column::LeaseOwner.eq(worker))
            .filter(deliveries::Column::Id.is_in(chunk))
            .exec(&ctx.db.writer)
            .await?
            .rows_affected;
    }
    Ok(released)
}

/// How many messages wait for fan-out and deliveries wait to be sent (for metrics and tests).
pub async fn backlog(ctx: &Context) -> CoreResult<(u64, u64)> {
    use sea_orm::PaginatorTrait;
    let queued = fanout_queue::Entity::find().count(&ctx.db.conn).await?;
    let mut due = 0;
    for unfinished in [WAITING, LEASED] {
        due += deliveries::Entity::find().filter(Expr::cust(unfinished)).count(&ctx.db.conn).await?;
    }
    Ok((queued, due))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use chrono::{DateTime, Utc};

    use super::{Flag, Headers, LEASED, WAITING, db_time, refilled};

    #[test]
    fn a_bucket_slower_than_one_a_second_holds_one_token_and_refills_at_its_rate() {
        let at = Utc::now();
        let later = |ms: i64| at + chrono::Duration::milliseconds(ms);
        // 30 a minute (a handshake's allowed rate): a full bucket holds one token, not half.
        assert_eq!(refilled(0.0, None, 0.5, at), 1.0);
        assert_eq!(refilled(0.0, Some(at), 0.5, later(1000)), 0.5, "half a token after a second");
        assert_eq!(refilled(0.0, Some(at), 0.5, later(2000)), 1.0, "one after two seconds");
        assert_eq!(refilled(0.0, Some(at), 0.5, later(60_000)), 1.0, "never more than one");
        // 2 a second: a bucket of two, refilled one every half second.
        assert_eq!(refilled(0.0, Some(at), 2.0, later(500)), 1.0);
        assert_eq!(refilled(1.5, Some(at), 2.0, later(5000)), 2.0);
    }

    hookline_e2e::both_databases!(
        the_status_conditions_reach_the_partial_indexes,
        the_delivery_logs_lookups_reach_indexes_that_do_not_start_with_the_tenant,
        lists_past_both_databases_bind_limits_are_cut_into_statements_that_fit,
        renewal_extends_only_this_workers_leases_and_skips_rows_another_transaction_holds
    );

    /// Renewal extends the leases of the renewing worker only. On PostgreSQL a delivery whose row
    /// another transaction holds (recording its attempt) is skipped, not waited for: waiting while
    /// holding the rows already renewed deadlocked with recording. SQLite has one writer at a
    /// time and no row locks, so there every lease of the worker is renewed.
    async fn renewal_extends_only_this_workers_leases_and_skips_rows_another_transaction_holds(
        backend: hookline_e2e::Backend,
    ) {
        use sea_orm::{ActiveModelTrait, EntityTrait, Set, TransactionTrait};

        use crate::{
            Context,
            delivery::{EngineLimits, SENDING},
            store::entities::deliveries,
        };
        let (_dir, config, db) = crate::store::db::migrated_for_test(backend).await;
        let ctx = Context::new(db, crate::crypto::Keys::for_tests(), config).unwrap();
        let before = Utc::now() + chrono::Duration::seconds(5);
        for (id, owner) in [("dlv_1", "w1"), ("dlv_2", "w1"), ("dlv_3", "w1"), ("dlv_4", "w2")] {
            deliveries::ActiveModel {
                id: Set(id.to_owned()),
                tenant_id: Set("org_t".to_owned()),
                app_id: Set("app_a".to_owned()),
                message_id: Set(format!("msg_{id}")),
                endpoint_id: Set("ep_e".to_owned()),
                status: Set(SENDING.to_owned()),
                attempt_count: Set(0),
                next_attempt_at: Set(None),
                last_attempt_at: Set(None),
                created_at: Set(Utc::now()),
                updated_at: Set(Utc::now()),
                lease_owner: Set(Some(owner.to_owned())),
                lease_until: Set(Some(before)),
                last_response_status: Set(None),
                last_error: Set(None),
                job_id: Set(None),
                one_shot: Set(false),
            }
            .insert(&ctx.db.writer)
            .await
            .unwrap();
        }
        let lease_of = |id: &'static str| {
            let ctx = &ctx;
            async move {
                deliveries::Entity::find_by_id(id)
                    .one(&ctx.db.conn)
                    .await
                    .unwrap()
                    .unwrap()
                    .lease_until
                    .unwrap()
            }
        };
        let stored = lease_of("dlv_4").await;
        let sqlite = ctx.db.is_sqlite();
        // On PostgreSQL another connection holds dlv_1's row, as recording its attempt would.
        let holder = if sqlite { None } else { Some(ctx.db.conn.begin().await.unwrap()) };
        if let Some(holder) = &holder {
            holder
                .execute_unprepared("SELECT id FROM deliveries WHERE id = 'dlv_1' FOR UPDATE")
                .await
                .unwrap();
        }
        let limits = EngineLimits::default();
        let renewed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            super::renew_leases(&ctx, "w1", &limits),
        )
        .await
        .expect("renewal waited for a row another transaction holds")
        .unwrap();
        assert_eq!(renewed, if sqlite { 3 } else { 2 });
        if let Some(holder) = holder {
            holder.rollback().await.unwrap();
        }
        let renewed_past = before + chrono::Duration::seconds(10);
        assert!(lease_of("dlv_2").await > renewed_past);
        assert!(lease_of("dlv_3").await > renewed_past);
        assert_eq!(lease_of("dlv_1").await > renewed_past, sqlite, "the held row is renewed only on SQLite");
        assert_eq!(lease_of("dlv_4").await, stored, "another worker's lease is left alone");
    }

    /// Payloads, endpoint settings and lease hand-backs are read and written for lists as long
    /// as the deliveries at hand: 70,000 ids are past SQLite's 32,766 bound variables and
    /// PostgreSQL's 65,535 parameters in one statement (SQLite answered "too many SQL
    /// variables", and the engine retried the same batch after every lease expiry).
    async fn lists_past_both_databases_bind_limits_are_cut_into_statements_that_fit(
        backend: hookline_e2e::Backend,
    ) {
        use sea_orm::{ActiveModelTrait, Set};

        use crate::{Context, store::entities::message_payloads};
        let (_dir, config, db) = crate::store::db::migrated_for_test(backend).await;
        let ctx = Context::new(db, crate::crypto::Keys::for_tests(), config).unwrap();
        let mut ids: Vec<String> = (0..70_000).map(|n| format!("msg_{n:08}")).collect();
        // Every delivery of a message names it: repeats are loaded once.
        ids.extend(ids[..5_000].to_vec());
        for id in [&ids[3], &ids[69_999]] {
            message_payloads::ActiveModel {
                message_id: Set(id.clone()),
                tenant_id: Set("org_t".to_owned()),
                payload: Set(format!("{{\"id\":\"{id}\"}}")),
                headers: Set(None),
                created_at: Set(chrono::Utc::now()),
                object_key: Set(None),
                object_size: Set(None),
                object_sha256: Set(None),
            }
            .insert(&ctx.db.writer)
            .await
            .unwrap();
        }
        let payloads = super::load_payloads(&ctx, &ids).await.unwrap();
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[&ids[69_999]].text, "{\"id\":\"msg_00069999\"}");
        assert!(super::load_targets(&ctx, &ids).await.unwrap().is_empty());
        let released =
            super::release_leases_of(&ctx, "worker-1", Some(&ids), chrono::Utc::now()).await.unwrap();
        assert_eq!(released, 0);
        let chunks = super::id_chunks(&ids);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 70_000);
        assert!(chunks.iter().all(|chunk| chunk.len() <= super::MAX_IDS_PER_STATEMENT));
    }

    /// The attempt and delivery listings filter on the tenant and name a message, an endpoint or
    /// an application: they reach the indexes keyed by those ids alone (migration 10), which no
    /// longer carry the tenant in every entry.
    async fn the_delivery_logs_lookups_reach_indexes_that_do_not_start_with_the_tenant(
        backend: hookline_e2e::Backend,
    ) {
        let (_dir, _, db) = crate::store::db::migrated_for_test(backend).await;
        let txn = sea_orm::TransactionTrait::begin(&db.conn).await.unwrap();
        if !db.is_sqlite() {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
        }
        for (query, index) in [
            (
                "SELECT id FROM attempts WHERE tenant_id = 't' AND message_id = 'm' ORDER BY id DESC LIMIT 50",
                "idx_attempts_message",
            ),
            (
                "SELECT id FROM attempts WHERE tenant_id = 't' AND app_id = 'a' AND endpoint_id = 'e' \
                 ORDER BY id DESC LIMIT 50",
                "idx_attempts_app_endpoint",
            ),
            (
                "SELECT id FROM deliveries WHERE tenant_id = 't' AND endpoint_id = 'e' ORDER BY id DESC LIMIT 50",
                "idx_deliveries_endpoint",
            ),
        ] {
            let plan = crate::store::db::query_plan(&txn, query, Vec::new()).await;
            assert!(plan.iter().any(|line| line.contains(index)), "{query}: {plan:?}");
            let definition = if db.is_sqlite() {
                format!("SELECT sql AS d FROM sqlite_master WHERE name = '{index}'")
            } else {
                format!("SELECT indexdef AS d FROM pg_indexes WHERE indexname = '{index}'")
            };
            let row = txn
                .query_one_raw(Statement::from_string(txn.get_database_backend(), definition))
                .await
                .unwrap()
                .unwrap();
            let sql: String = row.try_get("", "d").unwrap();
            assert!(!sql.contains("tenant_id"), "{sql}");
        }
    }

    /// The claim and lease queries spell [`WAITING`] and [`LEASED`]; the planner must find the
    /// partial indexes with them (PostgreSQL is told to avoid sequential scans, which it would
    /// prefer on an empty table: a plan without the index then means it cannot use it).
    async fn the_status_conditions_reach_the_partial_indexes(backend: hookline_e2e::Backend) {
        let (_dir, _, db) = crate::store::db::migrated_for_test(backend).await;
        let sqlite = db.is_sqlite();
        let txn = sea_orm::TransactionTrait::begin(&db.conn).await.unwrap();
        if sqlite {
            for (index, condition) in [("idx_deliveries_due", WAITING), ("idx_deliveries_lease", LEASED)] {
                let row = txn
                    .query_one_raw(Statement::from_string(
                        txn.get_database_backend(),
                        format!("SELECT sql FROM sqlite_master WHERE name = '{index}'"),
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                let sql: String = row.try_get("", "sql").unwrap();
                assert!(sql.ends_with(&format!("WHERE {condition}")), "{index}: {sql}");
            }
        } else {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
        }
        for (query, index) in [
            (
                format!(
                    "SELECT id FROM deliveries WHERE {WAITING} AND next_attempt_at <= '2026-11-29T00:00:00+00:00' \
                     ORDER BY next_attempt_at LIMIT 100"
                ),
                "idx_deliveries_due",
            ),
            (
                format!(
                    "SELECT id FROM deliveries WHERE {LEASED} AND lease_until < '2026-11-29T00:00:00+00:00'"
                ),
                "idx_deliveries_lease",
            ),
            (
                format!("SELECT id FROM deliveries WHERE {LEASED} AND lease_owner = 'w1'"),
                "idx_deliveries_lease",
            ),
        ] {
            let plan = crate::store::db::query_plan(&txn, &query, Vec::new()).await;
            assert!(plan.iter().any(|line| line.contains(index)), "{query}: {plan:?}");
        }
    }

    #[test]
    fn headers_are_stored_as_one_object_whose_repeated_names_keep_their_last_value() {
        let headers = Headers(vec![
            ("set-cookie".to_owned(), "a=1".to_owned()),
            ("content-type".to_owned(), "text/plain".to_owned()),
            ("set-cookie".to_owned(), "b=\"2\"".to_owned()),
        ]);
        assert_eq!(
            serde_json::to_string(&headers).unwrap(),
            r#"{"content-type":"text/plain","set-cookie":"b=\"2\""}"#
        );
        assert_eq!(serde_json::to_string(&Headers::default()).unwrap(), "{}");
    }

    #[test]
    fn database_times_read_from_json_in_either_databases_rendering() {
        let expected =
            DateTime::parse_from_rfc3339("2026-12-06T05:12:33.81569+00:00").unwrap().with_timezone(&Utc);
        for text in ["2026-12-06T05:12:33.81569+00:00", "2026-12-06 05:12:33.815690+00:00"] {
            assert_eq!(db_time(text).unwrap(), expected, "{text}");
        }
        assert!(db_time("yesterday").is_err());
    }

    #[test]
    fn flags_read_from_json_as_booleans_or_integers() {
        let flags: Vec<Flag> = serde_json::from_str("[true, false, 1, 0]").unwrap();
        assert_eq!(flags.iter().map(|f| f.0).collect::<Vec<_>>(), [true, false, true, false]);
    }
}
