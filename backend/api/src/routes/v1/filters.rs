//! Content filters: trying a pattern on a sample message.

use actix_web::HttpResponse;
use hookline_core::routing::preview;
use hookline_types::{ErrorBody, FilterTestIn, FilterTestOut};

use crate::{auth::Auth, error::ApiResult, json::Json};

/// Try a content filter on a sample message.
///
/// Matches an event pattern (an endpoint's `filter`, EventBridge syntax) against `{"event_type",
/// "channels", "payload", "headers"}` and says whether it matches, or the path of the first part
/// that did not (`failed_at`). A pattern that does not compile is 422 with `loc` continuing into
/// it. Any credential may call it (consumer-portal tokens too); nothing is read or stored.
#[utoipa::path(post, path = "/api/v1/filter/test", operation_id = "v1.filter.test", tag = "Endpoint",
    request_body(content = FilterTestIn, example = json!({
        "filter": {"event_type": [{"prefix": "invoice."}], "payload": {"amount": [{"numeric": [">", 100]}]}},
        "event_type": "invoice.paid",
        "payload": {"amount": 20}
    })),
    responses((status = 200, description = "Whether it matches", body = FilterTestOut), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test(Auth(_principal): Auth, Json(input): Json<FilterTestIn>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(preview::test(&input)?))
}
