//! Broadcasts: `POST /api/v1/msg/broadcast` stores one row (bounded work, whatever the number of
//! applications); the worker expands it into one message per application that has an enabled
//! endpoint subscribed to the event type (filters and channels as for fan-out), in one
//! transaction with the messages' usage and fan-out queue rows, and empties the row's payload
//! (the messages carry it). Under a hard monthly cap it is counted at acceptance as the messages
//! it will become, and refused whole when they do not fit.

use std::collections::BTreeSet;

use chrono::Utc;
use hookline_types::{ApiKeyScope, AppId, BroadcastId, BroadcastOut, MessageId, MessageIn, TenantId};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::Expr,
};

use crate::{
    Context,
    delivery::FanOutEndpoint,
    error::{CoreError, CoreResult},
    ids::NewId,
    ingest,
    ingest::messages::{Validated, check_schema, validate},
    ingest::{NewMessage, Quota, StoreError},
    store::entities::{broadcasts, endpoints},
    store::from_json,
    store::is_unique_violation,
    store::scope::TenantScoped,
    store::to_json,
    tenancy::plans,
    tenancy::principal::Principal,
};

const QUEUED: &str = "queued";
const EXPANDED: &str = "expanded";

fn to_out(model: broadcasts::Model) -> CoreResult<BroadcastOut> {
    Ok(BroadcastOut {
        id: BroadcastId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        event_type: model.event_type,
        event_id: model.event_id,
        channels: from_json(model.channels, "channels")?,
        state: model.state,
        message_count: model.message_count.max(0) as u32,
        created_at: model.created_at,
    })
}

/// The broadcast a repeat of `event_id` is answered with: one accepted within
/// `HOOKLINE_EVENT_ID_WINDOW_SECONDS`; an older holder releases the id (like messages).
async fn find_by_event_id(
    ctx: &Context,
    tenant: &TenantId,
    event_id: &str,
) -> CoreResult<Option<broadcasts::Model>> {
    let Some(model) = broadcasts::Entity::scoped(tenant)
        .filter(broadcasts::Column::EventId.eq(event_id))
        .filter(Expr::cust("NOT event_id_released"))
        .one(&ctx.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let window = chrono::Duration::seconds(ctx.config.event_id_window_seconds as i64);
    if Utc::now() - model.created_at < window {
        return Ok(Some(model));
    }
    broadcasts::Entity::scoped_update(tenant)
        .col_expr(broadcasts::Column::EventIdReleased, Expr::value(true))
        .filter(broadcasts::Column::Id.eq(model.id.as_str()))
        .exec(&ctx.db.writer)
        .await?;
    Ok(None)
}

/// Accepts a broadcast. A repeated `event_id` returns the original (second value `false`).
pub async fn create(
    ctx: &Context,
    principal: &Principal,
    input: MessageIn,
) -> CoreResult<(BroadcastOut, bool)> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let Validated { event_type, channels, payload_text } = validate(ctx, &input)?;
    if let Some(event_id) = &input.event_id
        && let Some(original) = find_by_event_id(ctx, tenant, event_id).await?
    {
        return Ok((to_out(original)?, false));
    }
    let limits = plans::limits(ctx, tenant).await?;
    if payload_text.len() > limits.max_payload_bytes {
        return Err(CoreError::PayloadTooLarge { size: payload_text.len(), limit: limits.max_payload_bytes });
    }
    check_schema(ctx, tenant, event_type.as_str(), &input.payload).await?;
    let now = Utc::now();
    // A hard cap counts what the broadcast will become now, as that many messages would be.
    let mut reserved = 0;
    if !limits.overage_allowed {
        let subscribed = subscribed_apps(&ctx.db.conn, tenant, event_type.as_str(), &channels).await?;
        reserved = subscribed.len() as i64;
        let quota = Quota { monthly: limits.monthly_messages, hard: true };
        match ctx.ingest.reserve(tenant, reserved, quota, now).await {
            Ok(()) => {}
            Err(StoreError::QuotaExceeded { limit, resets_at }) => {
                return Err(CoreError::TooManyRequests {
                    code: "quota_exceeded",
                    detail: format!(
                        "this broadcast would become {reserved} messages, more than the {} plan's {limit} messages \
                         this month have left; it resets at {} (upgrade to continue)",
                        limits.plan,
                        resets_at.to_rfc3339()
                    ),
                    retry_after_seconds: std::cmp::max((resets_at - now).num_seconds(), 1) as u64,
                    quota_limit: Some(std::cmp::max(limit, 0) as u64),
                });
            }
            Err(StoreError::Database(err)) => return Err(err.into()),
            Err(other) => return Err(CoreError::Internal(anyhow::anyhow!("{other}"))),
        }
    }
    let model = broadcasts::ActiveModel {
        id: Set(BroadcastId::new_id().into_string()),
        tenant_id: Set(tenant.to_string()),
        event_type: Set(event_type.as_str().to_owned()),
        event_id: Set(input.event_id.clone()),
        channels: Set(to_json(&channels)),
        payload: Set(payload_text),
        state: Set(QUEUED.to_owned()),
        // Queued: what it was counted as against a hard cap; expanded: what it became.
        message_count: Set(reserved as i32),
        created_at: Set(now),
        event_id_released: Set(false),
    };
    let model = match model.insert(&ctx.db.writer).await {
        Ok(model) => model,
        Err(err) if is_unique_violation(&err) => {
            let event_id = input.event_id.as_deref().unwrap_or_default();
            let original = find_by_event_id(ctx, tenant, event_id).await?.ok_or_else(|| {
                CoreError::Internal(anyhow::anyhow!("event_id conflict without a broadcast"))
            })?;
            return Ok((to_out(original)?, false));
        }
        Err(err) => return Err(err.into()),
    };
    ctx.signals.fanout.notify_one();
    Ok((to_out(model)?, true))
}

