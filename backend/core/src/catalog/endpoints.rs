//! Endpoints: where an application's messages are delivered, with filters, format, auth, limits
//! and a signing secret. Secrets (signing secret, auth credentials, custom header values) are
//! stored encrypted under the master key and never returned except by the secret route.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use hookline_types::{
    ApiKeyScope, AppId, EndpointAuthIn, EndpointAuthOut, EndpointFormat, EndpointId, EndpointIn,
    EndpointOrdering, EndpointOut, EndpointPatch, EndpointSecretOut, EndpointSecretRotateIn, IdOrUid,
    ListResponse, Patch, PayloadMode, SignatureScheme, TenantId, validate_uid,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, Order, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use crate::{
    Context,
    catalog::applications::{self, check_metadata, check_rate_limit},
    crypto::Keys,
    domain::{self, EndpointUrl, EventTypeFilter, RetrySchedule, SigningSecret, parse_channel},
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    store::entities::{deliveries, endpoints},
    store::from_json,
    store::is_unique_violation,
    store::pagination::{PageRequest, paginate, try_map},
    store::scope::TenantScoped,
    store::to_json,
    tenancy::principal::Principal,
};

/// How long a rotated-out secret keeps signing alongside the new one.
pub const SECRET_OVERLAP: Duration = Duration::hours(24);
pub const MIN_TIMEOUT_MS: u32 = 1_000;
pub const MAX_TIMEOUT_MS: u32 = 60_000;
const MAX_FILTER_TYPES: usize = 100;
const MAX_CHANNELS: usize = 10;
const MAX_HEADERS: usize = 20;

/// A rotated-out secret, stored in `previous_secrets`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PreviousSecret {
    ciphertext: String,
    expires_at: DateTime<Utc>,
}

fn format_name(format: EndpointFormat) -> &'static str {
    match format {
        EndpointFormat::Json => "json",
        EndpointFormat::CloudeventsStructured => "cloudevents_structured",
        EndpointFormat::CloudeventsBinary => "cloudevents_binary",
    }
}

fn ordering_name(ordering: EndpointOrdering) -> &'static str {
    match ordering {
        EndpointOrdering::None => "none",
        EndpointOrdering::Fifo => "fifo",
    }
}

/// The bounds of `thin_above_bytes` (the default, 256 KiB, is `thin::DEFAULT_THIN_ABOVE_BYTES`).
pub const THIN_ABOVE_BYTES_RANGE: std::ops::RangeInclusive<u32> = 1024..=20 * 1024 * 1024;
/// The bounds of `data_url_ttl_seconds`: a second to a week.
pub const DATA_URL_TTL_RANGE: std::ops::RangeInclusive<u32> = 1..=7 * 24 * 3600;

/// The stored name of a payload mode (`endpoints.payload_mode`).
fn payload_mode_name(mode: PayloadMode) -> &'static str {
    match mode {
        PayloadMode::Full => "full",
        PayloadMode::Thin => "thin",
        PayloadMode::Auto => "auto",
    }
}

fn parse_stored<T: for<'de> Deserialize<'de>>(name: &str, what: &str) -> CoreResult<T> {
    from_json(serde_json::Value::String(name.to_owned()), what)
}

