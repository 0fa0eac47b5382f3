//! The ingest path of a source (`POST /in/{token}`): find the source by its token, take a token
//! from its bucket, verify, answer a provider's handshake, recognise a duplicate or a stale
//! event, and store the message through the ingest writer (durable before the answer). Nothing
//! slow happens before the answer: no outbound call, no fan-out (the writer or the fan-out loop
//! does that after the commit).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering::Relaxed},
    },
};

use chrono::{DateTime, Utc};
use hookline_types::{AppId, MessageId, SourceRequestId, SourceRequestOutcome, TenantId};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::ExprTrait};

use crate::{
    Context,
    error::{CoreError, CoreResult},
    ids::NewId,
    ingest::{NewMessage, PlanRate, Quota},
    sources::manage,
    sources::requests::{LoggedRequest, MAX_LOGGED_BODY, REJECTED_PER_SECOND},
    sources::rules::{self, Settings},
    sources::verify::{Inbound, Rejection, Stored},
    store::entities::sources,
    tenancy::plans,
};

/// A source as the ingest path needs it: decrypted and parsed once, cached by token hash.
#[derive(Debug)]
pub struct Resolved {
    pub model: sources::Model,
    pub tenant: TenantId,
    pub(crate) verification: Stored,
    pub(crate) settings: Settings,
    /// The settings' content filter, compiled. A stored filter that no longer compiles (a rule
    /// tightened by a later version) filters nothing: a request is never lost to it (warned at
    /// lookup).
    filter: Option<crate::routing::Filter>,
    /// When this source last answered a duplicate (Unix seconds; 0: never). See
    /// [`Resolved::expects_duplicates`].
    duplicate_seen_at: AtomicI64,
}

/// How long after a duplicate a source looks for each event id before storing.
const DUPLICATE_WATCH_SECONDS: i64 = 60;

impl Resolved {
    pub fn id(&self) -> &str {
        &self.model.id
    }

    /// The source's bucket `(rate, burst)`, when it has a rate limit.
    pub fn rate(&self) -> Option<(u32, u32)> {
        let rate = self.model.rate_limit.filter(|n| *n > 0)? as u32;
        let burst = self.model.burst.filter(|n| *n > 0).map_or(rate, |n| n as u32);
        Some((rate, burst))
    }

    /// Whether a request should look for its event id before it is stored. Usually not: the
    /// message's unique event id index finds a repeat as the writer stores it, and a read per
    /// request costs a quarter of the ingest rate on SQLite (bench (g)). But a repeat fails the
    /// writer's whole batch (its messages are then stored one by one), so while a source is
    /// seeing repeats — a provider retrying a backlog, a replayed capture — it looks first.
    fn expects_duplicates(&self, now: DateTime<Utc>) -> bool {
        now.timestamp() - self.duplicate_seen_at.load(Relaxed) < DUPLICATE_WATCH_SECONDS
    }

    fn saw_duplicate(&self, now: DateTime<Utc>) {
        self.duplicate_seen_at.store(now.timestamp(), Relaxed);
    }
}

/// The source whose ingest URL carries `token` (its current token, or the previous one within
/// 24 hours of a rotation): `NotFound` for an unknown token, `Gone` for a disabled source.
pub async fn lookup(ctx: &Context, token: &str) -> CoreResult<Arc<Resolved>> {
    let hash = crate::crypto::hash_token(token);
    let resolved = match ctx.caches.sources.get(&hash) {
        Some(resolved) => resolved,
        None => {
            let found = sources::Entity::find()
                .filter(
                    sources::Column::TokenHash
                        .eq(hash.as_str())
                        .or(sources::Column::PreviousTokenHash.eq(hash.as_str())),
                )
                .one(&ctx.db.conn)
                .await?;
            let Some(model) = found else {
                ctx.caches.sources.remove(&hash);
                return Err(CoreError::NotFound("source"));
            };
            let settings = manage::settings(&model)?;
            let filter = settings.filter.as_ref().and_then(|pattern| {
                crate::routing::Filter::compile(pattern)
                    .inspect_err(|err| {
                        tracing::warn!(source = %model.id, error = %err, "a source's stored filter does not compile; it filters nothing");
                    })
                    .ok()
            });
            let resolved = Arc::new(Resolved {
                tenant: TenantId::parse(&model.tenant_id).map_err(|err| CoreError::Internal(err.into()))?,
                verification: manage::stored_verification(ctx, &model)?,
                settings,
                filter,
                model,
                duplicate_seen_at: AtomicI64::new(0),
            });
            ctx.caches.sources.insert(hash.clone(), resolved.clone());
            resolved
        }
    };
    if resolved.model.token_hash != hash
        && resolved.model.previous_token_expires_at.is_none_or(|until| until <= Utc::now())
    {
        return Err(CoreError::NotFound("source"));
    }
    if resolved.model.disabled {
        return Err(CoreError::Gone {
            code: "source_disabled",
            detail: "this source is disabled".to_owned(),
        });
    }
    Ok(resolved)
}

