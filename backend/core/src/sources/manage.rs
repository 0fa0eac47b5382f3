//! Sources as a resource: create, list, get, patch, delete, rotate the ingest token, and build a
//! signed test request. Tenant-scoped like every resource; the ingest token is stored as its
//! SHA-256 (the lookup) and sealed (to show the URL again).

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hookline_types::{
    ApiKeyScope, AppId, IdOrUid, ListResponse, Patch, SourceId, SourceIn, SourceOut, SourcePatch,
    SourceTestRequestOut, ValueFrom, VerificationIn, validate_uid,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, Order, QueryFilter, Set};

use crate::{
    Context,
    catalog::applications,
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    sources::rules::{self, Settings},
    sources::verify::{self, Stored},
    store::entities::{source_order, source_requests, sources},
    store::is_unique_violation,
    store::pagination::{PageRequest, paginate},
    store::scope::TenantScoped,
    tenancy::{plans, principal::Principal},
};

/// How long the previous ingest URL keeps working after a rotation.
pub const PREVIOUS_TOKEN_HOURS: i64 = 24;

pub const MAX_RATE: u32 = 100_000;

fn uid_taken(uid: &str) -> CoreError {
    CoreError::conflict("uid_taken", format!("another source already has uid {uid:?}"))
}

/// The ingest URL of a token.
pub(crate) fn ingest_url(ctx: &Context, token: &str) -> String {
    format!("{}/in/{token}", ctx.config.public_url.trim_end_matches('/'))
}

pub(crate) fn stored_verification(ctx: &Context, model: &sources::Model) -> CoreResult<Stored> {
    let text = ctx.keys.decrypt_string(&model.verification).map_err(CoreError::Internal)?;
    serde_json::from_str(&text)
        .map_err(|err| CoreError::Internal(anyhow::anyhow!("source verification: {err}")))
}

pub(crate) fn settings(model: &sources::Model) -> CoreResult<Settings> {
    crate::store::from_json(model.settings.clone(), "source settings")
}

fn seal(ctx: &Context, stored: &Stored) -> String {
    ctx.keys.encrypt(serde_json::to_string(stored).expect("verification serializes").as_bytes())
}

/// The largest body a source accepts now: its own limit, never above the plan's payload limit.
pub(crate) fn body_limit(model: &sources::Model, plan_limit: usize) -> usize {
    model.max_body_bytes.map_or(plan_limit, |n| (n.max(1) as usize).min(plan_limit))
}

