//! Connecting to the database and bringing its schema up to date.
//!
//! SQLite (embedded default) runs in WAL mode with `synchronous=NORMAL` (durable across a crash of
//! the process) or `FULL` (across power loss); PostgreSQL keeps its default synchronous commit.

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use hookline_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    DatabaseConnection, DbBackend, SqlxPostgresConnector, SqlxSqliteConnector,
    sqlx::{
        self,
        postgres::{PgConnectOptions, PgPoolOptions},
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    },
};

use crate::config::Config;

/// The database: `conn` for reads, `writer` for every statement that writes.
///
/// On SQLite the writer is a pool of one connection. SQLite has one writer at a time; with
/// many pooled connections competing, the losers sleep in SQLite's busy handler and throughput
/// collapses (measured: 580 messages/s with 64 concurrent clients). One writer connection makes
/// writers queue in the pool, in order, without sleeping, while readers use the WAL in parallel.
/// On PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub conn: DatabaseConnection,
    pub writer: DatabaseConnection,
}

impl Db {
    pub async fn connect(config: &Config) -> anyhow::Result<Db> {
        let conn = if config.is_sqlite() {
            let options = sqlite_options(&config.database_url, config.sqlite_synchronous_full)?;
            if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            // The writer never checkpoints on commit (a checkpoint copies the WAL into the
            // database file and fsyncs it: milliseconds added to whichever commit crossed the
            // threshold); a background task checkpoints from a reader instead, beside the writer.
            let writer = SqlitePoolOptions::new()
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute("PRAGMA wal_autocheckpoint = 0").await.map(|_| ())
                    })
                })
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                // A connection to a local file does not go stale; pinging it before every use
                // would cost a round trip to its worker thread per transaction.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
                .with_context(|| format!("opening {}", config.database_url))?;
            let readers = SqlitePoolOptions::new()
                .max_connections(8)
                .min_connections(1)
                .test_before_acquire(false)
                .connect_with(options.read_only(false))
                .await
                .with_context(|| format!("opening {}", config.database_url))?;
            tokio::spawn(checkpoint_loop(readers.clone()));
            return Ok(Db {
                conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(readers),
                writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
            });
        } else {
            let options =
                PgConnectOptions::from_str(&config.database_url).context("HOOKLINE_DATABASE_URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .context("connecting to PostgreSQL")?;
            SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
        };
        Ok(Db { writer: conn.clone(), conn })
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    pub fn is_sqlite(&self) -> bool {
        self.backend() == DbBackend::Sqlite
    }

    /// Runs Hookline's migrations, then creates the apalis job tables.
    pub async fn migrate(&self, config: &Config) -> anyhow::Result<()> {
        Migrator::up(&self.writer, None).await.context("running migrations")?;
        if self.is_sqlite() {
            // apalis' setup sets `synchronous = OFF` on the connection it runs on. That pragma is
            // per connection, so run it on a throw-away one: a pooled connection left that way
            // would accept messages without making them durable.
            let options = sqlite_options(&config.database_url, config.sqlite_synchronous_full)?;
            let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
            apalis_sqlite::SqliteStorage::setup(&pool).await.context("creating the apalis tables")?;
            pool.close().await;
        } else {
            apalis_postgres::PostgresStorage::setup(self.conn.get_postgres_connection_pool())
                .await
                .context("creating the apalis tables")?;
        }
        Ok(())
    }

    /// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: a deferred
    /// transaction that reads first and writes later fails with SQLITE_BUSY when another
    /// connection wrote in between (the busy timeout does not apply to that upgrade); taking the
    /// write lock up front makes it wait its turn instead. PostgreSQL ignores the option.
    pub async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
        use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
        self.writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.conn.ping().await.is_ok()
    }
}

/// Logs (target `hookline::txn`, debug) where a write transaction's time went: `begin_us` is
/// waiting for the writer and starting, `write_us` the statements, `commit_us` the commit. The
/// single SQLite writer is the engine's serial section; this shows what holds it.
pub(crate) fn log_txn(kind: &'static str, started: Instant, begun: Duration, written: Duration) {
    let micros = |d: Duration| d.as_micros() as u64;
    tracing::debug!(
        target: "hookline::txn",
        kind,
        begin_us = micros(begun),
        write_us = micros(written - begun),
        commit_us = micros(started.elapsed() - written),
    );
}

/// A migrated database of `backend` in a fresh temporary directory (kept while the `TempDir`
/// lives), for core's own tests.
#[cfg(test)]
pub(crate) async fn migrated_for_test(backend: hookline_e2e::Backend) -> (tempfile::TempDir, Config, Db) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = hookline_e2e::fresh_database(backend, dir.path());
    let config = Config::with_database(&url, dir.path()).expect("a configuration");
    let db = Db::connect(&config).await.expect("the database");
    db.migrate(&config).await.expect("the migrations");
    (dir, config, db)
}

/// Checkpoints the SQLite WAL every 200 ms from a reader connection. `PASSIVE` never waits for or
/// blocks the writer or readers; what it could not copy (pages a reader still needs) is copied by
/// a later round, and a round with nothing new to copy does no I/O. Ends when the pool closes.
async fn checkpoint_loop(readers: sqlx::SqlitePool) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if readers.is_closed() {
            return;
        }
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&readers).await {
            tracing::warn!(error = %err, "WAL checkpoint failed; retrying");
        }
    }
}

fn sqlite_options(url: &str, synchronous_full: bool) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .context("HOOKLINE_DATABASE_URL")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if synchronous_full { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
        .busy_timeout(Duration::from_secs(10))
        // Statement journals (a multi-row insert that may have to undo itself) and sorts stay in
        // memory: as temp files they cost an open, writes and an unlink each, ~40 a second under load.
        .pragma("temp_store", "memory")
        .foreign_keys(true))
}

/// The raw sqlx pools, for apalis storages built on the same database.
pub enum RawPool<'a> {
    Sqlite(&'a sqlx::SqlitePool),
    Postgres(&'a sqlx::PgPool),
}

impl Db {
    pub fn raw_pool(&self) -> RawPool<'_> {
        if self.is_sqlite() {
            RawPool::Sqlite(self.writer.get_sqlite_connection_pool())
        } else {
            RawPool::Postgres(self.conn.get_postgres_connection_pool())
        }
    }
}