pub async fn get(ctx: &Context, principal: &Principal, id: &BroadcastId) -> CoreResult<BroadcastOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Read)?;
    let model = broadcasts::Entity::scoped(&principal.tenant_id)
        .filter(broadcasts::Column::Id.eq(id.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("broadcast"))?;
    to_out(model)
}

/// The applications a broadcast of `event_type` on `channels` becomes a message in: those with an
/// enabled endpoint subscribed to its type and channels (content filters decide the deliveries at
/// fan-out, not where the message is stored).
async fn subscribed_apps<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    event_type: &str,
    channels: &[String],
) -> CoreResult<BTreeSet<String>> {
    Ok(endpoints::Entity::scoped(tenant)
        .filter(endpoints::Column::Disabled.eq(false))
        .all(conn)
        .await?
        .into_iter()
        .filter(|endpoint| {
            FanOutEndpoint::from_model(endpoint).subscribes(event_type, channels).unwrap_or(false)
        })
        .map(|endpoint| endpoint.app_id)
        .collect())
}

/// Messages the tenant's queued broadcasts were counted as at acceptance (against a hard cap),
/// which the usage counters do not hold until they are expanded.
pub(crate) async fn reserved<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> Result<i64, sea_orm::DbErr> {
    let sum: Option<Option<i64>> = broadcasts::Entity::scoped(tenant)
        .select_only()
        .column_as(broadcasts::Column::MessageCount.sum(), "n")
        .filter(broadcasts::Column::State.eq(QUEUED))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(sum.flatten().unwrap_or(0))
}

