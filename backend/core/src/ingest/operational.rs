//! Operational webhooks: events about the tenant's own deliveries (`endpoint.disabled`,
//! `message.attempt.failing`, `message.attempt.exhausted`, `message.attempt.recovered`), sent
//! through the ordinary pipeline to the tenant's application with uid `hookline-operational`.
//! A tenant subscribes by creating that application and an endpoint in it (with filters, signing,
//! retries, logs like any other); without it the events are dropped. Deliveries of the
//! operational application itself never emit events, so a failing operational endpoint cannot
//! feed itself.

use chrono::Utc;
use hookline_types::{AppId, IdOrUid, MessageId, TenantId};
use serde_json::Value;

use crate::{
    Context,
    catalog::applications,
    error::{CoreError, CoreResult},
    ids::NewId,
    ingest::NewMessage,
};

pub const OPERATIONAL_APP_UID: &str = "hookline-operational";

/// Stores an operational event for the tenant, when it has the operational application and the
/// event does not concern that application itself. Returns whether a message was created.
pub async fn emit(
    ctx: &Context,
    tenant: &TenantId,
    about_app: &str,
    event_type: &str,
    payload: Value,
) -> CoreResult<bool> {
    let operational = IdOrUid::<AppId>::Uid(OPERATIONAL_APP_UID.to_owned());
    let app = match applications::find_cached(ctx, tenant, &operational).await {
        Ok(app) => app,
        Err(CoreError::NotFound(_)) => return Ok(false),
        Err(err) => return Err(err),
    };
    if app.id == about_app {
        return Ok(false);
    }
    let message = NewMessage {
        id: MessageId::new_id().into_string(),
        tenant_id: tenant.clone(),
        app_id: AppId::parse(&app.id).map_err(|err| CoreError::Internal(err.into()))?,
        event_type: event_type.to_owned(),
        event_id: None,
        channels: serde_json::json!([]),
        payload_text: payload.to_string(),
        object: None,
        headers: Vec::new(),
        only_endpoint: None,
        created_at: Utc::now(),
        // Hookline's own notices: not the tenant's usage, never refused by its quota.
        quota: None,
        counts_as_usage: false,
        inbound: false,
        // Fanned out by the worker.
        plan_rate: None,
    };
    ctx.ingest.store(message).await.map_err(|err| CoreError::Internal(anyhow::anyhow!("{err}")))?;
    Ok(true)
}
