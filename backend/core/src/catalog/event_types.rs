//! Event types: the catalog of what a tenant sends, each with an optional JSON Schema that
//! messages of that type are validated against.

use chrono::Utc;
use hookline_types::{
    ApiKeyScope, EventTypeId, EventTypeIn, EventTypeOut, EventTypePatch, ListResponse, Patch, TenantId,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, ModelTrait, Order, QueryFilter, Set};
use serde_json::Value;

use crate::{
    Context,
    catalog::schemas,
    domain::{EventTypeName, RetrySchedule},
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    store::entities::event_types,
    store::is_unique_violation,
    store::pagination::{PageRequest, paginate, try_map},
    store::scope::TenantScoped,
    store::{from_json, to_json},
    tenancy::principal::Principal,
};

fn to_out(model: event_types::Model) -> CoreResult<EventTypeOut> {
    Ok(EventTypeOut {
        id: EventTypeId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        name: model.name,
        description: model.description,
        schema: model.schema,
        example: model.example,
        retry_schedule: model.retry_schedule.map(|v| from_json(v, "retry_schedule")).transpose()?,
        archived: model.archived,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

/// Checks that `schema` is a JSON Schema Hookline accepts ([`schemas::compile`]), and that
/// `example` (when given) satisfies it. Both run on the schema threads.
async fn validate_schema(
    ctx: &Context,
    errors: &mut Errors,
    schema: Option<&Value>,
    example: Option<&Value>,
) {
    let Some(schema) = schema else { return };
    let (schema, example) = (schema.clone(), example.cloned());
    let checked = ctx
        .schema_threads
        .run(move || {
            let validator = schemas::compile(&schema).map_err(|err| (&["body", "schema"], err))?;
            match example.map(|example| schemas::violations(&validator, &example)) {
                Some(found) if !found.is_empty() => {
                    let at = found[0].path.join("/");
                    Err((
                        &["body", "example"],
                        format!("does not match the schema at /{at}: {}", found[0].message),
                    ))
                }
                _ => Ok(()),
            }
        })
        .await;
    match checked {
        Ok(Ok(())) => {}
        Ok(Err((loc, msg))) => errors.push(loc, msg),
        Err(panic) => errors.push(&["body", "schema"], format!("the schema could not be checked: {panic}")),
    }
}

fn check_description(errors: &mut Errors, description: &str) {
    if description.chars().count() > 4096 {
        errors.push(&["body", "description"], "must be at most 4096 characters long");
    }
}

pub async fn create(ctx: &Context, principal: &Principal, input: EventTypeIn) -> CoreResult<EventTypeOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let mut errors = Errors::default();
    let name = errors.check(&["body", "name"], EventTypeName::parse(&input.name));
    check_description(&mut errors, &input.description);
    validate_schema(ctx, &mut errors, input.schema.as_ref(), input.example.as_ref()).await;
    if let Some(schedule) = &input.retry_schedule {
        errors.check(&["body", "retry_schedule"], RetrySchedule::new(schedule.clone()));
    }
    errors.into_result()?;
    let name = name.expect("checked above");
    let now = Utc::now();
    let model = event_types::ActiveModel {
        id: Set(EventTypeId::new_id().into_string()),
        tenant_id: Set(principal.tenant_id.to_string()),
        name: Set(name.as_str().to_owned()),
        description: Set(input.description),
        schema: Set(input.schema),
        example: Set(input.example),
        retry_schedule: Set(input.retry_schedule.as_ref().map(to_json)),
        archived: Set(input.archived),
        created_at: Set(now),
        updated_at: Set(now),
    };
    ctx.caches.schemas.clear();
    match model.insert(&ctx.db.writer).await {
        Ok(model) => to_out(model),
        Err(err) if is_unique_violation(&err) => Err(CoreError::conflict(
            "event_type_exists",
            format!("an event type named {name} already exists"),
        )),
        Err(err) => Err(err.into()),
    }
}

pub async fn list(
    ctx: &Context,
    principal: &Principal,
    page: &PageRequest,
) -> CoreResult<ListResponse<EventTypeOut>> {
    principal.require(ApiKeyScope::Read)?;
    let list = paginate(
        &ctx.db.conn,
        event_types::Entity::scoped(&principal.tenant_id),
        event_types::Column::Id,
        Order::Asc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    try_map(list, to_out)
}

pub(crate) async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    name: &str,
) -> CoreResult<Option<event_types::Model>> {
    Ok(event_types::Entity::scoped(tenant).filter(event_types::Column::Name.eq(name)).one(conn).await?)
}

async fn find_existing(ctx: &Context, tenant: &TenantId, name: &str) -> CoreResult<event_types::Model> {
    find(&ctx.db.conn, tenant, name).await?.ok_or(CoreError::NotFound("event type"))
}

pub async fn get(ctx: &Context, principal: &Principal, name: &str) -> CoreResult<EventTypeOut> {
    principal.require(ApiKeyScope::Read)?;
    to_out(find_existing(ctx, &principal.tenant_id, name).await?)
}

pub async fn patch(
    ctx: &Context,
    principal: &Principal,
    name: &str,
    patch: EventTypePatch,
) -> CoreResult<EventTypeOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let model = find_existing(ctx, &principal.tenant_id, name).await?;
    let schema = match patch.schema.into_update() {
        None => model.schema.clone(),
        Some(value) => value,
    };
    let example = match patch.example.into_update() {
        None => model.example.clone(),
        Some(value) => value,
    };
    let mut errors = Errors::default();
    if let Some(description) = &patch.description {
        check_description(&mut errors, description);
    }
    validate_schema(ctx, &mut errors, schema.as_ref(), example.as_ref()).await;
    if let Patch::Value(schedule) = &patch.retry_schedule {
        errors.check(&["body", "retry_schedule"], RetrySchedule::new(schedule.clone()));
    }
    errors.into_result()?;
    let mut active: event_types::ActiveModel = model.into();
    if let Some(schedule) = patch.retry_schedule.into_update() {
        active.retry_schedule = Set(schedule.as_ref().map(to_json));
    }
    if let Some(description) = patch.description {
        active.description = Set(description);
    }
    if let Some(archived) = patch.archived {
        active.archived = Set(archived);
    }
    active.schema = Set(schema);
    active.example = Set(example);
    active.updated_at = Set(Utc::now());
    let updated = to_out(active.update(&ctx.db.writer).await?);
    ctx.caches.schemas.clear();
    updated
}

/// The retry schedule of the tenant's event type `name`, if it has one (the engine asks when an
/// attempt of a message of that type failed at an endpoint without a schedule of its own).
pub async fn retry_schedule<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    name: &str,
) -> CoreResult<Option<RetrySchedule>> {
    find(conn, tenant, name)
        .await?
        .and_then(|model| model.retry_schedule)
        .map(crate::catalog::endpoints::stored_retry_schedule)
        .transpose()
}

/// Deletes the event type from the catalog. Messages already sent with that type keep it.
pub async fn delete(ctx: &Context, principal: &Principal, name: &str) -> CoreResult<()> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let model = find_existing(ctx, &principal.tenant_id, name).await?;
    model.delete(&ctx.db.writer).await?;
    ctx.caches.schemas.clear();
    Ok(())
}
