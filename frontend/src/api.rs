//! The dashboard's only way to the server: Hookline's own REST API, with the wire types of
//! `hookline-types`. A tenant's dashboard authenticates with the session cookie (HttpOnly, set by
//! the API) and echoes the session's CSRF token on every state-changing request; the consumer
//! portal sends its portal token as a bearer token instead and has no session at all.

use std::cell::RefCell;

use gloo_net::http::{Method, RequestBuilder};
use hookline_types::ErrorBody;
use serde::{Serialize, de::DeserializeOwned};

/// An API error as the pages show it: the stable `code` and the human `detail` from the body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl ApiError {
    fn network(err: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: 0,
            code: "network_error".into(),
            detail: format!("The server could not be reached ({err}). Check your connection and try again."),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq)]
pub enum Credentials {
    /// Not signed in (yet): only sign-up and log-in work.
    Anonymous,
    /// The dashboard session: the cookie travels by itself, the CSRF token goes in a header.
    Session { csrf_token: String },
    /// The consumer portal: `Authorization: Bearer <portal token>`.
    Portal { token: String },
}

thread_local! {
    // The browser runs the app on one thread; the credentials change only at log-in, log-out
    // and when the portal reads its token.
    static CREDENTIALS: RefCell<Credentials> = const { RefCell::new(Credentials::Anonymous) };
}

pub fn set_credentials(credentials: Credentials) {
    CREDENTIALS.with(|c| *c.borrow_mut() = credentials);
}

pub fn credentials() -> Credentials {
    CREDENTIALS.with(|c| c.borrow().clone())
}

/// Percent-encodes one query value or path segment.
pub fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

/// `path?k=v&…` for the pairs whose value is not empty.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

async fn send_raw(method: Method, path: &str, body: Option<String>) -> ApiResult<(u16, String)> {
    let mut request = RequestBuilder::new(&format!("/api/v1{path}"))
        .method(method.clone())
        .header("Accept", "application/json");
    match credentials() {
        Credentials::Portal { token } => {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        Credentials::Session { csrf_token } if method != Method::GET => {
            request = request.header("X-CSRF-Token", &csrf_token);
        }
        _ => {}
    }
    let request = match body {
        Some(body) => request.header("Content-Type", "application/json").body(body),
        None => request.build(),
    }
    .map_err(ApiError::network)?;
    let response = request.send().await.map_err(ApiError::network)?;
    let status = response.status();
    let text = response.text().await.map_err(ApiError::network)?;
    if (200..300).contains(&status) {
        return Ok((status, text));
    }
    Err(match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => {
            let mut detail = body.detail;
            for field in body.errors {
                detail.push_str(&format!(" {}: {}.", field.loc.join("."), field.msg));
            }
            ApiError { status, code: body.code, detail }
        }
        Err(_) => ApiError {
            status,
            code: "http_error".into(),
            detail: format!("The server answered {status} without an error body."),
        },
    })
}

fn decode<T: DeserializeOwned>(text: &str) -> ApiResult<T> {
    let text = if text.trim().is_empty() { "null" } else { text };
    serde_json::from_str(text).map_err(|err| ApiError {
        status: 0,
        code: "unexpected_response".into(),
        detail: format!("The server's answer could not be read: {err}"),
    })
}

fn encode_body<B: Serialize>(body: &B) -> ApiResult<String> {
    serde_json::to_string(body).map_err(|err| ApiError {
        status: 0,
        code: "invalid_request".into(),
        detail: err.to_string(),
    })
}

pub async fn get<T: DeserializeOwned>(path: &str) -> ApiResult<T> {
    let (_, text) = send_raw(Method::GET, path, None).await?;
    decode(&text)
}

pub async fn post<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> ApiResult<T> {
    let (_, text) = send_raw(Method::POST, path, Some(encode_body(body)?)).await?;
    decode(&text)
}

pub async fn patch<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> ApiResult<T> {
    let (_, text) = send_raw(Method::PATCH, path, Some(encode_body(body)?)).await?;
    decode(&text)
}

pub async fn delete(path: &str) -> ApiResult<()> {
    send_raw(Method::DELETE, path, None).await.map(|_| ())
}
