//! Plans follow Stripe prices, and promise only what is built.
//!
//! - `plans.stripe_price_id` (unique when set): the Stripe price whose subscription puts a tenant
//!   on that plan (`hookline plan price`). Billing webhooks read the plan from the subscription's
//!   or invoice's price instead of assuming Pro.
//! - `plans.features` loses `transformations`: nothing implements it yet (its issue adds it back
//!   with the feature).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Plans {
    Table,
    Name,
    StripePriceId,
    Features,
}

/// Per plan: its features from now on, and before (for `down`).
const PLAN_FEATURES: [(&str, &str, &str); 2] = [
    ("pro", r#"["inbound_sources"]"#, r#"["transformations","inbound_sources"]"#),
    (
        "enterprise",
        r#"["inbound_sources","dedicated_queue"]"#,
        r#"["transformations","inbound_sources","dedicated_queue"]"#,
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
                Table::alter().table(Plans::Table).add_column(text_null(Plans::StripePriceId)).take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_plans_stripe_price")
                    .table(Plans::Table)
                    .col(Plans::StripePriceId)
                    .unique()
                    .take(),
            )
            .await?;
        for (plan, now, _) in PLAN_FEATURES {
            set_features(manager, plan, now).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (plan, _, before) in PLAN_FEATURES {
            set_features(manager, plan, before).await?;
        }
        manager
            .drop_index(Index::drop().name("idx_plans_stripe_price").table(Plans::Table).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Plans::Table).drop_column(Plans::StripePriceId).take()).await
    }
}
