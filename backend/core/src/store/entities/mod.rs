//! sea-orm entities, one per table. They never go on the wire: services turn them into
//! `hookline-types` values. Reach tenant-owned tables through [`crate::store::scope::TenantScoped`].

pub mod api_keys;
pub mod app_rate_buckets;
pub mod applications;
pub mod attempts;
pub mod broadcasts;
pub mod deliveries;
pub mod endpoint_health;
pub mod endpoints;
pub mod event_types;
pub mod fanout_queue;
pub mod idempotency_keys;
pub mod jobs;
pub mod message_payloads;
pub mod messages;
pub mod payload_fetches;
pub mod plans;
pub mod sessions;
pub mod source_order;
pub mod source_requests;
pub mod sources;
pub mod stripe_events;
pub mod tenants;
pub mod usage_counters;
pub mod usage_reports;
pub mod users;
