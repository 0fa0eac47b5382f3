//! `Idempotency-Key` on POST requests: the first request with a key runs and its response is
//! stored; a repeat with the same key and the same request gets the stored response; a repeat
//! while the first still runs gets a conflict; the same key with a different request is refused.
//! Keys are per tenant and per principal (the credential that made the request), and kept for 24
//! hours: another credential of the tenant never gets the replay, and its requests with the same
//! key run on their own. A response that carries a secret (a new API key, a portal token) is
//! never stored: the record is `withheld`, and a repeat is refused instead of replayed.

use chrono::{Duration, Utc};
use hookline_types::TenantId;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};

use crate::{
    Context, error::CoreResult, store::entities::idempotency_keys, store::is_unique_violation,
    store::scope::TenantScoped,
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
    /// The first request's response carried a secret, which is shown once and not stored.
    Withheld,
}

/// Whose record a key names: the credential that made the request.
pub fn principal_key(principal: &crate::Principal) -> String {
    use crate::tenancy::principal::PrincipalKind;
    match &principal.kind {
        PrincipalKind::ApiKey { id, .. } => format!("key:{id}"),
        PrincipalKind::Session { user_id, .. } => format!("user:{user_id}"),
        PrincipalKind::Portal { app_id, read_only } => {
            format!("portal:{app_id}:{}", if *read_only { "ro" } else { "rw" })
        }
    }
}

pub async fn begin(
    ctx: &Context,
    tenant: &TenantId,
    principal: &str,
    key: &str,
    fingerprint: &str,
) -> CoreResult<Begin> {
    let now = Utc::now();
    let fresh = || idempotency_keys::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        principal: Set(principal.to_owned()),
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
        .filter(idempotency_keys::Column::Principal.eq(principal))
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
            .filter(idempotency_keys::Column::Principal.eq(principal))
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
        (WITHHELD, ..) => Ok(Begin::Withheld),
        _ => Ok(Begin::InFlight),
    }
}

const WITHHELD: &str = "withheld";

/// Stores the response for replays; `body` is `None` when it carried a secret, which is never
/// stored (the record is then `withheld`).
pub async fn finish(
    ctx: &Context,
    tenant: &TenantId,
    principal: &str,
    key: &str,
    status: u16,
    body: Option<String>,
) -> CoreResult<()> {
    let state = if body.is_some() { "done" } else { WITHHELD };
    idempotency_keys::Entity::scoped_update(tenant)
        .col_expr(idempotency_keys::Column::State, Expr::value(state))
        .col_expr(idempotency_keys::Column::ResponseStatus, Expr::value(i32::from(status)))
        .col_expr(idempotency_keys::Column::ResponseBody, Expr::value(body))
        .filter(idempotency_keys::Column::Principal.eq(principal))
        .filter(idempotency_keys::Column::Key.eq(key))
        .exec(&ctx.db.writer)
        .await?;
    Ok(())
}

/// Forgets the key, so that a request that failed on our side can be retried with it.
pub async fn abandon(ctx: &Context, tenant: &TenantId, principal: &str, key: &str) -> CoreResult<()> {
    idempotency_keys::Entity::scoped_delete(tenant)
        .filter(idempotency_keys::Column::Principal.eq(principal))
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
