//! The delivery engine's state: the fan-out queue (one row per accepted message until the worker
//! has created its deliveries), delivery leases, and per-endpoint health (circuit breaker, rate
//! limit bucket, failing-since for automatic disabling).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FanoutQueue {
    Table,
    MessageId,
    TenantId,
    AppId,
    EndpointId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    LeaseOwner,
    LeaseUntil,
    LastResponseStatus,
    LastError,
}

#[derive(DeriveIden)]
enum EndpointHealth {
    Table,
    EndpointId,
    TenantId,
    ConsecutiveFailures,
    FailingSince,
    CircuitOpenUntil,
    Tokens,
    TokensAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FanoutQueue::Table)
                    .col(ColumnDef::new(FanoutQueue::MessageId).string().not_null().primary_key())
                    .col(string(FanoutQueue::TenantId))
                    .col(string(FanoutQueue::AppId))
                    // Set for a message meant for one endpoint only (a test event).
                    .col(string_null(FanoutQueue::EndpointId))
                    .col(timestamp_with_time_zone(FanoutQueue::CreatedAt))
                    .take(),
            )
            .await?;

        // SQLite takes one column per ALTER TABLE.
        for column in [
            string_null(Deliveries::LeaseOwner),
            timestamp_with_time_zone_null(Deliveries::LeaseUntil),
            integer_null(Deliveries::LastResponseStatus),
            string_null(Deliveries::LastError),
        ] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(Deliveries::Table).add_column(&mut column).take())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_lease")
                    .table(Deliveries::Table)
                    .col(Alias::new("status"))
                    .col(Deliveries::LeaseUntil)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EndpointHealth::Table)
                    .col(ColumnDef::new(EndpointHealth::EndpointId).string().not_null().primary_key())
                    .col(string(EndpointHealth::TenantId))
                    .col(integer(EndpointHealth::ConsecutiveFailures))
                    .col(timestamp_with_time_zone_null(EndpointHealth::FailingSince))
                    .col(timestamp_with_time_zone_null(EndpointHealth::CircuitOpenUntil))
                    .col(double(EndpointHealth::Tokens))
                    .col(timestamp_with_time_zone_null(EndpointHealth::TokensAt))
                    .col(timestamp_with_time_zone(EndpointHealth::UpdatedAt))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EndpointHealth::Table).take()).await?;
        manager
            .drop_index(Index::drop().name("idx_deliveries_lease").table(Deliveries::Table).to_owned())
            .await?;
        for column in [
            Deliveries::LastError,
            Deliveries::LastResponseStatus,
            Deliveries::LeaseUntil,
            Deliveries::LeaseOwner,
        ] {
            manager.alter_table(Table::alter().table(Deliveries::Table).drop_column(column).take()).await?;
        }
        manager.drop_table(Table::drop().table(FanoutQueue::Table).take()).await?;
        Ok(())
    }
}