async fn to_out(ctx: &Context, model: sources::Model) -> CoreResult<SourceOut> {
    let limits = plans::limits(ctx, &tenant_of(&model)?).await?;
    let now = Utc::now();
    let stored = stored_verification(ctx, &model)?;
    let settings = settings(&model)?;
    let token = ctx.keys.decrypt_string(&model.token_sealed).map_err(CoreError::Internal)?;
    Ok(SourceOut {
        id: SourceId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        uid: model.uid.clone(),
        name: model.name.clone(),
        app_id: AppId::parse(&model.app_id).map_err(|err| CoreError::Internal(err.into()))?,
        verification: stored.to_out(now),
        event_type: settings.event_type,
        event_id: settings.event_id,
        forward_headers: settings.forward_headers,
        rate_limit: model.rate_limit.map(|n| n as u32),
        burst: model.burst.map(|n| n as u32),
        max_body_bytes: body_limit(&model, limits.max_payload_bytes) as u64,
        ordering: settings.ordering,
        filter: settings.filter,
        transform: settings.transform,
        disabled: model.disabled,
        ingest_url: ingest_url(ctx, &token),
        previous_url_expires_at: model.previous_token_expires_at.filter(|at| *at > now),
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

fn tenant_of(model: &sources::Model) -> CoreResult<hookline_types::TenantId> {
    hookline_types::TenantId::parse(&model.tenant_id).map_err(|err| CoreError::Internal(err.into()))
}

/// Finds one of the tenant's sources by id or uid.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant: &hookline_types::TenantId,
    source: &IdOrUid<SourceId>,
) -> CoreResult<sources::Model> {
    let select = sources::Entity::scoped(tenant);
    let select = match source {
        IdOrUid::Id(id) => select.filter(sources::Column::Id.eq(id.as_str())),
        IdOrUid::Uid(uid) => select.filter(sources::Column::Uid.eq(uid.as_str())),
    };
    select.one(conn).await?.ok_or(CoreError::NotFound("source"))
}

fn check_name(errors: &mut Errors, name: &str) {
    if name.trim().is_empty() || name.chars().count() > 256 {
        errors.push(&["body", "name"], "must be 1 to 256 characters long");
    }
}

fn check_rate(errors: &mut Errors, field: &str, value: Option<u32>) {
    if value.is_some_and(|n| n == 0 || n > MAX_RATE) {
        errors.push(&["body", field], format!("must be 1 to {MAX_RATE}"));
    }
}

fn check_max_body(errors: &mut Errors, value: Option<u64>, plan_limit: usize, plan: &str) {
    if value.is_some_and(|n| n == 0 || n > plan_limit as u64) {
        errors.push(
            &["body", "max_body_bytes"],
            format!("must be 1 to {plan_limit} bytes (the {plan} plan's payload limit)"),
        );
    }
}

fn check_ordering(errors: &mut Errors, ordering: &hookline_types::SourceOrdering) {
    rules::check_value_from(errors, &["ordering", "sequence"], &ordering.sequence, false);
    if let Some(key) = &ordering.key {
        rules::check_value_from(errors, &["ordering", "key"], key, false);
    }
}

async fn resolve_app(ctx: &Context, principal: &Principal, app: &str) -> CoreResult<String> {
    match applications::find(&ctx.db.conn, &principal.tenant_id, &IdOrUid::<AppId>::parse(app)).await {
        Ok(model) => Ok(model.id),
        Err(CoreError::NotFound(_)) => Err(CoreError::invalid(&["body", "app"], "no such application")),
        Err(err) => Err(err),
    }
}

pub async fn create(ctx: &Context, principal: &Principal, input: SourceIn) -> CoreResult<SourceOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Write)?;
    let limits = plans::limits(ctx, &principal.tenant_id).await?;
    let mut errors = Errors::default();
    check_name(&mut errors, &input.name);
    if let Some(uid) = &input.uid {
        errors.check(&["body", "uid"], validate_uid(uid, SourceId::PREFIX));
    }
    verify::check(&mut errors, &input.verification);
    if let Some(rule) = &input.event_type {
        rules::check_value_from(&mut errors, &["event_type"], rule, true);
    }
    if let Some(rule) = &input.event_id {
        rules::check_value_from(&mut errors, &["event_id"], rule, false);
    }
    rules::check_forward_headers(&mut errors, &input.forward_headers);
    check_rate(&mut errors, "rate_limit", input.rate_limit);
    check_rate(&mut errors, "burst", input.burst);
    check_max_body(&mut errors, input.max_body_bytes, limits.max_payload_bytes, &limits.plan);
    if let Some(ordering) = &input.ordering {
        check_ordering(&mut errors, ordering);
    }
    if let Some(filter) = &input.filter {
        crate::routing::check_filter(&mut errors, filter);
    }
    if let Some(transform) = &input.transform {
        crate::transform::check(&mut errors, transform);
    }
    errors.into_result()?;
    if input.transform.is_some() {
        crate::transform::require_feature(ctx, &principal.tenant_id).await?;
    }
    let app_id = resolve_app(ctx, principal, &input.app).await?;
    plans::require_room_for_source(ctx, &principal.tenant_id).await?;
    let now = Utc::now();
    let settings = Settings {
        event_type: input
            .event_type
            .unwrap_or_else(|| ValueFrom::Fixed(rules::default_event_type(&input.name))),
        event_id: input.event_id,
        forward_headers: input.forward_headers,
        ordering: input.ordering,
        filter: input.filter,
        transform: input.transform,
    };
    let token = crate::crypto::random_token();
    let stored = Stored { scheme: input.verification, previous: Vec::new() };
    let model = sources::ActiveModel {
        id: Set(SourceId::new_id().into_string()),
        tenant_id: Set(principal.tenant_id.to_string()),
        app_id: Set(app_id),
        uid: Set(input.uid.clone()),
        name: Set(input.name.trim().to_owned()),
        verification: Set(seal(ctx, &stored)),
        settings: Set(crate::store::to_json(&settings)),
        rate_limit: Set(input.rate_limit.map(|n| n as i32)),
        burst: Set(input.burst.map(|n| n as i32)),
        max_body_bytes: Set(input.max_body_bytes.map(|n| n as i64)),
        disabled: Set(input.disabled),
        token_hash: Set(crate::crypto::hash_token(&token)),
        token_sealed: Set(ctx.keys.encrypt(token.as_bytes())),
        previous_token_hash: Set(None),
        previous_token_expires_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(&ctx.db.writer).await {
        Ok(model) => to_out(ctx, model).await,
        Err(err) if is_unique_violation(&err) => Err(uid_taken(input.uid.as_deref().unwrap_or_default())),
        Err(err) => Err(err.into()),
    }
}

pub async fn list(
    ctx: &Context,
    principal: &Principal,
    page: &PageRequest,
) -> CoreResult<ListResponse<SourceOut>> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Read)?;
    let list = paginate(
        &ctx.db.conn,
        sources::Entity::scoped(&principal.tenant_id),
        sources::Column::Id,
        Order::Asc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    let mut out = Vec::with_capacity(list.data.len());
    for model in list.data {
        out.push(to_out(ctx, model).await?);
    }
    Ok(ListResponse { data: out, iterator: list.iterator, done: list.done })
}

