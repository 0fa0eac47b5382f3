//! De-duplication by `event_id` lasts a window (SPEC §2: 24 hours), not as long as the message.
//!
//! - `messages.event_id_released`, `broadcasts.event_id_released`: set when a repeat arrives
//!   after the window; the holder keeps its `event_id` (shown, searchable) but no longer
//!   reserves it.
//! - `uq_messages_event_id` / `uq_broadcasts_event_id` hold only unreleased event ids, so a
//!   released id can be accepted again; `idx_messages_event_id` keeps the `?event_id=` filter
//!   indexed over every message that has one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    EventIdReleased,
}

#[derive(DeriveIden)]
enum Broadcasts {
    Table,
    EventIdReleased,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(boolean(Messages::EventIdReleased).default(false))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Broadcasts::Table)
                    .add_column(boolean(Broadcasts::EventIdReleased).default(false))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX uq_messages_event_id",
            "CREATE UNIQUE INDEX uq_messages_event_id ON messages (tenant_id, app_id, event_id) \
             WHERE event_id IS NOT NULL AND NOT event_id_released",
            "CREATE INDEX idx_messages_event_id ON messages (tenant_id, app_id, event_id) \
             WHERE event_id IS NOT NULL",
            "DROP INDEX uq_broadcasts_event_id",
            "CREATE UNIQUE INDEX uq_broadcasts_event_id ON broadcasts (tenant_id, event_id) \
             WHERE event_id IS NOT NULL AND NOT event_id_released",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX uq_broadcasts_event_id",
            "CREATE UNIQUE INDEX uq_broadcasts_event_id ON broadcasts (tenant_id, event_id)",
            "DROP INDEX idx_messages_event_id",
            "DROP INDEX uq_messages_event_id",
            "CREATE UNIQUE INDEX uq_messages_event_id ON messages (tenant_id, app_id, event_id) \
             WHERE event_id IS NOT NULL",
        ] {
            db.execute_unprepared(statement).await?;
        }
        manager
            .alter_table(
                Table::alter().table(Broadcasts::Table).drop_column(Broadcasts::EventIdReleased).take(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Messages::Table).drop_column(Messages::EventIdReleased).take())
            .await
    }
}
