//! Large payloads: the claim check.
//!
//! - `message_payloads.object_key`, `object_size`, `object_sha256`: a payload over
//!   `HOOKLINE_CLAIM_CHECK_BYTES` lives in the object store under `object_key`; `payload` then
//!   keeps only its first 256 KiB (the payload search reads it). `idx_message_payloads_object`
//!   (partial: rows with an object) finds whether an object is still named before deleting it.
//! - `plans.max_payload_bytes`: free 1 MiB, pro 5 MiB, enterprise 20 MiB (SPEC §5).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MessagePayloads {
    Table,
    ObjectKey,
    ObjectSize,
    ObjectSha256,
}

#[derive(DeriveIden)]
enum Plans {
    Table,
    Name,
    MaxPayloadBytes,
}

/// Per plan: the payload limit from now on, and the one before (for `down`).
const PLAN_PAYLOADS: [(&str, i64, i64); 3] = [
    ("free", 1024 * 1024, 256 * 1024),
    ("pro", 5 * 1024 * 1024, 1024 * 1024),
    ("enterprise", 20 * 1024 * 1024, 1024 * 1024),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            text_null(MessagePayloads::ObjectKey),
            big_integer_null(MessagePayloads::ObjectSize),
            text_null(MessagePayloads::ObjectSha256),
        ] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(MessagePayloads::Table).add_column(&mut column).take())
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_message_payloads_object ON message_payloads (object_key) \
                 WHERE object_key IS NOT NULL",
            )
            .await?;
        for (plan, bytes, _) in PLAN_PAYLOADS {
            manager
                .exec_stmt(
                    Query::update()
                        .table(Plans::Table)
                        .value(Plans::MaxPayloadBytes, bytes)
                        .and_where(Expr::col(Plans::Name).eq(plan))
                        .take(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX idx_message_payloads_object").await?;
        for column in [MessagePayloads::ObjectKey, MessagePayloads::ObjectSize, MessagePayloads::ObjectSha256]
        {
            manager
                .alter_table(Table::alter().table(MessagePayloads::Table).drop_column(column).take())
                .await?;
        }
        for (plan, _, before) in PLAN_PAYLOADS {
            manager
                .exec_stmt(
                    Query::update()
                        .table(Plans::Table)
                        .value(Plans::MaxPayloadBytes, before)
                        .and_where(Expr::col(Plans::Name).eq(plan))
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
