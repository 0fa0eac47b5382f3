//! Replay and recovery, and endpoint and tenant statistics.
//!
//! A manual attempt is a `one_shot` delivery: `pending`, due now, logged with trigger `manual`;
//! a failure does not restart the automatic schedule (the delivery is `dead` until resent). The
//! engine's claim loop sends it like any other due delivery, so open circuits, FIFO order and the
//! endpoint's rate limit hold for manual attempts too.
//!
//! Bulk jobs (recover, replay-missing) are rows in `bulk_jobs`. The worker's job loop feeds each running
//! job's deliveries to the engine in small chunks (at most [`WINDOW`] of them waiting at a time,
//! and no more per tick than the endpoint's rate limit), moving a cursor forward under an
//! optimistic lock, so two workers never feed the same chunk and a job never resends a delivery
//! twice. Progress is counted from the deliveries the job fed (`deliveries.job_id`).
//!
//! The request that starts a job only stores it (`total` 0, `running`): the job's own steps
//! count its candidates, [`COUNT_PAGE`] rows looked at per step behind a cursor in its params,
//! before they feed it, so a request costs the same whatever the endpoint's history. A tenant
//! runs at most [`MAX_RUNNING_JOBS_PER_TENANT`] jobs at once, and each pass of the runner steps
//! one job per tenant (its oldest), going round the tenants, so every tenant's jobs progress
//! whatever another has queued.
//!
//! The statistics are expensive reads: they run in a read transaction that PostgreSQL stops
//! after [`crate::store::bounded::READ_TIMEOUT_SECONDS`] on both databases ([`crate::store::bounded::begin_bounded_read`]), answered as `query_timeout`.

use crate::store::bounded::{begin_bounded_read, end_bounded_read};
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use hookline_types::{
    ApiKeyScope, AppId, AttemptBucket, DeliveryOut, EndpointAlertOut, EndpointId, EndpointStatsOut,
    EndpointStatsWindow, HandshakeStatusOut, IdOrUid, JobId, JobOut, MessageId, RecoverIn, ReplayMissingIn,
    TenantId, TenantStatsOut,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select, Set,
    sea_query::{Alias, Expr, Func, Query},
};
use serde::{Deserialize, Serialize};

use crate::{
    Context,
    catalog::endpoints as endpoint_service,
    delivery::{self, DEAD, FAILED, FanOutEndpoint, MatchContent, PENDING, SENDING, SUCCEEDED},
    error::{CoreError, CoreResult},
    ids::{NewId, time_boundary},
    logs::attempts::delivery_out,
    store::custom_sql,
    store::entities::{attempts, deliveries, endpoint_health, endpoints, jobs, messages, tenants},
    store::from_json,
    store::scope::TenantScoped,
    store::to_json,
    tenancy::principal::Principal,
};

/// At most this many deliveries of one job wait for their attempt at a time.
pub const WINDOW: u64 = 100;
/// Running bulk jobs one tenant may have at once: one more is refused (`too_many_jobs`) until
/// one finishes or is cancelled.
pub const MAX_RUNNING_JOBS_PER_TENANT: u64 = 5;
/// Rows a job's step looks at to count its candidates (deliveries of the endpoint for recover,
/// messages of the application for replay-missing).
const COUNT_PAGE: u64 = 10_000;
/// Tenants one pass of the job runner steps, one job each.
const TENANTS_PER_PASS: u64 = 50;
pub(crate) const RUNNING: &str = "running";
const COMPLETED: &str = "completed";
const CANCELLED: &str = "cancelled";
const RECOVER: &str = "recover";
const REPLAY_MISSING: &str = "replay_missing";

#[derive(Debug, Serialize, Deserialize)]
struct JobParams {
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    /// Every candidate has been fed.
    #[serde(default)]
    fed_all: bool,
    /// Every candidate has been counted into the job's `total`; nothing is fed before. (Jobs
    /// stored before the steps counted were counted by the request that created them.)
    #[serde(default = "counted_at_creation")]
    counted: bool,
    /// The last delivery (recover) or message (replay-missing) id the count looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count_cursor: Option<String>,
}

fn counted_at_creation() -> bool {
    true
}

fn internal(err: impl Into<anyhow::Error>) -> CoreError {
    CoreError::Internal(err.into())
}

// ----- resend ------------------------------------------------------------------------------------

