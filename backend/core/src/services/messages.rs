//! Messages: accepted durably (message row, payload row, usage counters and the fan-out queue
//! entry in one transaction) before the API answers. A message with an `event_id` already used for the same application
//! returns the original instead of creating a second one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hookline_types::{ApiKeyScope, AppId, IdOrUid, ListResponse, MessageId, MessageIn, MessageOut, TenantId};
use sea_orm::{ColumnTrait, ConnectionTrait, Order, QueryFilter};
use serde_json::Value;

use crate::{
    Context,
    domain::{EventTypeName, parse_channel},
    entities::{message_payloads, messages},
    error::{CoreError, CoreResult, Errors},
    ids::{NewId, time_boundary},
    pagination::{PageRequest, paginate},
    principal::Principal,
    scope::TenantScoped,
    services::{
        applications, event_types, from_json,
        ingest::{NewMessage, StoreError},
        to_json,
    },
};

const MAX_CHANNELS: usize = 10;
const MAX_EVENT_ID_LEN: usize = 256;

/// What `create` did: a new message, or the original one for a repeated `event_id`.
#[derive(Debug)]
pub struct Created {
    pub message: MessageOut,
    pub is_new: bool,
}

/// Filters of `GET /api/v1/app/{app}/msg`, validated.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

fn to_out(model: messages::Model, payload: Option<Value>) -> CoreResult<MessageOut> {
    Ok(MessageOut {
        id: MessageId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        app_id: AppId::parse(&model.app_id).map_err(|err| CoreError::Internal(err.into()))?,
        event_type: model.event_type,
        event_id: model.event_id,
        channels: from_json(model.channels, "channels")?,
        payload,
        created_at: model.created_at,
    })
}

fn parse_payload(text: &str) -> CoreResult<Value> {
    serde_json::from_str(text)
        .map_err(|err| CoreError::Internal(anyhow::anyhow!("stored payload unreadable: {err}")))
}

async fn load_payloads<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    ids: Vec<String>,
) -> CoreResult<HashMap<String, Value>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    message_payloads::Entity::scoped(tenant)
        .filter(message_payloads::Column::MessageId.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| Ok((row.message_id, parse_payload(&row.payload)?)))
        .collect()
}

async fn find_by_event_id<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    app_id: &str,
    event_id: &str,
) -> CoreResult<Option<MessageOut>> {
    let Some(model) = messages::Entity::scoped(tenant)
        .filter(messages::Column::AppId.eq(app_id))
        .filter(messages::Column::EventId.eq(event_id))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let mut payloads = load_payloads(conn, tenant, vec![model.id.clone()]).await?;
    let payload = payloads.remove(&model.id);
    Ok(Some(to_out(model, payload)?))
}

/// A message body that passed validation.
pub(crate) struct Validated {
    pub event_type: EventTypeName,
    pub channels: Vec<String>,
    pub payload_text: String,
}

/// Checks a message body (event type, payload, channels, event id, size) and reports every bad
/// field at once.
pub(crate) fn validate(ctx: &Context, input: &MessageIn) -> CoreResult<Validated> {
    let mut errors = Errors::default();
    let event_type = errors.check(&["body", "event_type"], EventTypeName::parse(&input.event_type));
    if !input.payload.is_object() {
        errors.push(&["body", "payload"], "must be a JSON object");
    }
    let channels = input.channels.clone().unwrap_or_default();
    if channels.len() > MAX_CHANNELS {
        errors.push(&["body", "channels"], format!("at most {MAX_CHANNELS} channels"));
    }
    for (idx, channel) in channels.iter().enumerate() {
        errors.check(&["body", "channels", &idx.to_string()], parse_channel(channel));
    }
    if let Some(event_id) = &input.event_id
        && (event_id.is_empty() || event_id.len() > MAX_EVENT_ID_LEN)
    {
        errors.push(&["body", "event_id"], format!("must be 1 to {MAX_EVENT_ID_LEN} characters long"));
    }
    errors.into_result()?;
    let payload_text = serde_json::to_string(&input.payload).expect("a Value always serializes");
    if payload_text.len() > ctx.config.max_payload_bytes {
        return Err(CoreError::PayloadTooLarge {
            size: payload_text.len(),
            limit: ctx.config.max_payload_bytes,
        });
    }
    Ok(Validated { event_type: event_type.expect("checked"), channels, payload_text })
}

