//! Receiving webhooks (SPEC §3): inbound sources. A source belongs to a tenant and points at one
//! of its applications; every request it accepts on its ingest URL (`POST /in/{token}`) becomes
//! an ordinary message of that application, so endpoints, filters, signing, retries, logs and
//! replay apply to received webhooks with no second pipeline.
//!
//! - `manage.rs`: the resource (create, list, get, patch, delete, token rotation, test request).
//! - `verify.rs`: the verification schemes (Standard Webhooks, Stripe, GitHub, Shopify, generic
//!   HMAC, Basic, API key), constant-time.
//! - `rules.rs`: body → payload, event type and id, forwarded headers, ordering sequence.
//! - `receive.rs`: the ingest path (lookup, rate limit, verify, handshake, duplicate, stale,
//!   store through the ingest writer).
//! - `requests.rs`: the request log (written in batches off the ingest path) and its listing.

pub mod manage;
pub mod receive;
pub mod requests;
pub mod rules;
pub mod verify;