/// The largest body this source takes now (its limit, capped by the plan's payload limit).
pub async fn body_limit(ctx: &Context, source: &Resolved) -> CoreResult<usize> {
    let limits = plans::limits(ctx, &source.tenant).await?;
    Ok(manage::body_limit(&source.model, limits.max_payload_bytes))
}

/// Takes a token from the source's bucket: `TooManyRequests` (`rate_limited`) when empty.
pub fn take_token(ctx: &Context, source: &Resolved) -> CoreResult<()> {
    let Some((rate, burst)) = source.rate() else { return Ok(()) };
    let taken = ctx.caches.rate_limits.take(&format!("source:{}", source.id()), rate, burst);
    if taken.allowed {
        return Ok(());
    }
    Err(CoreError::TooManyRequests {
        code: "rate_limited",
        detail: format!("this source takes {rate} requests per second (burst {burst})"),
        retry_after_seconds: std::cmp::max(taken.retry_after_seconds, 1),
        quota_limit: None,
    })
}

/// A received request.
pub struct Request<'a> {
    pub method: &'a str,
    /// Names as received (any case).
    pub headers: &'a [(String, String)],
    pub query: &'a str,
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// What a received request became.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// A new message (answered 202).
    Accepted { message: String },
    /// The event id was accepted before: the first message (answered 200).
    Duplicate { message: String },
    /// Older than the newest accepted for its ordering key: logged, not delivered (200).
    Stale,
    /// The source's content filter did not match: logged, not stored (200).
    Filtered,
    /// A provider's handshake: answer `body` with `content_type` (200).
    Challenge { body: String, content_type: &'static str },
}

