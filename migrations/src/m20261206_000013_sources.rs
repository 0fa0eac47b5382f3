//! Receiving webhooks: inbound sources, the requests they received, the newest sequence per
//! ordering key, the headers a message forwards to its endpoints, and the plans' source limit.
//!
//! - `sources`: one per provider hook; `verification` is the sealed JSON of the scheme with its
//!   secrets; the ingest token is kept as its SHA-256 (`token_hash`, the lookup) and sealed
//!   (`token_sealed`, to show the URL again); a rotation keeps the previous hash until
//!   `previous_token_expires_at`.
//! - `source_requests`: the request log (accepted, duplicate, stale, rejected, handshake).
//! - `source_order`: per source and ordering key, the newest sequence accepted.
//! - `message_payloads.headers`: the request headers a received message forwards (JSON object).
//! - `plans.max_sources`: free 1, pro 100, enterprise 10,000; the free plan gets the
//!   `inbound_sources` feature (its one source).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sources {
    Table,
    Id,
    TenantId,
    AppId,
    Uid,
    Name,
    Verification,
    Settings,
    RateLimit,
    Burst,
    MaxBodyBytes,
    Disabled,
    TokenHash,
    TokenSealed,
    PreviousTokenHash,
    PreviousTokenExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SourceRequests {
    Table,
    Id,
    TenantId,
    SourceId,
    ReceivedAt,
    Outcome,
    Reason,
    Method,
    Headers,
    BodySize,
    Body,
    MessageId,
    EventId,
    Status,
}

#[derive(DeriveIden)]
enum SourceOrder {
    Table,
    SourceId,
    Key,
    TenantId,
    Sequence,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MessagePayloads {
    Table,
    Headers,
}

#[derive(DeriveIden)]
enum Plans {
    Table,
    Name,
    MaxSources,
    Features,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sources::Table)
                    .col(string(Sources::Id).primary_key())
                    .col(string(Sources::TenantId))
                    .col(string(Sources::AppId))
                    .col(string_null(Sources::Uid))
                    .col(string(Sources::Name))
                    .col(text(Sources::Verification))
                    .col(json_binary(Sources::Settings))
                    .col(integer_null(Sources::RateLimit))
                    .col(integer_null(Sources::Burst))
                    .col(big_integer_null(Sources::MaxBodyBytes))
                    .col(boolean(Sources::Disabled).default(false))
                    .col(string(Sources::TokenHash))
                    .col(text(Sources::TokenSealed))
                    .col(string_null(Sources::PreviousTokenHash))
                    .col(timestamp_with_time_zone_null(Sources::PreviousTokenExpiresAt))
                    .col(timestamp_with_time_zone(Sources::CreatedAt))
                    .col(timestamp_with_time_zone(Sources::UpdatedAt))
                    .take(),
            )
            .await?;
        for (name, cols, unique) in [
            ("uq_sources_uid", vec![Sources::TenantId, Sources::Uid], true),
            ("uq_sources_token", vec![Sources::TokenHash], true),
            ("idx_sources_previous_token", vec![Sources::PreviousTokenHash], false),
            ("idx_sources_app", vec![Sources::TenantId, Sources::AppId], false),
        ] {
            let mut index = Index::create();
            index.name(name).table(Sources::Table);
            for col in cols {
                index.col(col);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.take()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(SourceRequests::Table)
                    .col(string(SourceRequests::Id).primary_key())
                    .col(string(SourceRequests::TenantId))
                    .col(string(SourceRequests::SourceId))
                    .col(timestamp_with_time_zone(SourceRequests::ReceivedAt))
                    .col(string(SourceRequests::Outcome))
                    .col(string_null(SourceRequests::Reason))
                    .col(string(SourceRequests::Method))
                    .col(json_binary(SourceRequests::Headers))
                    .col(big_integer(SourceRequests::BodySize))
                    .col(text_null(SourceRequests::Body))
                    .col(string_null(SourceRequests::MessageId))
                    .col(string_null(SourceRequests::EventId))
                    .col(integer(SourceRequests::Status))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_source_requests_source")
                    .table(SourceRequests::Table)
                    .col(SourceRequests::TenantId)
                    .col(SourceRequests::SourceId)
                    .col(SourceRequests::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_source_requests_message")
                    .table(SourceRequests::Table)
                    .col(SourceRequests::TenantId)
                    .col(SourceRequests::MessageId)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_source_requests_received")
                    .table(SourceRequests::Table)
                    .col(SourceRequests::ReceivedAt)
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SourceOrder::Table)
                    .col(string(SourceOrder::SourceId))
                    .col(string(SourceOrder::Key))
                    .col(string(SourceOrder::TenantId))
                    .col(big_integer(SourceOrder::Sequence))
                    .col(timestamp_with_time_zone(SourceOrder::UpdatedAt))
                    .primary_key(Index::create().col(SourceOrder::SourceId).col(SourceOrder::Key))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MessagePayloads::Table)
                    .add_column(text_null(MessagePayloads::Headers))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Plans::Table)
                    .add_column(big_integer(Plans::MaxSources).default(0))
                    .take(),
            )
            .await?;
        for (plan, max, features) in [
            ("free", 1_i64, serde_json::json!(["inbound_sources"])),
            ("pro", 100, serde_json::json!(["transformations", "inbound_sources"])),
            (
                "enterprise",
                10_000,
                serde_json::json!(["transformations", "inbound_sources", "dedicated_queue"]),
            ),
        ] {
            manager
                .exec_stmt(
                    Query::update()
                        .table(Plans::Table)
                        .value(Plans::MaxSources, max)
                        .value(Plans::Features, features)
                        .and_where(Expr::col(Plans::Name).eq(plan))
                        .take(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SourceOrder::Table).take()).await?;
        manager.drop_table(Table::drop().table(SourceRequests::Table).take()).await?;
        manager.drop_table(Table::drop().table(Sources::Table).take()).await?;
        manager
            .alter_table(
                Table::alter().table(MessagePayloads::Table).drop_column(MessagePayloads::Headers).take(),
            )
            .await?;
        manager.alter_table(Table::alter().table(Plans::Table).drop_column(Plans::MaxSources).take()).await
    }
}
