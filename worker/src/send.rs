//! One attempt: build the request for the endpoint's format, sign it, authenticate, send it with
//! the SSRF-safe client, read a capped response, and classify the result. Pure with respect to the
//! database: the engine records what this returns.

use std::{
    collections::HashMap,
    ops::Deref,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use cloudevents::{EventBuilder, EventBuilderV10, binding::reqwest::RequestBuilderExt};
use hookline_core::{
    delivery::{Claimed, EndpointTarget, Headers, Payload},
    objects::Objects,
    thin::{self, Links, ThinBody},
};
use hookline_types::{EndpointAuthIn, EndpointFormat, PayloadMode};
use reqwest::{
    StatusCode,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use serde_json::Value;

use crate::{
    http::{DEFAULT_TOTAL_TIMEOUT, MAX_RESPONSE_BODY, SsrfBlocked, SsrfPolicy, check_literal_host},
    signing::{signature_header, signature_header_streamed},
};

/// What an attempt produced, before the retry decision.
#[derive(Debug)]
pub struct Sent {
    pub url: String,
    pub request_headers: Headers,
    pub status: Option<StatusCode>,
    pub response_headers: Option<Headers>,
    pub response_body: Option<String>,
    pub duration: Duration,
    pub error_class: Option<&'static str>,
    pub error_detail: Option<String>,
    /// Seconds from a `Retry-After` header, when the endpoint sent one.
    pub retry_after: Option<u64>,
    /// The OAuth2 bearer token the request carried, to invalidate exactly it on a 401.
    pub bearer: Option<String>,
    /// `None` when the full payload was sent; `thin`, or `thin_after_413`.
    pub payload_mode: Option<&'static str>,
    /// The body of a thin request, as sent (a full body is the message's payload).
    pub request_body: Option<String>,
}

impl Sent {
    /// An attempt that failed before any request was sent.
    pub fn unsent(url: &str, class: &'static str, detail: String, duration: Duration) -> Sent {
        Sent {
            url: url.to_owned(),
            request_headers: Headers::default(),
            status: None,
            response_headers: None,
            response_body: None,
            duration,
            error_class: Some(class),
            error_detail: Some(detail),
            retry_after: None,
            bearer: None,
            payload_mode: None,
            request_body: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error_class.is_none() && self.status.is_some_and(|s| s.is_success())
    }
}

/// Cached OAuth2 access tokens, per endpoint and [`AuthVersion`]: a token is used only while the
/// endpoint's origin and OAuth2 settings are the ones it was fetched under. Fetches are
/// single-flight per endpoint: concurrent deliveries wait for one token request instead of each
/// asking the provider (whose newest token may revoke the previous one).
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, CachedToken>>,
    fetching: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

/// One endpoint's token; a fetch under other settings replaces it.
struct CachedToken {
    auth_version: AuthVersion,
    token: String,
    expires: Instant,
}

/// A hash of what a token was fetched for ([`auth_version`]).
type AuthVersion = [u8; 32];

/// The longest a token is cached, whatever its `expires_in` says: a provider's "never" (up to
/// u64::MAX seconds) overflowed the expiry instant and panicked the delivery task.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What a token may be used for: the endpoint URL's origin and the OAuth2 settings that obtained
/// it. Changing any of them (another host, a rotated client secret) makes the next delivery fetch
/// a new token instead of sending the old one to the new host, or using one its credentials no
/// longer stand for.
fn auth_version(
    url: &reqwest::Url,
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
) -> AuthVersion {
    use sha2::Digest;
    let origin = url.origin().ascii_serialization();
    let mut hash = sha2::Sha256::new();
    for part in [Some(origin.as_str()), Some(token_url), Some(client_id), Some(client_secret), scope] {
        // Tagged and length-prefixed: no two settings hash alike by moving bytes between fields.
        match part {
            Some(part) => {
                hash.update([1]);
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part.as_bytes());
            }
            None => hash.update([0]),
        }
    }
    hash.finalize().into()
}

/// How long to cache a token the provider says lives `expires_in` seconds (300 when unsaid):
/// refreshed a little before, and never more than [`MAX_TOKEN_TTL`].
fn token_ttl(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(300).saturating_sub(10).max(1)).min(MAX_TOKEN_TTL)
}

impl TokenCache {
    fn get(&self, endpoint_id: &str, auth_version: &AuthVersion) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(endpoint_id)
            .filter(|cached| cached.auth_version == *auth_version && cached.expires > Instant::now())
            .map(|cached| cached.token.clone())
    }

    fn put(&self, endpoint_id: &str, auth_version: AuthVersion, token: String, ttl: Duration) {
        let Some(expires) = Instant::now().checked_add(ttl.min(MAX_TOKEN_TTL)) else {
            return; // Not cached: the next delivery fetches again.
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(endpoint_id.to_owned(), CachedToken { auth_version, token, expires });
    }

    /// Drops the cached token if it is still `used` (another delivery may have refreshed it).
    fn forget_if(&self, endpoint_id: &str, used: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.get(endpoint_id).is_some_and(|cached| cached.token == used) {
            tokens.remove(endpoint_id);
        }
    }

    fn fetch_lock(&self, endpoint_id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        fetching.entry(endpoint_id.to_owned()).or_default().clone()
    }
}

/// An endpoint as the sender uses it: its settings, with its URL parsed once (when its settings
/// are loaded) rather than for every request.
#[derive(Debug)]
pub struct Target {
    pub endpoint: EndpointTarget,
    /// The parsed URL, or why it does not parse (recorded as a `config` error at each attempt).
    pub parsed_url: Result<reqwest::Url, String>,
}

impl Target {
    pub fn new(endpoint: EndpointTarget) -> Target {
        let parsed_url = endpoint.url.parse().map_err(|err| format!("bad URL: {err}"));
        Target { endpoint, parsed_url }
    }
}

impl Deref for Target {
    type Target = EndpointTarget;

    fn deref(&self) -> &EndpointTarget {
        &self.endpoint
    }
}

/// Headers whose values are secrets: shown as `[redacted]` in the attempt log.
fn is_secret_header(name: &str, target: &EndpointTarget) -> bool {
    name.eq_ignore_ascii_case("authorization")
        || target.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        || matches!(&target.auth, Some(EndpointAuthIn::Header { name: n, .. }) if n.eq_ignore_ascii_case(name))
}

fn header_list(headers: &HeaderMap, redact: impl Fn(&str) -> bool) -> Headers {
    Headers(
        headers
            .iter()
            .map(|(name, value)| {
                let shown = if redact(name.as_str()) {
                    "[redacted]".to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), shown)
            })
            .collect(),
    )
}

