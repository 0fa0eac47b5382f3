//! Body and query extraction with field paths in errors: a body that is not JSON is 400, JSON of
//! the wrong shape is 422 with `loc` pointing at the field, a body over the limit is 413.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::StatusCode, web};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body the API reads: the largest payload plus room for the envelope.
pub fn body_limit(max_payload_bytes: usize) -> usize {
    max_payload_bytes + 64 * 1024
}

/// Parses JSON text into `T`, mapping serde's error to a 400 or a 422 with a field path.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => ApiError::MalformedJson(inner.to_string()),
            serde_json::error::Category::Data => {
                let mut loc = vec!["body"];
                loc.extend(path.split('.').filter(|p| !p.is_empty() && *p != "?"));
                // serde reports the position at the end; the message alone is what people need.
                let msg = inner.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                ApiError::invalid(&loc, msg)
            }
        }
    })
}

/// A JSON body extractor with our error mapping.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        let content_type_ok = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("application/json") || v.contains("+json"));
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::http(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ));
            }
            let bytes = bytes.await.map_err(payload_error)?;
            parse_body(&bytes).map(Json)
        })
    }
}

/// Maps actix's payload errors (size limit, broken connection) to ours.
pub fn payload_error(err: actix_web::Error) -> ApiError {
    let status = err.as_response_error().status_code();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::http(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is over the size limit",
        )
    } else {
        ApiError::http(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("could not read the request body: {err}"),
        )
    }
}
