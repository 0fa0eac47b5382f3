pub mod dashboard;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod unmatched;
pub mod v1;
