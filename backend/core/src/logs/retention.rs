//! Retention: payloads, what attempts logged of their requests and responses (headers and body)
//! and the payloads broadcasts keep after their expansion, older than the tenant's retention,
//! are purged by the maintenance job in small batches, each its own short transaction, so no
//! purge holds a lock for long. Messages, deliveries, attempts' metadata, broadcasts' metadata
//! and usage stay; inbound sources' request-log rows are deleted. Also the one-off expunge of one message's payload.

use chrono::{Duration, Utc};
use hookline_types::{ApiKeyScope, AppId, AttemptId, BroadcastId, IdOrUid, MessageId, TenantId};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Query},
};

use crate::{
    Context,
    catalog::applications,
    error::{CoreError, CoreResult},
    ids::time_boundary,
    store::entities::{attempts, broadcasts, message_payloads, messages, source_requests, tenants},
    store::scope::TenantScoped,
    tenancy::plans,
    tenancy::principal::Principal,
};

/// What one purge run removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub payloads: u64,
    /// Attempts whose headers and body were cleared.
    pub attempt_bodies: u64,
    pub broadcast_payloads: u64,
    /// Rows of inbound sources' request logs.
    pub source_requests: u64,
    /// Payload objects no row named (their rows never committed, or a delete left them).
    pub orphan_objects: u64,
}

/// An attempt retention has not cleared yet: it has a response body or request headers (an
/// attempt without a response has headers only; one that never sent has neither). The
/// condition of `idx_attempts_unpurged` (migration 12), spelled as the index spells it so the
/// planner can use the partial index.
pub(crate) const UNPURGED_ATTEMPT: &str = "(response_body IS NOT NULL OR request_headers <> '{}')";

/// A broadcast whose payload retention has not cleared: the condition of
/// `idx_broadcasts_unpurged` (migration 12).
pub(crate) const UNPURGED_BROADCAST: &str = "payload <> ''";

/// What a broadcast's expansion still needs: its payload is purged only once it is expanded
/// (its messages carry their own copies, which retention purges as any other).
const EXPANDED: &str = "expanded";

/// Purges every tenant's expired payloads, attempt headers and bodies, and expanded broadcasts'
/// payloads, `batch` rows per transaction.
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
            loop {
                let n = purge_broadcast_payloads(
                    ctx,
                    &tenant_id,
                    &time_boundary(BroadcastId::PREFIX, cutoff),
                    batch,
                )
                .await?;
                purged.broadcast_payloads += n;
                if n < batch {
                    break;
                }
                tokio::task::yield_now().await;
            }
            loop {
                let n = purge_source_requests(ctx, &tenant_id, cutoff, batch).await?;
                purged.source_requests += n;
                if n < batch {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
    }
    purged.orphan_objects =
        crate::objects::sweep_orphans(&ctx.db, &ctx.objects, Utc::now() - Duration::hours(1)).await?;
    Ok(purged)
}

/// Deletes the oldest `batch` payload rows before `before`, then the objects of the
/// claim-checked ones that no row names any more.
async fn purge_payloads(ctx: &Context, tenant: &TenantId, before: &str, batch: u64) -> CoreResult<u64> {
    let oldest: Vec<(String, Option<String>)> = message_payloads::Entity::scoped(tenant)
        .select_only()
        .column(message_payloads::Column::MessageId)
        .column(message_payloads::Column::ObjectKey)
        .filter(message_payloads::Column::MessageId.lt(before))
        .order_by(message_payloads::Column::MessageId, sea_orm::Order::Asc)
        .limit(batch)
        .into_tuple()
        .all(&ctx.db.conn)
        .await?;
    if oldest.is_empty() {
        return Ok(0);
    }
    let result = message_payloads::Entity::scoped_delete(tenant)
        .filter(message_payloads::Column::MessageId.is_in(oldest.iter().map(|(id, _)| id.as_str())))
        .exec(&ctx.db.writer)
        .await?;
    let keys: Vec<String> = oldest.into_iter().filter_map(|(_, key)| key).collect();
    if !keys.is_empty() {
        crate::objects::release(&ctx.db, &ctx.objects, keys).await?;
    }
    Ok(result.rows_affected)
}

