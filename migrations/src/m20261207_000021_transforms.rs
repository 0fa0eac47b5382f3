//! Transforms: `endpoints.transform`, a jq program (NULL = the payload as it is), compiled when
//! saved and run in a sandbox for each delivery. The plan feature `transformations` returns to Pro
//! and Enterprise (migration 15 took it off until it was built). `attempts.error_detail`: why an
//! attempt failed, in words (a transform's error, a connection failure), shown in the attempt log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Transform,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    ErrorDetail,
}

#[derive(DeriveIden)]
enum Plans {
    Table,
    Name,
    Features,
}

/// Per plan: its features from now on, and before (for `down`).
const PLAN_FEATURES: [(&str, &str, &str); 2] = [
    ("pro", r#"["transformations","inbound_sources"]"#, r#"["inbound_sources"]"#),
    (
        "enterprise",
        r#"["transformations","inbound_sources","dedicated_queue"]"#,
        r#"["inbound_sources","dedicated_queue"]"#,
    ),
];

async fn set_features(manager: &SchemaManager<'_>, plan: &str, features: &str) -> Result<(), DbErr> {
    let value: serde_json::Value = serde_json::from_str(features).expect("a JSON array");
    manager
        .exec_stmt(
            Query::update()
                .table(Plans::Table)
                .value(Plans::Features, value)
                .and_where(Expr::col(Plans::Name).eq(plan))
                .take(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Endpoints::Table).add_column(text_null(Endpoints::Transform)).take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Attempts::Table).add_column(text_null(Attempts::ErrorDetail)).take(),
            )
            .await?;
        for (plan, features, _) in PLAN_FEATURES {
            set_features(manager, plan, features).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (plan, _, before) in PLAN_FEATURES {
            set_features(manager, plan, before).await?;
        }
        manager
            .alter_table(Table::alter().table(Attempts::Table).drop_column(Attempts::ErrorDetail).take())
            .await?;
        manager
            .alter_table(Table::alter().table(Endpoints::Table).drop_column(Endpoints::Transform).take())
            .await
    }
}
