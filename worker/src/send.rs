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
use hookline_core::services::delivery::{Claimed, EndpointTarget, Headers};
use hookline_types::{EndpointAuthIn, EndpointFormat};
use reqwest::{
    StatusCode,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use serde_json::Value;

use crate::{
    http::{DEFAULT_TOTAL_TIMEOUT, MAX_RESPONSE_BODY, SsrfBlocked, SsrfPolicy, check_literal_host},
    signing::signature_header,
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
}

impl Sent {
    pub fn succeeded(&self) -> bool {
        self.error_class.is_none() && self.status.is_some_and(|s| s.is_success())
    }
}

/// Cached OAuth2 access tokens, per endpoint. Fetches are single-flight per endpoint: concurrent
/// deliveries wait for one token request instead of each asking the provider (whose newest token
/// may revoke the previous one).
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    fetching: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenCache {
    fn get(&self, endpoint_id: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(endpoint_id).filter(|(_, expires)| *expires > Instant::now()).map(|(t, _)| t.clone())
    }

    fn put(&self, endpoint_id: &str, token: String, ttl: Duration) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(endpoint_id.to_owned(), (token, Instant::now() + ttl));
    }

    /// Drops the cached token if it is still `used` (another delivery may have refreshed it).
    fn forget_if(&self, endpoint_id: &str, used: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.get(endpoint_id).is_some_and(|(token, _)| token == used) {
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
}

impl Sender<'_> {
    pub async fn send(&self, claimed: &Claimed, target: &Target, payload: &Arc<str>) -> Sent {
        let started = Instant::now();
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
        };
        let request = match self.build(claimed, target, payload).await {
            Ok(request) => request,
            Err((class, detail)) => return fail(class, detail, Headers::default()),
        };
        let mut sent = self.execute(request, target, started).await;
        // OAuth2: a 401 may mean the cached token was revoked: fetch a fresh one and try once more.
        if matches!(target.auth, Some(EndpointAuthIn::OAuth2ClientCredentials { .. }))
            && sent.status == Some(StatusCode::UNAUTHORIZED)
        {
            let used = sent.bearer.clone().unwrap_or_default();
            self.tokens.forget_if(&target.id, &used);
            match self.build(claimed, target, payload).await {
                Ok(request) => sent = self.execute(request, target, started).await,
                Err((class, detail)) => return fail(class, detail, sent.request_headers),
            }
        }
        sent
    }

    async fn build(
        &self,
        claimed: &Claimed,
        target: &Target,
        payload: &Arc<str>,
    ) -> Result<reqwest::Request, (&'static str, String)> {
        let url = target.parsed_url.clone().map_err(|err| ("config", err))?;
        check_literal_host(&url, self.policy).map_err(|err| ("ssrf", err.to_string()))?;
        let timeout =
            target.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))).unwrap_or(DEFAULT_TOTAL_TIMEOUT);
        let builder = self.client.post(url).timeout(timeout);
        let builder = match target.format {
            // The body shares the payload's text (one message, many endpoints) instead of copying it.
            EndpointFormat::Json => builder
                .header("content-type", "application/json")
                .body(bytes::Bytes::from_owner(ArcText(payload.clone()))),
            EndpointFormat::CloudeventsStructured | EndpointFormat::CloudeventsBinary => {
                let data: Value =
                    serde_json::from_str(payload).map_err(|err| ("config", format!("payload: {err}")))?;
                let event = EventBuilderV10::new()
                    .id(claimed.message_id.clone())
                    .source(format!("/hookline/app/{}", claimed.app_id))
                    .ty(claimed.event_type.clone())
                    .time(claimed.message_created_at)
                    .data("application/json", data)
                    .build()
                    .map_err(|err| ("config", format!("CloudEvent: {err}")))?;
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
        let timestamp = Utc::now().timestamp();
        let body = request.body().and_then(|b| b.as_bytes()).unwrap_or_default();
        let signature = signature_header(&target.secrets, &claimed.message_id, timestamp, body);
        let headers = request.headers_mut();
        for (name, value) in &target.headers {
            insert(headers, name, value)?;
        }
        insert(headers, "webhook-id", &claimed.message_id)?;
        insert(headers, "webhook-timestamp", &timestamp.to_string())?;
        insert(headers, "webhook-signature", &signature)?;
        match &target.auth {
            None => {}
            Some(EndpointAuthIn::Basic { username, password }) => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                insert(headers, "authorization", &format!("Basic {encoded}"))?;
            }
            Some(EndpointAuthIn::Header { name, value }) => insert(headers, name, value)?,
            Some(EndpointAuthIn::OAuth2ClientCredentials { token_url, client_id, client_secret, scope }) => {
                let token = match self.tokens.get(&target.id) {
                    Some(token) => token,
                    None => {
                        let lock = self.tokens.fetch_lock(&target.id);
                        let _single_flight = lock.lock().await;
                        match self.tokens.get(&target.id) {
                            Some(token) => token,
                            None => {
                                self.fetch_token(
                                    &target.id,
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
        let json: Value =
            response.json().await.map_err(|err| ("status", format!("OAuth2 token response: {err}")))?;
        let token = json["access_token"]
            .as_str()
            .filter(|_| status.is_success())
            .ok_or(("status", format!("OAuth2 token endpoint answered {status} without an access_token")))?;
        // Refresh a little before the stated expiry.
        let ttl = json["expires_in"].as_u64().unwrap_or(300).saturating_sub(10).max(1);
        self.tokens.put(endpoint_id, token.to_owned(), Duration::from_secs(ttl));
        Ok(token.to_owned())
    }

    async fn execute(&self, request: reqwest::Request, target: &EndpointTarget, started: Instant) -> Sent {
        let url = request.url().to_string();
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
                };
            }
        };
        let status = response.status();
        let response_headers = header_list(response.headers(), |_| false);
        let retry_after =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let (body, body_error) = read_capped(response).await;
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
        }
    }
}

/// A payload's shared text as a request body's bytes.
struct ArcText(Arc<str>);

impl AsRef<[u8]> for ArcText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
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

/// Reads at most [`MAX_RESPONSE_BODY`] bytes of the body (the rest is dropped unread).
async fn read_capped(mut response: reqwest::Response) -> (String, Option<String>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BODY {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => return (String::from_utf8_lossy(&body).into_owned(), Some(describe(&err))),
        }
    }
    (String::from_utf8_lossy(&body).into_owned(), None)
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

fn describe(err: &reqwest::Error) -> String {
    chain_text(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(120));
        assert_eq!(parse_retry_after(" 5 "), Some(5));
        assert_eq!(parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT"), Some(0));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
