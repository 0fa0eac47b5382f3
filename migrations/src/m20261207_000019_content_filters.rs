//! Content filters: `endpoints.filter`, an EventBridge-style event pattern (JSON; NULL = every
//! message), compiled when saved and matched at fan-out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Filter,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Endpoints::Table).add_column(json_binary_null(Endpoints::Filter)).take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Endpoints::Table).drop_column(Endpoints::Filter).take())
            .await
    }
}
