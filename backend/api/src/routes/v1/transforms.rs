//! Transformations: trying a jq program on a sample message.

use actix_web::{HttpResponse, web};
use hookline_core::{Context, transform::preview};
use hookline_types::{ErrorBody, TransformTestIn, TransformTestOut};

use crate::{auth::Auth, error::ApiResult, json::Json};

/// Try a transform on a sample message.
///
/// Runs a jq program (jaq) on `{"event_type", "payload", "headers"}` with the limits a
/// delivery's run has — 50 ms of CPU time (the operator's `HOOKLINE_TRANSFORM_CPU_MS`), 1 GiB of
/// memory, an output no larger than the plan's payload limit, no environment and no I/O — in a
/// sandbox process. The program returns
/// `{"payload", "event_type"?, "headers"?}`, or `null` to skip the delivery (`skipped`). A
/// program that fails at run time, passes a limit or returns anything else answers 200 with
/// `error` (what a delivery's attempt would log); one that does not compile is 422 with jaq's
/// message and the character position. Needs the plan feature `transformations` (Pro and up).
#[utoipa::path(post, path = "/api/v1/transform/test", operation_id = "v1.transform.test", tag = "Endpoint",
    request_body(content = TransformTestIn, example = json!({
        "transform": "if .payload.amount < 100 then null else {payload: {cents: (.payload.amount * 100)}, event_type: \"invoice.large\"} end",
        "event_type": "invoice.paid",
        "payload": {"amount": 250}
    })),
    responses(
        (status = 200, description = "What the program made of the message", body = TransformTestOut),
        (status = 403, description = "plan_feature_missing: the plan has no transformations", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn test(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    Json(input): Json<TransformTestIn>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(preview::test(&ctx, &principal, &input).await?))
}