pub struct Sender<'a> {
    pub client: &'a reqwest::Client,
    pub policy: &'a SsrfPolicy,
    pub tokens: &'a TokenCache,
    /// Mints thin bodies' `data_url`s.
    pub links: &'a Links,
    /// Where claim-checked payloads are read from as they are sent.
    pub objects: &'a Objects,
}

/// Which body a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Full,
    Thin,
}

impl Sender<'_> {
    pub async fn send(&self, claimed: &Claimed, target: &Target, payload: &Arc<Payload>) -> Sent {
        let started = Instant::now();
        let shape = if thin::sends_thin(target.payload_mode, target.thin_above_bytes, payload.size()) {
            Shape::Thin
        } else {
            Shape::Full
        };
        let mut sent = self.send_shaped(claimed, target, payload, shape, started).await;
        // A receiver with a body limit still gets the event: an `auto` endpoint that refuses the
        // full body with 413 gets the thin one at once, in the same attempt.
        if shape == Shape::Full
            && target.payload_mode == PayloadMode::Auto
            && sent.status == Some(StatusCode::PAYLOAD_TOO_LARGE)
        {
            sent = self.send_shaped(claimed, target, payload, Shape::Thin, started).await;
            sent.payload_mode = Some("thin_after_413");
        }
        sent
    }

    async fn send_shaped(
        &self,
        claimed: &Claimed,
        target: &Target,
        payload: &Arc<Payload>,
        shape: Shape,
        started: Instant,
    ) -> Sent {
        let fail = |class: &'static str, detail: String, headers: Headers| Sent {
            url: target.url.clone(),
            request_headers: headers,
            status: None,
            response_headers: None,
            response_body: None,
            duration: started.elapsed(),
            error_class: Some(class),
            error_detail: Some(detail),
            retry_after: None,
            bearer: None,
            payload_mode: (shape == Shape::Thin).then_some("thin"),
            request_body: None,
        };
        let request = match self.build(claimed, target, payload, shape).await {
            Ok(request) => request,
            Err((class, detail)) => return fail(class, detail, Headers::default()),
        };
        let mut sent = self.execute(request, target, started, shape).await;
        // OAuth2: a 401 may mean the cached token was revoked: fetch a fresh one and try once more.
        if matches!(target.auth, Some(EndpointAuthIn::OAuth2ClientCredentials { .. }))
            && sent.status == Some(StatusCode::UNAUTHORIZED)
        {
            let used = sent.bearer.clone().unwrap_or_default();
            self.tokens.forget_if(&target.id, &used);
            match self.build(claimed, target, payload, shape).await {
                Ok(request) => sent = self.execute(request, target, started, shape).await,
                Err((class, detail)) => return fail(class, detail, sent.request_headers),
            }
        }
        sent
    }

    async fn build(
        &self,
        claimed: &Claimed,
        target: &Target,
        payload: &Arc<Payload>,
        shape: Shape,
    ) -> Result<reqwest::Request, (&'static str, String)> {
        let url = target.parsed_url.clone().map_err(|err| ("config", err))?;
        check_literal_host(&url, self.policy).map_err(|err| ("ssrf", err.to_string()))?;
        let timeout =
            target.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))).unwrap_or(DEFAULT_TOTAL_TIMEOUT);
        let builder = self.client.post(url).timeout(timeout);
        let thin = (shape == Shape::Thin).then(|| {
            ThinBody::new(
                self.links,
                &claimed.message_id,
                &target.id,
                &claimed.event_type,
                claimed.message_created_at,
                payload.size(),
                payload.sha256(),
                target.data_url_ttl_seconds,
                Utc::now(),
            )
        });
        let timestamp = Utc::now().timestamp();
        // A claim-checked payload is not in memory: a JSON body signed with HMAC secrets is
        // streamed from the store twice (once through the signatures, once onto the wire); a
        // body that needs the whole payload (CloudEvents, an Ed25519 secret) reads it for this
        // request only.
        let mut streamed_signature = None;
        let whole: Option<bytes::Bytes> = match (&payload.stored, &thin) {
            (Some(stored), None) => {
                let read = |err: hookline_core::CoreError| {
                    ("internal", format!("reading the stored payload: {err}"))
                };
                let hmac_only =
                    target.secrets.iter().all(|s| matches!(s, hookline_core::domain::SigningSecret::Hmac(_)));
                if target.format == EndpointFormat::Json && hmac_only {
                    let chunks = self.objects.stream(&stored.key).await.map_err(read)?;
                    streamed_signature =
                        signature_header_streamed(&target.secrets, &claimed.message_id, timestamp, chunks)
                            .await
                            .map_err(|err| ("internal", format!("reading the stored payload: {err}")))?;
                    None
                } else {
                    Some(self.objects.get(&stored.key).await.map_err(read)?)
                }
            }
            _ => None,
        };
        let builder = match (target.format, &thin) {
            (EndpointFormat::Json, None) => {
                let builder = builder.header("content-type", "application/json");
                match (&payload.stored, streamed_signature.is_some(), &whole) {
                    (Some(stored), true, _) => {
                        let chunks = self
                            .objects
                            .stream(&stored.key)
                            .await
                            .map_err(|err| ("internal", format!("reading the stored payload: {err}")))?;
                        builder.header("content-length", stored.size).body(reqwest::Body::wrap_stream(chunks))
                    }
                    (_, _, Some(bytes)) => builder.body(bytes.clone()),
                    // The body shares the payload's text (one message, many endpoints) instead
                    // of copying it.
                    _ => builder.body(bytes::Bytes::from_owner(ArcText(payload.clone()))),
                }
            }
            (EndpointFormat::Json, Some(thin)) => builder
                .header("content-type", "application/json")
                .body(serde_json::to_vec(thin).map_err(|err| ("config", format!("thin body: {err}")))?),
            (EndpointFormat::CloudeventsStructured | EndpointFormat::CloudeventsBinary, _) => {
                let event = EventBuilderV10::new()
                    .id(claimed.message_id.clone())
                    .source(format!("/hookline/app/{}", claimed.app_id))
                    .ty(claimed.event_type.clone())
                    .time(claimed.message_created_at);
                // Thin: the data is the thin body, and the `dataref` extension carries its URL.
                let event = match &thin {
                    None => {
                        let data: Value = match &whole {
                            Some(bytes) => serde_json::from_slice(bytes),
                            None => serde_json::from_str(&payload.text),
                        }
                        .map_err(|err| ("config", format!("payload: {err}")))?;
                        event.data("application/json", data)
                    }
                    Some(thin) => {
                        let data = serde_json::to_value(thin)
                            .map_err(|err| ("config", format!("thin body: {err}")))?;
                        event.extension("dataref", thin.data_url.clone()).data("application/json", data)
                    }
                };
                let event = event.build().map_err(|err| ("config", format!("CloudEvent: {err}")))?;
                if target.format == EndpointFormat::CloudeventsBinary {
                    builder.event(event).map_err(|err| ("config", format!("CloudEvent: {err}")))?
                } else {
                    let body =
                        serde_json::to_vec(&event).map_err(|err| ("config", format!("CloudEvent: {err}")))?;
                    builder.header("content-type", "application/cloudevents+json").body(body)
                }
            }
        };
        let mut request = builder.build().map_err(|err| ("config", format!("request: {err}")))?;
        let signature = match streamed_signature {
            Some(signature) => signature,
            None => {
                let body = request.body().and_then(|b| b.as_bytes()).unwrap_or_default();
                signature_header(&target.secrets, &claimed.message_id, timestamp, body)
            }
        };
        let headers = request.headers_mut();
        // A received webhook's forwarded headers first: the endpoint's own headers and the
        // signature headers below replace any of the same name.
        for (name, value) in &payload.headers {
            insert(headers, name, value)?;
        }
        for (name, value) in &target.headers {
            insert(headers, name, value)?;
        }
        insert(headers, "webhook-id", &claimed.message_id)?;
        insert(headers, "webhook-timestamp", &timestamp.to_string())?;
        insert(headers, "webhook-signature", &signature)?;
        if shape == Shape::Thin {
            // Tells an `auto` endpoint's consumer which body this is without guessing from its keys.
            insert(headers, "hookline-payload", "thin")?;
        }
        match &target.auth {
            None => {}
            Some(EndpointAuthIn::Basic { username, password }) => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                insert(headers, "authorization", &format!("Basic {encoded}"))?;
            }
            Some(EndpointAuthIn::Header { name, value }) => insert(headers, name, value)?,
            Some(EndpointAuthIn::OAuth2ClientCredentials { token_url, client_id, client_secret, scope }) => {
                let version =
                    auth_version(request.url(), token_url, client_id, client_secret, scope.as_deref());
                let token = match self.tokens.get(&target.id, &version) {
                    Some(token) => token,
                    None => {
                        let lock = self.tokens.fetch_lock(&target.id);
                        let _single_flight = lock.lock().await;
                        match self.tokens.get(&target.id, &version) {
                            Some(token) => token,
                            None => {
                                self.fetch_token(
                                    &target.id,
                                    version,
                                    token_url,
                                    client_id,
                                    client_secret,
                                    scope.as_deref(),
                                )
                                .await?
                            }
                        }
                    }
                };
                insert(request.headers_mut(), "authorization", &format!("Bearer {token}"))?;
            }
        }
        Ok(request)
    }

    async fn fetch_token(
        &self,
        endpoint_id: &str,
        auth_version: AuthVersion,
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<String, (&'static str, String)> {
        let url: reqwest::Url =
            token_url.parse().map_err(|err| ("config", format!("bad token URL: {err}")))?;
        check_literal_host(&url, self.policy).map_err(|err| ("ssrf", err.to_string()))?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let body = form
            .iter()
            .map(|(k, v)| {
                format!("{}={}", k, url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>())
            })
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .client
            .post(url)
            .timeout(DEFAULT_TOTAL_TIMEOUT)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|err| (classify(&err), format!("OAuth2 token request: {}", describe(&err))))?;
        let status = response.status();
        // Capped like a delivery's response: the token endpoint is the endpoint owner's server.
        let body = read_capped(response).await;
        if body.full {
            return Err(("status", "OAuth2 token response over 64 KiB".to_owned()));
        }
        if let Some(err) = body.error {
            // As for a delivery's response body (`execute`).
            return Err(("timeout", format!("OAuth2 token response: {err}")));
        }
        let json: Value = serde_json::from_slice(&body.bytes)
            .map_err(|err| ("status", format!("OAuth2 token response: {err}")))?;
        let token = json["access_token"]
            .as_str()
            .filter(|_| status.is_success())
            .ok_or(("status", format!("OAuth2 token endpoint answered {status} without an access_token")))?;
        let ttl = token_ttl(json["expires_in"].as_u64());
        self.tokens.put(endpoint_id, auth_version, token.to_owned(), ttl);
        Ok(token.to_owned())
    }

    async fn execute(
        &self,
        request: reqwest::Request,
        target: &EndpointTarget,
        started: Instant,
        shape: Shape,
    ) -> Sent {
        let url = request.url().to_string();
        let (payload_mode, request_body) = match shape {
            Shape::Full => (None, None),
            Shape::Thin => (
                Some("thin"),
                request.body().and_then(|b| b.as_bytes()).map(|b| String::from_utf8_lossy(b).into_owned()),
            ),
        };
        let bearer = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let request_headers = header_list(request.headers(), |name| is_secret_header(name, target));
        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(err) => {
                return Sent {
                    url,
                    request_headers,
                    status: None,
                    response_headers: None,
                    response_body: None,
                    duration: started.elapsed(),
                    error_class: Some(classify(&err)),
                    error_detail: Some(describe(&err)),
                    retry_after: None,
                    bearer,
                    payload_mode,
                    request_body,
                };
            }
        };
        let status = response.status();
        let response_headers = header_list(response.headers(), |_| false);
        let retry_after =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let CappedBody { bytes, error: body_error, .. } = read_capped(response).await;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let error_class = if body_error.is_some() {
            Some("timeout")
        } else if status.is_success() {
            None
        } else {
            Some("status")
        };
        Sent {
            url,
            request_headers,
            status: Some(status),
            response_headers: Some(response_headers),
            response_body: Some(body),
            duration: started.elapsed(),
            error_class,
            error_detail: body_error
                .or_else(|| (!status.is_success()).then(|| format!("the endpoint answered {status}"))),
            retry_after,
            bearer,
            payload_mode,
            request_body,
        }
    }
}

