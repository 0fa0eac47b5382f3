//! Tenancy: who calls and what they may do — tenants, users and sessions (`auth`), API keys,
//! the authenticated [`principal::Principal`] every service takes, and plans (plan data, limits and
//! features per tenant).
//!
//! May use: the foundation and `store`.

pub mod api_keys;
pub mod auth;
pub mod plans;
pub mod principal;
pub mod tenants;