/// Validates the payload against the event type's JSON Schema, when the type exists and has one.
pub(crate) async fn check_schema(
    ctx: &Context,
    tenant: &TenantId,
    event_type: &str,
    payload: &Value,
) -> CoreResult<()> {
    let key = (tenant.clone(), event_type.to_owned());
    let validator = match ctx.caches.schemas.get(&key) {
        Some(cached) => cached,
        None => {
            let compiled =
                match event_types::find(&ctx.db.conn, tenant, event_type).await?.and_then(|m| m.schema) {
                    None => None,
                    Some(schema) => {
                        Some(std::sync::Arc::new(jsonschema::validator_for(&schema).map_err(|err| {
                            CoreError::Internal(anyhow::anyhow!(
                                "stored schema of {event_type} is invalid: {err}"
                            ))
                        })?))
                    }
                };
            ctx.caches.schemas.insert(key, compiled.clone());
            compiled
        }
    };
    let Some(validator) = validator else {
        return Ok(());
    };
    let errors: Vec<_> = validator
        .iter_errors(payload)
        .take(20)
        .map(|err| {
            let mut loc = vec!["body".to_owned(), "payload".to_owned()];
            loc.extend(
                err.instance_path
                    .as_str()
                    .split('/')
                    .filter(|segment| !segment.is_empty())
                    .map(str::to_owned),
            );
            hookline_types::FieldError { loc, msg: err.to_string() }
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(CoreError::Validation(errors)) }
}

pub async fn create(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    input: MessageIn,
) -> CoreResult<Created> {
    create_for(ctx, principal, app, input, None).await
}

/// Sends a test event (`hookline.test`) to one endpoint only, whatever its filters.
pub async fn send_test(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<hookline_types::EndpointId>,
) -> CoreResult<MessageOut> {
    principal.require(ApiKeyScope::Write)?;
    let app_model = applications::find(&ctx.db.conn, &principal.tenant_id, app).await?;
    let endpoint =
        crate::services::endpoints::find(&ctx.db.conn, &principal.tenant_id, &app_model.id, endpoint).await?;
    let input = MessageIn {
        event_type: "hookline.test".to_owned(),
        payload: serde_json::json!({"type": "hookline.test", "endpoint_id": endpoint.id, "sent_at": Utc::now()}),
        event_id: None,
        channels: None,
    };
    Ok(create_for(ctx, principal, app, input, Some(&endpoint.id)).await?.message)
}

async fn create_for(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    input: MessageIn,
    only_endpoint: Option<&str>,
) -> CoreResult<Created> {
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let Validated { event_type, channels, payload_text } = validate(ctx, &input)?;
    let app = applications::find_cached(ctx, tenant, app).await?;
    if let Some(event_id) = &input.event_id
        && let Some(original) = find_by_event_id(&ctx.db.conn, tenant, &app.id, event_id).await?
    {
        return Ok(Created { message: original, is_new: false });
    }
    check_schema(ctx, tenant, event_type.as_str(), &input.payload).await?;

    let app_id = AppId::parse(&app.id).map_err(|err| CoreError::Internal(err.into()))?;
    let id = MessageId::new_id();
    let now = Utc::now();
    let new = NewMessage {
        id: id.to_string(),
        tenant_id: tenant.clone(),
        app_id,
        event_type: event_type.as_str().to_owned(),
        event_id: input.event_id.clone(),
        channels: to_json(&channels),
        payload_text,
        only_endpoint: only_endpoint.map(str::to_owned),
        created_at: now,
    };
    match ctx.ingest.store(new.clone()).await {
        Ok(()) => {}
        Err(StoreError::DuplicateEventId) => {
            // A concurrent request with the same event_id won the race: answer with its message.
            let event_id = input.event_id.as_deref().unwrap_or_default();
            let original = find_by_event_id(&ctx.db.conn, tenant, &app.id, event_id)
                .await?
                .ok_or_else(|| CoreError::Internal(anyhow::anyhow!("event_id conflict without a message")))?;
            return Ok(Created { message: original, is_new: false });
        }
        Err(StoreError::Database(err)) => return Err(err.into()),
        Err(StoreError::Stopped) => {
            return Err(CoreError::Internal(anyhow::anyhow!("the ingest writer stopped")));
        }
    }
    let model = messages::Model {
        id: new.id,
        tenant_id: tenant.to_string(),
        app_id: app.id.clone(),
        event_type: new.event_type,
        event_id: new.event_id,
        channels: new.channels,
        payload_size: new.payload_text.len() as i64,
        created_at: now,
    };
    Ok(Created { message: to_out(model, Some(input.payload))?, is_new: true })
}

pub async fn list(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    filter: &MessageFilter,
    page: &PageRequest,
) -> CoreResult<ListResponse<MessageOut>> {
    principal.require(ApiKeyScope::Read)?;
    let tenant = &principal.tenant_id;
    let app = applications::find(&ctx.db.conn, tenant, app).await?;
    let mut select = messages::Entity::scoped(tenant).filter(messages::Column::AppId.eq(app.id.as_str()));
    if !filter.event_types.is_empty() {
        select = select.filter(messages::Column::EventType.is_in(filter.event_types.clone()));
    }
    // Time bounds become id bounds: ids start with their creation time, so the primary index
    // answers them.
    if let Some(after) = filter.after {
        select = select.filter(messages::Column::Id.gte(time_boundary(MessageId::PREFIX, after)));
    }
    if let Some(before) = filter.before {
        select = select.filter(messages::Column::Id.lt(time_boundary(MessageId::PREFIX, before)));
    }
    let list = paginate(
        &ctx.db.conn,
        select,
        messages::Column::Id,
        Order::Desc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    // Channel filtering happens on the page rather than in SQL: channels are a JSON array, and
    // SQLite and PostgreSQL query those differently. The search issue moves this into the index.
    let rows: Vec<_> = list
        .data
        .into_iter()
        .filter(|model| {
            filter.channel.as_ref().is_none_or(|channel| {
                model
                    .channels
                    .as_array()
                    .is_some_and(|channels| channels.iter().any(|c| c.as_str() == Some(channel.as_str())))
            })
        })
        .collect();
    let mut payloads =
        load_payloads(&ctx.db.conn, tenant, rows.iter().map(|m| m.id.clone()).collect()).await?;
    Ok(ListResponse {
        data: rows
            .into_iter()
            .map(|model| {
                let payload = payloads.remove(&model.id);
                to_out(model, payload)
            })
            .collect::<CoreResult<_>>()?,
        iterator: list.iterator,
        done: list.done,
    })
}

pub async fn get(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    id: &MessageId,
) -> CoreResult<MessageOut> {
    principal.require(ApiKeyScope::Read)?;
    let tenant = &principal.tenant_id;
    let app = applications::find(&ctx.db.conn, tenant, app).await?;
    let model = messages::Entity::scoped(tenant)
        .filter(messages::Column::AppId.eq(app.id.as_str()))
        .filter(messages::Column::Id.eq(id.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("message"))?;
    let mut payloads = load_payloads(&ctx.db.conn, tenant, vec![model.id.clone()]).await?;
    let payload = payloads.remove(&model.id);
    to_out(model, payload)
}
