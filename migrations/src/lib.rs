//! Hookline's schema as one sea-orm-migration [`Migrator`]; the same migrations run on SQLite and
//! PostgreSQL. Rules (see README.md): append-only, expand then contract, portable column types.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_foundation;
mod m20261129_000002_delivery;
mod m20261129_000003_broadcast;
mod m20261129_000004_self_service;
mod m20261129_000005_plans;
mod m20261129_000006_billing;
mod m20261129_000007_partial_status_indexes;
mod m20261129_000008_endpoint_changes;
mod m20261202_000009_partial_event_id_index;
mod m20261204_000010_index_keys_without_tenant;
mod m20261206_000011_principals_and_sessions;
mod m20261206_000012_bounded_search_and_purge_indexes;
mod m20261206_000013_sources;
mod m20261206_000014_claim_check;
mod m20261207_000015_plan_prices;
mod m20261207_000016_app_rate_buckets;
mod m20261207_000017_event_id_window;
mod m20261207_000018_thin_delivery;
mod m20261207_000019_content_filters;
mod m20261207_000020_event_type_retry_schedule;
mod m20261207_000021_transforms;
mod m20261208_000022_cloudevents_handshake;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_foundation::Migration),
            Box::new(m20261129_000002_delivery::Migration),
            Box::new(m20261129_000003_broadcast::Migration),
            Box::new(m20261129_000004_self_service::Migration),
            Box::new(m20261129_000005_plans::Migration),
            Box::new(m20261129_000006_billing::Migration),
            Box::new(m20261129_000007_partial_status_indexes::Migration),
            Box::new(m20261129_000008_endpoint_changes::Migration),
            Box::new(m20261202_000009_partial_event_id_index::Migration),
            Box::new(m20261204_000010_index_keys_without_tenant::Migration),
            Box::new(m20261206_000011_principals_and_sessions::Migration),
            Box::new(m20261206_000012_bounded_search_and_purge_indexes::Migration),
            Box::new(m20261206_000013_sources::Migration),
            Box::new(m20261206_000014_claim_check::Migration),
            Box::new(m20261207_000015_plan_prices::Migration),
            Box::new(m20261207_000016_app_rate_buckets::Migration),
            Box::new(m20261207_000017_event_id_window::Migration),
            Box::new(m20261207_000018_thin_delivery::Migration),
            Box::new(m20261207_000019_content_filters::Migration),
            Box::new(m20261207_000020_event_type_retry_schedule::Migration),
            Box::new(m20261207_000021_transforms::Migration),
            Box::new(m20261208_000022_cloudevents_handshake::Migration),
        ]
    }
}
