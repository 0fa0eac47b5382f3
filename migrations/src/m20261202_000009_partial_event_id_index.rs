//! `uq_messages_event_id` holds only the messages that carry an `event_id`. As a full index it
//! also held an entry for every message without one — most of them, and entries no lookup can
//! find (a lookup names an event id; NULLs never conflict) — one more b-tree insert for every
//! accepted message on the ingest writer's serial path. Uniqueness is unchanged: both databases
//! treat NULLs in a unique index as distinct. Lookups by `event_id = …` still reach the index:
//! both planners know that a comparison implies `event_id IS NOT NULL`, bound values included.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_messages_event_id").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_messages_event_id ON messages (tenant_id, app_id, event_id) \
             WHERE event_id IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_messages_event_id").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_messages_event_id ON messages (tenant_id, app_id, event_id)",
        )
        .await?;
        Ok(())
    }
}
