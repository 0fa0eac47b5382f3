//! One module per page.

pub mod api_keys;
pub mod apps;
pub mod auth;
pub mod billing;
pub mod endpoint;
pub mod event_types;
pub mod fetches;
pub mod logs;
pub mod message;
pub mod overview;
pub mod routing;
pub mod sources;
pub mod transforms;
