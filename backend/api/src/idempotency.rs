//! `Idempotency-Key` middleware for every POST under `/api/v1`. It authenticates the request (the
//! key space is per tenant and per credential), fingerprints method, path, query and body, and
//! then runs, replays or refuses the request as `hookline_core::ingest::idempotency` decides.
//! Responses of 5xx are not stored, so a request that failed on our side can be retried with the
//! same key; responses marked [`CarriesSecret`] are not stored either, and a repeat of their
//! request is refused (`409 idempotency_secret_not_replayed`).

use actix_web::{
    HttpMessage, HttpResponse,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header::CONTENT_TYPE},
    middleware::Next,
    web,
};
use hookline_core::{
    Context,
    ingest::idempotency::{self, Begin, MAX_KEY_LEN},
};
use sha2::{Digest, Sha256};

use crate::{auth, error::ApiError, json::payload_error};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A response extension: the body holds a secret shown once (a new API key, a portal token, a
/// session's CSRF token), so it is never stored for replay.
#[derive(Clone, Copy, Debug)]
pub struct CarriesSecret;

/// Marks `response` as carrying a secret ([`CarriesSecret`]).
pub fn carries_secret(mut response: HttpResponse) -> HttpResponse {
    response.extensions_mut().insert(CarriesSecret);
    response
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if req.method() != Method::POST {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let key = match key.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => key.to_owned(),
        _ => {
            let err = ApiError::invalid(
                &["header", HEADER],
                format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            );
            return Ok(req.error_response(err).map_into_boxed_body());
        }
    };
    // Without valid credentials there is no tenant to scope the key to; the handler answers 401.
    let Ok(caller) = auth::authenticate(req.request()).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let tenant = caller.principal.tenant_id.clone();
    let principal = idempotency::principal_key(&caller.principal);
    let body = match req.extract::<web::Bytes>().await {
        Ok(body) => body,
        Err(err) => return Ok(req.error_response(payload_error(err)).map_into_boxed_body()),
    };
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str());
    hasher.update([0]);
    hasher.update(req.path());
    hasher.update([0]);
    hasher.update(req.query_string());
    hasher.update([0]);
    hasher.update(&body);
    let fingerprint = hex::encode(hasher.finalize());
    req.set_payload(actix_web::dev::Payload::from(body));
    req.extensions_mut().insert(caller);

    let ctx = req.app_data::<web::Data<Context>>().expect("the app is built with a Context").clone();
    let decision = match idempotency::begin(&ctx, &tenant, &principal, &key, &fingerprint).await {
        Ok(decision) => decision,
        Err(err) => return Ok(req.error_response(ApiError::from(err)).map_into_boxed_body()),
    };
    match decision {
        Begin::Proceed => {}
        Begin::Replay { status, body } => {
            let response = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                .insert_header((CONTENT_TYPE, "application/json"))
                .insert_header((REPLAYED_HEADER, "true"))
                .body(body);
            return Ok(req.into_response(response));
        }
        Begin::InFlight => {
            let err = ApiError::http(
                StatusCode::CONFLICT,
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            );
            return Ok(req.error_response(err).map_into_boxed_body());
        }
        Begin::Withheld => {
            let err = ApiError::http(
                StatusCode::CONFLICT,
                "idempotency_secret_not_replayed",
                "the request with this Idempotency-Key created a secret, which is shown only once and is not \
                 replayed; list the resources to find what it created (revoke it and create another if the \
                 secret was lost)",
            );
            return Ok(req.error_response(err).map_into_boxed_body());
        }
        Begin::Mismatch => {
            let err = ApiError::http(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request",
            );
            return Ok(req.error_response(err).map_into_boxed_body());
        }
    }

    let response = match next.call(req).await {
        Ok(response) => response,
        Err(err) => {
            let _ = idempotency::abandon(&ctx, &tenant, &principal, &key).await;
            return Err(err);
        }
    };
    let status = response.status();
    let secret = response.response().extensions().get::<CarriesSecret>().is_some();
    let (http_req, http_res) = response.into_parts();
    let (head, body) = http_res.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let _ = idempotency::abandon(&ctx, &tenant, &principal, &key).await;
            let err = ApiError::http(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "could not read the response",
            );
            return Ok(ServiceResponse::new(http_req, actix_web::ResponseError::error_response(&err)));
        }
    };
    let stored = if status.is_server_error() {
        idempotency::abandon(&ctx, &tenant, &principal, &key).await
    } else {
        let body = (!secret).then(|| String::from_utf8_lossy(&bytes).into_owned());
        idempotency::finish(&ctx, &tenant, &principal, &key, status.as_u16(), body).await
    };
    if let Err(err) = stored {
        tracing::error!(error = %err, "could not store the idempotent response");
    }
    let http_res = head.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(http_req, http_res))
}
