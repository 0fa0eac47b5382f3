//! Messages: accepted durably (message row, payload row, usage counters and the fan-out queue
//! entry in one transaction) before the API answers. A message with an `event_id` already used for the same application
//! returns the original instead of creating a second one.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use hookline_types::{
    ApiKeyScope, AppId, EndpointId, IdOrUid, ListResponse, MessageId, MessageIn, MessageOut, TenantId,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Order, QueryFilter,
    sea_query::{Alias, Expr, ExprTrait, Query},
};
use serde_json::{Value, value::RawValue};

use crate::{
    Context,
    catalog::applications,
    catalog::endpoints,
    catalog::event_types,
    delivery::{PENDING, SENDING},
    domain::{EventTypeName, parse_channel},
    error::{CoreError, CoreResult, Errors},
    ids::{NewId, time_boundary},
    ingest::operational,
    ingest::{NewMessage, PlanRate, Quota, StoreError},
    store::custom_sql,
    store::entities::{deliveries, message_payloads, messages},
    store::from_json,
    store::pagination::{PageRequest, paginate},
    store::scope::TenantScoped,
    store::to_json,
    tenancy::plans,
    tenancy::principal::Principal,
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
    /// Messages with a delivery in one of these states (`pending` includes `sending`), to
    /// `endpoint` when given.
    pub statuses: Vec<String>,
    /// Messages with a delivery to this endpoint.
    pub endpoint: Option<IdOrUid<EndpointId>>,
    /// Words that must all appear in the payload (full-text search).
    pub q: Option<String>,
    pub event_id: Option<String>,
    /// Load and return each message's payload (`with_content=false` leaves them out: no payload
    /// rows or objects are read).
    pub with_content: bool,
}

/// A payload search without `after` looks this far back, so it stays fast on a large table.
pub const SEARCH_DEFAULT_WINDOW_DAYS: i64 = 30;

/// The PostgreSQL payload search: the words (first value) among the tenant's (second) payloads
/// from a message id on (third). The full-text index (`idx_message_payloads_search`, migration
/// 12) holds the words of each payload's first 262,144 characters, which keeps its `tsvector`
/// under PostgreSQL's 1 MiB; the expression here must be the index's, character for character,
/// for the planner to use it. Words past that point are not found.
pub(crate) const PG_PAYLOAD_SEARCH: &str = "messages.id IN (SELECT p.message_id FROM message_payloads p \
     WHERE to_tsvector('simple', left(p.payload, 262144)) @@ plainto_tsquery('simple', ?) \
     AND p.tenant_id = ? AND p.message_id >= ?)";

const SEARCH: (&str, &str) =
    ("the search", "narrow it (a later `after` or an earlier `before`, an event type, more words)");

/// Whether the FTS5 query matches at least `HOOKLINE_SEARCH_COMMON_WORD_MATCHES` payloads in the
/// whole index (a cheap, bounded probe: FTS5 stops counting there). Beyond that, a payload search
/// walks the messages instead of the matches.
async fn fts5_is_common(ctx: &Context, words: &str) -> CoreResult<bool> {
    let threshold = std::cmp::max(ctx.config.search_common_word_matches, 1);
    let probe = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Sqlite,
        "SELECT count(*) AS n FROM (SELECT rowid FROM message_search WHERE message_search MATCH ? LIMIT ?)",
        [words.into(), threshold.into()],
    );
    let n: i64 = match ctx.db.conn.query_one_raw(probe).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(n >= threshold)
}