/// A payload's shared text as a request body's bytes.
struct ArcText(Arc<Payload>);

impl AsRef<[u8]> for ArcText {
    fn as_ref(&self) -> &[u8] {
        self.0.text.as_bytes()
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), (&'static str, String)> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| ("config", format!("bad header name {name}")))?;
    let value =
        HeaderValue::from_str(value).map_err(|_| ("config", format!("bad value for header {name}")))?;
    headers.insert(name, value);
    Ok(())
}

/// A response body, read up to [`MAX_RESPONSE_BODY`] bytes.
struct CappedBody {
    bytes: Vec<u8>,
    /// The body reached the cap: whatever came after was dropped unread.
    full: bool,
    /// Why reading stopped before the end, if it did.
    error: Option<String>,
}

/// Reads at most [`MAX_RESPONSE_BODY`] bytes of the body (the rest is dropped unread).
async fn read_capped(mut response: reqwest::Response) -> CappedBody {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BODY - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() >= MAX_RESPONSE_BODY {
                    return CappedBody { bytes, full: true, error: None };
                }
            }
            Ok(None) => return CappedBody { bytes, full: false, error: None },
            Err(err) => return CappedBody { bytes, full: false, error: Some(describe(&err)) },
        }
    }
}

/// `Retry-After` as seconds: a number, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<u64> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(seconds);
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some((at.with_timezone(&Utc) - Utc::now()).num_seconds().max(0) as u64)
}

