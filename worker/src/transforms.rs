//! An endpoint's transform applied to one delivery before it is sent: its jq program runs in a
//! sandbox ([`hookline_core::transform`]) on `{"event_type", "payload", "headers"}`, and what it
//! returns is sent — the body (signed as sent), a new event type, extra headers — or nothing.

use std::{sync::Arc, time::Instant};

use hookline_core::{
    Context,
    delivery::{Claimed, Payload},
    tenancy::plans,
    transform::{self, Failure},
};

use crate::send::Target;

/// What a delivery's transform decided.
pub enum Transformed {
    /// Send this body, as this delivery (its event type may be the program's), to this target
    /// (its headers may include the program's).
    Send { claimed: Claimed, target: Arc<Target>, payload: Arc<Payload> },
    /// The program returned `null`: send nothing.
    Skip(Instant),
    /// The program failed or passed a limit: the attempt fails with class `transform`.
    Failed(String, Instant),
}

/// Runs `program` for `claimed`'s delivery to `target`.
pub async fn apply(
    ctx: &Context,
    claimed: &Claimed,
    target: &Target,
    payload: &Arc<Payload>,
    program: &str,
) -> Transformed {
    let started = Instant::now();
    let failed = |detail: String| Transformed::Failed(detail, started);
    let limits = match hookline_types::TenantId::parse(&claimed.tenant_id) {
        Ok(tenant) => plans::limits(ctx, &tenant).await.map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    let max_output = match limits {
        Ok(limits) => limits.max_payload_bytes,
        Err(err) => return failed(format!("could not read the plan's payload limit: {err}")),
    };
    // A claim-checked payload is read for the program (a transform needs the whole document).
    let stored;
    let text = match &payload.stored {
        None => payload.text.as_str(),
        Some(object) => match ctx.objects.get(&object.key).await {
            Ok(bytes) => {
                stored = String::from_utf8_lossy(&bytes).into_owned();
                stored.as_str()
            }
            Err(err) => return failed(format!("reading the stored payload: {err}")),
        },
    };
    let input = transform::input(&claimed.event_type, text, &payload.headers);
    let output = match ctx.transformer.run(program, &input, ctx.config.transform_cpu_ms, max_output).await {
        Ok(output) => output,
        Err(Failure::Program(message)) => return failed(format!("the transform failed: {message}")),
        Err(Failure::Unavailable(message)) => {
            return failed(format!("the transform could not run: {message}"));
        }
    };
    let transformed = match transform::interpret(&output) {
        Ok(Some(transformed)) => transformed,
        Ok(None) => return Transformed::Skip(started),
        Err(message) => return failed(format!("the transform's output: {message}")),
    };
    let mut as_sent = claimed.clone();
    if let Some(event_type) = transformed.event_type {
        as_sent.event_type = event_type;
    }
    let mut endpoint = target.endpoint.clone();
    endpoint.headers.extend(transformed.headers);
    // The program's output is the body: thin delivery (a link to the stored payload) applies to
    // untransformed payloads only.
    endpoint.payload_mode = hookline_types::PayloadMode::Full;
    Transformed::Send {
        claimed: as_sent,
        target: Arc::new(Target::new(endpoint)),
        payload: Arc::new(Payload::new(transformed.payload.to_string(), payload.headers.clone())),
    }
}