/// The FTS5 query for `q`: each word a quoted phrase, all required (as `plainto_tsquery`).
fn fts5_query(q: &str) -> String {
    q.split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `payload`: the payload, and whether it is kept in the object store (claim-checked).
fn to_out(model: messages::Model, payload: Option<(Box<RawValue>, bool)>) -> CoreResult<MessageOut> {
    let (payload, in_object_store) = match payload {
        Some((payload, object)) => (Some(payload), Some(object)),
        None => (None, None),
    };
    Ok(MessageOut {
        id: MessageId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        app_id: AppId::parse(&model.app_id).map_err(|err| CoreError::Internal(err.into()))?,
        event_type: model.event_type,
        event_id: model.event_id,
        channels: from_json(model.channels, "channels")?,
        payload,
        payload_size: std::cmp::max(model.payload_size, 0) as u64,
        payload_in_object_store: in_object_store,
        created_at: model.created_at,
        received_by: None,
    })
}

/// A stored payload's text as the JSON it is (checked, not parsed into a tree: it is answered as
/// it was accepted).
fn raw_payload(text: String, at: &str) -> CoreResult<Box<RawValue>> {
    RawValue::from_string(text)
        .map_err(|err| CoreError::Internal(anyhow::anyhow!("stored payload {at}: {err}")))
}

/// The payloads of these messages (a claim-checked one read back from the object store).
async fn load_payloads(
    ctx: &Context,
    tenant: &TenantId,
    ids: Vec<String>,
) -> CoreResult<HashMap<String, (Box<RawValue>, bool)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = message_payloads::Entity::scoped(tenant)
        .filter(message_payloads::Column::MessageId.is_in(ids))
        .all(&ctx.db.conn)
        .await?;
    let mut payloads = HashMap::with_capacity(rows.len());
    for row in rows {
        let payload = raw_payload(crate::objects::payload_text(&ctx.objects, &row).await?, &row.message_id)?;
        payloads.insert(row.message_id, (payload, row.object_key.is_some()));
    }
    Ok(payloads)
}

/// The message of the application that holds `event_id` for de-duplication: one accepted less
/// than `window_seconds` ago, which a repeat is answered with. A holder accepted before that
/// releases the id (`event_id_released`: it keeps showing its `event_id`), so the repeat is
/// stored as a new message.
pub(crate) async fn event_id_holder(
    ctx: &Context,
    tenant: &TenantId,
    app_id: &str,
    event_id: &str,
    window_seconds: u64,
) -> CoreResult<Option<messages::Model>> {
    let Some(model) = messages::Entity::scoped(tenant)
        .filter(messages::Column::AppId.eq(app_id))
        .filter(messages::Column::EventId.eq(event_id))
        .filter(Expr::cust("NOT event_id_released"))
        .one(&ctx.db.conn)
        .await?
    else {
        return Ok(None);
    };
    if Utc::now() - model.created_at < chrono::Duration::seconds(window_seconds as i64) {
        return Ok(Some(model));
    }
    messages::Entity::scoped_update(tenant)
        .col_expr(messages::Column::EventIdReleased, Expr::value(true))
        .filter(messages::Column::Id.eq(model.id.as_str()))
        .exec(&ctx.db.writer)
        .await?;
    Ok(None)
}

