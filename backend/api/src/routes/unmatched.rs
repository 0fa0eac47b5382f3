//! What answers when no route matched. API, ingest and operational paths never fall through to
//! the dashboard: a known path with another method is `405` with `Allow`, anything else `404`,
//! both with the JSON error body. Only `GET`/`HEAD` elsewhere reach the dashboard's files.

use std::sync::LazyLock;

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{Method, StatusCode, header},
    web,
};
use utoipa::OpenApi;

use super::{dashboard, openapi::ApiDoc};
use crate::error::ApiError;

/// One served path: its segments (`None` for a `{parameter}`) and the methods it answers.
struct Known {
    segments: Vec<Option<String>>,
    methods: Vec<&'static str>,
}

/// Every path the API serves with its methods, taken from the OpenAPI document (which the e2e
/// tests keep equal to the registered routes) plus the two routes that serve the document itself;
/// `HEAD` wherever there is `GET` (`crate::head`).
static KNOWN: LazyLock<Vec<Known>> = LazyLock::new(|| {
    let doc = ApiDoc::openapi();
    let mut known: Vec<Known> = doc
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let operations = [
                ("GET", item.get.is_some()),
                ("HEAD", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            let methods = operations.iter().filter(|(_, present)| *present).map(|(m, _)| *m).collect();
            Known { segments: segments_of(path), methods }
        })
        .collect();
    for path in ["/api/openapi.json", "/api/docs"] {
        known.push(Known { segments: segments_of(path), methods: vec!["GET", "HEAD"] });
    }
    known
});

fn segments_of(template: &str) -> Vec<Option<String>> {
    template
        .split('/')
        .skip(1)
        .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
        .collect()
}

/// The methods a path answers, or `None` when the API serves no such path.
fn allowed_methods(path: &str) -> Option<Vec<&'static str>> {
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let mut allowed: Vec<&'static str> = Vec::new();
    for known in KNOWN.iter() {
        let matches = known.segments.len() == parts.len()
            && known.segments.iter().zip(&parts).all(|(want, got)| match want {
                Some(literal) => literal == got,
                None => !got.is_empty(),
            });
        if matches {
            for method in &known.methods {
                if !allowed.contains(method) {
                    allowed.push(method);
                }
            }
        }
    }
    (!allowed.is_empty()).then_some(allowed)
}

/// Paths that belong to the API and its operational routes, never to the dashboard.
fn is_reserved(path: &str) -> bool {
    ["/api", "/in", "/stripe", "/healthz", "/readyz", "/metrics"]
        .iter()
        .any(|prefix| path == *prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')))
}

fn method_not_allowed(method: &Method, path: &str, allow: &[&str]) -> HttpResponse {
    let allow = allow.join(", ");
    let detail = format!("{method} is not allowed on {path}; it answers {allow}");
    let mut response =
        ApiError::http(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail).error_response();
    let value = header::HeaderValue::from_str(&allow).expect("method names are valid header text");
    response.headers_mut().insert(header::ALLOW, value);
    response
}

/// The app's default service.
pub async fn unmatched(req: HttpRequest, dir: web::Data<dashboard::DashboardDir>) -> HttpResponse {
    let path = req.path();
    let method = req.method();
    if let Some(allow) = allowed_methods(path) {
        if !allow.contains(&method.as_str()) {
            return method_not_allowed(method, path, &allow);
        }
        return ApiError::not_found("route").error_response();
    }
    if is_reserved(path) {
        return ApiError::not_found("route").error_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed(method, path, &["GET", "HEAD"]);
    }
    dashboard::serve(req, dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_by_segment_and_collect_every_method() {
        assert_eq!(allowed_methods("/api/v1/app"), Some(vec!["GET", "HEAD", "POST"]));
        assert_eq!(allowed_methods("/api/v1/app/app_1"), Some(vec!["GET", "HEAD", "PATCH", "DELETE"]));
        assert_eq!(allowed_methods("/in/tok"), Some(vec!["GET", "HEAD", "POST"]));
        assert_eq!(allowed_methods("/api/v1/app/"), None, "an empty segment is no parameter");
        assert_eq!(allowed_methods("/api/v1/invitation"), None);
        assert_eq!(allowed_methods("/api/docs"), Some(vec!["GET", "HEAD"]));
    }

    #[test]
    fn api_ingest_and_operational_prefixes_are_reserved() {
        for path in ["/api", "/api/v2/x", "/in/", "/in", "/healthz", "/metrics/x", "/stripe/webhook"] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["/", "/apps", "/app/app_1", "/inbox", "/sources"] {
            assert!(!is_reserved(path), "{path}");
        }
    }
}