/// Resends one message to one endpoint: one manual attempt. Works for any delivery state except
/// `sending`, and for an endpoint that never had a delivery of the message.
pub async fn resend(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    message: &MessageId,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<DeliveryOut> {
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let endpoint = endpoint_service::find_in_app(ctx, principal, app, endpoint).await?;
    let message = messages::Entity::scoped(tenant)
        .filter(messages::Column::AppId.eq(endpoint.app_id.as_str()))
        .filter(messages::Column::Id.eq(message.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("message"))?;
    let now = Utc::now();
    let txn = ctx.db.begin_write().await?;
    let existing = deliveries::Entity::scoped(tenant)
        .filter(deliveries::Column::MessageId.eq(message.id.as_str()))
        .filter(deliveries::Column::EndpointId.eq(endpoint.id.as_str()))
        .one(&txn)
        .await?;
    let model = match existing {
        Some(existing) if existing.status == SENDING => {
            return Err(CoreError::conflict(
                "delivery_in_flight",
                "an attempt of this delivery is in flight; wait for its outcome",
            ));
        }
        Some(existing) => {
            let mut active: deliveries::ActiveModel = existing.into();
            active.status = Set(PENDING.to_owned());
            active.one_shot = Set(true);
            active.next_attempt_at = Set(Some(now));
            active.updated_at = Set(now);
            active.update(&txn).await?
        }
        None => new_delivery(&message, &endpoint.id, None, now).insert(&txn).await?,
    };
    txn.commit().await?;
    ctx.signals.claim.notify_waiters();
    delivery_out(model)
}

fn new_delivery(
    message: &messages::Model,
    endpoint_id: &str,
    job_id: Option<&str>,
    now: DateTime<Utc>,
) -> deliveries::ActiveModel {
    deliveries::ActiveModel {
        id: Set(hookline_types::DeliveryId::new_id().into_string()),
        tenant_id: Set(message.tenant_id.clone()),
        app_id: Set(message.app_id.clone()),
        message_id: Set(message.id.clone()),
        endpoint_id: Set(endpoint_id.to_owned()),
        status: Set(PENDING.to_owned()),
        attempt_count: Set(0),
        next_attempt_at: Set(Some(now)),
        last_attempt_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_response_status: Set(None),
        last_error: Set(None),
        job_id: Set(job_id.map(str::to_owned)),
        one_shot: Set(true),
    }
}

// ----- bulk jobs -----------------------------------------------------------------------------------

fn check_window(since: DateTime<Utc>, until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> CoreResult<()> {
    if since > now {
        return Err(CoreError::invalid(&["body", "since"], "must not be in the future"));
    }
    if let Some(until) = until
        && until <= since
    {
        return Err(CoreError::invalid(&["body", "until"], "must be later than since"));
    }
    Ok(())
}

/// Starts a job resending every failed or dead delivery of the endpoint whose message was created
/// in `[since, until)`.
pub async fn recover(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
    input: RecoverIn,
) -> CoreResult<JobOut> {
    principal.require(ApiKeyScope::Write)?;
    let now = Utc::now();
    check_window(input.since, input.until, now)?;
    let endpoint = endpoint_service::find_in_app(ctx, principal, app, endpoint).await?;
    let params = JobParams {
        since: input.since,
        until: input.until,
        fed_all: false,
        counted: false,
        count_cursor: None,
    };
    create_job(ctx, &endpoint, RECOVER, params, now).await
}

fn recover_candidates(
    endpoint: &endpoints::Model,
    params: &JobParams,
    after: Option<&str>,
) -> sea_orm::Select<deliveries::Entity> {
    let tenant = hookline_types::TenantId::parse(&endpoint.tenant_id).expect("stored tenant ids parse");
    let mut select = deliveries::Entity::scoped(&tenant)
        .filter(deliveries::Column::EndpointId.eq(endpoint.id.as_str()))
        .filter(deliveries::Column::Status.is_in([FAILED, DEAD]))
        .filter(deliveries::Column::MessageId.gte(time_boundary(MessageId::PREFIX, params.since)));
    if let Some(until) = params.until {
        select = select.filter(deliveries::Column::MessageId.lt(time_boundary(MessageId::PREFIX, until)));
    }
    if let Some(after) = after {
        select = select.filter(deliveries::Column::Id.gt(after));
    }
    select
}

/// Starts a job delivering to the endpoint every message since `since` that matches its filters
/// and that it never got (created later, disabled at the time, filters changed since).
pub async fn replay_missing(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
    input: ReplayMissingIn,
) -> CoreResult<JobOut> {
    principal.require(ApiKeyScope::Write)?;
    let now = Utc::now();
    check_window(input.since, None, now)?;
    let endpoint = endpoint_service::find_in_app(ctx, principal, app, endpoint).await?;
    let params = JobParams {
        since: input.since,
        until: Some(now),
        fed_all: false,
        counted: false,
        count_cursor: None,
    };
    create_job(ctx, &endpoint, REPLAY_MISSING, params, now).await
}

struct MissingPage {
    /// Messages that match the endpoint and have no delivery to it.
    matching: Vec<messages::Model>,
    /// The last message id looked at; `None` when the window is exhausted.
    last_seen: Option<String>,
}

async fn missing_candidates<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    endpoint: &endpoints::Model,
    params: &JobParams,
    after: Option<&str>,
    limit: u64,
) -> CoreResult<MissingPage> {
    let sqlite = ctx.db.is_sqlite();
    let tenant = hookline_types::TenantId::parse(&endpoint.tenant_id).map_err(internal)?;
    let mut select = messages::Entity::scoped(&tenant)
        .filter(messages::Column::AppId.eq(endpoint.app_id.as_str()))
        .filter(messages::Column::Id.gte(time_boundary(MessageId::PREFIX, params.since)))
        // Test events are for the endpoint they were sent to.
        .filter(messages::Column::EventType.ne("hookline.test"))
        .filter(custom_sql(
            sqlite,
            "NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id AND d.endpoint_id = ?)",
            [endpoint.id.clone()],
        ));
    if let Some(until) = params.until {
        select = select.filter(messages::Column::Id.lt(time_boundary(MessageId::PREFIX, until)));
    }
    if let Some(after) = after {
        select = select.filter(messages::Column::Id.gt(after));
    }
    let rows = select.order_by(messages::Column::Id, Order::Asc).limit(limit).all(conn).await?;
    let last_seen = if (rows.len() as u64) < limit { None } else { rows.last().map(|m| m.id.clone()) };
    let mut matching = Vec::new();
    let wanted = FanOutEndpoint::from_model(endpoint);
    // A content filter needs the payloads (and forwarded headers) of the page.
    let contents = if wanted.has_content_filter() {
        delivery::match_contents(ctx, conn, rows.iter().map(|m| m.id.clone()).collect()).await?
    } else {
        HashMap::new()
    };
    for message in rows {
        let channels: Vec<String> = from_json(message.channels.clone(), "channels")?;
        let content = match contents.get(&message.id) {
            Some((text, headers)) => MatchContent::new(Some(text), headers),
            None => MatchContent::none(),
        };
        if wanted.wants(&message.event_type, &channels, &content)? {
            matching.push(message);
        }
    }
    Ok(MissingPage { matching, last_seen })
}

/// Stores a running job with nothing counted yet (its steps count), unless the tenant already
/// runs [`MAX_RUNNING_JOBS_PER_TENANT`].
async fn create_job(
    ctx: &Context,
    endpoint: &endpoints::Model,
    kind: &str,
    params: JobParams,
    now: DateTime<Utc>,
) -> CoreResult<JobOut> {
    let txn = ctx.db.begin_write().await?;
    if !ctx.db.is_sqlite() {
        // The tenant's requests take turns from the count to the insert, so two at once cannot
        // both see room for one (on SQLite the one writer already serializes them).
        tenants::Entity::find_by_id(endpoint.tenant_id.as_str()).lock_exclusive().one(&txn).await?;
    }
    let running = jobs::Entity::find()
        .filter(jobs::Column::TenantId.eq(endpoint.tenant_id.as_str()))
        .filter(jobs::Column::State.eq(RUNNING))
        .count(&txn)
        .await?;
    if running >= MAX_RUNNING_JOBS_PER_TENANT {
        txn.rollback().await?;
        return Err(CoreError::TooManyRequests {
            code: "too_many_jobs",
            detail: format!(
                "{running} bulk jobs are running, the most a tenant may run at once is \
                 {MAX_RUNNING_JOBS_PER_TENANT}: wait for one to finish, or cancel one"
            ),
            retry_after_seconds: 30,
            quota_limit: None,
        });
    }
    let model = jobs::ActiveModel {
        id: Set(JobId::new_id().into_string()),
        tenant_id: Set(endpoint.tenant_id.clone()),
        app_id: Set(endpoint.app_id.clone()),
        endpoint_id: Set(endpoint.id.clone()),
        kind: Set(kind.to_owned()),
        params: Set(to_json(&params)),
        state: Set(RUNNING.to_owned()),
        total: Set(0),
        done: Set(0),
        failed: Set(0),
        fed: Set(0),
        cursor: Set(None),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    ctx.signals.jobs.notify_waiters();
    job_out(model)
}

fn job_out(model: jobs::Model) -> CoreResult<JobOut> {
    Ok(JobOut {
        id: JobId::parse(&model.id).map_err(internal)?,
        app_id: AppId::parse(&model.app_id).map_err(internal)?,
        endpoint_id: EndpointId::parse(&model.endpoint_id).map_err(internal)?,
        kind: model.kind,
        state: model.state,
        total: model.total.max(0) as u64,
        done: model.done.max(0) as u64,
        failed: model.failed.max(0) as u64,
        created_at: model.created_at,
        updated_at: model.updated_at,
        finished_at: model.finished_at,
    })
}

async fn find_job<C: ConnectionTrait>(
    conn: &C,
    principal: &Principal,
    id: &JobId,
) -> CoreResult<jobs::Model> {
    let mut select = jobs::Entity::find()
        .filter(jobs::Column::TenantId.eq(principal.tenant_id.as_str()))
        .filter(jobs::Column::Id.eq(id.as_str()));
    if let Some(only) = principal.only_app() {
        select = select.filter(jobs::Column::AppId.eq(only.as_str()));
    }
    select.one(conn).await?.ok_or(CoreError::NotFound("job"))
}

pub async fn get_job(ctx: &Context, principal: &Principal, id: &JobId) -> CoreResult<JobOut> {
    principal.require(ApiKeyScope::Read)?;
    job_out(find_job(&ctx.db.conn, principal, id).await?)
}

/// Cancels a running job: nothing more is fed, and its deliveries still waiting for their attempt
/// go back to where they were (recover: `dead`; replay-missing: never created). Attempts already in
/// flight finish and count.
pub async fn cancel_job(ctx: &Context, principal: &Principal, id: &JobId) -> CoreResult<JobOut> {
    principal.require(ApiKeyScope::Write)?;
    let txn = ctx.db.begin_write().await?;
    let job = find_job(&txn, principal, id).await?;
    if job.state != RUNNING {
        return Err(CoreError::conflict("job_finished", format!("the job is already {}", job.state)));
    }
    let waiting = deliveries::Entity::update_many()
        .filter(deliveries::Column::JobId.eq(job.id.as_str()))
        .filter(deliveries::Column::Status.eq(PENDING))
        .filter(deliveries::Column::OneShot.eq(true));
    if job.kind == REPLAY_MISSING {
        deliveries::Entity::delete_many()
            .filter(deliveries::Column::JobId.eq(job.id.as_str()))
            .filter(deliveries::Column::Status.eq(PENDING))
            .filter(deliveries::Column::OneShot.eq(true))
            .filter(deliveries::Column::AttemptCount.eq(0))
            .exec(&txn)
            .await?;
    } else {
        waiting
            .col_expr(deliveries::Column::Status, Expr::value(DEAD))
            .col_expr(deliveries::Column::OneShot, Expr::value(false))
            .col_expr(deliveries::Column::NextAttemptAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(deliveries::Column::JobId, Expr::value(Option::<String>::None))
            .exec(&txn)
            .await?;
    }
    let now = Utc::now();
    let (done, failed, _) = job_counts(&txn, &job.id).await?;
    let mut active: jobs::ActiveModel = job.into();
    active.state = Set(CANCELLED.to_owned());
    active.done = Set(done);
    active.failed = Set(failed);
    active.updated_at = Set(now);
    active.finished_at = Set(Some(now));
    let model = active.update(&txn).await?;
    txn.commit().await?;
    job_out(model)
}

/// (succeeded, failed, waiting) among the deliveries the job fed.
async fn job_counts<C: ConnectionTrait>(conn: &C, job_id: &str) -> CoreResult<(i64, i64, i64)> {
    let rows: Vec<(String, bool, i64)> = deliveries::Entity::find()
        .select_only()
        .column(deliveries::Column::Status)
        .column(deliveries::Column::OneShot)
        .column_as(deliveries::Column::Id.count(), "n")
        .filter(deliveries::Column::JobId.eq(job_id))
        .group_by(deliveries::Column::Status)
        .group_by(deliveries::Column::OneShot)
        .into_tuple()
        .all(conn)
        .await?;
    let (mut done, mut failed, mut waiting) = (0, 0, 0);
    for (status, one_shot, n) in rows {
        if one_shot || status == SENDING {
            waiting += n;
        } else if status == SUCCEEDED {
            done += n;
        } else {
            failed += n;
        }
    }
    Ok((done, failed, waiting))
}

/// Where the job runner's passes are in their round of the tenants: the last tenant stepped.
/// Each process's runner keeps its own.
#[derive(Debug, Default)]
pub struct JobRotation {
    last_tenant: Option<String>,
}

/// One pass over the running jobs, one per tenant (its oldest), at most [`TENANTS_PER_PASS`]
/// tenants, starting after the tenant the last pass ended with: refreshes the job's progress,
/// counts or feeds its next chunk, and completes it when nothing is left. Returns how many
/// deliveries were fed.
pub async fn run_jobs(ctx: &Context, rotation: &mut JobRotation) -> CoreResult<u64> {
    run_pass(ctx, rotation, TENANTS_PER_PASS, COUNT_PAGE).await
}

async fn run_pass(
    ctx: &Context,
    rotation: &mut JobRotation,
    tenants_per_pass: u64,
    count_page: u64,
) -> CoreResult<u64> {
    // The tenants after the last one stepped, then from the first tenant round to it.
    let mut oldest =
        oldest_running_jobs(&ctx.db.conn, rotation.last_tenant.as_deref(), None, tenants_per_pass).await?;
    if let Some(last) = rotation.last_tenant.as_deref()
        && (oldest.len() as u64) < tenants_per_pass
    {
        let room = tenants_per_pass - oldest.len() as u64;
        oldest.extend(oldest_running_jobs(&ctx.db.conn, None, Some(last), room).await?);
    }
    let ids: Vec<&str> = oldest.iter().map(|(_, id)| id.as_str()).collect();
    let mut running: BTreeMap<String, jobs::Model> = jobs::Entity::find()
        .filter(jobs::Column::Id.is_in(ids))
        .all(&ctx.db.conn)
        .await?
        .into_iter()
        .map(|job| (job.id.clone(), job))
        .collect();
    let mut fed = 0;
    for (tenant, id) in oldest {
        rotation.last_tenant = Some(tenant);
        let Some(job) = running.remove(&id) else { continue };
        match step(ctx, job, count_page).await {
            Ok(n) => fed += n,
            Err(err) => tracing::warn!(error = %err, "a bulk job step failed; it is retried"),
        }
    }
    if fed > 0 {
        ctx.signals.claim.notify_waiters();
    }
    Ok(fed)
}

/// (tenant, its oldest running job) for up to `limit` tenants in order, those after `after` or
/// those up to `through`.
async fn oldest_running_jobs<C: ConnectionTrait>(
    conn: &C,
    after: Option<&str>,
    through: Option<&str>,
    limit: u64,
) -> CoreResult<Vec<(String, String)>> {
    Ok(jobs::Entity::find()
        .select_only()
        .column(jobs::Column::TenantId)
        .column_as(jobs::Column::Id.min(), "id")
        .filter(jobs::Column::State.eq(RUNNING))
        .apply_if(after, |query, after| query.filter(jobs::Column::TenantId.gt(after)))
        .apply_if(through, |query, through| query.filter(jobs::Column::TenantId.lte(through)))
        .group_by(jobs::Column::TenantId)
        .order_by_asc(jobs::Column::TenantId)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Counts the job's candidates among the next `count_page` rows after its count cursor: how
/// many, and where the next count starts (`None`: every candidate is counted).
async fn count_candidates<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    kind: &str,
    endpoint: &endpoints::Model,
    params: &JobParams,
    count_page: u64,
) -> CoreResult<(u64, Option<String>)> {
    if kind != RECOVER {
        let page =
            missing_candidates(ctx, conn, endpoint, params, params.count_cursor.as_deref(), count_page)
                .await?;
        return Ok((page.matching.len() as u64, page.last_seen));
    }
    // The endpoint's deliveries in id order, from the first that can belong to a message of the
    // window (a delivery is never older than its message). Paging by the rows looked at, not
    // by the candidates found, bounds each step however few of them are candidates.
    let tenant = TenantId::parse(&endpoint.tenant_id).map_err(internal)?;
    let rows: Vec<(String, String, String)> = deliveries::Entity::scoped(&tenant)
        .select_only()
        .column(deliveries::Column::Id)
        .column(deliveries::Column::Status)
        .column(deliveries::Column::MessageId)
        .filter(deliveries::Column::EndpointId.eq(endpoint.id.as_str()))
        .filter(match &params.count_cursor {
            Some(after) => deliveries::Column::Id.gt(after.as_str()),
            None => {
                deliveries::Column::Id.gte(time_boundary(hookline_types::DeliveryId::PREFIX, params.since))
            }
        })
        .order_by_asc(deliveries::Column::Id)
        .limit(count_page)
        .into_tuple()
        .all(conn)
        .await?;
    let since = time_boundary(MessageId::PREFIX, params.since);
    let until = params.until.map(|until| time_boundary(MessageId::PREFIX, until));
    let n = rows
        .iter()
        .filter(|(_, status, message)| {
            (status == FAILED || status == DEAD)
                && *message >= since
                && until.as_ref().is_none_or(|until| message < until)
        })
        .count() as u64;
    let next = if (rows.len() as u64) < count_page { None } else { rows.last().map(|(id, _, _)| id.clone()) };
    Ok((n, next))
}

async fn step(ctx: &Context, job: jobs::Model, count_page: u64) -> CoreResult<u64> {
    let mut params: JobParams = from_json(job.params.clone(), "job params")?;
    let mut total = job.total;
    if !params.counted
        && let Some(endpoint) =
            endpoints::Entity::find_by_id(job.endpoint_id.as_str()).one(&ctx.db.conn).await?
    {
        // On a reader, before the write transaction: counting holds no lock (the update below
        // is guarded by the total it started from, so a page is never counted twice).
        let (n, next) =
            count_candidates(ctx, &ctx.db.conn, &job.kind, &endpoint, &params, count_page).await?;
        total += n as i64;
        params.counted = next.is_none();
        params.count_cursor = next;
    }
    let now = Utc::now();
    let txn = ctx.db.begin_write().await?;
    let (done, failed, waiting) = job_counts(&txn, &job.id).await?;
    let endpoint = endpoints::Entity::find_by_id(job.endpoint_id.as_str()).one(&txn).await?;
    let Some(endpoint) = endpoint else {
        // The endpoint was deleted, and its deliveries with it.
        jobs::Entity::update_many()
            .col_expr(jobs::Column::State, Expr::value("failed"))
            .col_expr(jobs::Column::Error, Expr::value("the endpoint was deleted"))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)))
            .filter(jobs::Column::Id.eq(job.id.as_str()))
            .filter(jobs::Column::State.eq(RUNNING))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        return Ok(0);
    };
    // Room: the window, and per tick no more than the endpoint's rate limit allows.
    let room = WINDOW
        .saturating_sub(waiting.max(0) as u64)
        .min(endpoint.rate_limit.map_or(WINDOW, |r| r.max(1) as u64));
    let mut fed_now = 0;
    let mut cursor = job.cursor.clone();
    if params.counted && !params.fed_all && room > 0 {
        if job.kind == RECOVER {
            let chosen = recover_candidates(&endpoint, &params, cursor.as_deref())
                .order_by_asc(deliveries::Column::Id)
                .limit(room)
                .all(&txn)
                .await?;
            if (chosen.len() as u64) < room {
                params.fed_all = true;
            }
            if let Some(last) = chosen.last() {
                cursor = Some(last.id.clone());
                let ids: Vec<String> = chosen.iter().map(|d| d.id.clone()).collect();
                fed_now = deliveries::Entity::update_many()
                    .col_expr(deliveries::Column::Status, Expr::value(PENDING))
                    .col_expr(deliveries::Column::OneShot, Expr::value(true))
                    .col_expr(deliveries::Column::JobId, Expr::value(job.id.as_str()))
                    .col_expr(deliveries::Column::NextAttemptAt, Expr::value(Some(now)))
                    .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
                    .filter(deliveries::Column::Id.is_in(ids))
                    .filter(deliveries::Column::Status.is_in([FAILED, DEAD]))
                    .exec(&txn)
                    .await?
                    .rows_affected;
            }
        } else {
            let page = missing_candidates(ctx, &txn, &endpoint, &params, cursor.as_deref(), room).await?;
            match page.last_seen {
                Some(last) => cursor = Some(last),
                None => params.fed_all = true,
            }
            if params.fed_all
                && let Some(last) = page.matching.last()
            {
                cursor = Some(last.id.clone());
            }
            if !page.matching.is_empty() {
                let rows: Vec<deliveries::ActiveModel> =
                    page.matching.iter().map(|m| new_delivery(m, &endpoint.id, Some(&job.id), now)).collect();
                fed_now = rows.len() as u64;
                deliveries::Entity::insert_many(rows)
                    .on_conflict_do_nothing_on([
                        deliveries::Column::MessageId,
                        deliveries::Column::EndpointId,
                    ])
                    .exec(&txn)
                    .await?;
            }
        }
    }
    let waiting = waiting + fed_now as i64;
    let finished = params.fed_all && waiting == 0;
    // What the job counted; at the end, what was really sent (a delivery counted may have been
    // resent by hand or by another job meanwhile, a message may have got its delivery).
    let total = if finished { done + failed } else { total };
    // The cursor and the total guard the update: if another worker fed or counted first, this
    // step is rolled back.
    let mut update = jobs::Entity::update_many()
        .col_expr(jobs::Column::Cursor, Expr::value(cursor.clone()))
        .col_expr(jobs::Column::Params, Expr::value(to_json(&params)))
        .col_expr(
            jobs::Column::Fed,
            sea_orm::sea_query::ExprTrait::add(Expr::col(jobs::Column::Fed), fed_now as i64),
        )
        .col_expr(jobs::Column::Done, Expr::value(done))
        .col_expr(jobs::Column::Failed, Expr::value(failed))
        .col_expr(jobs::Column::Total, Expr::value(total))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(job.id.as_str()))
        .filter(jobs::Column::State.eq(RUNNING))
        .filter(jobs::Column::Total.eq(job.total));
    update = match &job.cursor {
        Some(old) => update.filter(jobs::Column::Cursor.eq(old.as_str())),
        None => update.filter(jobs::Column::Cursor.is_null()),
    };
    if finished {
        update = update
            .col_expr(jobs::Column::State, Expr::value(COMPLETED))
            .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)));
    }
    if update.exec(&txn).await?.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(0);
    }
    txn.commit().await?;
    Ok(fed_now)
}

