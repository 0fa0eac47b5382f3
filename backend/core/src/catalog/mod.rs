//! The catalog: what a tenant configures to send — applications, their endpoints (URLs, secrets,
//! filters, rate limits), event types with their JSON Schemas (`schemas`), and the app-scoped
//! portal tokens its customers use.
//!
//! May use: the foundation, `store` and `tenancy`.

pub mod applications;
pub mod endpoints;
pub mod event_types;
pub mod portal;
pub mod schemas;
