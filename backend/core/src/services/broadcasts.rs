//! Broadcasts: `POST /api/v1/msg/broadcast` stores one row (bounded work, whatever the number of
//! applications); the worker expands it into one message per application that has an enabled
//! endpoint subscribed to the event type (filters and channels as for fan-out), in one
//! transaction with the messages' usage and fan-out queue rows.

use std::collections::BTreeSet;

use chrono::Utc;
use hookline_types::{ApiKeyScope, AppId, BroadcastId, BroadcastOut, MessageId, MessageIn, TenantId};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr,
};

use crate::{
    Context,
    entities::{broadcasts, endpoints},
    error::{CoreError, CoreResult},
    ids::NewId,
    principal::Principal,
    scope::TenantScoped,
    services::{
        delivery::matches_filters,
        from_json, ingest,
        ingest::NewMessage,
        is_unique_violation,
        messages::{Validated, check_schema, validate},
        to_json,
    },
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

async fn find_by_event_id(
    ctx: &Context,
    tenant: &TenantId,
    event_id: &str,
) -> CoreResult<Option<broadcasts::Model>> {
    Ok(broadcasts::Entity::scoped(tenant)
        .filter(broadcasts::Column::EventId.eq(event_id))
        .one(&ctx.db.conn)
        .await?)
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
    check_schema(ctx, tenant, event_type.as_str(), &input.payload).await?;
    let model = broadcasts::ActiveModel {
        id: Set(BroadcastId::new_id().into_string()),
        tenant_id: Set(tenant.to_string()),
        event_type: Set(event_type.as_str().to_owned()),
        event_id: Set(input.event_id.clone()),
        channels: Set(to_json(&channels)),
        payload: Set(payload_text),
        state: Set(QUEUED.to_owned()),
        message_count: Set(0),
        created_at: Set(Utc::now()),
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

/// Expands up to `limit` queued broadcasts; returns how many messages were created. Run by the
/// worker's fan-out loop.
pub async fn expand_queued(ctx: &Context, limit: u64) -> CoreResult<usize> {
    // Cheap check first, outside the write lock: usually there is nothing to do.
    let any = broadcasts::Entity::find()
        .select_only()
        .column(broadcasts::Column::Id)
        .filter(broadcasts::Column::State.eq(QUEUED))
        .limit(1)
        .into_tuple::<String>()
        .one(&ctx.db.conn)
        .await?;
    if any.is_none() {
        return Ok(0);
    }
    let txn = ctx.db.begin_write().await?;
    let queued = broadcasts::Entity::find()
        .filter(broadcasts::Column::State.eq(QUEUED))
        .order_by_asc(broadcasts::Column::Id)
        .limit(limit)
        .all(&txn)
        .await?;
    let mut created = 0;
    for broadcast in queued {
        // Claim it first: on PostgreSQL a concurrent worker's identical update then finds nothing.
        let claimed = broadcasts::Entity::update_many()
            .col_expr(broadcasts::Column::State, Expr::value(EXPANDED))
            .filter(broadcasts::Column::Id.eq(broadcast.id.as_str()))
            .filter(broadcasts::Column::State.eq(QUEUED))
            .exec(&txn)
            .await?;
        if claimed.rows_affected == 0 {
            continue;
        }
        let channels: Vec<String> = from_json(broadcast.channels.clone(), "channels")?;
        let tenant = TenantId::parse(&broadcast.tenant_id).map_err(|err| CoreError::Internal(err.into()))?;
        let subscribed: BTreeSet<String> = endpoints::Entity::scoped(&tenant)
            .filter(endpoints::Column::Disabled.eq(false))
            .all(&txn)
            .await?
            .into_iter()
            .filter(|endpoint| matches_filters(endpoint, &broadcast.event_type, &channels).unwrap_or(false))
            .map(|endpoint| endpoint.app_id)
            .collect();
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
                    only_endpoint: None,
                    created_at: now,
                    // Counted, but not refused: the broadcast was accepted already.
                    quota: None,
                    counts_as_usage: true,
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
        broadcasts::Entity::update_many()
            .col_expr(broadcasts::Column::MessageCount, Expr::value(messages.len() as i32))
            .filter(broadcasts::Column::Id.eq(broadcast.id.as_str()))
            .exec(&txn)
            .await?;
        created += messages.len();
    }
    txn.commit().await?;
    if created > 0 {
        ctx.signals.fanout.notify_one();
    }
    Ok(created)
}
