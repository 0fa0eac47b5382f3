//! The attempt log and delivery states, read side.

use hookline_types::{
    ApiKeyScope, AppId, AttemptId, AttemptOut, DeliveryId, DeliveryOut, EndpointId, IdOrUid, ListResponse,
    MessageId,
};
use sea_orm::{ColumnTrait, Order, QueryFilter, QueryOrder};

use crate::{
    Context,
    catalog::applications,
    catalog::endpoints,
    error::{CoreError, CoreResult},
    ids::time_boundary,
    store::entities::{attempts, deliveries, messages},
    store::pagination::{PageRequest, paginate, try_map},
    store::scope::TenantScoped,
    tenancy::principal::Principal,
};

fn parse<T>(value: &str, parse: impl Fn(&str) -> Result<T, hookline_types::IdError>) -> CoreResult<T> {
    parse(value).map_err(|err| CoreError::Internal(err.into()))
}

fn to_out(model: attempts::Model) -> CoreResult<AttemptOut> {
    let status = match model.error_class.as_deref() {
        None => "succeeded",
        Some("filtered") => "filtered",
        Some(_) => "failed",
    };
    Ok(AttemptOut {
        id: parse(&model.id, AttemptId::parse)?,
        message_id: parse(&model.message_id, MessageId::parse)?,
        endpoint_id: parse(&model.endpoint_id, EndpointId::parse)?,
        url: model.url,
        status: status.to_owned(),
        response_status_code: model.response_status.map(|s| s as u16),
        error_class: model.error_class,
        error_detail: model.error_detail,
        request_headers: model.request_headers,
        response_headers: model.response_headers,
        response_body: model.response_body,
        duration_ms: model.duration_ms.max(0) as u32,
        trigger: model.trigger,
        payload_mode: model.payload_mode.unwrap_or_else(|| "full".to_owned()),
        request_body: model.request_body,
        created_at: model.created_at,
    })
}

pub(crate) fn delivery_out(model: deliveries::Model) -> CoreResult<DeliveryOut> {
    Ok(DeliveryOut {
        id: parse(&model.id, DeliveryId::parse)?,
        message_id: parse(&model.message_id, MessageId::parse)?,
        endpoint_id: parse(&model.endpoint_id, EndpointId::parse)?,
        status: model.status,
        attempt_count: model.attempt_count.max(0) as u32,
        next_attempt_at: model.next_attempt_at,
        last_attempt_at: model.last_attempt_at,
        last_response_status_code: model.last_response_status.map(|s| s as u16),
    })
}

/// Filters of the application-wide attempt list.
#[derive(Clone, Debug, Default)]
pub struct AttemptFilter {
    pub endpoint: Option<IdOrUid<EndpointId>>,
    /// `succeeded` or `failed`.
    pub status: Option<String>,
    /// 1 to 5: only responses with a status code in that class (`2xx` is 2).
    pub status_code_class: Option<u16>,
    pub message: Option<MessageId>,
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    pub before: Option<chrono::DateTime<chrono::Utc>>,
}

async fn message_in_app(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    message: &MessageId,
) -> CoreResult<messages::Model> {
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    messages::Entity::scoped(&principal.tenant_id)
        .filter(messages::Column::AppId.eq(app.id.as_str()))
        .filter(messages::Column::Id.eq(message.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("message"))
}

pub async fn list_for_message(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    message: &MessageId,
    page: &PageRequest,
) -> CoreResult<ListResponse<AttemptOut>> {
    principal.require(ApiKeyScope::Read)?;
    let message = message_in_app(ctx, principal, app, message).await?;
    let select = attempts::Entity::scoped(&principal.tenant_id)
        .filter(attempts::Column::MessageId.eq(message.id.as_str()));
    let list =
        paginate(&ctx.db.conn, select, attempts::Column::Id, Order::Desc, page, |m| m, |m| m.id.clone())
            .await?;
    try_map(list, to_out)
}

pub async fn list_for_app(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    filter: &AttemptFilter,
    page: &PageRequest,
) -> CoreResult<ListResponse<AttemptOut>> {
    principal.require(ApiKeyScope::Read)?;
    let tenant = &principal.tenant_id;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let mut select = attempts::Entity::scoped(tenant).filter(attempts::Column::AppId.eq(app.id.as_str()));
    if let Some(endpoint) = &filter.endpoint {
        let endpoint = endpoints::find(&ctx.db.conn, tenant, &app.id, endpoint).await?;
        select = select.filter(attempts::Column::EndpointId.eq(endpoint.id));
    }
    match filter.status.as_deref() {
        Some("succeeded") => select = select.filter(attempts::Column::ErrorClass.is_null()),
        Some("failed") => select = select.filter(attempts::Column::ErrorClass.is_not_null()),
        _ => {}
    }
    if let Some(class) = filter.status_code_class {
        let low = i32::from(class) * 100;
        select = select
            .filter(attempts::Column::ResponseStatus.gte(low))
            .filter(attempts::Column::ResponseStatus.lt(low + 100));
    }
    if let Some(message) = &filter.message {
        select = select.filter(attempts::Column::MessageId.eq(message.as_str()));
    }
    // Attempt ids start with their creation time: time bounds are id bounds.
    if let Some(after) = filter.after {
        select = select.filter(attempts::Column::Id.gte(time_boundary(AttemptId::PREFIX, after)));
    }
    if let Some(before) = filter.before {
        select = select.filter(attempts::Column::Id.lt(time_boundary(AttemptId::PREFIX, before)));
    }
    let list =
        paginate(&ctx.db.conn, select, attempts::Column::Id, Order::Desc, page, |m| m, |m| m.id.clone())
            .await?;
    try_map(list, to_out)
}

pub async fn get(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    id: &AttemptId,
) -> CoreResult<AttemptOut> {
    principal.require(ApiKeyScope::Read)?;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let model = attempts::Entity::scoped(&principal.tenant_id)
        .filter(attempts::Column::AppId.eq(app.id.as_str()))
        .filter(attempts::Column::Id.eq(id.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("attempt"))?;
    to_out(model)
}

/// The message's deliveries (one per endpoint it was fanned out to).
pub async fn deliveries_of_message(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    message: &MessageId,
) -> CoreResult<Vec<DeliveryOut>> {
    principal.require(ApiKeyScope::Read)?;
    let message = message_in_app(ctx, principal, app, message).await?;
    deliveries::Entity::scoped(&principal.tenant_id)
        .filter(deliveries::Column::MessageId.eq(message.id.as_str()))
        .order_by_asc(deliveries::Column::Id)
        .all(&ctx.db.conn)
        .await?
        .into_iter()
        .map(delivery_out)
        .collect()
}