/// Expands up to `limit` queued broadcasts, oldest first, each in its own transaction: one that
/// fails (its tenant's endpoints, a row the database refuses) is logged and left queued for the
/// next pass without holding back the others, which may be other tenants'. Returns how many
/// messages were created. Run by the worker's fan-out loop.
pub async fn expand_queued(ctx: &Context, limit: u64) -> CoreResult<usize> {
    let queued: Vec<String> = broadcasts::Entity::find()
        .select_only()
        .column(broadcasts::Column::Id)
        .filter(broadcasts::Column::State.eq(QUEUED))
        .order_by_asc(broadcasts::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(&ctx.db.conn)
        .await?;
    let mut created = 0;
    for id in queued {
        match expand_one(ctx, &id).await {
            Ok(n) => created += n,
            Err(err) => {
                tracing::error!(broadcast = %id, error = %err, "expanding a broadcast failed; it stays queued");
            }
        }
    }
    if created > 0 {
        ctx.signals.fanout.notify_one();
    }
    Ok(created)
}

/// Expands one broadcast, if it is still queued, in one transaction; returns the messages made.
async fn expand_one(ctx: &Context, id: &str) -> CoreResult<usize> {
    // A large payload goes to the object store once, before the write transaction, and every
    // message of the broadcast names the same object (deleted with the last row naming it).
    let object = match broadcasts::Entity::find_by_id(id)
        .filter(broadcasts::Column::State.eq(QUEUED))
        .one(&ctx.db.conn)
        .await?
    {
        Some(queued) => {
            crate::objects::claim_check(
                &ctx.objects,
                ctx.config.claim_check_bytes,
                &queued.tenant_id,
                &queued.id,
                &queued.payload,
            )
            .await?
        }
        None => return Ok(0),
    };
    let txn = ctx.db.begin_write().await?;
    let Some(broadcast) =
        broadcasts::Entity::find_by_id(id).filter(broadcasts::Column::State.eq(QUEUED)).one(&txn).await?
    else {
        return Ok(0);
    };
    // Claim it first: on PostgreSQL a concurrent worker's identical update then finds nothing.
    let claimed = broadcasts::Entity::update_many()
        .col_expr(broadcasts::Column::State, Expr::value(EXPANDED))
        .filter(broadcasts::Column::Id.eq(broadcast.id.as_str()))
        .filter(broadcasts::Column::State.eq(QUEUED))
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(0);
    }
    let channels: Vec<String> = from_json(broadcast.channels.clone(), "channels")?;
    let tenant = TenantId::parse(&broadcast.tenant_id).map_err(|err| CoreError::Internal(err.into()))?;
    let subscribed = subscribed_apps(&txn, &tenant, &broadcast.event_type, &channels).await?;
    let now = Utc::now();
    let messages: Vec<NewMessage> = subscribed
        .into_iter()
        .map(|app_id| {
            Ok(NewMessage {
                id: MessageId::new_id().into_string(),
                tenant_id: tenant.clone(),
                app_id: AppId::parse(&app_id).map_err(|err| CoreError::Internal(err.into()))?,
                event_type: broadcast.event_type.clone(),
                event_id: None,
                channels: broadcast.channels.clone(),
                payload_text: broadcast.payload.clone(),
                object: object.clone(),
                headers: Vec::new(),
                only_endpoint: None,
                created_at: now,
                // Counted, but not refused: the broadcast was accepted already.
                quota: None,
                counts_as_usage: true,
                inbound: false,
                // Fanned out by the worker.
                plan_rate: None,
            })
        })
        .collect::<CoreResult<_>>()?;
    let refs: Vec<&NewMessage> = messages.iter().collect();
    for chunk in refs.chunks(200) {
        ingest::insert_messages(&txn, chunk)
            .await
            .map_err(|err| CoreError::Internal(anyhow::anyhow!("{err}")))?;
    }
    // The messages hold the payload now: the broadcast keeps no copy that retention or an
    // expunge of those messages would miss.
    broadcasts::Entity::update_many()
        .col_expr(broadcasts::Column::MessageCount, Expr::value(messages.len() as i32))
        .col_expr(broadcasts::Column::Payload, Expr::value(""))
        .filter(broadcasts::Column::Id.eq(broadcast.id.as_str()))
        .exec(&txn)
        .await?;
    let created = messages.len();
    txn.commit().await?;
    Ok(created)
}
