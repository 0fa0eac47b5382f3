//! Expensive reads with a time limit (statistics, payload search): each statement is stopped after
//! [`READ_TIMEOUT_SECONDS`] on both databases and answered as `query_timeout`.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, RuntimeErr, TransactionTrait};

use crate::{Context, CoreError, CoreResult};

/// How long PostgreSQL lets one statement of an expensive read (statistics, payload search) run.
pub const READ_TIMEOUT_SECONDS: u64 = 5;

/// The read transaction of an expensive read, and (on SQLite) its connection's deadline.
pub(crate) struct BoundedRead {
    pub txn: DatabaseTransaction,
    _deadline: super::db::ReadDeadline,
}

/// Starts the read transaction of an expensive read: each of its statements is stopped after
/// [`READ_TIMEOUT_SECONDS`] — on PostgreSQL by `SET LOCAL statement_timeout` (it ends with the
/// transaction, never stays on a pooled connection), on SQLite by the reader connection's
/// progress handler ([`super::db::Db::limit_read`]) — which [`end_bounded_read`] turns into
/// `query_timeout`. The reads are bounded besides: statistics by their windows (7 days at most)
/// and samples (`logs::replay::STATS_SAMPLE`), searches by their default window of
/// `messages::SEARCH_DEFAULT_WINDOW_DAYS`.
pub(crate) async fn begin_bounded_read(ctx: &Context) -> CoreResult<BoundedRead> {
    let txn = ctx.db.conn.begin().await?;
    if !ctx.db.is_sqlite() {
        txn.execute_unprepared(&format!("SET LOCAL statement_timeout = '{READ_TIMEOUT_SECONDS}s'")).await?;
    }
    let deadline = ctx.db.limit_read(&txn, READ_TIMEOUT_SECONDS).await?;
    Ok(BoundedRead { txn, _deadline: deadline })
}

/// Ends a read begun with [`begin_bounded_read`] with its result, a timed-out statement becoming
/// `QueryTimeout`: "(what the read was) took longer than … s: (advice)".
pub(crate) async fn end_bounded_read<T>(
    read: BoundedRead,
    result: CoreResult<T>,
    (what, advice): (&str, &str),
) -> CoreResult<T> {
    let BoundedRead { txn, _deadline } = read;
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            // After a failed statement PostgreSQL only takes the rollback; the error is the news.
            let _ = txn.rollback().await;
            Err(match err {
                CoreError::Database(err) if is_statement_timeout(&err) => CoreError::QueryTimeout {
                    detail: format!("{what} took longer than {READ_TIMEOUT_SECONDS} s: {advice}"),
                },
                other => other,
            })
        }
    }
}

/// PostgreSQL's `query_canceled` (SQLSTATE 57014), which a statement timeout raises, or SQLite's
/// `SQLITE_INTERRUPT` (9), which the progress handler's deadline raises.
fn is_statement_timeout(err: &DbErr) -> bool {
    let (DbErr::Query(RuntimeErr::SqlxError(err)) | DbErr::Exec(RuntimeErr::SqlxError(err))) = err else {
        return false;
    };
    err.as_database_error().and_then(|err| err.code()).is_some_and(|code| code == "57014" || code == "9")
}
