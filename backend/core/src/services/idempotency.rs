//! `Idempotency-Key` on POST requests: the first request with a key runs and its response is
//! stored; a repeat with the same key and the same request gets the stored response; a repeat
//! while the first still runs gets a conflict; the same key with a different request is refused.
//! Keys are per tenant and kept for 24 hours.

use chrono::{Duration, Utc};
use hookline_types::TenantId;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};

use crate::{
    Context, entities::idempotency_keys, error::CoreResult, scope::TenantScoped,
    services::is_unique_violation,
};

pub const KEY_LIFETIME: Duration = Duration::hours(24);
/// A `pending` record older than this belongs to a request that died; a retry may take it over.
pub const PENDING_TIMEOUT: Duration = Duration::minutes(5);
pub const MAX_KEY_LEN: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// Run the request, then call [`finish`] (or [`abandon`] when it failed on our side).
    Proceed,
    /// Answer with the stored response.
    Replay { status: u16, body: String },
    /// The first request with this key is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

pub async fn begin(ctx: &Context, tenant: &TenantId, key: &str, fingerprint: &str) -> CoreResult<Begin> {
    let now = Utc::now();
    let fresh = || idempotency_keys::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        key: Set(key.to_owned()),
        request_fingerprint: Set(fingerprint.to_owned()),
        state: Set("pending".to_owned()),
        response_status: Set(None),
        response_body: Set(None),
        created_at: Set(now),
    };
    match fresh().insert(&ctx.db.writer).await {
        Ok(_) => return Ok(Begin::Proceed),
        Err(err) if is_unique_violation(&err) => {}
        Err(err) => return Err(err.into()),
    }
    let Some(existing) = idempotency_keys::Entity::scoped(tenant)
        .filter(idempotency_keys::Column::Key.eq(key))
        .one(&ctx.db.conn)
        .await?
    else {
        // Removed between our insert and our read (expired and purged): start over once.
        fresh().insert(&ctx.db.writer).await?;
        return Ok(Begin::Proceed);
    };
    let expired = now - existing.created_at > KEY_LIFETIME;
    let stale_pending = existing.state == "pending" && now - existing.created_at > PENDING_TIMEOUT;
    if expired || stale_pending {
        // Take the record over only if nobody else did in the meantime.
        let taken = idempotency_keys::Entity::scoped_update(tenant)
            .col_expr(idempotency_keys::Column::State, Expr::value("pending"))
            .col_expr(idempotency_keys::Column::RequestFingerprint, Expr::value(fingerprint))
            .col_expr(idempotency_keys::Column::CreatedAt, Expr::value(now))
            .col_expr(idempotency_keys::Column::ResponseStatus, Expr::value(Option::<i32>::None))
            .col_expr(idempotency_keys::Column::ResponseBody, Expr::value(Option::<String>::None))
            .filter(idempotency_keys::Column::Key.eq(key))
            .filter(idempotency_keys::Column::CreatedAt.eq(existing.created_at))
            .exec(&ctx.db.writer)
            .await?;
        return Ok(if taken.rows_affected == 1 { Begin::Proceed } else { Begin::InFlight });
    }
    if existing.request_fingerprint != fingerprint {
        return Ok(Begin::Mismatch);
    }
    match (existing.state.as_str(), existing.response_status, existing.response_body) {
        ("done", Some(status), Some(body)) => Ok(Begin::Replay { status: status as u16, body }),
        _ => Ok(Begin::InFlight),
    }
}

pub async fn finish(
    ctx: &Context,
    tenant: &TenantId,
    key: &str,
    status: u16,
    body: String,
) -> CoreResult<()> {
    idempotency_keys::Entity::scoped_update(tenant)
        .col_expr(idempotency_keys::Column::State, Expr::value("done"))
        .col_expr(idempotency_keys::Column::ResponseStatus, Expr::value(i32::from(status)))
        .col_expr(idempotency_keys::Column::ResponseBody, Expr::value(body))
        .filter(idempotency_keys::Column::Key.eq(key))
        .exec(&ctx.db.writer)
        .await?;
    Ok(())
}

/// Forgets the key, so that a request that failed on our side can be retried with it.
pub async fn abandon(ctx: &Context, tenant: &TenantId, key: &str) -> CoreResult<()> {
    idempotency_keys::Entity::scoped_delete(tenant)
        .filter(idempotency_keys::Column::Key.eq(key))
        .exec(&ctx.db.writer)
        .await?;
    Ok(())
}

/// Deletes keys past their lifetime, about `batch` at a time (oldest first, so each statement
/// touches a bounded range of the `created_at` index and holds its locks briefly); returns how
/// many went. Run by the maintenance worker.
pub async fn purge_expired(ctx: &Context, batch: u64) -> CoreResult<u64> {
    use sea_orm::{QueryOrder, QuerySelect};
    let cutoff = Utc::now() - KEY_LIFETIME;
    // The created_at of the batch-th oldest expired key; with fewer than `batch`, all of them.
    let upper = idempotency_keys::Entity::find()
        .select_only()
        .column(idempotency_keys::Column::CreatedAt)
        .filter(idempotency_keys::Column::CreatedAt.lt(cutoff))
        .order_by_asc(idempotency_keys::Column::CreatedAt)
        .offset(batch.saturating_sub(1))
        .limit(1)
        .into_tuple::<chrono::DateTime<Utc>>()
        .one(&ctx.db.conn)
        .await?
        .unwrap_or(cutoff);
    let result = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::CreatedAt.lt(cutoff))
        .filter(idempotency_keys::Column::CreatedAt.lte(upper))
        .exec(&ctx.db.writer)
        .await?;
    Ok(result.rows_affected)
}
