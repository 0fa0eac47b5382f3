//! Applications: one per customer of the tenant, addressed by id or by the tenant's own `uid`.

use chrono::Utc;
use hookline_types::{
    ApiKeyScope, AppId, ApplicationIn, ApplicationOut, ApplicationPatch, IdOrUid, ListResponse, Metadata,
    TenantId, validate_uid,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, Order, QueryFilter, QuerySelect, Set};

use crate::{
    Context,
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    store::entities::{
        app_rate_buckets, applications, attempts, deliveries, endpoint_health, endpoints, message_payloads,
        messages, payload_fetches, source_order, source_requests, sources,
    },
    store::from_json,
    store::is_unique_violation,
    store::pagination::{PageRequest, paginate, try_map},
    store::scope::TenantScoped,
    store::to_json,
    tenancy::principal::Principal,
};

pub const MAX_RATE_LIMIT: u32 = 100_000;

fn to_out(model: applications::Model) -> CoreResult<ApplicationOut> {
    Ok(ApplicationOut {
        id: AppId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        uid: model.uid,
        name: model.name,
        metadata: from_json(model.metadata, "metadata")?,
        rate_limit: model.rate_limit.map(|n| n as u32),
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

pub(crate) fn check_metadata(errors: &mut Errors, metadata: &Metadata) {
    if metadata.len() > 50
        || metadata.iter().any(|(k, v)| k.chars().count() > 256 || v.chars().count() > 1024)
    {
        errors.push(
            &["body", "metadata"],
            "at most 50 entries, keys up to 256 and values up to 1024 characters",
        );
    }
}

pub(crate) fn check_rate_limit(errors: &mut Errors, rate_limit: Option<u32>) {
    if rate_limit.is_some_and(|n| n == 0 || n > MAX_RATE_LIMIT) {
        errors.push(&["body", "rate_limit"], format!("must be 1 to {MAX_RATE_LIMIT} per second"));
    }
}

fn check_name(errors: &mut Errors, name: &str) {
    if name.trim().is_empty() || name.chars().count() > 256 {
        errors.push(&["body", "name"], "must be 1 to 256 characters long");
    }
}

fn uid_taken(uid: &str) -> CoreError {
    CoreError::conflict("uid_taken", format!("another application already has uid {uid:?}"))
}

/// Finds one of the tenant's applications by id or uid.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    app: &IdOrUid<AppId>,
) -> CoreResult<applications::Model> {
    let select = applications::Entity::scoped(tenant);
    let select = match app {
        IdOrUid::Id(id) => select.filter(applications::Column::Id.eq(id.as_str())),
        IdOrUid::Uid(uid) => select.filter(applications::Column::Uid.eq(uid.as_str())),
    };
    select.one(conn).await?.ok_or(CoreError::NotFound("application"))
}

/// The application `app` as `principal` may see it: within its tenant, and for a portal token
/// only the token's own application (any other answers 404, like another tenant's).
pub async fn find_for<C: ConnectionTrait>(
    conn: &C,
    principal: &Principal,
    app: &IdOrUid<AppId>,
) -> CoreResult<applications::Model> {
    let model = find(conn, &principal.tenant_id, app).await?;
    check_visible(principal, model)
}

fn check_visible(principal: &Principal, model: applications::Model) -> CoreResult<applications::Model> {
    match principal.only_app() {
        Some(only) if only.as_str() != model.id => Err(CoreError::NotFound("application")),
        _ => Ok(model),
    }
}

/// [`find_for`] through the short-lived cache, for the message hot path.
pub async fn find_cached_for(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
) -> CoreResult<applications::Model> {
    check_visible(principal, find_cached(ctx, &principal.tenant_id, app).await?)
}

/// [`find`] through the short-lived cache, for the message hot path.
pub async fn find_cached(
    ctx: &Context,
    tenant: &TenantId,
    app: &IdOrUid<AppId>,
) -> CoreResult<applications::Model> {
    let key = (tenant.clone(), AppRef::from(app));
    if let Some(model) = ctx.caches.applications.get(&key) {
        return Ok(model);
    }
    let model = match find(&ctx.db.conn, tenant, app).await {
        Ok(model) => model,
        Err(err) => {
            if matches!(err, CoreError::NotFound(_)) {
                // Deleted by another process while cached: no longer served to anyone.
                ctx.caches.applications.remove(&key);
            }
            return Err(err);
        }
    };
    ctx.caches.applications.insert(key, model.clone());
    Ok(model)
}

pub async fn create(
    ctx: &Context,
    principal: &Principal,
    input: ApplicationIn,
) -> CoreResult<ApplicationOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let mut errors = Errors::default();
    check_name(&mut errors, &input.name);
    if let Some(uid) = &input.uid {
        errors.check(&["body", "uid"], validate_uid(uid, AppId::PREFIX));
    }
    check_metadata(&mut errors, &input.metadata);
    check_rate_limit(&mut errors, input.rate_limit);
    errors.into_result()?;
    crate::tenancy::plans::require_room_for_application(ctx, &principal.tenant_id).await?;
    let now = Utc::now();
    let model = applications::ActiveModel {
        id: Set(AppId::new_id().into_string()),
        tenant_id: Set(principal.tenant_id.to_string()),
        uid: Set(input.uid.clone()),
        name: Set(input.name.trim().to_owned()),
        metadata: Set(to_json(&input.metadata)),
        rate_limit: Set(input.rate_limit.map(|n| n as i32)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(&ctx.db.writer).await {
        Ok(model) => to_out(model),
        Err(err) if is_unique_violation(&err) => Err(uid_taken(input.uid.as_deref().unwrap_or_default())),
        Err(err) => Err(err.into()),
    }
}

pub async fn list(
    ctx: &Context,
    principal: &Principal,
    page: &PageRequest,
) -> CoreResult<ListResponse<ApplicationOut>> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Read)?;
    let list = paginate(
        &ctx.db.conn,
        applications::Entity::scoped(&principal.tenant_id),
        applications::Column::Id,
        Order::Asc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    try_map(list, to_out)
}

pub async fn get(ctx: &Context, principal: &Principal, app: &IdOrUid<AppId>) -> CoreResult<ApplicationOut> {
    principal.require(ApiKeyScope::Read)?;
    to_out(find_for(&ctx.db.conn, principal, app).await?)
}

pub async fn patch(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    patch: ApplicationPatch,
) -> CoreResult<ApplicationOut> {
    principal.require_tenant_wide("application")?;
    principal.require(ApiKeyScope::Write)?;
    let model = find(&ctx.db.conn, &principal.tenant_id, app).await?;
    let mut errors = Errors::default();
    if let Some(name) = &patch.name {
        check_name(&mut errors, name);
    }
    if let hookline_types::Patch::Value(uid) = &patch.uid {
        errors.check(&["body", "uid"], validate_uid(uid, AppId::PREFIX));
    }
    if let Some(metadata) = &patch.metadata {
        check_metadata(&mut errors, metadata);
    }
    if let hookline_types::Patch::Value(rate_limit) = patch.rate_limit {
        check_rate_limit(&mut errors, Some(rate_limit));
    }
    errors.into_result()?;
    let mut active: applications::ActiveModel = model.into();
    if let Some(name) = patch.name {
        active.name = Set(name.trim().to_owned());
    }
    let new_uid = patch.uid.into_update();
    if let Some(uid) = new_uid.clone() {
        active.uid = Set(uid);
    }
    if let Some(metadata) = patch.metadata {
        active.metadata = Set(to_json(&metadata));
    }
    if let Some(rate_limit) = patch.rate_limit.into_update() {
        active.rate_limit = Set(rate_limit.map(|n| n as i32));
    }
    active.updated_at = Set(Utc::now());
    ctx.caches.applications.clear();
    match active.update(&ctx.db.writer).await {
        Ok(model) => to_out(model),
        Err(err) if is_unique_violation(&err) => {
            Err(uid_taken(new_uid.flatten().as_deref().unwrap_or_default()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Deletes the application with its endpoints, messages, deliveries, attempts and inbound sources.
pub async fn delete(ctx: &Context, principal: &Principal, app: &IdOrUid<AppId>) -> CoreResult<()> {
    principal.require_tenant_wide("application")?;
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let txn = ctx.db.begin_write().await?;
    let model = find(&txn, tenant, app).await?;
    let app_id = model.id.as_str();
    attempts::Entity::scoped_delete(tenant).filter(attempts::Column::AppId.eq(app_id)).exec(&txn).await?;
    payload_fetches::Entity::scoped_delete(tenant)
        .filter(payload_fetches::Column::AppId.eq(app_id))
        .exec(&txn)
        .await?;
    deliveries::Entity::scoped_delete(tenant).filter(deliveries::Column::AppId.eq(app_id)).exec(&txn).await?;
    let app_messages = || {
        sea_orm::sea_query::Query::select()
            .column(messages::Column::Id)
            .from(messages::Entity)
            .and_where(messages::Column::TenantId.eq(tenant.as_str()))
            .and_where(messages::Column::AppId.eq(app_id))
            .to_owned()
    };
    // The claim-checked payloads' objects go after the commit.
    let objects: Vec<Option<String>> = message_payloads::Entity::scoped(tenant)
        .select_only()
        .column(message_payloads::Column::ObjectKey)
        .filter(message_payloads::Column::ObjectKey.is_not_null())
        .filter(message_payloads::Column::MessageId.in_subquery(app_messages()))
        .into_tuple()
        .all(&txn)
        .await?;
    message_payloads::Entity::scoped_delete(tenant)
        .filter(
            message_payloads::Column::MessageId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(messages::Column::Id)
                    .from(messages::Entity)
                    .and_where(messages::Column::TenantId.eq(tenant.as_str()))
                    .and_where(messages::Column::AppId.eq(app_id))
                    .to_owned(),
            ),
        )
        .exec(&txn)
        .await?;
    messages::Entity::scoped_delete(tenant).filter(messages::Column::AppId.eq(app_id)).exec(&txn).await?;
    endpoint_health::Entity::scoped_delete(tenant)
        .filter(
            endpoint_health::Column::EndpointId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(endpoints::Column::Id)
                    .from(endpoints::Entity)
                    .and_where(endpoints::Column::TenantId.eq(tenant.as_str()))
                    .and_where(endpoints::Column::AppId.eq(app_id))
                    .to_owned(),
            ),
        )
        .exec(&txn)
        .await?;
    endpoints::Entity::scoped_delete(tenant).filter(endpoints::Column::AppId.eq(app_id)).exec(&txn).await?;
    app_rate_buckets::Entity::scoped_delete(tenant)
        .filter(app_rate_buckets::Column::AppId.eq(app_id))
        .exec(&txn)
        .await?;
    // The application's inbound sources go with it (their ingest URLs stop answering).
    let app_sources = || {
        sea_orm::sea_query::Query::select()
            .column(sources::Column::Id)
            .from(sources::Entity)
            .and_where(sources::Column::TenantId.eq(tenant.as_str()))
            .and_where(sources::Column::AppId.eq(app_id))
            .to_owned()
    };
    source_requests::Entity::scoped_delete(tenant)
        .filter(source_requests::Column::SourceId.in_subquery(app_sources()))
        .exec(&txn)
        .await?;
    source_order::Entity::scoped_delete(tenant)
        .filter(source_order::Column::SourceId.in_subquery(app_sources()))
        .exec(&txn)
        .await?;
    sources::Entity::scoped_delete(tenant).filter(sources::Column::AppId.eq(app_id)).exec(&txn).await?;
    applications::Entity::scoped_delete(tenant)
        .filter(applications::Column::Id.eq(app_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    ctx.caches.applications.clear();
    ctx.caches.sources.clear();
    crate::objects::release(&ctx.db, &ctx.objects, objects.into_iter().flatten().collect()).await?;
    Ok(())
}

/// `IdOrUid<AppId>` as a hashable key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum AppRef {
    Id(String),
    Uid(String),
}

impl From<&hookline_types::IdOrUid<hookline_types::AppId>> for AppRef {
    fn from(app: &hookline_types::IdOrUid<hookline_types::AppId>) -> Self {
        match app {
            hookline_types::IdOrUid::Id(id) => AppRef::Id(id.to_string()),
            hookline_types::IdOrUid::Uid(uid) => AppRef::Uid(uid.clone()),
        }
    }
}
