use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{
    Context,
    domain::{EventTypeName, parse_channel},
    ingest::broadcasts,
    ingest::messages::{self, MessageFilter},
};
use hookline_types::{BroadcastId, BroadcastOut, ErrorBody, ListResponse, MessageId, MessageIn, MessageOut};

use super::app_ref;
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    json::Json,
    query::QueryParams,
};

/// Send a message. It is durable when this returns 202. A repeated `event_id` returns the
/// original message with 200.
///
/// Needs the `write` scope; portal tokens cannot publish (403 `portal_cannot_publish`). The
/// message goes to each enabled endpoint of the application whose `filter_types` and `channels`
/// take it. `payload` must be a JSON object within the plan's size limit (413) that satisfies the
/// event type's schema, if the catalog has one (422); at most 10 `channels`. `event_id` repeats
/// are recognised for `HOOKLINE_EVENT_ID_WINDOW_SECONDS` (24 hours by default), and a plan with a
/// hard monthly cap answers 429 `quota_exceeded` once it is used up.
#[utoipa::path(post, path = "/api/v1/app/{app}/msg", operation_id = "v1.message.create", tag = "Message",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05")),
    request_body(content = MessageIn, example = json!({
        "event_type": "invoice.paid",
        "event_id": "evt_in_1042_paid",
        "channels": ["eu"],
        "payload": {
            "invoice_id": "in_1042",
            "customer_id": "cus_8812",
            "amount_cents": 4900,
            "currency": "USD",
            "paid_at": "2026-03-02T09:14:05Z"
        }
    })),
    responses(
        (status = 202, description = "Accepted", body = MessageOut),
        (status = 200, description = "A message with this event_id exists: the original", body = MessageOut),
        (status = 404, body = ErrorBody),
        (status = 403, description = "portal_cannot_publish: a consumer-portal token cannot publish", body = ErrorBody),
        (status = 413, description = "Payload over the limit", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
    Json(input): Json<MessageIn>,
) -> ApiResult<HttpResponse> {
    let created = messages::create(&ctx, &principal, &app_ref(&path), input).await?;
    Ok(if created.is_new {
        HttpResponse::Accepted().json(created.message)
    } else {
        HttpResponse::Ok().json(created.message)
    })
}

/// List messages, newest first.
///
/// Needs the `read` scope. The filters combine: a message must match every one given. `q` is a
/// full-text search of the payloads, stopped after a time limit (503 `query_timeout`);
/// `with_content=false` leaves the payloads out and does not read them. Pass the response's
/// `iterator` back as `?iterator=` for the next page until `done` is true.
#[utoipa::path(get, path = "/api/v1/app/{app}/msg", operation_id = "v1.message.list", tag = "Message",
    params(
        ("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"),
        ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query),
        ("event_type" = Option<Vec<hookline_types::schema::EventTypeName>>, Query, description = "Only these event types (repeat the parameter)"),
        ("channel" = Option<hookline_types::schema::Channel>, Query, description = "Only messages carrying this channel"),
        ("after" = Option<String>, Query, description = "RFC 3339 time: created at or after"),
        ("before" = Option<String>, Query, description = "RFC 3339 time: created before"),
        ("status" = Option<Vec<hookline_types::schema::DeliveryState>>, Query, description = "Only messages with a delivery in this state: pending, succeeded, failed (will retry), dead or filtered (its endpoint's transform skipped it; repeat the parameter)"),
        ("endpoint" = Option<String>, Query, description = "Only messages with a delivery to this endpoint (id or uid); with status, that delivery's state", pattern = r"^[A-Za-z0-9._-]{1,256}$"),
        ("q" = Option<String>, Query, description = "Words that must all appear in the payload (full text; of a payload kept in the object store, its first 256 KiB). Without after, the last 30 days are searched", min_length = 1, max_length = 256, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"),
        ("event_id" = Option<String>, Query, description = "The message with this event_id (idempotency key)", min_length = 1, max_length = 256),
        ("with_content" = Option<bool>, Query, description = "true (default): each message's payload; false: no payloads (none are read, from the database or the object store)"),
    ),
    responses((status = 200, description = "One page", body = ListResponse<MessageOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, description = "query_timeout: a payload search took longer than allowed; narrow it with after/before", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(
        req.query_string(),
        &[
            "limit",
            "iterator",
            "event_type",
            "channel",
            "after",
            "before",
            "status",
            "endpoint",
            "q",
            "event_id",
            "with_content",
        ],
    )?;
    let page = query.page(MessageId::PREFIX)?;
    let event_types = query.all("event_type");
    for (idx, name) in event_types.iter().enumerate() {
        EventTypeName::parse(name)
            .map_err(|err| ApiError::invalid(&["query", "event_type", &idx.to_string()], err.to_string()))?;
    }
    let channel = query
        .one("channel")?
        .map(|c| parse_channel(&c).map_err(|err| ApiError::invalid(&["query", "channel"], err.to_string())))
        .transpose()?;
    let statuses = query.all("status");
    for (idx, status) in statuses.iter().enumerate() {
        if !matches!(status.as_str(), "pending" | "succeeded" | "failed" | "dead" | "filtered") {
            return Err(ApiError::invalid(
                &["query", "status", &idx.to_string()],
                "must be pending, succeeded, failed, dead or filtered",
            ));
        }
    }
    let q = query.one("q")?;
    if let Some(q) = &q
        && (q.trim().is_empty() || q.len() > 256)
    {
        return Err(ApiError::invalid(&["query", "q"], "must be 1 to 256 characters of words to look for"));
    }
    let event_id = query.one("event_id")?;
    if let Some(event_id) = &event_id
        && (event_id.is_empty() || event_id.len() > 256)
    {
        return Err(ApiError::invalid(&["query", "event_id"], "must be 1 to 256 characters"));
    }
    let with_content = match query.one("with_content")?.as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(ApiError::invalid(&["query", "with_content"], "must be true or false")),
    };
    let (after, before) = query.time_range()?;
    let filter = MessageFilter {
        with_content,
        event_types,
        channel,
        after,
        before,
        statuses,
        endpoint: query.one("endpoint")?.map(|e| super::endpoint_ref(&e)),
        q,
        event_id,
    };
    Ok(HttpResponse::Ok().json(messages::list(&ctx, &principal, &app_ref(&path), &filter, &page).await?))
}

/// Get a message with its payload.
///
/// Needs the `read` scope. `payload` is absent once it has expired under the plan's retention or
/// was expunged. For a message received on an inbound source, `received_by` names the source and
/// the logged request, while that request is still logged (never for portal tokens).
#[utoipa::path(get, path = "/api/v1/app/{app}/msg/{msg}", operation_id = "v1.message.get", tag = "Message",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T")),
    responses((status = 200, description = "The message", body = MessageOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg) = path.into_inner();
    let id = MessageId::parse(&msg).map_err(|_| ApiError::not_found("message"))?;
    let mut message = messages::get(&ctx, &principal, &app_ref(&app), &id).await?;
    message.received_by = hookline_core::sources::requests::received_by(&ctx, &principal, &id).await?;
    Ok(HttpResponse::Ok().json(message))
}

/// Download a message's payload: the exact bytes as stored.
///
/// Needs the `read` scope. The payload as it was accepted, byte for byte (a received webhook's
/// JSON body with its own spacing), as an attachment named after the message; a payload kept in
/// the object store is streamed from it. 410 `payload_purged` once retention or an expunge
/// removed it.
#[utoipa::path(get, path = "/api/v1/app/{app}/msg/{msg}/payload", operation_id = "v1.message.download_payload", tag = "Message",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T")),
    responses(
        (status = 200, description = "The payload's bytes", content_type = "application/json", body = Object),
        (status = 404, body = ErrorBody),
        (status = 410, description = "payload_purged", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn download_payload(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg) = path.into_inner();
    let id = MessageId::parse(&msg).map_err(|_| ApiError::not_found("message"))?;
    let (size, body) = messages::payload(&ctx, &principal, &app_ref(&app), &id).await?;
    let mut response = HttpResponse::Ok();
    response.insert_header(("content-disposition", format!("attachment; filename=\"{id}.json\"")));
    Ok(super::payload::payload_response(response, size, body))
}

/// Broadcast a message to every application with an endpoint subscribed to its event type. The
/// messages are created in the background; poll the broadcast to see how many.
///
/// Needs the `write` scope; portal tokens get 404. The body is a message's, validated the same
/// way; each application with an enabled endpoint whose filters and channels take it gets one
/// message. A repeated `event_id` within the de-duplication window returns the original broadcast
/// with 200. Under a hard monthly cap the messages it would become are counted at once (429
/// `quota_exceeded` when they do not fit).
#[utoipa::path(post, path = "/api/v1/msg/broadcast", operation_id = "v1.message.broadcast", tag = "Message",
    request_body(content = MessageIn, example = json!({
        "event_type": "maintenance.scheduled",
        "event_id": "maint-2026-03-14",
        "payload": {
            "starts_at": "2026-03-14T02:00:00Z",
            "ends_at": "2026-03-14T03:00:00Z",
            "summary": "Database upgrade; webhooks are delayed, not lost."
        }
    })),
    responses(
        (status = 202, description = "Accepted", body = BroadcastOut),
        (status = 200, description = "A broadcast with this event_id exists: the original", body = BroadcastOut),
        (status = 413, description = "Payload over the plan's limit", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "quota_exceeded: the messages it would become do not fit in the plan's monthly quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn broadcast(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    Json(input): Json<MessageIn>,
) -> ApiResult<HttpResponse> {
    let (out, is_new) = broadcasts::create(&ctx, &principal, input).await?;
    Ok(if is_new { HttpResponse::Accepted().json(out) } else { HttpResponse::Ok().json(out) })
}

/// A broadcast and how many messages it became.
///
/// Needs the `read` scope; portal tokens get 404. `state` is `queued` until the worker has
/// created the message of every subscribed application, then `expanded`; `message_count` is
/// final once it is `expanded`.
#[utoipa::path(get, path = "/api/v1/msg/broadcast/{id}", operation_id = "v1.message.get_broadcast", tag = "Message",
    params(("id" = String, Path, example = "bcast_01KJPYPEC0Y8RB9KEFCACRY5T3")),
    responses((status = 200, description = "The broadcast", body = BroadcastOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_broadcast(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = BroadcastId::parse(&path).map_err(|_| ApiError::not_found("broadcast"))?;
    Ok(HttpResponse::Ok().json(broadcasts::get(&ctx, &principal, &id).await?))
}