/// Handles a request on the source's ingest URL (after [`lookup`], [`take_token`] and the body
/// limit). A rejection is logged (at most [`REJECTED_PER_SECOND`] per source) and returned as
/// `VerificationFailed`.
pub async fn receive(ctx: &Context, source: &Resolved, request: Request<'_>) -> CoreResult<Received> {
    let now = Utc::now();
    let request_id = SourceRequestId::new_id().into_string();
    let inbound = Inbound { headers: request.headers, body: request.body, now };
    if request.method.eq_ignore_ascii_case("GET") {
        return get_handshake(ctx, source, &request, &request_id, now);
    }
    let verified = match source.verification.verify(&inbound) {
        Ok(verified) => verified,
        Err(rejection) => {
            log_rejected(ctx, source, &request, &request_id, now, rejection.code(), 401);
            return Err(CoreError::VerificationFailed { code: rejection.code(), detail: rejection.detail() });
        }
    };
    let body = rules::body_to_payload(request.header("content-type").as_deref(), request.body);
    // Slack's `url_verification`: echo the challenge (the request was verified above).
    if let Some(json) = &body.json
        && json.get("type").and_then(|t| t.as_str()) == Some("url_verification")
        && let Some(challenge) = json.get("challenge").and_then(|c| c.as_str())
    {
        let answer = serde_json::json!({ "challenge": challenge }).to_string();
        log(ctx, source, &request, &request_id, now, SourceRequestOutcome::Handshake, None, None, None, 200);
        return Ok(Received::Challenge { body: answer, content_type: "application/json" });
    }
    let header = |name: &str| request.header(name);
    let event_type = rules::event_type_of(
        rules::value_of(&source.settings.event_type, header, body.json.as_ref()),
        &rules::default_event_type(&source.model.name),
    );
    if let Some(filter) = &source.filter
        && let Err(path) = filtered(filter, &event_type, &body, request.headers)
    {
        let at = if path.is_empty() { "the pattern's top level".to_owned() } else { path.join(".") };
        let reason = format!("filter: no match at {at}");
        log_not_stored(
            ctx,
            source,
            &request,
            &request_id,
            now,
            SourceRequestOutcome::Filtered,
            Some(&reason),
            None,
            None,
            200,
        );
        return Ok(Received::Filtered);
    }
    let event_id_rule =
        source.settings.event_id.clone().or_else(|| rules::default_event_id(&source.verification.scheme));
    let event_id = event_id_rule.and_then(|rule| rules::value_of(&rule, header, body.json.as_ref()));
    let dedup = rules::dedup_id(event_id, verified.signature.as_deref());

    // A repeated event: answered with its first message, nothing stored.
    if let Some(dedup) = &dedup
        && source.expects_duplicates(now)
        && let Some(original) =
            message_with_event_id(ctx, &source.tenant, &source.model.app_id, dedup).await?
    {
        source.saw_duplicate(now);
        log(
            ctx,
            source,
            &request,
            &request_id,
            now,
            SourceRequestOutcome::Duplicate,
            None,
            Some(&original),
            Some(dedup),
            200,
        );
        return Ok(Received::Duplicate { message: original });
    }
    if let Some(ordering) = &source.settings.ordering
        && let Some(sequence) = rules::value_of(&ordering.sequence, header, body.json.as_ref())
            .as_deref()
            .and_then(rules::sequence_of)
    {
        let key = ordering
            .key
            .as_ref()
            .and_then(|rule| rules::value_of(rule, header, body.json.as_ref()))
            .unwrap_or_default();
        if !advance_order(ctx, source, &key, sequence, now).await? {
            log_not_stored(
                ctx,
                source,
                &request,
                &request_id,
                now,
                SourceRequestOutcome::Stale,
                None,
                None,
                dedup.as_deref(),
                200,
            );
            return Ok(Received::Stale);
        }
    }

    let limits = plans::limits(ctx, &source.tenant).await?;
    let message_id = MessageId::new_id().into_string();
    let mut forwarded: Vec<(String, String)> = source
        .settings
        .forward_headers
        .iter()
        .filter_map(|name| request.header(name).map(|value| (name.to_ascii_lowercase(), value)))
        .collect();
    let (mut event_type, mut payload_text) = (event_type, body.payload_text);
    if let Some(program) = &source.settings.transform {
        match transformed(ctx, program, &event_type, &payload_text, request.headers, limits.max_payload_bytes)
            .await
        {
            Ok(Some(output)) => {
                payload_text = output.payload.to_string();
                if let Some(new_type) = output.event_type {
                    event_type = new_type;
                }
                for (name, value) in output.headers {
                    let name = name.to_ascii_lowercase();
                    forwarded.retain(|(kept, _)| *kept != name);
                    forwarded.push((name, value));
                }
            }
            Ok(None) => {
                log_not_stored(
                    ctx,
                    source,
                    &request,
                    &request_id,
                    now,
                    SourceRequestOutcome::Filtered,
                    Some("transform: returned null"),
                    None,
                    dedup.as_deref(),
                    200,
                );
                return Ok(Received::Filtered);
            }
            Err(message) => {
                // The provider is told only that we failed (it may retry); the tenant sees why.
                let reason = format!("transform: {message}");
                log_not_stored(
                    ctx,
                    source,
                    &request,
                    &request_id,
                    now,
                    SourceRequestOutcome::Rejected,
                    Some(&reason),
                    None,
                    dedup.as_deref(),
                    502,
                );
                return Err(CoreError::Upstream {
                    code: "transform_failed",
                    detail: "the receiver could not process this webhook; nothing was stored".to_owned(),
                    cause: reason,
                });
            }
        }
    }
    let new = NewMessage {
        id: message_id.clone(),
        tenant_id: source.tenant.clone(),
        app_id: AppId::parse(&source.model.app_id).map_err(|err| CoreError::Internal(err.into()))?,
        event_type,
        event_id: dedup.clone(),
        channels: serde_json::json!([]),
        payload_text,
        object: None,
        headers: forwarded,
        only_endpoint: None,
        created_at: now,
        quota: Some(Quota { monthly: limits.monthly_messages, hard: !limits.overage_allowed }),
        counts_as_usage: true,
        inbound: true,
        plan_rate: Some(PlanRate(limits.endpoint_rate_limit)),
    };
    let mut stored = crate::ingest::messages::store_new(ctx, &limits, new.clone()).await?;
    // A refused store means the event id has a holder: the message to answer with, unless it
    // was past the window and has released the id, in which case this request is new.
    let mut original = None;
    if !stored && let Some(dedup) = &dedup {
        original = message_with_event_id(ctx, &source.tenant, &source.model.app_id, dedup).await?;
        if original.is_none() {
            stored = crate::ingest::messages::store_new(ctx, &limits, new).await?;
            if !stored {
                original = message_with_event_id(ctx, &source.tenant, &source.model.app_id, dedup).await?;
            }
        }
    }
    if stored {
        log(
            ctx,
            source,
            &request,
            &request_id,
            now,
            SourceRequestOutcome::Accepted,
            None,
            Some(&message_id),
            dedup.as_deref(),
            202,
        );
        return Ok(Received::Accepted { message: message_id });
    }
    // A request with the same event id was stored before (or concurrently).
    source.saw_duplicate(now);
    let dedup = dedup.unwrap_or_default();
    let original = original
        .ok_or_else(|| CoreError::Internal(anyhow::anyhow!("event id conflict without a message")))?;
    log(
        ctx,
        source,
        &request,
        &request_id,
        now,
        SourceRequestOutcome::Duplicate,
        None,
        Some(&original),
        Some(&dedup),
        200,
    );
    Ok(Received::Duplicate { message: original })
}

