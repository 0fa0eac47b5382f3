//! Retention: payloads and attempt response bodies older than the tenant's retention are purged
//! by the maintenance job in small batches, each its own short transaction, so no purge holds a
//! lock for long. Messages, deliveries, attempts' metadata and usage stay. Also the one-off
//! expunge of one message's payload.

use chrono::{Duration, Utc};
use hookline_types::{ApiKeyScope, AppId, AttemptId, IdOrUid, MessageId, TenantId};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Query},
};

use crate::{
    Context,
    entities::{attempts, message_payloads, messages, tenants},
    error::{CoreError, CoreResult},
    ids::time_boundary,
    principal::Principal,
    scope::TenantScoped,
    services::{applications, plans},
};

/// What one purge run removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub payloads: u64,
    pub attempt_bodies: u64,
}

/// Purges every tenant's expired payloads and attempt bodies, `batch` rows per transaction.
pub async fn purge(ctx: &Context, batch: u64) -> CoreResult<Purged> {
    let mut purged = Purged::default();
    let mut after: Option<String> = None;
    loop {
        let mut select = tenants::Entity::find().order_by_asc(tenants::Column::Id).limit(200);
        if let Some(after) = &after {
            select = select.filter(tenants::Column::Id.gt(after.as_str()));
        }
        let page = select.all(&ctx.db.conn).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for tenant in &page {
            // The plan's retention, or the tenant's override (`hookline plan set --retention-days`).
            let days = plans::limits_of(ctx, tenant).await?.retention_days;
            let cutoff = Utc::now() - Duration::days(days);
            let tenant_id = TenantId::parse(&tenant.id).map_err(|err| CoreError::Internal(err.into()))?;
            loop {
                let n =
                    purge_payloads(ctx, &tenant_id, &time_boundary(MessageId::PREFIX, cutoff), batch).await?;
                purged.payloads += n;
                if n < batch {
                    break;
                }
                tokio::task::yield_now().await;
            }
            loop {
                let n =
                    purge_attempt_bodies(ctx, &tenant_id, &time_boundary(AttemptId::PREFIX, cutoff), batch)
                        .await?;
                purged.attempt_bodies += n;
                if n < batch {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(purged)
}

async fn purge_payloads(ctx: &Context, tenant: &TenantId, before: &str, batch: u64) -> CoreResult<u64> {
    let oldest = Query::select()
        .column(message_payloads::Column::MessageId)
        .from(message_payloads::Entity)
        .and_where(message_payloads::Column::TenantId.eq(tenant.as_str()))
        .and_where(message_payloads::Column::MessageId.lt(before))
        .order_by(message_payloads::Column::MessageId, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let result = message_payloads::Entity::scoped_delete(tenant)
        .filter(message_payloads::Column::MessageId.in_subquery(oldest))
        .exec(&ctx.db.writer)
        .await?;
    Ok(result.rows_affected)
}

async fn purge_attempt_bodies(ctx: &Context, tenant: &TenantId, before: &str, batch: u64) -> CoreResult<u64> {
    let oldest = Query::select()
        .column(attempts::Column::Id)
        .from(attempts::Entity)
        .and_where(attempts::Column::TenantId.eq(tenant.as_str()))
        .and_where(attempts::Column::Id.lt(before))
        .and_where(attempts::Column::ResponseBody.is_not_null())
        .order_by(attempts::Column::Id, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let result = attempts::Entity::scoped_update(tenant)
        .col_expr(attempts::Column::ResponseBody, Expr::value(Option::<String>::None))
        .filter(attempts::Column::Id.in_subquery(oldest))
        .exec(&ctx.db.writer)
        .await?;
    Ok(result.rows_affected)
}

/// `DELETE …/msg/{msg}/content`: removes the message's payload now (its metadata stays; pending
/// deliveries of it can no longer be sent and die with error class `config`).
pub async fn expunge_content(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    message: &MessageId,
) -> CoreResult<()> {
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let message = messages::Entity::scoped(tenant)
        .filter(messages::Column::AppId.eq(app.id.as_str()))
        .filter(messages::Column::Id.eq(message.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("message"))?;
    message_payloads::Entity::scoped_delete(tenant)
        .filter(message_payloads::Column::MessageId.eq(message.id.as_str()))
        .exec(&ctx.db.writer)
        .await?;
    Ok(())
}
