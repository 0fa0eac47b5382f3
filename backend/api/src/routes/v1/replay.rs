//! Replay and recovery (resend, recover, replay-missing), bulk job progress, endpoint and tenant
//! statistics, expunging a payload, and consumer-portal tokens.

use actix_web::{HttpResponse, web};
use hookline_core::{Context, catalog::portal, logs::replay, logs::retention};
use hookline_types::{
    DeliveryOut, EndpointStatsOut, ErrorBody, JobId, JobOut, MessageId, PortalTokenIn, PortalTokenOut,
    RecoverIn, ReplayMissingIn, TenantStatsOut,
};

use super::{app_ref, endpoint_ref};
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    json::Json,
};

fn message_id(segment: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(segment).map_err(|_| ApiError::not_found("message"))
}

fn job_id(segment: &str) -> Result<JobId, ApiError> {
    JobId::parse(segment).map_err(|_| ApiError::not_found("job"))
}

/// Resend one message to one endpoint: one manual attempt (logged with trigger `manual`; no
/// automatic retries follow if it fails). The endpoint need not have had a delivery of it.
///
/// Needs the `write` scope. No body. The delivery (created if there was none) becomes pending and
/// due now, and is sent like any other, so the endpoint's circuit breaker, FIFO ordering and rate
/// limit still apply. 409 `delivery_in_flight` while an attempt of it is being sent.
#[utoipa::path(post, path = "/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend", operation_id = "v1.message.resend", tag = "Replay",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    responses(
        (status = 202, description = "The delivery, due now", body = DeliveryOut),
        (status = 404, body = ErrorBody),
        (status = 409, description = "An attempt of this delivery is in flight", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn resend(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg, ep) = path.into_inner();
    let out =
        replay::resend(&ctx, &principal, &app_ref(&app), &message_id(&msg)?, &endpoint_ref(&ep)).await?;
    Ok(HttpResponse::Accepted().json(out))
}

/// Resend every failed or dead delivery of the endpoint whose message was created in
/// `[since, until)`, as a background job.
///
/// Needs the `write` scope. `since` must not be in the future and `until`, when given, must be
/// later than `since` (open-ended without it). Answers at once with the running job; each
/// delivery then gets one manual attempt, fed a few at a time within the endpoint's rate limit.
/// An organization runs at most 5 jobs at once (429 `too_many_jobs`).
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint/{ep}/recover", operation_id = "v1.endpoint.recover", tag = "Replay",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    request_body(content = RecoverIn, example = json!({
        "since": "2026-12-01T00:00:00Z",
        "until": "2026-12-02T00:00:00Z"
    })),
    responses((status = 202, description = "The job; poll GET /api/v1/job/{id} (its total is 0 until it has counted what to send)", body = JobOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "too_many_jobs: the organization already runs its maximum of jobs", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn recover(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
    Json(input): Json<RecoverIn>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Accepted()
        .json(replay::recover(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep), input).await?))
}

/// Deliver to the endpoint every message since `since` that matches its filters and that it never
/// got, as a background job.
///
/// Needs the `write` scope. Covers the messages created from `since` (not in the future) until
/// the request, such as those sent before the endpoint existed, while it was disabled or before
/// its filters changed; test events are left out. Answers at once with the running job, whose
/// deliveries get one manual attempt each. An organization runs at most 5 jobs at once (429
/// `too_many_jobs`).
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint/{ep}/replay-missing", operation_id = "v1.endpoint.replay_missing", tag = "Replay",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    request_body(content = ReplayMissingIn, example = json!({"since": "2026-12-01T00:00:00Z"})),
    responses((status = 202, description = "The job; poll GET /api/v1/job/{id} (its total is 0 until it has counted what to send)", body = JobOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "too_many_jobs: the organization already runs its maximum of jobs", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay_missing(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
    Json(input): Json<ReplayMissingIn>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Accepted()
        .json(replay::replay_missing(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep), input).await?))
}

