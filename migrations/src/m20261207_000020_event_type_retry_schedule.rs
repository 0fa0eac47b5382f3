//! Per-event-type retry schedules: `event_types.retry_schedule` (a JSON array of seconds; NULL =
//! the default schedule). An endpoint's own schedule comes first, then its message's type's.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EventTypes {
    Table,
    RetrySchedule,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EventTypes::Table)
                    .add_column(json_binary_null(EventTypes::RetrySchedule))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(EventTypes::Table).drop_column(EventTypes::RetrySchedule).take(),
            )
            .await
    }
}
