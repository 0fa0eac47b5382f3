//! Hookline's wire contract.
//!
//! Everything that crosses HTTP is defined here and nowhere else: prefixed ids, the `XxxIn` /
//! `XxxPatch` / `XxxOut` bodies of every resource, [`ListResponse`] and [`ErrorBody`]. The crate
//! depends on serde only (utoipa behind the `openapi` feature) so the dashboard shares it on wasm32.

pub mod ids;
pub mod patch;
pub mod resources;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod sources;

pub use ids::*;
pub use patch::Patch;
pub use resources::*;
use serde::{Deserialize, Serialize};
pub use sources::*;

/// One page of a list. `iterator` is opaque: pass it back as `?iterator=` for the next page;
/// `done` is true on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub done: bool,
}

/// The body of every error response. `code` is stable and snake_case; `detail` is for people;
/// `errors` lists field paths for validation failures (422).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub code: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// On server errors (5xx): the request's `X-Request-Id`, to find it in the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One invalid field: `loc` is the path to it, e.g. `["body", "filter_types", "0"]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
}

impl FieldError {
    pub fn new(loc: &[&str], msg: impl Into<String>) -> Self {
        FieldError { loc: loc.iter().map(|part| (*part).to_owned()).collect(), msg: msg.into() }
    }
}
