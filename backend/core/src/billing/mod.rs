//! Billing: usage counters written with every message and attempt (`usage`), quotas and their
//! enforcement (`metering`), and Stripe — checkout, its webhooks, and hourly overage reports
//! (`stripe`).
//!
//! May use: the foundation, `store`, `tenancy` and `catalog`.

pub mod metering;
pub mod stripe;
pub mod usage;
