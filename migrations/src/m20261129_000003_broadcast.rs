//! Broadcasts: one accepted request that becomes a message in every application subscribed to
//! its event type. Ingest stores the broadcast; the worker expands it, so ingest does bounded
//! work however many applications the tenant has.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Broadcasts {
    Table,
    Id,
    TenantId,
    EventType,
    EventId,
    Channels,
    Payload,
    /// `queued` until expanded, then `expanded`.
    State,
    MessageCount,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Broadcasts::Table)
                    .col(ColumnDef::new(Broadcasts::Id).string().not_null().primary_key())
                    .col(string(Broadcasts::TenantId))
                    .col(string(Broadcasts::EventType))
                    .col(string_null(Broadcasts::EventId))
                    .col(json_binary(Broadcasts::Channels))
                    .col(text(Broadcasts::Payload))
                    .col(string(Broadcasts::State))
                    .col(integer(Broadcasts::MessageCount))
                    .col(timestamp_with_time_zone(Broadcasts::CreatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_broadcasts_event_id")
                    .table(Broadcasts::Table)
                    .col(Broadcasts::TenantId)
                    .col(Broadcasts::EventId)
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_broadcasts_state")
                    .table(Broadcasts::Table)
                    .col(Broadcasts::State)
                    .col(Broadcasts::Id)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Broadcasts::Table).take()).await
    }
}