/// Clears the request headers (to an empty object: the column takes no NULL), the response
/// headers and the response body of the tenant's oldest attempts before `before`.
async fn purge_attempt_bodies(ctx: &Context, tenant: &TenantId, before: &str, batch: u64) -> CoreResult<u64> {
    let oldest = Query::select()
        .column(attempts::Column::Id)
        .from(attempts::Entity)
        .and_where(attempts::Column::TenantId.eq(tenant.as_str()))
        .and_where(attempts::Column::Id.lt(before))
        .and_where(Expr::cust(UNPURGED_ATTEMPT))
        .order_by(attempts::Column::Id, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let result = attempts::Entity::scoped_update(tenant)
        .col_expr(attempts::Column::ResponseBody, Expr::value(Option::<String>::None))
        .col_expr(attempts::Column::ResponseHeaders, Expr::cust("NULL"))
        .col_expr(attempts::Column::RequestHeaders, Expr::cust("'{}'"))
        .col_expr(attempts::Column::RequestBody, Expr::value(Option::<String>::None))
        .filter(attempts::Column::Id.in_subquery(oldest))
        .exec(&ctx.db.writer)
        .await?;
    Ok(result.rows_affected)
}

/// Empties the payload of the tenant's oldest expanded broadcasts before `before` (the column
/// takes no NULL; nothing reads an expanded broadcast's payload).
async fn purge_broadcast_payloads(
    ctx: &Context,
    tenant: &TenantId,
    before: &str,
    batch: u64,
) -> CoreResult<u64> {
    let oldest = Query::select()
        .column(broadcasts::Column::Id)
        .from(broadcasts::Entity)
        .and_where(broadcasts::Column::TenantId.eq(tenant.as_str()))
        .and_where(broadcasts::Column::Id.lt(before))
        .and_where(Expr::cust(UNPURGED_BROADCAST))
        .and_where(broadcasts::Column::State.eq(EXPANDED))
        .order_by(broadcasts::Column::Id, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let result = broadcasts::Entity::scoped_update(tenant)
        .col_expr(broadcasts::Column::Payload, Expr::value(""))
        .filter(broadcasts::Column::Id.in_subquery(oldest))
        .exec(&ctx.db.writer)
        .await?;
    Ok(result.rows_affected)
}

/// Deletes the tenant's oldest request-log rows of inbound sources received before `before`.
async fn purge_source_requests(
    ctx: &Context,
    tenant: &TenantId,
    before: chrono::DateTime<Utc>,
    batch: u64,
) -> CoreResult<u64> {
    let oldest = Query::select()
        .column(source_requests::Column::Id)
        .from(source_requests::Entity)
        .and_where(source_requests::Column::TenantId.eq(tenant.as_str()))
        .and_where(source_requests::Column::ReceivedAt.lt(before))
        .order_by(source_requests::Column::ReceivedAt, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let result = source_requests::Entity::scoped_delete(tenant)
        .filter(source_requests::Column::Id.in_subquery(oldest))
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
    let object: Option<Option<String>> = message_payloads::Entity::scoped(tenant)
        .select_only()
        .column(message_payloads::Column::ObjectKey)
        .filter(message_payloads::Column::MessageId.eq(message.id.as_str()))
        .into_tuple()
        .one(&ctx.db.conn)
        .await?;
    message_payloads::Entity::scoped_delete(tenant)
        .filter(message_payloads::Column::MessageId.eq(message.id.as_str()))
        .exec(&ctx.db.writer)
        .await?;
    if let Some(Some(key)) = object {
        crate::objects::release(&ctx.db, &ctx.objects, vec![key]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::{UNPURGED_ATTEMPT, UNPURGED_BROADCAST};
    use crate::ingest::messages::PG_PAYLOAD_SEARCH;

    hookline_e2e::both_databases!(the_purges_and_the_payload_search_reach_the_indexes_migration_12_made);

    /// The purges spell [`UNPURGED_ATTEMPT`] and [`UNPURGED_BROADCAST`], the conditions of the
    /// partial indexes they walk, and the PostgreSQL search spells the indexed expression of
    /// `idx_message_payloads_search` (PostgreSQL is told to avoid sequential scans, which it would
    /// prefer on an empty table: a plan without the index then means it cannot use it).
    async fn the_purges_and_the_payload_search_reach_the_indexes_migration_12_made(
        backend: hookline_e2e::Backend,
    ) {
        let (_dir, _, db) = crate::store::db::migrated_for_test(backend).await;
        let txn = sea_orm::TransactionTrait::begin(&db.conn).await.unwrap();
        if !db.is_sqlite() {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
        }
        let mut queries = vec![
            (
                format!(
                    "SELECT id FROM attempts WHERE tenant_id = 't' AND id < 'att_1' AND {UNPURGED_ATTEMPT} \
                     ORDER BY id LIMIT 500"
                ),
                "idx_attempts_unpurged",
            ),
            (
                format!(
                    "SELECT id FROM broadcasts WHERE tenant_id = 't' AND id < 'bcast_1' AND {UNPURGED_BROADCAST} \
                     AND state = 'expanded' ORDER BY id LIMIT 500"
                ),
                "idx_broadcasts_unpurged",
            ),
        ];
        if !db.is_sqlite() {
            // The search's full-text condition alone: the index is the only way to answer it.
            let condition = PG_PAYLOAD_SEARCH.split("WHERE ").nth(1).unwrap().split(" AND ").next().unwrap();
            assert!(condition.contains("left(p.payload, 262144)"), "{condition}");
            queries.push((
                format!(
                    "SELECT p.message_id FROM message_payloads p WHERE {}",
                    condition.replace('?', "'word'")
                ),
                "idx_message_payloads_search",
            ));
        }
        for (query, index) in &queries {
            let plan = crate::store::db::query_plan(&txn, query, Vec::new()).await;
            assert!(plan.iter().any(|line| line.contains(index)), "{query}: {plan:?}");
        }
        txn.commit().await.unwrap();
        let definition = |index: &str| {
            let sql = if db.is_sqlite() {
                format!("SELECT sql AS d FROM sqlite_master WHERE name = '{index}'")
            } else {
                format!("SELECT indexdef AS d FROM pg_indexes WHERE indexname = '{index}'")
            };
            Statement::from_string(db.backend(), sql)
        };
        if db.is_sqlite() {
            for (index, condition) in
                [("idx_attempts_unpurged", UNPURGED_ATTEMPT), ("idx_broadcasts_unpurged", UNPURGED_BROADCAST)]
            {
                let row = db.conn.query_one_raw(definition(index)).await.unwrap().unwrap();
                let sql: String = row.try_get("", "d").unwrap();
                assert!(sql.ends_with(&format!("WHERE {condition}")), "{index}: {sql}");
            }
        } else {
            let row =
                db.conn.query_one_raw(definition("idx_message_payloads_search")).await.unwrap().unwrap();
            let sql: String = row.try_get("", "d").unwrap();
            // PostgreSQL quotes the function's name: `"left"(payload, 262144)`.
            assert!(sql.replace('"', "").contains("left(payload, 262144)"), "{sql}");
        }
    }
}
