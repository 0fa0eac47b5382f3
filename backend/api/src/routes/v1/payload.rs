//! Thin delivery: the `data_url` a thin body names, and the log of its fetches.

use actix_web::{
    HttpRequest, HttpResponse, HttpResponseBuilder,
    http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, USER_AGENT},
    web,
};
use hookline_core::{
    Context,
    objects::PayloadBody,
    thin::fetch::{self, FetchFilter, FetchRequest, Fetched},
};
use hookline_types::{ErrorBody, ListResponse, MessageId, PayloadFetchId, PayloadFetchOut};

use super::{app_ref, endpoint_ref};
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    query::QueryParams,
};

/// A stored payload's exact bytes as a JSON answer: a row's text, or an object streamed from
/// the store with its `Content-Length`.
pub(super) fn payload_response(
    mut response: HttpResponseBuilder,
    size: u64,
    body: PayloadBody,
) -> HttpResponse {
    response.content_type("application/json");
    match body {
        PayloadBody::Inline(text) => response.body(text),
        PayloadBody::Stream(stream) => response.no_chunking(size).streaming(stream),
    }
}

/// Fetch a thin delivery's payload (its `data_url`).
///
/// No API key: the URL is the credential. It is signed for one message and one endpoint and
/// expires at `exp` (the endpoint's `data_url_ttl_seconds`, 24 hours by default). The answer is
/// the payload's exact bytes with an `ETag` of their SHA-256 (the thin body's `sha256`); send it
/// back as `If-None-Match` for a 304. An altered or forged URL, or one for another message, is
/// 403 `data_url_invalid`; an expired one 410 `data_url_expired`; a payload that retention or an
/// expunge removed 410 `payload_purged`; once the endpoint is deleted, 404. Every answered
/// fetch (200 or 304) is logged on the delivery (`GET …/msg/{msg}/payload-fetch`) and counted
/// in usage as `payload_fetches`.
#[utoipa::path(get, path = "/api/v1/payload/{msg}", operation_id = "v1.payload.fetch", tag = "Message",
    params(
        ("msg" = String, Path, description = "The message id", example = "msg_01KJPX6ZT80T78F603XZBCWC8T"),
        ("ep" = String, Query, description = "The endpoint the URL was minted for", example = "ep_01KJPX6ZT80T78F603XZBCWC8T"),
        ("exp" = i64, Query, description = "Expiry, Unix seconds", example = 1796644800),
        ("sig" = String, Query, description = "The URL's signature (base64url)", example = "pQ2b9kqzN1nV3w4S0m7xYg8tR5uJ6hE1cA2dF3gH4iK"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier fetch"),
    ),
    responses(
        (status = 200, description = "The payload's bytes", content_type = "application/json", body = Object,
            headers(("ETag" = String, description = "The payload's SHA-256, quoted"))),
        (status = 304, description = "Not modified: `If-None-Match` names the payload"),
        (status = 403, description = "data_url_invalid: altered, forged, or for another message or endpoint", body = ErrorBody),
        (status = 404, description = "The message, its delivery or the endpoint no longer exists", body = ErrorBody),
        (status = 410, description = "data_url_expired, or payload_purged", body = ErrorBody),
        (status = 422, description = "An unknown or repeated query parameter", body = ErrorBody),
    ))]
pub async fn fetch(
    req: HttpRequest,
    ctx: web::Data<Context>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["ep", "exp", "sig"])?;
    let (ep, exp, sig) = (query.one("ep")?, query.one("exp")?, query.one("sig")?);
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request = FetchRequest {
        message_id: &path,
        ep: ep.as_deref(),
        exp: exp.as_deref(),
        sig: sig.as_deref(),
        if_none_match: header(IF_NONE_MATCH),
        ip: Some(crate::security_headers::client_ip(&req).to_string()),
        user_agent: header(USER_AGENT).map(str::to_owned),
    };
    Ok(match fetch::fetch(&ctx, &ctx.links, request).await? {
        Fetched::NotModified { etag } => HttpResponse::NotModified()
            .insert_header((ETAG, etag))
            .insert_header((CACHE_CONTROL, "private, no-cache"))
            .finish(),
        Fetched::Payload { etag, size, body } => {
            let mut response = HttpResponse::Ok();
            response.insert_header((ETAG, etag)).insert_header((CACHE_CONTROL, "private, no-cache"));
            payload_response(response, size, body)
        }
    })
}

/// The fetches of a message's thin deliveries' `data_url`s, newest first.
///
/// Each answered fetch (200 or 304) with the fetcher's address and user agent; `endpoint` keeps
/// one endpoint's. Pass the response's `iterator` back as `?iterator=` for the next page until
/// `done` is true. Needs the `read` scope.
#[utoipa::path(get, path = "/api/v1/app/{app}/msg/{msg}/payload-fetch", operation_id = "v1.payload.list_fetches", tag = "Attempt",
    params(
        ("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"),
        ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T"),
        ("endpoint" = Option<String>, Query, description = "Endpoint id or uid", pattern = r"^[A-Za-z0-9._-]{1,256}$"),
        ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query),
    ),
    responses((status = 200, description = "One page", body = ListResponse<PayloadFetchOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_fetches(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg) = path.into_inner();
    let query = QueryParams::parse(req.query_string(), &["endpoint", "limit", "iterator"])?;
    let page = query.page(PayloadFetchId::PREFIX)?;
    let message = MessageId::parse(&msg).map_err(|_| ApiError::not_found("message"))?;
    let filter =
        FetchFilter { message: Some(message), endpoint: query.one("endpoint")?.map(|ep| endpoint_ref(&ep)) };
    Ok(HttpResponse::Ok().json(fetch::list(&ctx, &principal, &app_ref(&app), &filter, &page).await?))
}

/// The application's `data_url` fetches, newest first.
///
/// Every answered fetch (200 or 304) of the application's thin deliveries, with the message and
/// endpoint, the fetcher's address and user agent; `endpoint` and `message` narrow it. Pass the
/// response's `iterator` back as `?iterator=` for the next page until `done` is true. Needs the
/// `read` scope.
#[utoipa::path(get, path = "/api/v1/app/{app}/payload-fetch", operation_id = "v1.payload.list_app_fetches", tag = "Attempt",
    params(
        ("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"),
        ("endpoint" = Option<String>, Query, description = "Endpoint id or uid", pattern = r"^[A-Za-z0-9._-]{1,256}$"),
        ("message" = Option<MessageId>, Query, description = "Only fetches of this message id"),
        ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query),
    ),
    responses((status = 200, description = "One page", body = ListResponse<PayloadFetchOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_app_fetches(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["endpoint", "message", "limit", "iterator"])?;
    let page = query.page(PayloadFetchId::PREFIX)?;
    let message = match query.one("message")? {
        None => None,
        Some(text) => Some(
            MessageId::parse(&text)
                .map_err(|err| ApiError::invalid(&["query", "message"], err.to_string()))?,
        ),
    };
    let filter = FetchFilter { message, endpoint: query.one("endpoint")?.map(|ep| endpoint_ref(&ep)) };
    Ok(HttpResponse::Ok().json(fetch::list(&ctx, &principal, &app_ref(&path), &filter, &page).await?))
}
