//! `POST /api/v1/transform/test`: a transform tried on a sample message, in a sandbox with the
//! limits a delivery's run has. Reads the tenant's plan, stores nothing.

use hookline_types::{TransformTestIn, TransformTestOut};

use super::{Failure, input, interpret};
use crate::{
    Context,
    error::{CoreError, CoreResult},
    tenancy::{plans, principal::Principal},
};

/// Compiles `input.transform` (422 at `body.transform` with jaq's message and position when it
/// does not) and runs it: the output it would send, `skipped`, or the error a delivery's attempt
/// would log. Needs the plan feature `transformations`.
pub async fn test(
    ctx: &Context,
    principal: &Principal,
    body: &TransformTestIn,
) -> CoreResult<TransformTestOut> {
    let limits = plans::limits(ctx, &principal.tenant_id).await?;
    limits.require_feature(plans::FEATURE_TRANSFORMATIONS)?;
    super::compile(&body.transform)
        .map_err(|err| CoreError::invalid(&["body", "transform"], err.to_string()))?;
    crate::domain::EventTypeName::parse(&body.event_type)
        .map_err(|err| CoreError::invalid(&["body", "event_type"], err.to_string()))?;
    let payload = body.payload.clone().unwrap_or(serde_json::Value::Null).to_string();
    let headers = crate::routing::preview::sample_headers(body.headers.as_ref());
    let document = input(&body.event_type, &payload, &headers);
    let failed = |error: String| TransformTestOut { error: Some(error), ..TransformTestOut::default() };
    let output = match ctx
        .transformer
        .run(&body.transform, &document, ctx.config.transform_cpu_ms, limits.max_payload_bytes)
        .await
    {
        Ok(output) => output,
        Err(Failure::Program(message)) => return Ok(failed(message)),
        Err(Failure::Unavailable(message)) => {
            return Err(CoreError::Internal(anyhow::anyhow!("running a transform: {message}")));
        }
    };
    Ok(match interpret(&output) {
        Ok(None) => TransformTestOut { skipped: true, ..TransformTestOut::default() },
        Ok(Some(transformed)) => TransformTestOut {
            payload: Some(transformed.payload),
            event_type: Some(transformed.event_type.unwrap_or_else(|| body.event_type.clone())),
            headers: transformed.headers,
            ..TransformTestOut::default()
        },
        Err(message) => failed(message),
    })
}