// ----- endpoint and tenant statistics ------------------------------------------------------------

/// The most attempts a window's counts and percentiles are computed over (the newest), and the
/// most the hourly buckets count: past it, the older attempts of the window are not counted.
const STATS_SAMPLE: u64 = 100_000;
/// The most endpoints each of the tenant statistics' alert lists holds.
const ALERTS: u64 = 50;
const STATS: (&str, &str) = ("the statistics", "try again later");

pub async fn endpoint_stats(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<EndpointStatsOut> {
    principal.require(ApiKeyScope::Read)?;
    let endpoint = endpoint_service::find_in_app(ctx, principal, app, endpoint).await?;
    let read = begin_bounded_read(ctx).await?;
    let windows = stats_windows(&read.txn, &principal.tenant_id, Some(&endpoint), Utc::now()).await;
    let windows = end_bounded_read(read, windows, STATS).await?;
    let handshake = match crate::handshake::enabled_stored(endpoint.handshake, &endpoint.format) {
        false => None,
        true => {
            let health = endpoint_health::Entity::scoped(&principal.tenant_id)
                .filter(endpoint_health::Column::EndpointId.eq(endpoint.id.as_str()))
                .one(&ctx.db.conn)
                .await?;
            Some(HandshakeStatusOut {
                accepted_at: health.as_ref().and_then(|h| h.handshake_at),
                allowed_rate_per_minute: health
                    .as_ref()
                    .and_then(|h| h.handshake_rate)
                    .map(|n| n.max(0) as u32),
                paused_reason: health.and_then(|h| h.paused_reason),
            })
        }
    };
    Ok(EndpointStatsOut {
        endpoint_id: EndpointId::parse(&endpoint.id).map_err(internal)?,
        windows,
        handshake,
    })
}

/// The whole tenant: every endpoint's attempts and deliveries together, attempts by hour over the
/// last day, and the endpoints that are failing or disabled. Not for portal tokens (404).
pub async fn tenant_stats(ctx: &Context, principal: &Principal) -> CoreResult<TenantStatsOut> {
    principal.require(ApiKeyScope::Read)?;
    principal.require_tenant_wide("stats")?;
    let read = begin_bounded_read(ctx).await?;
    let stats = tenant_stats_in(&read.txn, &principal.tenant_id, Utc::now()).await;
    end_bounded_read(read, stats, STATS).await
}

async fn tenant_stats_in<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> CoreResult<TenantStatsOut> {
    let windows = stats_windows(conn, tenant, None, now).await?;
    let hourly = hourly_attempts(conn, tenant, now).await?;

    // Failing: enabled endpoints with failures since their last success, the worst first.
    let enabled = endpoints::Entity::scoped(tenant)
        .select_only()
        .column(endpoints::Column::Id)
        .filter(endpoints::Column::Disabled.eq(false))
        .into_query();
    let failing_health = endpoint_health::Entity::scoped(tenant)
        .filter(endpoint_health::Column::ConsecutiveFailures.gt(0))
        .filter(endpoint_health::Column::EndpointId.in_subquery(enabled))
        .order_by_desc(endpoint_health::Column::ConsecutiveFailures)
        .order_by_asc(endpoint_health::Column::EndpointId)
        .limit(ALERTS)
        .all(conn)
        .await?;
    let failing_ids: Vec<&str> = failing_health.iter().map(|h| h.endpoint_id.as_str()).collect();
    let failing_endpoints: BTreeMap<String, endpoints::Model> = endpoints::Entity::scoped(tenant)
        .filter(endpoints::Column::Id.is_in(failing_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let failing = failing_health
        .iter()
        .filter_map(|h| failing_endpoints.get(&h.endpoint_id).map(|e| alert_out(e, Some(h), now)))
        .collect::<CoreResult<Vec<_>>>()?;

    // Disabled: by hand or automatically, the most recently changed first.
    let disabled_endpoints = endpoints::Entity::scoped(tenant)
        .filter(endpoints::Column::Disabled.eq(true))
        .order_by_desc(endpoints::Column::UpdatedAt)
        .order_by_desc(endpoints::Column::Id)
        .limit(ALERTS)
        .all(conn)
        .await?;
    let disabled_ids: Vec<&str> = disabled_endpoints.iter().map(|e| e.id.as_str()).collect();
    let disabled_health: BTreeMap<String, endpoint_health::Model> = endpoint_health::Entity::scoped(tenant)
        .filter(endpoint_health::Column::EndpointId.is_in(disabled_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|h| (h.endpoint_id.clone(), h))
        .collect();
    let disabled = disabled_endpoints
        .iter()
        .map(|e| alert_out(e, disabled_health.get(&e.id), now))
        .collect::<CoreResult<Vec<_>>>()?;

    Ok(TenantStatsOut { windows, hourly, failing_endpoints: failing, disabled_endpoints: disabled })
}

fn alert_out(
    endpoint: &endpoints::Model,
    health: Option<&endpoint_health::Model>,
    now: DateTime<Utc>,
) -> CoreResult<EndpointAlertOut> {
    Ok(EndpointAlertOut {
        endpoint_id: EndpointId::parse(&endpoint.id).map_err(internal)?,
        app_id: AppId::parse(&endpoint.app_id).map_err(internal)?,
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        consecutive_failures: health.map_or(0, |h| h.consecutive_failures.max(0) as u32),
        failing_since: health.and_then(|h| h.failing_since),
        // A cool-down that has ended is a closed (or half-open) circuit.
        circuit_open_until: health.and_then(|h| h.circuit_open_until).filter(|until| *until > now),
        disabled_reason: endpoint.disabled_reason.clone(),
        paused_reason: health.and_then(|h| h.paused_reason.clone()),
    })
}

/// The 1 h, 24 h and 7 d windows of one endpoint (`Some`) or of the whole tenant (`None`).
async fn stats_windows<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    endpoint: Option<&endpoints::Model>,
    now: DateTime<Utc>,
) -> CoreResult<Vec<EndpointStatsWindow>> {
    let mut windows = Vec::new();
    for (name, length) in
        [("1h", Duration::hours(1)), ("24h", Duration::hours(24)), ("7d", Duration::days(7))]
    {
        windows.push(stats_window(conn, tenant, endpoint, name, now - length).await?);
    }
    Ok(windows)
}

/// The newest attempts (at most [`STATS_SAMPLE`]) since `since`, of one endpoint or of the whole
/// tenant; the caller picks the columns.
fn recent_attempts(
    tenant: &TenantId,
    endpoint: Option<&endpoints::Model>,
    since: DateTime<Utc>,
) -> Select<attempts::Entity> {
    attempts::Entity::scoped(tenant)
        .select_only()
        .apply_if(endpoint, |query, endpoint| {
            // The application narrows the search to the (app, endpoint, id) index.
            query
                .filter(attempts::Column::AppId.eq(endpoint.app_id.as_str()))
                .filter(attempts::Column::EndpointId.eq(endpoint.id.as_str()))
        })
        .filter(attempts::Column::Id.gte(time_boundary(hookline_types::AttemptId::PREFIX, since)))
        .order_by_desc(attempts::Column::Id)
        .limit(STATS_SAMPLE)
}

/// One statistics window: attempts since `since` (outcomes and duration percentiles, over the
/// newest [`STATS_SAMPLE`]) and the deliveries created since then by current status.
async fn stats_window<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    endpoint: Option<&endpoints::Model>,
    name: &str,
    since: DateTime<Utc>,
) -> CoreResult<EndpointStatsWindow> {
    let rows: Vec<(i32, Option<String>)> = recent_attempts(tenant, endpoint, since)
        .column(attempts::Column::DurationMs)
        .column(attempts::Column::ErrorClass)
        .into_tuple()
        .all(conn)
        .await?;
    let succeeded = rows.iter().filter(|(_, class)| class.is_none()).count() as u64;
    let mut durations: Vec<u32> = rows.iter().map(|(ms, _)| (*ms).max(0) as u32).collect();
    durations.sort_unstable();
    let percentile = |p: f64| -> Option<u32> {
        (!durations.is_empty()).then(|| durations[((durations.len() - 1) as f64 * p).round() as usize])
    };
    let created_since = deliveries::Entity::scoped(tenant)
        .select_only()
        .column(deliveries::Column::Status)
        .apply_if(endpoint, |query, endpoint| {
            query.filter(deliveries::Column::EndpointId.eq(endpoint.id.as_str()))
        })
        .filter(deliveries::Column::Id.gte(time_boundary(hookline_types::DeliveryId::PREFIX, since)));
    let backend = conn.get_database_backend();
    let by_status: Vec<(String, i64)> = if backend == sea_orm::DbBackend::Sqlite {
        // A read SQLite cannot stop (see `begin_bounded_read`): the newest [`STATS_SAMPLE`]
        // deliveries, like the attempts.
        let newest = created_since.order_by_desc(deliveries::Column::Id).limit(STATS_SAMPLE).into_query();
        let status = Alias::new("status");
        let count = Query::select()
            .column(status.clone())
            .expr_as(Func::count(Expr::col(status.clone())), Alias::new("n"))
            .from_subquery(newest, Alias::new("newest"))
            .group_by_col(status)
            .to_owned();
        conn.query_all_raw(backend.build(&count))
            .await?
            .iter()
            .map(|row| Ok((row.try_get("", "status")?, row.try_get("", "n")?)))
            .collect::<Result<_, DbErr>>()?
    } else {
        created_since
            .column_as(deliveries::Column::Id.count(), "n")
            .group_by(deliveries::Column::Status)
            .into_tuple()
            .all(conn)
            .await?
    };
    let mut deliveries_by_status: BTreeMap<String, u64> =
        [PENDING, SENDING, FAILED, SUCCEEDED, DEAD].iter().map(|s| ((*s).to_owned(), 0)).collect();
    for (status, n) in by_status {
        deliveries_by_status.insert(status, n.max(0) as u64);
    }
    let attempts = rows.len() as u64;
    Ok(EndpointStatsWindow {
        window: name.to_owned(),
        attempts,
        succeeded,
        failed: attempts - succeeded,
        success_rate: (attempts > 0).then(|| succeeded as f64 / attempts as f64),
        p50_ms: percentile(0.50),
        p95_ms: percentile(0.95),
        deliveries: deliveries_by_status,
    })
}

/// The tenant's attempts by hour: 24 buckets, oldest first, the current (partial) hour last.
/// Counted over the newest [`STATS_SAMPLE`] attempts since the first bucket's start, so a tenant
/// past that many attempts a day sees its older hours undercounted.
async fn hourly_attempts<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> CoreResult<Vec<AttemptBucket>> {
    let hour = Duration::hours(1);
    let current = now.duration_trunc(hour).map_err(internal)?;
    let first = current - hour * 23;
    let mut buckets: Vec<AttemptBucket> =
        (0..24).map(|n| AttemptBucket { start: first + hour * n, succeeded: 0, failed: 0 }).collect();
    let rows: Vec<(DateTime<Utc>, Option<String>)> = recent_attempts(tenant, None, first)
        .column(attempts::Column::CreatedAt)
        .column(attempts::Column::ErrorClass)
        .into_tuple()
        .all(conn)
        .await?;
    for (created_at, error_class) in rows {
        // The hour is the creation time's (the id bound selected by the id's millisecond).
        if created_at < first {
            continue;
        }
        let Some(bucket) = buckets.get_mut((created_at - first).num_hours() as usize) else { continue };
        if error_class.is_none() {
            bucket.succeeded += 1;
        } else {
            bucket.failed += 1;
        }
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use hookline_types::{AppId, EndpointId, JobId, MessageId, TenantId};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
    use serde_json::json;

    use super::{DEAD, JobParams, JobRotation, RECOVER, RUNNING, SUCCEEDED};
    use crate::{
        Context,
        ids::NewId,
        store::entities::{endpoints, jobs, messages},
    };

    /// SQLite has no statement timeout: the reader connection's progress handler interrupts a
    /// bounded read at its deadline, and the connection serves later reads without one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bounded_read_on_sqlite_is_interrupted_at_its_deadline_and_the_connection_stays_usable() {
        use sea_orm::{ConnectionTrait, Statement};

        use crate::error::CoreError;
        let (_dir, ctx) = context(hookline_e2e::Backend::Sqlite).await;
        // A query that runs for minutes: counting to ten billion.
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000000) \
                       SELECT count(*) AS c FROM n";
        let started = std::time::Instant::now();
        let read = crate::store::bounded::begin_bounded_read(&ctx).await.unwrap();
        let result = read
            .txn
            .query_one_raw(Statement::from_string(sea_orm::DbBackend::Sqlite, endless))
            .await
            .map(|_| ())
            .map_err(CoreError::from);
        let err = crate::store::bounded::end_bounded_read(read, result, ("the count", "count less"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CoreError::QueryTimeout { detail } if detail.contains("the count")),
            "{err:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_secs(crate::store::bounded::READ_TIMEOUT_SECONDS),
            "{took:?}"
        );
        assert!(
            took < std::time::Duration::from_secs(crate::store::bounded::READ_TIMEOUT_SECONDS + 10),
            "{took:?}"
        );
        // Every reader connection, that one included, still answers ordinary reads at once.
        let quick = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
                     SELECT count(*) AS c FROM n";
        for _ in 0..16 {
            let row =
                ctx.db.conn.query_one_raw(Statement::from_string(sea_orm::DbBackend::Sqlite, quick)).await;
            assert_eq!(row.unwrap().unwrap().try_get::<i64>("", "c").unwrap(), 100_000);
        }
    }

    hookline_e2e::both_databases!(
        one_pass_steps_each_tenants_oldest_job_whatever_another_tenant_queued,
        passes_go_round_the_tenants_when_more_have_jobs_than_one_pass_takes,
        a_job_counts_its_candidates_a_bounded_page_per_step_before_it_feeds_them,
    );

    async fn context(backend: hookline_e2e::Backend) -> (tempfile::TempDir, Context) {
        let (dir, config, db) = crate::store::db::migrated_for_test(backend).await;
        (dir, Context::new(db, crate::crypto::Keys::for_tests(), config).unwrap())
    }

    /// An enabled endpoint of a new application of `tenant`.
    async fn endpoint(ctx: &Context, tenant: &TenantId) -> String {
        let now = Utc::now();
        let id = EndpointId::new_id().into_string();
        endpoints::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.to_string()),
            app_id: Set(AppId::new_id().into_string()),
            uid: Set(None),
            url: Set("http://127.0.0.1:9/".to_owned()),
            description: Set(String::new()),
            disabled: Set(false),
            disabled_reason: Set(None),
            filter_types: Set(None),
            filter: Set(None),
            transform: Set(None),
            handshake: Set(None),
            channels: Set(None),
            rate_limit: Set(None),
            metadata: Set(json!({})),
            headers_ciphertext: Set(None),
            header_names: Set(json!([])),
            format: Set("json".to_owned()),
            ordering: Set("none".to_owned()),
            timeout_ms: Set(None),
            retry_schedule: Set(None),
            auth_ciphertext: Set(None),
            auth_summary: Set(None),
            payload_mode: Set("full".to_owned()),
            thin_above_bytes: Set(None),
            data_url_ttl_seconds: Set(None),
            secret_ciphertext: Set("unused".to_owned()),
            previous_secrets: Set(json!([])),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&ctx.db.writer)
        .await
        .unwrap();
        id
    }

    /// A running recover job as a request creates it: nothing counted or fed yet.
    async fn running_job(ctx: &Context, tenant: &TenantId, endpoint_id: &str) -> String {
        let now = Utc::now();
        let endpoint = endpoints::Entity::find_by_id(endpoint_id).one(&ctx.db.conn).await.unwrap().unwrap();
        let id = JobId::new_id().into_string();
        jobs::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.to_string()),
            app_id: Set(endpoint.app_id),
            endpoint_id: Set(endpoint_id.to_owned()),
            kind: Set(RECOVER.to_owned()),
            params: Set(
                json!({"since": now - Duration::hours(1), "until": null, "fed_all": false, "counted": false}),
            ),
            state: Set(RUNNING.to_owned()),
            total: Set(0),
            done: Set(0),
            failed: Set(0),
            fed: Set(0),
            cursor: Set(None),
            error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(None),
        }
        .insert(&ctx.db.writer)
        .await
        .unwrap();
        id
    }

    async fn states(ctx: &Context, tenant: &TenantId) -> Vec<(String, String)> {
        jobs::Entity::find()
            .filter(jobs::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(jobs::Column::Id)
            .all(&ctx.db.conn)
            .await
            .unwrap()
            .into_iter()
            .map(|job| (job.id, job.state))
            .collect()
    }

    /// One tenant has more running jobs than a pass of the runner used to take (jobs from before
    /// the cap, say); another tenant's job, the newest, is still stepped in the very next pass,
    /// and of the busy tenant's jobs only the oldest is.
    async fn one_pass_steps_each_tenants_oldest_job_whatever_another_tenant_queued(
        backend: hookline_e2e::Backend,
    ) {
        let (_dir, ctx) = context(backend).await;
        let (busy, small) = (TenantId::new_id(), TenantId::new_id());
        let busy_endpoint = endpoint(&ctx, &busy).await;
        let small_endpoint = endpoint(&ctx, &small).await;
        for _ in 0..60 {
            running_job(&ctx, &busy, &busy_endpoint).await;
        }
        let small_job = running_job(&ctx, &small, &small_endpoint).await;

        super::run_jobs(&ctx, &mut JobRotation::default()).await.unwrap();

        // Nothing to recover: a stepped job completes.
        assert_eq!(states(&ctx, &small).await, [(small_job, "completed".to_owned())]);
        let busy_states = states(&ctx, &busy).await;
        let stepped: Vec<usize> = (0..busy_states.len()).filter(|n| busy_states[*n].1 != RUNNING).collect();
        assert_eq!(stepped, [0], "only the busy tenant's oldest job is stepped: {busy_states:?}");
    }

    /// Three tenants with jobs and passes of two: each pass goes on from the tenant the last
    /// one ended with, so no tenant waits more than one pass.
    async fn passes_go_round_the_tenants_when_more_have_jobs_than_one_pass_takes(
        backend: hookline_e2e::Backend,
    ) {
        let (_dir, ctx) = context(backend).await;
        let mut tenants = [TenantId::new_id(), TenantId::new_id(), TenantId::new_id()];
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        for tenant in &tenants {
            let endpoint = endpoint(&ctx, tenant).await;
            running_job(&ctx, tenant, &endpoint).await;
            running_job(&ctx, tenant, &endpoint).await;
        }
        let mut rotation = JobRotation::default();
        for expected in [[1, 1, 0], [2, 1, 1], [2, 2, 2]] {
            super::run_pass(&ctx, &mut rotation, 2, super::COUNT_PAGE).await.unwrap();
            let mut completed = [0; 3];
            for (n, tenant) in tenants.iter().enumerate() {
                completed[n] =
                    states(&ctx, tenant).await.iter().filter(|(_, state)| state != RUNNING).count();
            }
            assert_eq!(completed, expected, "jobs completed per tenant");
        }
    }

    /// The request stores the job with nothing counted; each step counts the candidates among
    /// the next page of the endpoint's deliveries (here 3, dead ones among succeeded ones), and
    /// only once all are counted does the job feed them.
    async fn a_job_counts_its_candidates_a_bounded_page_per_step_before_it_feeds_them(
        backend: hookline_e2e::Backend,
    ) {
        let (_dir, ctx) = context(backend).await;
        let tenant = TenantId::new_id();
        let endpoint_id = endpoint(&ctx, &tenant).await;
        let endpoint =
            endpoints::Entity::find_by_id(endpoint_id.as_str()).one(&ctx.db.conn).await.unwrap().unwrap();
        let now = Utc::now();
        // Nine deliveries, seven of them dead.
        for status in [DEAD, SUCCEEDED, DEAD, DEAD, SUCCEEDED, DEAD, DEAD, DEAD, DEAD] {
            let message = messages::ActiveModel {
                id: Set(MessageId::new_id().into_string()),
                tenant_id: Set(tenant.to_string()),
                app_id: Set(endpoint.app_id.clone()),
                event_type: Set("a.b".to_owned()),
                event_id: Set(None),
                channels: Set(json!([])),
                payload_size: Set(2),
                created_at: Set(now),
                event_id_released: Set(false),
            }
            .insert(&ctx.db.writer)
            .await
            .unwrap();
            let mut delivery = super::new_delivery(&message, &endpoint_id, None, now);
            delivery.status = Set(status.to_owned());
            delivery.one_shot = Set(false);
            delivery.next_attempt_at = Set(None);
            delivery.insert(&ctx.db.writer).await.unwrap();
        }
        let params = JobParams {
            since: now - Duration::hours(1),
            until: None,
            fed_all: false,
            counted: false,
            count_cursor: None,
        };
        let created = super::create_job(&ctx, &endpoint, RECOVER, params, now).await.unwrap();
        assert_eq!((created.state.as_str(), created.total), (RUNNING, 0));

        let job = || async {
            jobs::Entity::find_by_id(created.id.as_str()).one(&ctx.db.conn).await.unwrap().unwrap()
        };
        // (total, fed) after each step: a page of three per step, then an empty page.
        for expected in [(2, 0), (4, 0), (7, 0), (7, 7)] {
            super::step(&ctx, job().await, 3).await.unwrap();
            let job = job().await;
            assert_eq!(
                (job.total, job.fed, job.state.as_str()),
                (expected.0, expected.1, RUNNING),
                "{job:?}"
            );
        }
    }
}
