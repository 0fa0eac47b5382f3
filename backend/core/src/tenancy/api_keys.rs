//! API keys: `hl_live_…` / `hl_test_…`, shown once, stored as a SHA-256 hash with a short prefix
//! for recognition, with scopes, expiry, revocation and `last_used_at`.

use chrono::{Duration, Utc};
use hookline_types::{
    ApiKeyCreatedOut, ApiKeyId, ApiKeyIn, ApiKeyMode, ApiKeyOut, ApiKeyScope, ListResponse, TenantId,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, Set, sea_query::Expr,
};

use crate::{
    Context, crypto,
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    store::entities::api_keys,
    store::from_json,
    store::pagination::{PageRequest, paginate, try_map},
    store::scope::TenantScoped,
    store::to_json,
    tenancy::principal::{Principal, PrincipalKind},
};

/// How many characters of the key are kept in clear to recognise it (`hl_live_AbC1`).
const PREFIX_LEN: usize = 12;

/// `last_used_at` is written at most this often per key, so a busy key does not turn every
/// request into a write.
const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

fn to_out(model: api_keys::Model) -> CoreResult<ApiKeyOut> {
    Ok(ApiKeyOut {
        id: ApiKeyId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        name: model.name,
        prefix: model.prefix,
        scopes: from_json(model.scopes, "scopes")?,
        created_at: model.created_at,
        last_used_at: model.last_used_at,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
    })
}

pub(crate) async fn insert<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    input: ApiKeyIn,
) -> CoreResult<ApiKeyCreatedOut> {
    let mut errors = Errors::default();
    if input.name.trim().is_empty() || input.name.chars().count() > 256 {
        errors.push(&["body", "name"], "must be 1 to 256 characters long");
    }
    let mut scopes = input.scopes.unwrap_or_else(|| vec![ApiKeyScope::Admin]);
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        errors.push(&["body", "scopes"], "must name at least one scope");
    }
    if input.expires_at.is_some_and(|at| at <= Utc::now()) {
        errors.push(&["body", "expires_at"], "must be in the future");
    }
    errors.into_result()?;

    let key = crypto::generate_api_key(input.mode == ApiKeyMode::Test);
    let model = api_keys::ActiveModel {
        id: Set(ApiKeyId::new_id().into_string()),
        tenant_id: Set(tenant.to_string()),
        name: Set(input.name.trim().to_owned()),
        prefix: Set(key[..PREFIX_LEN].to_owned()),
        key_hash: Set(crypto::hash_token(&key)),
        scopes: Set(to_json(&scopes)),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        expires_at: Set(input.expires_at),
        revoked_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(ApiKeyCreatedOut { key, api_key: to_out(model)? })
}

pub async fn create(ctx: &Context, principal: &Principal, input: ApiKeyIn) -> CoreResult<ApiKeyCreatedOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Admin)?;
    // A key cannot mint a key stronger than itself.
    if let Some(scopes) = &input.scopes
        && scopes.iter().any(|scope| *scope > principal.max_scope())
    {
        return Err(CoreError::Forbidden {
            code: "insufficient_scope",
            detail: "a key cannot be given a scope its creator lacks".to_owned(),
        });
    }
    insert(&ctx.db.writer, &principal.tenant_id, input).await
}

pub async fn list(
    ctx: &Context,
    principal: &Principal,
    page: &PageRequest,
) -> CoreResult<ListResponse<ApiKeyOut>> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Admin)?;
    let list = paginate(
        &ctx.db.conn,
        api_keys::Entity::scoped(&principal.tenant_id),
        api_keys::Column::Id,
        Order::Desc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    try_map(list, to_out)
}

/// Revokes a key; it stops working at once. Revoking twice is not an error.
pub async fn revoke(ctx: &Context, principal: &Principal, id: &ApiKeyId) -> CoreResult<ApiKeyOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Admin)?;
    let model = api_keys::Entity::scoped(&principal.tenant_id)
        .filter(api_keys::Column::Id.eq(id.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("api key"))?;
    if model.revoked_at.is_some() {
        return to_out(model);
    }
    let mut active: api_keys::ActiveModel = model.into();
    active.revoked_at = Set(Some(Utc::now()));
    let revoked = to_out(active.update(&ctx.db.writer).await?)?;
    // Stop honouring it in this process at once (others within the cache's few seconds).
    ctx.caches.api_keys.retain(|_, cached| {
        !matches!(&cached.principal.kind, PrincipalKind::ApiKey { id: cached_id, .. } if cached_id == id)
    });
    Ok(revoked)
}

/// Resolves a presented key to its principal. Unknown, revoked and expired keys all answer the
/// same `Unauthenticated`, so a caller cannot probe which keys exist.
pub async fn authenticate(ctx: &Context, key: &str) -> CoreResult<Principal> {
    const INVALID: CoreError = CoreError::Unauthenticated("invalid, revoked or expired API key");
    if !(key.starts_with("hl_live_") || key.starts_with("hl_test_")) {
        return Err(INVALID);
    }
    let hash = crypto::hash_token(key);
    if let Some(cached) = ctx.caches.api_keys.get(&hash) {
        if cached.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(INVALID);
        }
        return Ok(cached.principal);
    }
    // Pre-authentication lookup by hash: there is no tenant yet, and the hash is unique.
    let found = api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash.as_str()))
        .one(&ctx.db.conn)
        .await?;
    let now = Utc::now();
    let Some(model) = found.filter(|m| m.revoked_at.is_none() && m.expires_at.is_none_or(|at| at > now))
    else {
        // Revoked (perhaps by another process) while cached: the old entry must not be served to
        // the requests that come while this one reloads it.
        ctx.caches.api_keys.remove(&hash);
        return Err(INVALID);
    };
    if model.last_used_at.is_none_or(|at| now - at > LAST_USED_GRANULARITY) {
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(now))
            .filter(api_keys::Column::Id.eq(model.id.as_str()))
            .exec(&ctx.db.writer)
            .await?;
    }
    let principal = Principal {
        tenant_id: TenantId::parse(&model.tenant_id).map_err(|err| CoreError::Internal(err.into()))?,
        kind: PrincipalKind::ApiKey {
            id: ApiKeyId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
            scopes: from_json(model.scopes, "scopes")?,
        },
    };
    ctx.caches
        .api_keys
        .insert(hash, CachedKey { principal: principal.clone(), expires_at: model.expires_at });
    Ok(principal)
}

/// A cached API key: its principal and when it stops being valid.
#[derive(Clone)]
pub struct CachedKey {
    pub principal: crate::tenancy::principal::Principal,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}