fn chain_contains<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}

fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.join(": ")
}

/// dns, connect, tls, timeout or ssrf.
pub fn classify(err: &reqwest::Error) -> &'static str {
    if chain_contains::<SsrfBlocked>(err) {
        return "ssrf";
    }
    if err.is_timeout() {
        return "timeout";
    }
    let text = chain_text(err).to_lowercase();
    if text.contains("dns error") || text.contains("failed to lookup") || text.contains("has no addresses") {
        "dns"
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "tls"
    } else {
        "connect"
    }
}

pub fn describe(err: &reqwest::Error) -> String {
    chain_text(err)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hookline_core::domain::{Cidr, SigningSecret};
    use hookline_types::EndpointOrdering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A token endpoint on 127.0.0.1: answers its nth request (from 1) with `body(n)`, as JSON.
    /// Returns its URL and how many requests it answered.
    async fn token_server(
        body: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let answered = Arc::new(AtomicUsize::new(0));
        let (counter, body) = (answered.clone(), Arc::new(body));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (counter, body) = (counter.clone(), body.clone());
                tokio::spawn(async move {
                    // The request: its head, then as many bytes as its content-length says.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut buffer).await else { return };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        let text = String::from_utf8_lossy(&request).to_lowercase();
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let length = text[..head_end]
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= head_end + 4 + length {
                                break;
                            }
                        }
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let body = body(n);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    // The client may stop reading (a body over the cap): write errors are expected.
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (url, answered)
    }

    fn oauth_target(url: &str, token_url: &str, client_secret: &str) -> Target {
        Target::new(EndpointTarget {
            id: "ep_1".to_owned(),
            tenant_id: "ten_1".to_owned(),
            app_id: "app_1".to_owned(),
            url: url.to_owned(),
            disabled: false,
            secrets: vec![SigningSecret::generate()],
            headers: Vec::new(),
            auth: Some(EndpointAuthIn::OAuth2ClientCredentials {
                token_url: token_url.to_owned(),
                client_id: "ci".to_owned(),
                client_secret: client_secret.to_owned(),
                scope: None,
            }),
            format: EndpointFormat::Json,
            ordering: EndpointOrdering::None,
            timeout_ms: None,
            retry_schedule: None,
            rate_limit: None,
            payload_mode: PayloadMode::Full,
            thin_above_bytes: None,
            data_url_ttl_seconds: None,
            transform: None,
            handshake: false,
        })
    }

    fn claimed() -> Claimed {
        Claimed {
            delivery_id: "dlv_1".to_owned(),
            tenant_id: "ten_1".to_owned(),
            app_id: "app_1".to_owned(),
            message_id: "msg_1".to_owned(),
            endpoint_id: "ep_1".to_owned(),
            event_type: "a.b".to_owned(),
            attempt_number: 1,
            message_created_at: Utc::now(),
            one_shot: false,
        }
    }

    /// The `Authorization` header `build` puts on a request to `target`, or its error.
    async fn bearer_for(tokens: &TokenCache, target: &Target) -> Result<String, (&'static str, String)> {
        let policy = SsrfPolicy { allow: vec![Cidr::parse("127.0.0.1/32").unwrap()] };
        let client = crate::http::client(&policy, 4);
        let links = Links::new("http://127.0.0.1:8080", Arc::new(hookline_core::crypto::Keys::for_tests()));
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path()).unwrap();
        let sender = Sender { client: &client, policy: &policy, tokens, links: &links, objects: &objects };
        let payload = Arc::new(Payload::new("{}".to_owned(), Vec::new()));
        let request = sender.build(&claimed(), target, &payload, Shape::Full).await?;
        Ok(request.headers()["authorization"].to_str().unwrap().to_owned())
    }

    #[test]
    fn token_lifetimes_end_a_little_early_and_within_a_day() {
        fn check(expires_in: Option<u64>, expected_seconds: u64) {
            assert_eq!(token_ttl(expires_in), Duration::from_secs(expected_seconds), "{expires_in:?}");
        }
        check(None, 290);
        check(Some(3600), 3590);
        check(Some(5), 1);
        check(Some(0), 1);
        check(Some(86_410), 86_400);
        check(Some(10_000_000), 86_400);
        check(Some(u64::MAX), 86_400);
    }

    #[test]
    fn a_cached_token_that_never_expires_does_not_overflow() {
        let tokens = TokenCache::default();
        tokens.put("ep_1", [0; 32], "t".to_owned(), Duration::MAX);
        assert_eq!(tokens.get("ep_1", &[0; 32]), Some("t".to_owned()));
        assert_eq!(tokens.get("ep_1", &[1; 32]), None, "another auth version");
    }

    #[tokio::test]
    async fn a_token_that_never_expires_is_cached_without_overflowing() {
        let (token_url, answered) =
            token_server(|_| r#"{"access_token":"t","expires_in":18446744073709551615}"#.to_owned()).await;
        let tokens = TokenCache::default();
        let target = oauth_target("https://a.example/hook", &token_url, "s1");
        assert_eq!(bearer_for(&tokens, &target).await, Ok("Bearer t".to_owned()));
        assert_eq!(bearer_for(&tokens, &target).await, Ok("Bearer t".to_owned()));
        assert_eq!(answered.load(Ordering::SeqCst), 1, "cached");
    }

    #[tokio::test]
    async fn a_token_response_over_64_kib_fails_the_attempt() {
        let padding = "x".repeat(1024 * 1024);
        let (token_url, _) =
            token_server(move |_| format!(r#"{{"access_token":"t","expires_in":60,"padding":"{padding}"}}"#))
                .await;
        let tokens = TokenCache::default();
        let target = oauth_target("https://a.example/hook", &token_url, "s1");
        assert_eq!(
            bearer_for(&tokens, &target).await,
            Err(("status", "OAuth2 token response over 64 KiB".to_owned()))
        );
    }

    #[tokio::test]
    async fn a_cached_token_is_not_sent_after_the_endpoint_origin_or_credentials_change() {
        let (token_url, answered) =
            token_server(|n| format!(r#"{{"access_token":"t{n}","expires_in":3600}}"#)).await;
        let tokens = TokenCache::default();
        let check = |url: &'static str, secret: &'static str, expected: &'static str| {
            let target = oauth_target(url, &token_url, secret);
            let tokens = &tokens;
            async move { assert_eq!(bearer_for(tokens, &target).await, Ok(expected.to_owned()), "{url} {secret}") }
        };
        check("https://a.example/hook", "s1", "Bearer t1").await;
        // Another path on the same origin, same credentials: the cached token.
        check("https://a.example/other", "s1", "Bearer t1").await;
        // Another origin: a token of its own.
        check("https://b.example/hook", "s1", "Bearer t2").await;
        check("https://a.example:8443/hook", "s1", "Bearer t3").await;
        // Another client secret: a token of its own.
        check("https://a.example:8443/hook", "s2", "Bearer t4").await;
        check("https://a.example:8443/hook", "s2", "Bearer t4").await;
        assert_eq!(answered.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(120));
        assert_eq!(parse_retry_after(" 5 "), Some(5));
        assert_eq!(parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT"), Some(0));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