/// Runs the source's transform on a verified request: the message to store (`Some`), nothing
/// (`None`: the program returned `null`), or why it failed.
async fn transformed(
    ctx: &Context,
    program: &str,
    event_type: &str,
    payload_text: &str,
    headers: &[(String, String)],
    max_output: usize,
) -> Result<Option<crate::transform::Transformed>, String> {
    let headers: Vec<(String, String)> =
        headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect();
    let input = crate::transform::input(event_type, payload_text, &headers);
    let output =
        ctx.transformer.run(program, &input, ctx.config.transform_cpu_ms, max_output).await.map_err(
            |failure| match failure {
                crate::transform::Failure::Program(message) => format!("the program failed: {message}"),
                crate::transform::Failure::Unavailable(message) => {
                    format!("the program could not run: {message}")
                }
            },
        )?;
    crate::transform::interpret(&output).map_err(|message| format!("the program's output: {message}"))
}

/// Matches a verified request against the source's filter: `Err` with the path of the first part
/// that did not match. Header names are matched in any case; the payload is the message's (a
/// form's fields, a wrapped non-JSON body).
fn filtered(
    filter: &crate::routing::Filter,
    event_type: &str,
    body: &rules::Body,
    headers: &[(String, String)],
) -> Result<(), Vec<String>> {
    let document =
        crate::routing::Document { event_type, channels: &[], payload: body.json.as_ref(), headers };
    filter.explain(&document)
}

/// `GET` handshakes: `hub.challenge` (WebSub, Meta) is echoed; a `crc_token` (X/Twitter's
/// challenge-response check) is answered with `sha256=<base64 HMAC of the token>` under the
/// source's secret. Any other `GET` is refused like an unverified request.
fn get_handshake(
    ctx: &Context,
    source: &Resolved,
    request: &Request<'_>,
    request_id: &str,
    now: DateTime<Utc>,
) -> CoreResult<Received> {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(request.query.as_bytes()).into_owned().collect();
    if let Some(challenge) = query.get("hub.challenge") {
        log(ctx, source, request, request_id, now, SourceRequestOutcome::Handshake, None, None, None, 200);
        return Ok(Received::Challenge { body: challenge.clone(), content_type: "text/plain" });
    }
    if let Some(token) = query.get("crc_token")
        && let Some(secret) = crate::sources::verify::secret_of(&source.verification.scheme)
    {
        let mac = crate::sources::verify::hmac(
            hookline_types::HmacAlgorithm::Sha256,
            secret.as_bytes(),
            token.as_bytes(),
        );
        use base64::Engine as _;
        let answer = serde_json::json!({
            "response_token": format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(mac))
        });
        log(ctx, source, request, request_id, now, SourceRequestOutcome::Handshake, None, None, None, 200);
        return Ok(Received::Challenge { body: answer.to_string(), content_type: "application/json" });
    }
    let rejection = Rejection::SignatureMissing;
    log_rejected(ctx, source, request, request_id, now, rejection.code(), 401);
    Err(CoreError::VerificationFailed {
        code: rejection.code(),
        detail: "a GET is answered only for a provider's challenge (hub.challenge, crc_token); send webhooks with POST",
    })
}

/// The id of the application's message holding this event id within the source dedup window
/// (`HOOKLINE_SOURCE_DEDUP_WINDOW_SECONDS`), if any; an older holder releases it.
async fn message_with_event_id(
    ctx: &Context,
    tenant: &TenantId,
    app_id: &str,
    event_id: &str,
) -> CoreResult<Option<String>> {
    let window = ctx.config.source_dedup_window_seconds;
    let holder = crate::ingest::messages::event_id_holder(ctx, tenant, app_id, event_id, window).await?;
    Ok(holder.map(|message| message.id))
}