/// The message a repeat of `event_id` is answered with (within `HOOKLINE_EVENT_ID_WINDOW_SECONDS`).
async fn find_by_event_id(
    ctx: &Context,
    tenant: &TenantId,
    app_id: &str,
    event_id: &str,
) -> CoreResult<Option<MessageOut>> {
    let window = ctx.config.event_id_window_seconds;
    let Some(model) = event_id_holder(ctx, tenant, app_id, event_id, window).await? else {
        return Ok(None);
    };
    let mut payloads = load_payloads(ctx, tenant, vec![model.id.clone()]).await?;
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
    if !input.payload.get().starts_with('{') {
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
        && (event_id.is_empty() || event_id.chars().count() > MAX_EVENT_ID_LEN)
    {
        errors.push(&["body", "event_id"], format!("must be 1 to {MAX_EVENT_ID_LEN} characters long"));
    }
    errors.into_result()?;
    let payload_text = input.payload.get().to_owned();
    if payload_text.len() > ctx.config.max_payload_bytes {
        return Err(CoreError::PayloadTooLarge {
            size: payload_text.len(),
            limit: ctx.config.max_payload_bytes,
        });
    }
    Ok(Validated { event_type: event_type.expect("checked"), channels, payload_text })
}

/// Validates the payload against the event type's JSON Schema, when the type exists and has one.
/// Compiling and validating run on the schema threads (see [`crate::catalog::schemas`]).
pub(crate) async fn check_schema(
    ctx: &Context,
    tenant: &TenantId,
    event_type: &str,
    payload: &RawValue,
) -> CoreResult<()> {
    let key = (tenant.clone(), event_type.to_owned());
    let validator = match ctx.caches.schemas.get(&key) {
        Some(cached) => cached,
        None => {
            let compiled = match event_types::find(&ctx.db.conn, tenant, event_type).await?.and_then(|m| m.schema) {
                None => None,
                // A schema stored before the checks existed may fail them: its messages are
                // refused with the reason until the type's schema is fixed.
                Some(schema) => Some(Arc::new(
                    ctx.schema_threads
                        .run(move || crate::catalog::schemas::compile(&schema))
                        .await
                        .map_err(|panic| CoreError::Internal(anyhow::anyhow!("compiling a schema panicked: {panic}")))?
                        .map_err(|err| {
                            CoreError::invalid(
                                &["body", "event_type"],
                                format!("the schema of event type {event_type} is refused ({err}); fix it with PATCH /api/v1/event-type/{event_type}"),
                            )
                        })?,
                )),
            };
            ctx.caches.schemas.insert(key, compiled.clone());
            compiled
        }
    };
    let Some(validator) = validator else {
        return Ok(());
    };
    // Only a typed payload is parsed into a tree (on the schema threads, off the request's).
    let text = payload.get().to_owned();
    let found = ctx
        .schema_threads
        .run(move || {
            let payload: Value =
                serde_json::from_str(&text).expect("a MessageIn payload parses (types::parseable_json)");
            crate::catalog::schemas::violations(&validator, &payload)
        })
        .await
        .map_err(|panic| CoreError::Internal(anyhow::anyhow!("validating a payload panicked: {panic}")))?;
    let errors: Vec<_> = found
        .into_iter()
        .map(|violation| {
            let mut loc = vec!["body".to_owned(), "payload".to_owned()];
            loc.extend(violation.path);
            hookline_types::FieldError { loc, msg: violation.message }
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(CoreError::Validation(errors)) }
}

/// Accepts a message. Tenant credentials only: a portal token (the tenant's customer) manages
/// endpoints and replays but never publishes — it would spend the tenant's quota and send events
/// signed with the tenant's secrets.
pub async fn create(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    input: MessageIn,
) -> CoreResult<Created> {
    if principal.only_app().is_some() {
        // Another application is "not found" for a portal token, as everywhere.
        applications::find_for(&ctx.db.conn, principal, app).await?;
        return Err(CoreError::Forbidden {
            code: "portal_cannot_publish",
            detail: "a consumer-portal token cannot publish messages; the tenant sends them with an API key"
                .to_owned(),
        });
    }
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
    let app_model = applications::find_for(&ctx.db.conn, principal, app).await?;
    let endpoint =
        crate::catalog::endpoints::find(&ctx.db.conn, &principal.tenant_id, &app_model.id, endpoint).await?;
    let input = MessageIn {
        event_type: "hookline.test".to_owned(),
        payload: serde_json::value::to_raw_value(
            &serde_json::json!({"type": "hookline.test", "endpoint_id": endpoint.id, "sent_at": Utc::now()}),
        )
        .map_err(|err| CoreError::Internal(err.into()))?,
        event_id: None,
        channels: None,
    };
    Ok(create_for(ctx, principal, app, input, Some(&endpoint.id)).await?.message)
}

/// Stores a message through the ingest writer (durable when this returns); `Ok(false)` when
/// another message of the application already has its `event_id`. A quota threshold the
/// message crossed is told through the tenant's operational application, off the request's path.
/// A payload over `HOOKLINE_CLAIM_CHECK_BYTES` is put in the object store first (the row names
/// it); when the message is then not stored, the object is deleted again.
pub(crate) async fn store_new(
    ctx: &Context,
    limits: &plans::Limits,
    mut new: NewMessage,
) -> CoreResult<bool> {
    let tenant = new.tenant_id.clone();
    new.object = crate::objects::claim_check(
        &ctx.objects,
        ctx.config.claim_check_bytes,
        tenant.as_str(),
        &new.id,
        &new.payload_text,
    )
    .await?;
    let object = new.object.as_ref().map(|o| o.key.clone());
    let stored = ctx.ingest.store(new).await;
    if let Some(key) = object
        && stored.is_err()
    {
        ctx.objects.delete_all([key]).await;
    }
    match stored {
        Ok(None) => Ok(true),
        Ok(Some(crossing)) => {
            let (ctx, plan) = (ctx.clone(), limits.plan.clone());
            tokio::spawn(async move {
                let payload = serde_json::json!({
                    "type": crossing.event_type,
                    "plan": plan,
                    "percent": crossing.percent,
                    "used": crossing.used,
                    "monthly_messages": crossing.monthly,
                });
                if let Err(err) = operational::emit(&ctx, &tenant, "", crossing.event_type, payload).await {
                    tracing::warn!(error = %err, "could not emit a quota event");
                }
            });
            Ok(true)
        }
        Err(StoreError::QuotaExceeded { limit, resets_at }) => Err(CoreError::TooManyRequests {
            code: "quota_exceeded",
            detail: format!(
                "the {} plan's {limit} messages this month are used up; it resets at {} (upgrade to continue)",
                limits.plan,
                resets_at.to_rfc3339()
            ),
            retry_after_seconds: std::cmp::max((resets_at - Utc::now()).num_seconds(), 1) as u64,
            quota_limit: Some(std::cmp::max(limit, 0) as u64),
        }),
        Err(StoreError::DuplicateEventId) => Ok(false),
        Err(StoreError::Database(err)) => Err(err.into()),
        Err(StoreError::Stopped) => Err(CoreError::Internal(anyhow::anyhow!("the ingest writer stopped"))),
    }
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
    let limits = plans::limits(ctx, tenant).await?;
    if payload_text.len() > limits.max_payload_bytes {
        return Err(CoreError::PayloadTooLarge { size: payload_text.len(), limit: limits.max_payload_bytes });
    }
    let app = applications::find_cached_for(ctx, principal, app).await?;
    if let Some(event_id) = &input.event_id
        && let Some(original) = find_by_event_id(ctx, tenant, &app.id, event_id).await?
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
        object: None,
        headers: Vec::new(),
        only_endpoint: only_endpoint.map(str::to_owned),
        created_at: now,
        quota: Some(Quota { monthly: limits.monthly_messages, hard: !limits.overage_allowed }),
        counts_as_usage: true,
        inbound: false,
        plan_rate: Some(PlanRate(limits.endpoint_rate_limit)),
    };
    let mut conflicts = 0;
    while !store_new(ctx, &limits, new.clone()).await? {
        // A concurrent request with the same event_id won the race: answer with its message.
        // (Or the holder was past the window and is released now: store again.)
        let event_id = input.event_id.as_deref().unwrap_or_default();
        if let Some(original) = find_by_event_id(ctx, tenant, &app.id, event_id).await? {
            return Ok(Created { message: original, is_new: false });
        }
        conflicts += 1;
        if conflicts == 3 {
            return Err(CoreError::Internal(anyhow::anyhow!("event_id conflict without a message")));
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
        event_id_released: false,
    };
    let in_object_store = new.payload_text.len() > ctx.config.claim_check_bytes;
    Ok(Created { message: to_out(model, Some((input.payload, in_object_store)))?, is_new: true })
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
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let mut select = messages::Entity::scoped(tenant).filter(messages::Column::AppId.eq(app.id.as_str()));
    if !filter.event_types.is_empty() {
        select = select.filter(messages::Column::EventType.is_in(filter.event_types.clone()));
    }
    if let Some(event_id) = &filter.event_id {
        select = select.filter(messages::Column::EventId.eq(event_id.as_str()));
    }
    let sqlite = ctx.db.is_sqlite();
    if let Some(channel) = &filter.channel {
        select = select.filter(if sqlite {
            custom_sql(
                true,
                "EXISTS (SELECT 1 FROM json_each(messages.channels) WHERE json_each.value = ?)",
                [channel.clone()],
            )
        } else {
            custom_sql(false, "messages.channels @> CAST(? AS jsonb)", [to_json(&[channel]).to_string()])
        });
    }
    let endpoint_id = match &filter.endpoint {
        Some(endpoint) => Some(endpoints::find(&ctx.db.conn, tenant, &app.id, endpoint).await?.id),
        None => None,
    };
    if !filter.statuses.is_empty() || endpoint_id.is_some() {
        // A message "is" in a state when one of its deliveries (to the endpoint, if given) is.
        let mut statuses: Vec<String> = filter.statuses.clone();
        if statuses.iter().any(|s| s == PENDING) {
            statuses.push(SENDING.to_owned());
        }
        let mut condition = Query::select()
            .expr(Expr::val(1))
            .from_as(deliveries::Entity, Alias::new("d"))
            .and_where(
                Expr::col((Alias::new("d"), deliveries::Column::MessageId))
                    .equals((messages::Entity, messages::Column::Id)),
            )
            .to_owned();
        if !statuses.is_empty() {
            condition.and_where(Expr::col((Alias::new("d"), deliveries::Column::Status)).is_in(statuses));
        }
        if let Some(endpoint_id) = &endpoint_id {
            condition.and_where(
                Expr::col((Alias::new("d"), deliveries::Column::EndpointId)).eq(endpoint_id.as_str()),
            );
        }
        select = select.filter(Expr::exists(condition));
    }
    let after = match (filter.after, &filter.q) {
        (None, Some(_)) => Some(Utc::now() - chrono::Duration::days(SEARCH_DEFAULT_WINDOW_DAYS)),
        (after, _) => after,
    };
    if let Some(q) = &filter.q {
        // The full-text index answers the words; the id bound keeps the candidate set to the
        // window searched.
        let lower = time_boundary(MessageId::PREFIX, after.expect("set for searches"));
        select = select.filter(if sqlite {
            let words = fts5_query(q);
            if fts5_is_common(ctx, &words).await? {
                // A common word: walk the application's messages newest first and check each
                // against the index, which stops as soon as the page is full.
                custom_sql(
                    true,
                    "EXISTS (SELECT 1 FROM message_payloads p JOIN message_search s ON s.rowid = p.rowid \
                     WHERE p.message_id = messages.id AND message_search MATCH ?)",
                    [words],
                )
            } else {
                // A rare word: the full-text index drives, and its rowids find the payloads by
                // primary key (the unary `+` keeps SQLite from scanning the tenant's payload
                // index instead).
                custom_sql(
                    true,
                    "messages.id IN (SELECT p.message_id FROM message_payloads p \
                     WHERE p.rowid IN (SELECT rowid FROM message_search WHERE message_search MATCH ?) \
                     AND +p.tenant_id = ? AND +p.message_id >= ?)",
                    [words, tenant.to_string(), lower],
                )
            }
        } else {
            custom_sql(false, PG_PAYLOAD_SEARCH, [q.clone(), tenant.to_string(), lower])
        });
    }
    // Time bounds become id bounds: ids start with their creation time, so the primary index
    // answers them.
    if let Some(after) = after {
        select = select.filter(messages::Column::Id.gte(time_boundary(MessageId::PREFIX, after)));
    }
    if let Some(before) = filter.before {
        select = select.filter(messages::Column::Id.lt(time_boundary(MessageId::PREFIX, before)));
    }
    let list = if filter.q.is_some() {
        // A payload search can be expensive: its statements are stopped after
        // `store::bounded::READ_TIMEOUT_SECONDS` on both databases (see `begin_bounded_read`).
        let read = crate::store::bounded::begin_bounded_read(ctx).await?;
        let list = paginate(
            &read.txn,
            select,
            messages::Column::Id,
            Order::Desc,
            page,
            |model| model,
            |model| model.id.clone(),
        )
        .await
        .map_err(CoreError::from);
        crate::store::bounded::end_bounded_read(read, list, SEARCH).await?
    } else {
        paginate(
            &ctx.db.conn,
            select,
            messages::Column::Id,
            Order::Desc,
            page,
            |model| model,
            |model| model.id.clone(),
        )
        .await?
    };
    let rows = list.data;
    let mut payloads = if filter.with_content {
        load_payloads(ctx, tenant, rows.iter().map(|m| m.id.clone()).collect()).await?
    } else {
        HashMap::new()
    };
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

/// One of the application's messages, for a caller who may read it.
async fn find_in_app(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    id: &MessageId,
) -> CoreResult<messages::Model> {
    principal.require(ApiKeyScope::Read)?;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    messages::Entity::scoped(&principal.tenant_id)
        .filter(messages::Column::AppId.eq(app.id.as_str()))
        .filter(messages::Column::Id.eq(id.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("message"))
}

pub async fn get(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    id: &MessageId,
) -> CoreResult<MessageOut> {
    let model = find_in_app(ctx, principal, app, id).await?;
    let mut payloads = load_payloads(ctx, &principal.tenant_id, vec![model.id.clone()]).await?;
    let payload = payloads.remove(&model.id);
    to_out(model, payload)
}

/// The message's payload as stored, byte for byte (a claim-checked one streamed from the object
/// store), with its size: the dashboard's download.
pub async fn payload(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    id: &MessageId,
) -> CoreResult<(u64, crate::objects::PayloadBody)> {
    let model = find_in_app(ctx, principal, app, id).await?;
    let row = crate::objects::payload_row(&ctx.db.conn, &principal.tenant_id, &model.id).await?;
    crate::objects::payload_body(&ctx.objects, row).await
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement, Value};

    hookline_e2e::both_databases!(event_ids_stay_unique_until_released_and_findable_through_partial_indexes);

    /// `uq_messages_event_id` holds only unreleased event ids (migrations 9 and 17): a repeated
    /// event id is refused until its holder is released, messages without one are accepted side
    /// by side, the de-duplication lookup reaches the unique index and the `?event_id=` lookup
    /// `idx_messages_event_id` (PostgreSQL is told to avoid sequential scans, which it would
    /// prefer on a tiny table: a plan without the index then means it cannot use it).
    async fn event_ids_stay_unique_until_released_and_findable_through_partial_indexes(
        backend: hookline_e2e::Backend,
    ) {
        let (_dir, _, db) = crate::store::db::migrated_for_test(backend).await;
        let backend = db.backend();
        let sql =
            |sqlite: &str| if db.is_sqlite() { sqlite.to_owned() } else { crate::store::numbered(sqlite) };
        let insert = |id: &str, event_id: Option<&str>| {
            Statement::from_sql_and_values(
                backend,
                sql(
                    "INSERT INTO messages (id, tenant_id, app_id, event_type, event_id, channels, payload_size, created_at) \
                     VALUES (?, 't', 'a', 'e.x', ?, '[]', 0, '2026-12-02T00:00:00+00:00')",
                ),
                [Value::from(id), Value::String(event_id.map(str::to_owned))],
            )
        };
        for (id, event_id) in [("m1", Some("ev")), ("m2", None), ("m3", None), ("m4", Some("other"))] {
            db.writer.execute_raw(insert(id, event_id)).await.unwrap();
        }
        let repeated = db.writer.execute_raw(insert("m5", Some("ev"))).await.unwrap_err();
        assert!(crate::store::is_unique_violation(&repeated), "{repeated}");
        // Released, the id is free again; the new holder reserves it in turn.
        let release = sql("UPDATE messages SET event_id_released = true WHERE id = ?");
        db.writer
            .execute_raw(Statement::from_sql_and_values(backend, release, [Value::from("m1")]))
            .await
            .unwrap();
        db.writer.execute_raw(insert("m5", Some("ev"))).await.unwrap();
        let again = db.writer.execute_raw(insert("m6", Some("ev"))).await.unwrap_err();
        assert!(crate::store::is_unique_violation(&again), "{again}");

        let txn = sea_orm::TransactionTrait::begin(&db.conn).await.unwrap();
        if !db.is_sqlite() {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
        }
        let values = || [Value::from("t"), Value::from("a"), Value::from("ev")];
        // Either index serves the de-duplication lookup (PostgreSQL may take the wider one and
        // filter the released rows); the plain lookup has only the wider one.
        for (lookup, indexes, expected) in [
            (
                "SELECT id FROM messages WHERE tenant_id = ? AND app_id = ? AND event_id = ? AND NOT event_id_released",
                &["uq_messages_event_id", "idx_messages_event_id"][..],
                vec!["m5"],
            ),
            (
                "SELECT id FROM messages WHERE tenant_id = ? AND app_id = ? AND event_id = ?",
                &["idx_messages_event_id"][..],
                vec!["m1", "m5"],
            ),
        ] {
            let lookup = sql(lookup);
            let found =
                txn.query_all_raw(Statement::from_sql_and_values(backend, &lookup, values())).await.unwrap();
            let mut ids: Vec<String> = found.iter().map(|row| row.try_get("", "id").unwrap()).collect();
            ids.sort();
            assert_eq!(ids, expected, "{lookup}");
            let plan = crate::store::db::query_plan(&txn, &lookup, values().into()).await;
            assert!(
                plan.iter().any(|line| indexes.iter().any(|index| line.contains(index))),
                "{lookup}: {plan:?}"
            );
        }
        txn.commit().await.unwrap();
    }
}
