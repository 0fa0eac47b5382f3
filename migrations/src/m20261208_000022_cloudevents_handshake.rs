//! The CloudEvents abuse-protection handshake (CloudEvents HTTP Webhook spec, section 4).
//! `endpoints.handshake`: whether the endpoint is asked (`OPTIONS`) before it is sent to; NULL =
//! the default of its format (on for the CloudEvents formats). `endpoint_health` keeps what the
//! last handshake established, shared by every worker: `handshake_at` (when it was accepted; a
//! day later it is asked again), `handshake_rate` (its `WebHook-Allowed-Rate`, requests per
//! minute; NULL = no limit) and `paused_reason` (why a refused handshake paused the endpoint;
//! NULL when it is not paused).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Handshake,
}

#[derive(DeriveIden)]
enum EndpointHealth {
    Table,
    HandshakeAt,
    HandshakeRate,
    PausedReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Endpoints::Table).add_column(boolean_null(Endpoints::Handshake)).take(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            timestamp_with_time_zone_null(EndpointHealth::HandshakeAt),
            integer_null(EndpointHealth::HandshakeRate),
            text_null(EndpointHealth::PausedReason),
        ] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(EndpointHealth::Table).add_column(&mut column).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in
            [EndpointHealth::PausedReason, EndpointHealth::HandshakeRate, EndpointHealth::HandshakeAt]
        {
            manager
                .alter_table(Table::alter().table(EndpointHealth::Table).drop_column(column).take())
                .await?;
        }
        manager
            .alter_table(Table::alter().table(Endpoints::Table).drop_column(Endpoints::Handshake).take())
            .await
    }
}