pub async fn get(ctx: &Context, principal: &Principal, source: &IdOrUid<SourceId>) -> CoreResult<SourceOut> {
    principal.require_tenant_wide("source")?;
    principal.require(ApiKeyScope::Read)?;
    to_out(ctx, find(&ctx.db.conn, &principal.tenant_id, source).await?).await
}

pub async fn patch(
    ctx: &Context,
    principal: &Principal,
    source: &IdOrUid<SourceId>,
    patch: SourcePatch,
) -> CoreResult<SourceOut> {
    principal.require_tenant_wide("source")?;
    principal.require(ApiKeyScope::Write)?;
    let limits = plans::limits(ctx, &principal.tenant_id).await?;
    let model = find(&ctx.db.writer, &principal.tenant_id, source).await?;
    let mut errors = Errors::default();
    if let Some(name) = &patch.name {
        check_name(&mut errors, name);
    }
    if let Patch::Value(uid) = &patch.uid {
        errors.check(&["body", "uid"], validate_uid(uid, SourceId::PREFIX));
    }
    if let Some(verification) = &patch.verification {
        verify::check(&mut errors, verification);
    }
    if let Patch::Value(rule) = &patch.event_type {
        rules::check_value_from(&mut errors, &["event_type"], rule, true);
    }
    if let Patch::Value(rule) = &patch.event_id {
        rules::check_value_from(&mut errors, &["event_id"], rule, false);
    }
    if let Some(headers) = &patch.forward_headers {
        rules::check_forward_headers(&mut errors, headers);
    }
    if let Patch::Value(n) = patch.rate_limit {
        check_rate(&mut errors, "rate_limit", Some(n));
    }
    if let Patch::Value(n) = patch.burst {
        check_rate(&mut errors, "burst", Some(n));
    }
    if let Patch::Value(n) = patch.max_body_bytes {
        check_max_body(&mut errors, Some(n), limits.max_payload_bytes, &limits.plan);
    }
    if let Patch::Value(ordering) = &patch.ordering {
        check_ordering(&mut errors, ordering);
    }
    if let Patch::Value(filter) = &patch.filter {
        crate::routing::check_filter(&mut errors, filter);
    }
    if let Patch::Value(transform) = &patch.transform {
        crate::transform::check(&mut errors, transform);
    }
    errors.into_result()?;
    if matches!(patch.transform, Patch::Value(_)) {
        crate::transform::require_feature(ctx, &principal.tenant_id).await?;
    }
    let now = Utc::now();
    let mut settings = settings(&model)?;
    let name = patch.name.as_deref().map(str::trim).unwrap_or(&model.name).to_owned();
    match patch.event_type {
        Patch::Absent => {}
        Patch::Null => settings.event_type = ValueFrom::Fixed(rules::default_event_type(&name)),
        Patch::Value(rule) => settings.event_type = rule,
    }
    if let Some(update) = patch.event_id.into_update() {
        settings.event_id = update;
    }
    if let Some(headers) = patch.forward_headers {
        settings.forward_headers = headers;
    }
    if let Some(update) = patch.ordering.into_update() {
        settings.ordering = update;
    }
    if let Some(update) = patch.filter.into_update() {
        settings.filter = update;
    }
    if let Some(update) = patch.transform.into_update() {
        settings.transform = update;
    }
    let mut active: sources::ActiveModel = model.clone().into();
    if let Some(app) = &patch.app {
        active.app_id = Set(resolve_app(ctx, principal, app).await?);
    }
    if let Some(verification) = patch.verification {
        let stored = stored_verification(ctx, &model)?.replaced_by(verification, now);
        active.verification = Set(seal(ctx, &stored));
    }
    active.name = Set(name);
    let new_uid = patch.uid.into_update();
    if let Some(uid) = new_uid.clone() {
        active.uid = Set(uid);
    }
    active.settings = Set(crate::store::to_json(&settings));
    if let Some(update) = patch.rate_limit.into_update() {
        active.rate_limit = Set(update.map(|n| n as i32));
    }
    if let Some(update) = patch.burst.into_update() {
        active.burst = Set(update.map(|n| n as i32));
    }
    if let Some(update) = patch.max_body_bytes.into_update() {
        active.max_body_bytes = Set(update.map(|n| n as i64));
    }
    if let Some(disabled) = patch.disabled {
        active.disabled = Set(disabled);
    }
    active.updated_at = Set(now);
    ctx.caches.sources.clear();
    match active.update(&ctx.db.writer).await {
        Ok(model) => to_out(ctx, model).await,
        Err(err) if is_unique_violation(&err) => {
            Err(uid_taken(new_uid.flatten().as_deref().unwrap_or_default()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Deletes the source with its request log and ordering state; the messages it created stay
/// (they belong to the application).
pub async fn delete(ctx: &Context, principal: &Principal, source: &IdOrUid<SourceId>) -> CoreResult<()> {
    principal.require_tenant_wide("source")?;
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let txn = ctx.db.begin_write().await?;
    let model = find(&txn, tenant, source).await?;
    source_requests::Entity::scoped_delete(tenant)
        .filter(source_requests::Column::SourceId.eq(model.id.as_str()))
        .exec(&txn)
        .await?;
    source_order::Entity::scoped_delete(tenant)
        .filter(source_order::Column::SourceId.eq(model.id.as_str()))
        .exec(&txn)
        .await?;
    sources::Entity::scoped_delete(tenant)
        .filter(sources::Column::Id.eq(model.id.as_str()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    ctx.caches.sources.clear();
    Ok(())
}

/// Issues a new ingest token; the previous one keeps working for [`PREVIOUS_TOKEN_HOURS`].
pub async fn rotate_token(
    ctx: &Context,
    principal: &Principal,
    source: &IdOrUid<SourceId>,
) -> CoreResult<SourceOut> {
    principal.require_tenant_wide("source")?;
    principal.require(ApiKeyScope::Write)?;
    let model = find(&ctx.db.writer, &principal.tenant_id, source).await?;
    let token = crate::crypto::random_token();
    let now = Utc::now();
    let mut active: sources::ActiveModel = model.clone().into();
    active.previous_token_hash = Set(Some(model.token_hash.clone()));
    active.previous_token_expires_at = Set(Some(now + chrono::Duration::hours(PREVIOUS_TOKEN_HOURS)));
    active.token_hash = Set(crate::crypto::hash_token(&token));
    active.token_sealed = Set(ctx.keys.encrypt(token.as_bytes()));
    active.updated_at = Set(now);
    let model = active.update(&ctx.db.writer).await?;
    ctx.caches.sources.clear();
    to_out(ctx, model).await
}

/// A request signed now with the source's current secret, and the `curl` line that sends it.
pub async fn test_request(
    ctx: &Context,
    principal: &Principal,
    source: &IdOrUid<SourceId>,
) -> CoreResult<SourceTestRequestOut> {
    principal.require_tenant_wide("source")?;
    principal.require(ApiKeyScope::Write)?;
    let model = find(&ctx.db.conn, &principal.tenant_id, source).await?;
    let stored = stored_verification(ctx, &model)?;
    let settings = settings(&model)?;
    let token = ctx.keys.decrypt_string(&model.token_sealed).map_err(CoreError::Internal)?;
    let url = ingest_url(ctx, &token);
    let now = Utc::now();
    let event_id = format!("evt_test_{}", crate::crypto::random_token());
    let body = serde_json::json!({
        "id": event_id,
        "type": "hookline.test",
        "created_at": now.to_rfc3339(),
        "data": {"message": "A test request from the Hookline dashboard"},
    })
    .to_string();
    let headers = sign_example(&stored.scheme, &settings, &event_id, &body, now);
    let mut curl = format!("curl -X POST '{url}' -H 'content-type: application/json'");
    for (name, value) in &headers {
        curl.push_str(&format!(" -H '{name}: {value}'"));
    }
    curl.push_str(&format!(" --data-raw '{body}'"));
    Ok(SourceTestRequestOut { url, headers, body, curl, unsigned: unsigned_reason(&stored.scheme) })
}

/// Why a test request for this scheme cannot be signed, if it cannot.
fn unsigned_reason(scheme: &VerificationIn) -> Option<String> {
    match scheme {
        VerificationIn::StandardWebhooks { secret: None, .. } => Some(
            "this source verifies v1a (Ed25519) signatures with the provider's public key; only the provider \
             can sign, so this request carries no signature and will be rejected"
                .to_owned(),
        ),
        _ => None,
    }
}

/// The headers that make `body` pass `scheme` now (and name the event, where the source reads
/// its event type or id from a header).
fn sign_example(
    scheme: &VerificationIn,
    settings: &Settings,
    event_id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> BTreeMap<String, String> {
    use hookline_types::{HmacAlgorithm, SignatureEncoding};
    let mut headers = BTreeMap::new();
    let timestamp = now.timestamp().to_string();
    let sha256 = |key: &[u8], content: &[u8]| verify::hmac(HmacAlgorithm::Sha256, key, content);
    match scheme {
        VerificationIn::None => {}
        VerificationIn::StandardWebhooks { secret, .. } => {
            headers.insert("webhook-id".to_owned(), event_id.to_owned());
            headers.insert("webhook-timestamp".to_owned(), timestamp.clone());
            // A v1a source holds only the public key: no signature (see `unsigned_reason`).
            if let Some(key) = secret
                .as_deref()
                .and_then(|s| s.strip_prefix("whsec_"))
                .and_then(|b64| STANDARD.decode(b64).ok())
            {
                let content = format!("{event_id}.{timestamp}.{body}");
                headers.insert(
                    "webhook-signature".to_owned(),
                    format!("v1,{}", STANDARD.encode(sha256(&key, content.as_bytes()))),
                );
            }
        }
        VerificationIn::Stripe { secret, .. } => {
            let sig = hex::encode(sha256(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes()));
            headers.insert("Stripe-Signature".to_owned(), format!("t={timestamp},v1={sig}"));
        }
        VerificationIn::Github { secret } => {
            let sig = hex::encode(sha256(secret.as_bytes(), body.as_bytes()));
            headers.insert("X-Hub-Signature-256".to_owned(), format!("sha256={sig}"));
            headers.insert("X-GitHub-Delivery".to_owned(), event_id.to_owned());
            headers.insert("X-GitHub-Event".to_owned(), "ping".to_owned());
        }
        VerificationIn::Shopify { secret } => {
            headers.insert(
                "X-Shopify-Hmac-Sha256".to_owned(),
                STANDARD.encode(sha256(secret.as_bytes(), body.as_bytes())),
            );
            headers.insert("X-Shopify-Webhook-Id".to_owned(), event_id.to_owned());
        }
        VerificationIn::Hmac {
            secret,
            header,
            algorithm,
            encoding,
            prefix,
            template,
            timestamp_header,
            ..
        } => {
            let content = match template {
                Some(template) => template.replace("{timestamp}", &timestamp).replace("{body}", body),
                None => body.to_owned(),
            };
            let mac = verify::hmac(*algorithm, secret.as_bytes(), content.as_bytes());
            let encoded = match encoding {
                SignatureEncoding::Hex => hex::encode(mac),
                SignatureEncoding::Base64 => STANDARD.encode(mac),
            };
            headers.insert(header.clone(), format!("{}{encoded}", prefix.as_deref().unwrap_or_default()));
            if let Some(name) = timestamp_header {
                headers.insert(name.clone(), timestamp.clone());
            }
        }
        VerificationIn::Basic { username, password } => {
            headers.insert(
                "Authorization".to_owned(),
                format!("Basic {}", STANDARD.encode(format!("{username}:{password}"))),
            );
        }
        VerificationIn::ApiKey { header, value } => {
            headers.insert(header.clone(), value.clone());
        }
    }
    if let ValueFrom::Header(name) = &settings.event_type {
        headers.entry(name.clone()).or_insert_with(|| "hookline.test".to_owned());
    }
    if let Some(ValueFrom::Header(name)) = &settings.event_id {
        headers.entry(name.clone()).or_insert_with(|| event_id.to_owned());
    }
    headers
}