fn to_out(model: endpoints::Model) -> CoreResult<EndpointOut> {
    Ok(EndpointOut {
        id: EndpointId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        app_id: AppId::parse(&model.app_id).map_err(|err| CoreError::Internal(err.into()))?,
        uid: model.uid,
        url: model.url,
        description: model.description,
        disabled: model.disabled,
        disabled_reason: model.disabled_reason,
        filter_types: model.filter_types.map(|v| from_json(v, "filter_types")).transpose()?,
        channels: model.channels.map(|v| from_json(v, "channels")).transpose()?,
        filter: model.filter,
        transform: model.transform,
        rate_limit: model.rate_limit.map(|n| n as u32),
        metadata: from_json(model.metadata, "metadata")?,
        header_names: from_json(model.header_names, "header_names")?,
        format: parse_stored(&model.format, "format")?,
        ordering: parse_stored(&model.ordering, "ordering")?,
        handshake: crate::handshake::enabled_stored(model.handshake, &model.format),
        timeout_ms: model.timeout_ms.map(|n| n as u32),
        retry_schedule: model.retry_schedule.map(|v| from_json(v, "retry_schedule")).transpose()?,
        auth: model.auth_summary.map(|v| from_json(v, "auth_summary")).transpose()?,
        payload_mode: parse_stored(&model.payload_mode, "payload_mode")?,
        thin_above_bytes: model.thin_above_bytes.map(|n| n as u32),
        data_url_ttl_seconds: model.data_url_ttl_seconds.map(|n| n as u32),
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

// ----- validation -----------------------------------------------------------------------------

fn check_filter_types(errors: &mut Errors, filter_types: &[String]) {
    if filter_types.is_empty() || filter_types.len() > MAX_FILTER_TYPES {
        errors.push(
            &["body", "filter_types"],
            format!("must list 1 to {MAX_FILTER_TYPES} event types, or be null for all"),
        );
    }
    for (idx, filter) in filter_types.iter().enumerate() {
        let idx = idx.to_string();
        errors.check(&["body", "filter_types", &idx], EventTypeFilter::parse(filter));
    }
}

/// A retry schedule as stored (an endpoint's or an event type's JSON array of seconds), checked
/// again as it is read.
pub(crate) fn stored_retry_schedule(value: serde_json::Value) -> CoreResult<RetrySchedule> {
    let seconds: Vec<u32> = from_json(value, "retry_schedule")?;
    RetrySchedule::new(seconds).map_err(|err| CoreError::Internal(err.into()))
}

fn check_channels(errors: &mut Errors, channels: &[String]) {
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        errors.push(
            &["body", "channels"],
            format!("must list 1 to {MAX_CHANNELS} channels, or be null for all"),
        );
    }
    for (idx, channel) in channels.iter().enumerate() {
        let idx = idx.to_string();
        errors.check(&["body", "channels", &idx], parse_channel(channel));
    }
}

fn check_headers(errors: &mut Errors, headers: &BTreeMap<String, String>) {
    if headers.len() > MAX_HEADERS {
        errors.push(&["body", "headers"], format!("at most {MAX_HEADERS} headers"));
    }
    for (name, value) in headers {
        for problem in crate::domain::custom_header_problems(name, value) {
            errors.push(&["body", "headers", name], problem);
        }
    }
}

fn check_timeout(errors: &mut Errors, timeout_ms: u32) {
    if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        errors.push(
            &["body", "timeout_ms"],
            format!("must be {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS} milliseconds"),
        );
    }
}

fn check_thin_above(errors: &mut Errors, bytes: u32) {
    let range = THIN_ABOVE_BYTES_RANGE;
    if !range.contains(&bytes) {
        errors.push(
            &["body", "thin_above_bytes"],
            format!("must be {} to {} bytes", range.start(), range.end()),
        );
    }
}

fn check_data_url_ttl(errors: &mut Errors, seconds: u32) {
    let range = DATA_URL_TTL_RANGE;
    if !range.contains(&seconds) {
        errors.push(
            &["body", "data_url_ttl_seconds"],
            format!("must be {} to {} seconds", range.start(), range.end()),
        );
    }
}

fn check_description(errors: &mut Errors, description: &str) {
    if description.chars().count() > 4096 {
        errors.push(&["body", "description"], "must be at most 4096 characters long");
    }
}

/// Validates the auth and returns what is shown back.
fn check_auth(errors: &mut Errors, auth: &EndpointAuthIn) -> EndpointAuthOut {
    let non_empty = |errors: &mut Errors, field: &str, value: &str| {
        if value.is_empty() || value.chars().count() > 4096 {
            errors.push(&["body", "auth", field], "must be 1 to 4096 characters long");
        }
    };
    match auth {
        EndpointAuthIn::Basic { username, password } => {
            non_empty(errors, "username", username);
            non_empty(errors, "password", password);
            if username.contains(':') {
                errors.push(&["body", "auth", "username"], "must not contain ':'");
            }
            EndpointAuthOut::Basic { username: username.clone() }
        }
        EndpointAuthIn::Header { name, value } => {
            let mut one = BTreeMap::new();
            one.insert(name.clone(), value.clone());
            let mut header_errors = Errors::default();
            check_headers(&mut header_errors, &one);
            if header_errors.into_result().is_err() {
                errors.push(&["body", "auth", "name"], "not a usable header name or value");
            }
            EndpointAuthOut::Header { name: name.clone() }
        }
        EndpointAuthIn::OAuth2ClientCredentials { token_url, client_id, client_secret, scope } => {
            errors.check(&["body", "auth", "token_url"], EndpointUrl::parse(token_url));
            non_empty(errors, "client_id", client_id);
            non_empty(errors, "client_secret", client_secret);
            EndpointAuthOut::OAuth2ClientCredentials {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                scope: scope.clone(),
            }
        }
    }
}

fn seal_json<T: Serialize>(keys: &Keys, value: &T) -> String {
    keys.encrypt(&serde_json::to_vec(value).expect("serializable"))
}

fn header_names(headers: &BTreeMap<String, String>) -> serde_json::Value {
    to_json(&headers.keys().collect::<Vec<_>>())
}

fn uid_taken(uid: &str) -> CoreError {
    CoreError::conflict("uid_taken", format!("another endpoint of this application already has uid {uid:?}"))
}

// ----- lookups --------------------------------------------------------------------------------

/// Finds an endpoint of one of the tenant's applications by id or uid.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    app_id: &str,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<endpoints::Model> {
    let select = endpoints::Entity::scoped(tenant).filter(endpoints::Column::AppId.eq(app_id));
    let select = match endpoint {
        IdOrUid::Id(id) => select.filter(endpoints::Column::Id.eq(id.as_str())),
        IdOrUid::Uid(uid) => select.filter(endpoints::Column::Uid.eq(uid.as_str())),
    };
    select.one(conn).await?.ok_or(CoreError::NotFound("endpoint"))
}