/// A background job's progress.
///
/// Needs the `read` scope; a portal token sees its own application's jobs only. `total` is 0
/// until the job has counted what to send; `done` and `failed` count the deliveries whose manual
/// attempt succeeded or failed, and `state` turns `completed` when they add up to `total`.
#[utoipa::path(get, path = "/api/v1/job/{id}", operation_id = "v1.job.get", tag = "Replay",
    params(("id" = String, Path, example = "job_01KJPZXT4GWG0NJR445DF0QQX8")),
    responses((status = 200, description = "The job", body = JobOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_job(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(replay::get_job(&ctx, &principal, &job_id(&path)?).await?))
}

/// Cancel a running job: nothing more is sent; deliveries still waiting go back to where they were.
///
/// Needs the `write` scope. No body. A recover job's waiting deliveries go back to `dead`, and a
/// replay-missing job's never-attempted ones are removed; attempts already in flight finish and
/// are counted. 409 `job_finished` when the job is no longer running.
#[utoipa::path(post, path = "/api/v1/job/{id}/cancel", operation_id = "v1.job.cancel", tag = "Replay",
    params(("id" = String, Path, example = "job_01KJPZXT4GWG0NJR445DF0QQX8")),
    responses(
        (status = 200, description = "The cancelled job", body = JobOut),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job already finished", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn cancel_job(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(replay::cancel_job(&ctx, &principal, &job_id(&path)?).await?))
}

/// Attempt outcomes and latency percentiles over the last hour, day and week.
///
/// Needs the `read` scope. One window each for `1h`, `24h` and `7d`: attempts, successes,
/// failures, success rate, p50 and p95 durations, and the deliveries created in the window by
/// status. A window counts at most its newest 100,000 attempts, and the query is stopped after a
/// time limit (503 `query_timeout`).
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint/{ep}/stats", operation_id = "v1.endpoint.stats", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    responses((status = 200, description = "Statistics", body = EndpointStatsOut), (status = 404, body = ErrorBody), (status = 503, description = "query_timeout: the statistics took longer than allowed; try again", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Ok()
        .json(replay::endpoint_stats(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep)).await?))
}

/// The whole tenant: attempt outcomes, latency and deliveries over the last hour, day and week,
/// attempts by hour over the last day, and the endpoints that are failing or disabled.
///
/// Needs the `read` scope; portal tokens get 404. Each window counts at most its newest 100,000
/// attempts, and each list of endpoints holds at most 50. The query is stopped after a time limit
/// (503 `query_timeout`).
#[utoipa::path(get, path = "/api/v1/stats", operation_id = "v1.stats", tag = "Stats",
    responses((status = 200, description = "Statistics", body = TenantStatsOut), (status = 404, description = "Not for portal tokens", body = ErrorBody), (status = 503, description = "query_timeout: the statistics took longer than allowed; try again", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tenant_stats(ctx: web::Data<Context>, Auth(principal): Auth) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(replay::tenant_stats(&ctx, &principal).await?))
}

/// Delete the message's payload now. Its metadata, deliveries and attempts stay.
///
/// Needs the `write` scope. It cannot be undone: the message is shown without `payload` from then
/// on, and the next attempt of a delivery of it still pending fails with error class `config`,
/// without retries.
#[utoipa::path(delete, path = "/api/v1/app/{app}/msg/{msg}/content", operation_id = "v1.message.expunge_content", tag = "Message",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T")),
    responses((status = 204, description = "Expunged"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn expunge_content(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg) = path.into_inner();
    retention::expunge_content(&ctx, &principal, &app_ref(&app), &message_id(&msg)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Mint a consumer-portal token: a short-lived bearer token with which the API answers for this
/// application only (its endpoints, messages, attempts, replays); everything else is 404.
///
/// Needs the `write` scope and a tenant-wide credential (a portal token gets 404). The body is
/// optional: by default the token is read-write and lasts 3600 seconds (`expires_in`: 60 to
/// 86400). It cannot be revoked and works until `expires_at`; a read-write token cannot publish
/// messages. The response is not kept for `Idempotency-Key` replay (a repeat answers 409).
#[utoipa::path(post, path = "/api/v1/app/{app}/portal-token", operation_id = "v1.application.portal_token", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05")),
    request_body(content = Option<PortalTokenIn>, example = json!({"read_only": true, "expires_in": 900})),
    responses((status = 201, description = "The token", body = PortalTokenOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn portal_token(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    // The body is optional: none means a read-write token for an hour.
    let input: PortalTokenIn = crate::json::optional_body(&body)?;
    let minted = portal::mint(&ctx, &principal, &app_ref(&path), input).await?;
    Ok(crate::idempotency::carries_secret(HttpResponse::Created().json(minted)))
}
