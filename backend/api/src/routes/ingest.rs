//! `/in/{token}`: a source's public ingest URL. The token in the path is the credential; the
//! source's verification scheme checks the request itself. The body is read up to the source's
//! limit (a declared `Content-Length` over it is refused before reading), kept as bytes, and the
//! answer comes only after the message is durable.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use hookline_core::{
    Context, CoreError,
    sources::receive::{self, Received, Request},
};
use hookline_types::{ErrorBody, IngestOut, MessageId};

use crate::error::{ApiError, ApiResult};

/// Receive a webhook on a source's ingest URL (any content type).
///
/// No API key: the token in the path is the credential, and the source's `verification` then
/// checks the request itself (401 with the failing check's code). A JSON body becomes the
/// message's payload byte for byte, a form body an object of its fields, and anything else
/// `{"content_type", "body"}` (or `body_base64`). The answer comes once the message is stored; a
/// repeat of an accepted event id within `HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS` (7 days by
/// default) is answered 200 with the first message, a request the source's content filter does not
/// match is answered 200 `{"filtered": true}` and not stored, and Slack's `url_verification` is
/// echoed.
#[utoipa::path(post, path = "/in/{token}", operation_id = "v1.source.ingest", tag = "Source",
    params(("token" = String, Path, description = "The source's ingest token (part of its ingest_url)", example = "86wX3JtMj0Eeip09jiJRpB9FIfpkzadR")),
    request_body(content = String, description = "The provider's webhook, any content type", content_type = "*/*",
        example = r#"{"id":"evt_1QdL3kFz8xYw2aBc","type":"invoice.paid","data":{"invoice_id":"in_1042","amount_cents":4900,"currency":"USD"}}"#),
    responses(
        (status = 202, description = "Accepted: stored as a message", body = IngestOut),
        (status = 200, description = "A duplicate (the event id was accepted before), a stale ordered event, a request the source's filter does not match or its transform skips (null), or a handshake answered", body = IngestOut),
        (status = 401, description = "signature_missing, signature_mismatch, timestamp_out_of_tolerance or credentials_invalid", body = ErrorBody),
        (status = 404, description = "Unknown token", body = ErrorBody),
        (status = 410, description = "source_disabled", body = ErrorBody),
        (status = 413, description = "Body over the source's limit", body = ErrorBody),
        (status = 429, description = "rate_limited (the source's bucket; Retry-After) or quota_exceeded", body = ErrorBody),
        (status = 502, description = "transform_failed: the source's transform failed; nothing was stored (the request log says why)", body = ErrorBody),
    ))]
pub async fn ingest(
    req: HttpRequest,
    ctx: web::Data<Context>,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let source = receive::lookup(&ctx, &path).await?;
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let method = req.method().as_str().to_owned();
    let refused = |reason: &str, status: u16, body: &[u8]| {
        let request = Request { method: &method, headers: &headers, query: req.query_string(), body };
        receive::log_refused(&ctx, &source, &request, reason, status);
    };
    if let Err(err) = receive::take_token(&ctx, &source) {
        refused("rate_limited", 429, b"");
        return Err(err.into());
    }
    let limit = receive::body_limit(&ctx, &source).await?;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared
        && size > limit
    {
        refused("payload_too_large", 413, b"");
        return Err(CoreError::PayloadTooLarge { size, limit }.into());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::Http {
            status: actix_web::http::StatusCode::BAD_REQUEST,
            code: "body_unreadable",
            detail: format!("the request body could not be read: {err}"),
        })?;
        if body.len() + chunk.len() > limit {
            refused("payload_too_large", 413, b"");
            return Err(CoreError::PayloadTooLarge { size: body.len() + chunk.len(), limit }.into());
        }
        body.extend_from_slice(&chunk);
    }
    let request = Request { method: &method, headers: &headers, query: req.query_string(), body: &body };
    let received = receive::receive(&ctx, &source, request).await?;
    let message = |id: &str| MessageId::parse(id).ok();
    Ok(match received {
        Received::Accepted { message: id } => {
            HttpResponse::Accepted().json(IngestOut { message: message(&id), ..IngestOut::default() })
        }
        Received::Duplicate { message: id } => HttpResponse::Ok().json(IngestOut {
            message: message(&id),
            duplicate: true,
            ..IngestOut::default()
        }),
        Received::Stale => HttpResponse::Ok().json(IngestOut { stale: true, ..IngestOut::default() }),
        Received::Filtered => HttpResponse::Ok().json(IngestOut { filtered: true, ..IngestOut::default() }),
        Received::Challenge { body, content_type } => {
            HttpResponse::Ok().content_type(content_type).body(body)
        }
    })
}

/// A provider's `GET` handshake on a source's ingest URL: `hub.challenge` is echoed, a
/// `crc_token` is answered with `{"response_token": "sha256=…"}` (HMAC under the source's
/// secret); any other `GET` is refused (401 `signature_missing`).
///
/// No API key: the token in the path is the credential. `hub.challenge` is echoed as
/// `text/plain` without further checks; `crc_token` is answered for any source whose
/// verification is not `none`. Nothing is stored; the request is logged with outcome `handshake`.
#[utoipa::path(get, path = "/in/{token}", operation_id = "v1.source.handshake", tag = "Source",
    params(("token" = String, Path, description = "The source's ingest token (part of its ingest_url)", example = "86wX3JtMj0Eeip09jiJRpB9FIfpkzadR")),
    responses(
        (status = 200, description = "The challenge answered (text/plain for hub.challenge, JSON for crc_token)"),
        (status = 404, description = "Unknown token", body = ErrorBody),
        (status = 401, description = "signature_missing: not a handshake (send webhooks with POST)", body = ErrorBody),
        (status = 410, description = "source_disabled", body = ErrorBody),
        (status = 429, description = "rate_limited (the source's bucket; Retry-After)", body = ErrorBody),
    ))]
pub async fn handshake(
    req: HttpRequest,
    ctx: web::Data<Context>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    ingest(req, ctx, path, payload).await
}