/// Moves the key's newest sequence to `sequence` unless a newer one was accepted: false when
/// the request is stale. Equal sequences pass (a provider's retry of the same event).
async fn advance_order(
    ctx: &Context,
    source: &Resolved,
    key: &str,
    sequence: i64,
    now: DateTime<Utc>,
) -> CoreResult<bool> {
    let backend = ctx.db.backend();
    let sql = "INSERT INTO source_order (source_id, key, tenant_id, sequence, updated_at) VALUES (?, ?, ?, ?, ?) \
               ON CONFLICT (source_id, key) DO UPDATE SET sequence = excluded.sequence, updated_at = excluded.updated_at \
               WHERE source_order.sequence <= excluded.sequence RETURNING sequence";
    let sql = match backend {
        sea_orm::DbBackend::Postgres => crate::store::numbered(sql),
        _ => sql.to_owned(),
    };
    let statement = sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [
            source.model.id.clone().into(),
            key.chars().take(256).collect::<String>().into(),
            source.model.tenant_id.clone().into(),
            sequence.into(),
            now.into(),
        ],
    );
    Ok(ctx.db.writer.query_one_raw(statement).await?.is_some())
}

fn logged_body(body: &[u8]) -> String {
    let cut = &body[..body.len().min(MAX_LOGGED_BODY)];
    String::from_utf8_lossy(cut).into_owned()
}

fn log_rejected(
    ctx: &Context,
    source: &Resolved,
    request: &Request<'_>,
    request_id: &str,
    now: DateTime<Utc>,
    reason: &str,
    status: u16,
) {
    crate::metrics::source_rejected(reason);
    let taken = ctx.caches.rate_limits.take(
        &format!("source-rejected:{}", source.id()),
        REJECTED_PER_SECOND,
        REJECTED_PER_SECOND,
    );
    if !taken.allowed {
        return;
    }
    let body = Some(logged_body(request.body));
    log_with_body(
        ctx,
        source,
        request,
        request_id,
        now,
        SourceRequestOutcome::Rejected,
        Some(reason),
        None,
        None,
        status,
        body,
    );
}

/// Logs a request refused before it reached the source's rules (rate limit, body size).
pub fn log_refused(ctx: &Context, source: &Resolved, request: &Request<'_>, reason: &str, status: u16) {
    let request_id = SourceRequestId::new_id().into_string();
    log_rejected(ctx, source, request, &request_id, Utc::now(), reason, status);
}

/// Logs a verified request that was not stored (filtered, stale, refused), with its body: the
/// tenant sees what came in.
#[allow(clippy::too_many_arguments)]
fn log_not_stored(
    ctx: &Context,
    source: &Resolved,
    request: &Request<'_>,
    request_id: &str,
    now: DateTime<Utc>,
    outcome: SourceRequestOutcome,
    reason: Option<&str>,
    message: Option<&str>,
    event_id: Option<&str>,
    status: u16,
) {
    let body = Some(logged_body(request.body));
    log_with_body(ctx, source, request, request_id, now, outcome, reason, message, event_id, status, body);
}

#[allow(clippy::too_many_arguments)]
fn log(
    ctx: &Context,
    source: &Resolved,
    request: &Request<'_>,
    request_id: &str,
    now: DateTime<Utc>,
    outcome: SourceRequestOutcome,
    reason: Option<&str>,
    message: Option<&str>,
    event_id: Option<&str>,
    status: u16,
) {
    log_with_body(ctx, source, request, request_id, now, outcome, reason, message, event_id, status, None);
}

#[allow(clippy::too_many_arguments)]
fn log_with_body(
    ctx: &Context,
    source: &Resolved,
    request: &Request<'_>,
    request_id: &str,
    now: DateTime<Utc>,
    outcome: SourceRequestOutcome,
    reason: Option<&str>,
    message: Option<&str>,
    event_id: Option<&str>,
    status: u16,
    body: Option<String>,
) {
    crate::metrics::source_request(super::requests::outcome_name(outcome));
    let secret = source.verification.secret_headers();
    let headers = request
        .headers
        .iter()
        .map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let redact = secret.contains(&name) || name == "authorization" || name == "cookie";
            let value = if redact { "[redacted]".to_owned() } else { value.chars().take(1024).collect() };
            (name, value)
        })
        .take(100)
        .collect();
    ctx.source_log.log(LoggedRequest {
        id: request_id.to_owned(),
        tenant_id: source.model.tenant_id.clone(),
        source_id: source.model.id.clone(),
        received_at: now,
        outcome,
        reason: reason.map(str::to_owned),
        method: request.method.to_owned(),
        headers,
        body_size: request.body.len(),
        body,
        message_id: message.map(str::to_owned),
        event_id: event_id.map(str::to_owned),
        status,
    });
}