/// The endpoint as `principal` may see it (within its tenant, and its application for a portal
/// token).
pub async fn find_in_app(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<endpoints::Model> {
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    find(&ctx.db.conn, &principal.tenant_id, &app.id, endpoint).await
}

// ----- operations -----------------------------------------------------------------------------

pub async fn create(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    input: EndpointIn,
) -> CoreResult<EndpointOut> {
    principal.require(ApiKeyScope::Write)?;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let mut errors = Errors::default();
    let url = errors.check(&["body", "url"], EndpointUrl::parse(&input.url));
    if let Some(uid) = &input.uid {
        errors.check(&["body", "uid"], validate_uid(uid, EndpointId::PREFIX));
    }
    check_description(&mut errors, &input.description);
    if let Some(filter_types) = &input.filter_types {
        check_filter_types(&mut errors, filter_types);
    }
    if let Some(channels) = &input.channels {
        check_channels(&mut errors, channels);
    }
    if let Some(filter) = &input.filter {
        crate::routing::check_filter(&mut errors, filter);
    }
    if let Some(transform) = &input.transform {
        crate::transform::check(&mut errors, transform);
    }
    check_rate_limit(&mut errors, input.rate_limit);
    check_metadata(&mut errors, &input.metadata);
    check_headers(&mut errors, &input.headers);
    if let Some(timeout_ms) = input.timeout_ms {
        check_timeout(&mut errors, timeout_ms);
    }
    if let Some(bytes) = input.thin_above_bytes {
        check_thin_above(&mut errors, bytes);
    }
    if let Some(seconds) = input.data_url_ttl_seconds {
        check_data_url_ttl(&mut errors, seconds);
    }
    if let Some(schedule) = &input.retry_schedule {
        errors.check(&["body", "retry_schedule"], RetrySchedule::new(schedule.clone()));
    }
    let auth_summary = input.auth.as_ref().map(|auth| check_auth(&mut errors, auth));
    let secret = match &input.secret {
        Some(secret) => errors.check(&["body", "secret"], SigningSecret::parse(secret)),
        None => Some(SigningSecret::generate_for(scheme(input.signature_scheme.unwrap_or_default()))),
    };
    if let (Some(secret), Some(wanted)) = (&secret, input.signature_scheme)
        && secret.scheme() != scheme(wanted)
    {
        errors.push(
            &["body", "signature_scheme"],
            "does not match the kind of `secret` (whsec_ is v1, whsk_ is v1a)",
        );
    }
    errors.into_result()?;
    crate::tenancy::plans::require_room_for_endpoint(ctx, &principal.tenant_id).await?;
    if input.transform.is_some() {
        crate::transform::require_feature(ctx, &principal.tenant_id).await?;
    }
    let (url, secret) = (url.expect("checked"), secret.expect("checked"));

    let keys = &ctx.keys;
    let now = Utc::now();
    let model = endpoints::ActiveModel {
        id: Set(EndpointId::new_id().into_string()),
        tenant_id: Set(principal.tenant_id.to_string()),
        app_id: Set(app.id),
        uid: Set(input.uid.clone()),
        url: Set(url.as_str().to_owned()),
        description: Set(input.description),
        disabled: Set(input.disabled),
        disabled_reason: Set(input.disabled.then(|| "disabled by the tenant".to_owned())),
        filter_types: Set(input.filter_types.as_ref().map(to_json)),
        channels: Set(input.channels.as_ref().map(to_json)),
        filter: Set(input.filter.clone()),
        transform: Set(input.transform.clone()),
        handshake: Set(input.handshake),
        rate_limit: Set(input.rate_limit.map(|n| n as i32)),
        metadata: Set(to_json(&input.metadata)),
        headers_ciphertext: Set((!input.headers.is_empty()).then(|| seal_json(keys, &input.headers))),
        header_names: Set(header_names(&input.headers)),
        format: Set(format_name(input.format).to_owned()),
        ordering: Set(ordering_name(input.ordering).to_owned()),
        timeout_ms: Set(input.timeout_ms.map(|n| n as i32)),
        retry_schedule: Set(input.retry_schedule.as_ref().map(to_json)),
        auth_ciphertext: Set(input.auth.as_ref().map(|auth| seal_json(keys, auth))),
        auth_summary: Set(auth_summary.as_ref().map(to_json)),
        payload_mode: Set(payload_mode_name(input.payload_mode).to_owned()),
        thin_above_bytes: Set(input.thin_above_bytes.map(|n| n as i32)),
        data_url_ttl_seconds: Set(input.data_url_ttl_seconds.map(|n| n as i32)),
        secret_ciphertext: Set(keys.encrypt(secret.expose().as_bytes())),
        previous_secrets: Set(serde_json::json!([])),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(&ctx.db.writer).await {
        Ok(model) => to_out(model),
        Err(err) if is_unique_violation(&err) => Err(uid_taken(input.uid.as_deref().unwrap_or_default())),
        Err(err) => Err(err.into()),
    }
}

pub async fn list(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    page: &PageRequest,
) -> CoreResult<ListResponse<EndpointOut>> {
    principal.require(ApiKeyScope::Read)?;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let list = paginate(
        &ctx.db.conn,
        endpoints::Entity::scoped(&principal.tenant_id).filter(endpoints::Column::AppId.eq(app.id.as_str())),
        endpoints::Column::Id,
        Order::Asc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    try_map(list, to_out)
}

pub async fn get(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<EndpointOut> {
    principal.require(ApiKeyScope::Read)?;
    to_out(find_in_app(ctx, principal, app, endpoint).await?)
}

pub async fn patch(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
    patch: EndpointPatch,
) -> CoreResult<EndpointOut> {
    principal.require(ApiKeyScope::Write)?;
    let model = find_in_app(ctx, principal, app, endpoint).await?;
    let mut errors = Errors::default();
    let url = patch.url.as_ref().and_then(|url| errors.check(&["body", "url"], EndpointUrl::parse(url)));
    if let Patch::Value(uid) = &patch.uid {
        errors.check(&["body", "uid"], validate_uid(uid, EndpointId::PREFIX));
    }
    if let Some(description) = &patch.description {
        check_description(&mut errors, description);
    }
    if let Patch::Value(filter_types) = &patch.filter_types {
        check_filter_types(&mut errors, filter_types);
    }
    if let Patch::Value(channels) = &patch.channels {
        check_channels(&mut errors, channels);
    }
    if let Patch::Value(filter) = &patch.filter {
        crate::routing::check_filter(&mut errors, filter);
    }
    if let Patch::Value(transform) = &patch.transform {
        crate::transform::check(&mut errors, transform);
    }
    if let Patch::Value(rate_limit) = patch.rate_limit {
        check_rate_limit(&mut errors, Some(rate_limit));
    }
    if let Some(metadata) = &patch.metadata {
        check_metadata(&mut errors, metadata);
    }
    if let Some(headers) = &patch.headers {
        check_headers(&mut errors, headers);
    }
    if let Patch::Value(timeout_ms) = patch.timeout_ms {
        check_timeout(&mut errors, timeout_ms);
    }
    if let Patch::Value(bytes) = patch.thin_above_bytes {
        check_thin_above(&mut errors, bytes);
    }
    if let Patch::Value(seconds) = patch.data_url_ttl_seconds {
        check_data_url_ttl(&mut errors, seconds);
    }
    if let Patch::Value(schedule) = &patch.retry_schedule {
        errors.check(&["body", "retry_schedule"], RetrySchedule::new(schedule.clone()));
    }
    let auth_summary = match &patch.auth {
        Patch::Value(auth) => Some(check_auth(&mut errors, auth)),
        _ => None,
    };
    errors.into_result()?;
    if matches!(patch.transform, Patch::Value(_)) {
        crate::transform::require_feature(ctx, &principal.tenant_id).await?;
    }

    // Stored credentials were given for the endpoint's host: a URL on another origin (scheme,
    // host, port) drops them unless this request supplies them again, so a URL change alone
    // never hands a password, header value or OAuth secret to a new host.
    let origin_changed = url.as_ref().is_some_and(|new| {
        url::Url::parse(&model.url).map(|old| old.origin()).ok() != Some(new.url().origin())
    });
    // What the endpoint's CloudEvents handshake agreed to holds for the URL and format it was made
    // with: changing them, or the setting, asks the endpoint again.
    let handshake_stale = url.as_ref().is_some_and(|new| new.as_str() != model.url)
        || patch.format.is_some()
        || !patch.handshake.is_absent();
    let keys = &ctx.keys;
    let mut active: endpoints::ActiveModel = model.into();
    if let Some(url) = url {
        active.url = Set(url.as_str().to_owned());
    }
    if origin_changed {
        if patch.auth.is_absent() {
            active.auth_ciphertext = Set(None);
            active.auth_summary = Set(None);
        }
        if patch.headers.is_none() {
            active.headers_ciphertext = Set(None);
            active.header_names = Set(header_names(&BTreeMap::new()));
        }
    }
    let new_uid = patch.uid.into_update();
    if let Some(uid) = new_uid.clone() {
        active.uid = Set(uid);
    }
    if let Some(description) = patch.description {
        active.description = Set(description);
    }
    if let Some(disabled) = patch.disabled {
        active.disabled = Set(disabled);
        active.disabled_reason = Set(disabled.then(|| "disabled by the tenant".to_owned()));
    }
    if let Some(filter_types) = patch.filter_types.into_update() {
        active.filter_types = Set(filter_types.as_ref().map(to_json));
    }
    if let Some(channels) = patch.channels.into_update() {
        active.channels = Set(channels.as_ref().map(to_json));
    }
    if let Some(filter) = patch.filter.into_update() {
        active.filter = Set(filter);
    }
    if let Some(transform) = patch.transform.into_update() {
        active.transform = Set(transform);
    }
    if let Some(rate_limit) = patch.rate_limit.into_update() {
        active.rate_limit = Set(rate_limit.map(|n| n as i32));
    }
    if let Some(metadata) = patch.metadata {
        active.metadata = Set(to_json(&metadata));
    }
    if let Some(headers) = patch.headers {
        active.headers_ciphertext = Set((!headers.is_empty()).then(|| seal_json(keys, &headers)));
        active.header_names = Set(header_names(&headers));
    }
    if let Some(format) = patch.format {
        active.format = Set(format_name(format).to_owned());
    }
    if let Some(ordering) = patch.ordering {
        active.ordering = Set(ordering_name(ordering).to_owned());
    }
    if let Some(handshake) = patch.handshake.into_update() {
        active.handshake = Set(handshake);
    }
    if let Some(timeout_ms) = patch.timeout_ms.into_update() {
        active.timeout_ms = Set(timeout_ms.map(|n| n as i32));
    }
    if let Some(schedule) = patch.retry_schedule.into_update() {
        active.retry_schedule = Set(schedule.as_ref().map(to_json));
    }
    if let Some(mode) = patch.payload_mode {
        active.payload_mode = Set(payload_mode_name(mode).to_owned());
    }
    if let Some(bytes) = patch.thin_above_bytes.into_update() {
        active.thin_above_bytes = Set(bytes.map(|n| n as i32));
    }
    if let Some(seconds) = patch.data_url_ttl_seconds.into_update() {
        active.data_url_ttl_seconds = Set(seconds.map(|n| n as i32));
    }
    if let Some(auth) = patch.auth.into_update() {
        active.auth_ciphertext = Set(auth.as_ref().map(|auth| seal_json(keys, auth)));
        active.auth_summary = Set(auth_summary.as_ref().map(to_json));
    }
    active.updated_at = Set(Utc::now());
    let txn = ctx.db.begin_write().await?;
    let model = match active.update(&txn).await {
        Ok(model) => model,
        Err(err) if is_unique_violation(&err) => {
            return Err(uid_taken(new_uid.flatten().as_deref().unwrap_or_default()));
        }
        Err(err) => return Err(err.into()),
    };
    if handshake_stale {
        crate::handshake::forget(&txn, &model).await?;
    }
    txn.commit().await?;
    to_out(model)
}

/// Deletes the endpoint and its pending deliveries; attempts stay in the log.
pub async fn delete(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<()> {
    principal.require(ApiKeyScope::Write)?;
    let tenant = &principal.tenant_id;
    let txn = ctx.db.begin_write().await?;
    let app = applications::find_for(&txn, principal, app).await?;
    let model = find(&txn, tenant, &app.id, endpoint).await?;
    deliveries::Entity::scoped_delete(tenant)
        .filter(deliveries::Column::EndpointId.eq(model.id.as_str()))
        .exec(&txn)
        .await?;
    endpoints::Entity::scoped_delete(tenant)
        .filter(endpoints::Column::Id.eq(model.id.as_str()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get_secret(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
) -> CoreResult<EndpointSecretOut> {
    // Reading a signing secret is as sensitive as changing the endpoint.
    principal.require(ApiKeyScope::Write)?;
    let model = find_in_app(ctx, principal, app, endpoint).await?;
    let secret = decrypt_secret(&ctx.keys, &model.secret_ciphertext)?;
    Ok(EndpointSecretOut {
        key: secret.expose(),
        signature_scheme: match secret.scheme() {
            domain::SignatureScheme::V1 => SignatureScheme::V1,
            domain::SignatureScheme::V1a => SignatureScheme::V1a,
        },
        public_key: secret.public_key(),
    })
}

fn scheme(wire: SignatureScheme) -> domain::SignatureScheme {
    match wire {
        SignatureScheme::V1 => domain::SignatureScheme::V1,
        SignatureScheme::V1a => domain::SignatureScheme::V1a,
    }
}

/// Replaces the signing secret. The old one keeps signing alongside the new one for
/// [`SECRET_OVERLAP`], so consumers can switch without dropping a delivery.
pub async fn rotate_secret(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    endpoint: &IdOrUid<EndpointId>,
    input: EndpointSecretRotateIn,
) -> CoreResult<()> {
    principal.require(ApiKeyScope::Write)?;
    let given = match &input.key {
        Some(key) => Some(
            SigningSecret::parse(key).map_err(|err| CoreError::invalid(&["body", "key"], err.to_string()))?,
        ),
        None => None,
    };
    if let (Some(given), Some(wanted)) = (&given, input.signature_scheme)
        && given.scheme() != scheme(wanted)
    {
        return Err(CoreError::invalid(
            &["body", "signature_scheme"],
            "does not match the kind of `key` (whsec_ is v1, whsk_ is v1a)",
        ));
    }
    let txn = ctx.db.begin_write().await?;
    let app = applications::find_for(&txn, principal, app).await?;
    let model = find(&txn, &principal.tenant_id, &app.id, endpoint).await?;
    let secret = match given {
        Some(secret) => secret,
        None => SigningSecret::generate_for(match input.signature_scheme {
            Some(wanted) => scheme(wanted),
            None => decrypt_secret(&ctx.keys, &model.secret_ciphertext)?.scheme(),
        }),
    };
    let now = Utc::now();
    let mut previous: Vec<PreviousSecret> = from_json(model.previous_secrets.clone(), "previous_secrets")?;
    previous.retain(|p| p.expires_at > now);
    previous.push(PreviousSecret {
        ciphertext: model.secret_ciphertext.clone(),
        expires_at: now + SECRET_OVERLAP,
    });
    let mut active: endpoints::ActiveModel = model.into();
    active.secret_ciphertext = Set(ctx.keys.encrypt(secret.expose().as_bytes()));
    active.previous_secrets = Set(to_json(&previous));
    active.updated_at = Set(now);
    active.update(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Every secret that signs a delivery right now: the current one first, then rotated-out ones
/// still inside their overlap. Used by the dispatcher.
pub fn signing_secrets(
    keys: &Keys,
    model: &endpoints::Model,
    now: DateTime<Utc>,
) -> CoreResult<Vec<SigningSecret>> {
    let mut secrets = vec![decrypt_secret(keys, &model.secret_ciphertext)?];
    let previous: Vec<PreviousSecret> = from_json(model.previous_secrets.clone(), "previous_secrets")?;
    for old in previous.into_iter().filter(|p| p.expires_at > now) {
        secrets.push(decrypt_secret(keys, &old.ciphertext)?);
    }
    Ok(secrets)
}

fn decrypt_secret(keys: &Keys, sealed: &str) -> CoreResult<SigningSecret> {
    let whsec = keys.decrypt_string(sealed)?;
    SigningSecret::parse(&whsec)
        .map_err(|err| CoreError::Internal(anyhow::anyhow!("stored secret unreadable: {err}")))
}
