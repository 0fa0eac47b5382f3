//! Storage: the database connections (SQLite's single writer, PostgreSQL's pool), batch
//! statements with one JSON parameter (`bulk`, `jsonb`), tenant-scoped queries by construction
//! (`scope`), the table models (`entities`), pagination, in-process caches, and small helpers for
//! JSON columns and constraint errors.
//!
//! May use: the foundation (`domain`, `ids`, `error`, `config`, `crypto`, `metrics`). Every other
//! capability builds on this one; it imports none of them (`tests/layers.rs`).

pub mod bounded;
pub(crate) mod bulk;
pub mod cache;
pub mod db;
pub mod entities;
pub(crate) mod jsonb;
pub mod pagination;
pub mod scope;

use sea_orm::{DbErr, SqlErr};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::CoreError;

/// True when `err` is a unique-constraint violation (a duplicate uid, name, email, …).
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("wire types always serialize")
}

/// Reads a JSON column written by us; a value that no longer parses is an internal error.
pub(crate) fn from_json<T: DeserializeOwned>(value: Value, what: &str) -> Result<T, CoreError> {
    serde_json::from_value(value)
        .map_err(|err| CoreError::Internal(anyhow::anyhow!("stored {what} is unreadable: {err}")))
}

/// A custom SQL condition written with `?` placeholders, for either backend: sea-query takes
/// `?` on SQLite and `$1, $2, …` on PostgreSQL.
pub(crate) fn custom_sql<V: Into<sea_orm::Value>>(
    sqlite: bool,
    sql: &str,
    values: impl IntoIterator<Item = V>,
) -> sea_orm::sea_query::Expr {
    let sql = if sqlite { sql.to_owned() } else { numbered(sql) };
    sea_orm::sea_query::Expr::cust_with_values(sql, values)
}

/// `sql` with its `?` placeholders numbered `$1, $2, …` (PostgreSQL's).
pub(crate) fn numbered(sql: &str) -> String {
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}
