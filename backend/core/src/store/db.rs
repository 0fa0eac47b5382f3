//! Connecting to the database and bringing its schema up to date.
//!
//! SQLite (embedded default) runs in WAL mode with `synchronous=NORMAL` (durable across a crash of
//! the process) or `FULL` (across power loss); PostgreSQL keeps its default synchronous commit.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
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
    /// SQLite: the deadline of each reader connection (see [`ReadDeadlines`]).
    pub read_deadlines: Arc<ReadDeadlines>,
}

/// How many SQLite virtual-machine steps run between two looks at a reader's deadline.
const PROGRESS_STEPS: i32 = 10_000;

/// SQLite cannot time a statement out by itself: each reader connection gets a progress handler
/// (sqlx's `set_progress_handler`) that interrupts the statement running on it once that
/// connection's deadline (microseconds on [`now_micros`]'s monotonic clock, 0 for none) has
/// passed. A connection names itself in a temporary table (`temp.hookline_connection`, one per
/// connection), so a transaction finds its own deadline ([`Db::limit_read`]). Connections the pool
/// closed leave dead entries, dropped as new ones open.
#[derive(Debug, Default)]
pub struct ReadDeadlines {
    next: AtomicU64,
    by_connection: Mutex<HashMap<u64, Weak<AtomicI64>>>,
}

/// A deadline set on a connection; dropping it clears the deadline, however the read ended (a
/// request dropped in the middle must not leave a deadline on a pooled connection).
pub struct ReadDeadline(Option<Arc<AtomicI64>>);

impl Drop for ReadDeadline {
    fn drop(&mut self) {
        if let Some(deadline) = &self.0 {
            deadline.store(0, Relaxed);
        }
    }
}

/// Microseconds on a monotonic clock (since the first call in this process): a deadline follows
/// `Instant`, so a wall-clock step cannot end a read early or late, and the `+ 1` where a deadline is
/// set rounds the truncated start up, so a read never ends before its full time.
fn now_micros() -> i64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_micros() as i64
}

impl ReadDeadlines {
    /// Registers a new reader connection: its name in `temp.hookline_connection` and the progress
    /// handler that enforces its deadline.
    async fn register(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        let id = self.next.fetch_add(1, Relaxed);
        let deadline = Arc::new(AtomicI64::new(0));
        {
            let mut by_connection = self.by_connection.lock().unwrap_or_else(|p| p.into_inner());
            by_connection.retain(|_, weak| weak.strong_count() > 0);
            by_connection.insert(id, Arc::downgrade(&deadline));
        }
        let name = format!("CREATE TEMP TABLE IF NOT EXISTS hookline_connection AS SELECT {id} AS id");
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(name))).await?;
        conn.lock_handle().await?.set_progress_handler(PROGRESS_STEPS, move || {
            let at = deadline.load(Relaxed);
            at == 0 || now_micros() < at
        });
        Ok(())
    }
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
            // threshold); a background task checkpoints from a reader instead, beside the writer,
            // and finishes on the writer only when the WAL must start over (`checkpoint_loop`).
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
            let read_deadlines = Arc::new(ReadDeadlines::default());
            let deadlines = read_deadlines.clone();
            let readers = SqlitePoolOptions::new()
                .after_connect(move |conn, _| {
                    let deadlines = deadlines.clone();
                    Box::pin(async move { deadlines.register(conn).await })
                })
                .max_connections(8)
                .min_connections(1)
                .test_before_acquire(false)
                .connect_with(options.read_only(false))
                .await
                .with_context(|| format!("opening {}", config.database_url))?;
            tokio::spawn(checkpoint_loop(readers.clone(), writer.clone()));
            return Ok(Db {
                conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(readers),
                writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
                read_deadlines,
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
        Ok(Db { writer: conn.clone(), conn, read_deadlines: Arc::default() })
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

/// The planner's plan for `sql` with `values` bound, one line per step (SQLite's `EXPLAIN QUERY
/// PLAN` details, PostgreSQL's `EXPLAIN` lines), for tests that check an index is reachable.
#[cfg(test)]
pub(crate) async fn query_plan<C: sea_orm::ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Vec<String> {
    let sqlite = conn.get_database_backend() == sea_orm::DbBackend::Sqlite;
    let (explain, column) = if sqlite { ("EXPLAIN QUERY PLAN", "detail") } else { ("EXPLAIN", "QUERY PLAN") };
    conn.query_all_raw(sea_orm::Statement::from_sql_and_values(
        conn.get_database_backend(),
        format!("{explain} {sql}"),
        values,
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", column).unwrap())
    .collect()
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

/// WAL frames (pages) past which a checkpoint round is finished on the writer connection, so
/// that the WAL starts again from its beginning (see [`checkpoint_loop`]): ≈ 32 MiB of WAL. Each
/// such round holds the writer 10–25 ms; at 1,000 frames it came every 200 ms under load.
const WAL_RESET_FRAMES: i64 = 8000;

/// Checkpoints the SQLite WAL every 200 ms from a reader connection. `PASSIVE` never waits for or
/// blocks the writer or readers; what it could not copy (pages a reader still needs) is copied by
/// a later round, and a round with nothing new to copy does no I/O. Ends when the pool closes.
///
/// Copying is not enough to keep the WAL small: SQLite writes from the WAL's beginning again
/// only when a write transaction begins with every frame copied, and under steady load the
/// writer has always committed more since the reader's round. The WAL then grew by every
/// commit (240 MB in one bench (a) run), and each frame written past its end made the file
/// system allocate and zero a new block (≈ 12 % of the server's CPU in perf). So when the WAL
/// holds more than [`WAL_RESET_FRAMES`], the round is finished on the writer connection, where
/// no commit can run beside it: it copies the frames committed since, and the next transaction
/// starts the WAL over, overwriting blocks the file already has. That round holds the writer
/// 10–25 ms (the frames since the reader's round, an fsync of the WAL and one of the database:
/// measured in bench (c), `hookline::txn` kind `checkpoint`), all of it a stall of the serial
/// section, so it comes only past [`WAL_RESET_FRAMES`]: about once a second under load.
async fn checkpoint_loop(readers: sqlx::SqlitePool, writer: sqlx::SqlitePool) {
    const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";
    // The WAL's length at the last round on the writer: an idle WAL that did not start over
    // (nothing was written since) is not finished again every round.
    let mut finished_at = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if readers.is_closed() || writer.is_closed() {
            return;
        }
        // (busy, frames in the WAL, frames copied)
        let frames = match sqlx::query_as::<_, (i64, i64, i64)>(CHECKPOINT).fetch_one(&readers).await {
            Ok((_, frames, _)) => frames,
            Err(err) => {
                tracing::warn!(error = %err, "WAL checkpoint failed; retrying");
                continue;
            }
        };
        if frames > WAL_RESET_FRAMES && frames != finished_at {
            finished_at = frames;
            let started = Instant::now();
            if let Err(err) = sqlx::query(CHECKPOINT).execute(&writer).await {
                tracing::warn!(error = %err, "WAL checkpoint on the writer failed; retrying");
            }
            // Waiting for the writer and holding it (an fsync of the WAL and one of the database).
            tracing::debug!(target: "hookline::txn", kind = "checkpoint", frames, us = started.elapsed().as_micros() as u64);
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
    /// Gives the SQLite reader connection running `txn` a deadline `seconds` from now: a
    /// statement still running then is interrupted (SQLite's `interrupted` error). Nothing on
    /// PostgreSQL, which has `statement_timeout`. Dropping the returned value clears it.
    pub async fn limit_read<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        seconds: u64,
    ) -> Result<ReadDeadline, sea_orm::DbErr> {
        if !self.is_sqlite() {
            return Ok(ReadDeadline(None));
        }
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id FROM temp.hookline_connection",
            ))
            .await?
            .ok_or_else(|| sea_orm::DbErr::Custom("a reader connection without its name".to_owned()))?;
        let id: i64 = row.try_get("", "id")?;
        let deadline = self
            .read_deadlines
            .by_connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(id as u64))
            .and_then(Weak::upgrade)
            .ok_or_else(|| sea_orm::DbErr::Custom(format!("reader connection {id} has no deadline")))?;
        deadline.store(now_micros() + 1 + (seconds as i64) * 1_000_000, Relaxed);
        Ok(ReadDeadline(Some(deadline)))
    }

    pub fn raw_pool(&self) -> RawPool<'_> {
        if self.is_sqlite() {
            RawPool::Sqlite(self.writer.get_sqlite_connection_pool())
        } else {
            RawPool::Postgres(self.conn.get_postgres_connection_pool())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use sea_orm::{ConnectionTrait, sqlx};

    /// A cached statement is run again as it was prepared, whatever is bound to it. The SQLite
    /// we build (`.cargo/config.toml`: `SQLITE_ENABLE_QPSG`) does not plan with bound values;
    /// one that does marks a `LIMIT ?` statement to be prepared again at every new binding (the
    /// shape of every sea-orm `.one()`, the claims and apalis' job fetches), which this counts
    /// through `sqlite_stmt` (`SQLITE_ENABLE_STMTVTAB`, same file).
    #[tokio::test]
    async fn rebinding_a_statement_does_not_prepare_it_again() {
        let (_dir, _, db) = super::migrated_for_test(hookline_e2e::Backend::Sqlite).await;
        let mut conn = db.conn.get_sqlite_connection_pool().acquire().await.unwrap();
        const SQL: &str = "SELECT name FROM plans WHERE name >= ? ORDER BY name LIMIT ?";
        for limit in 1..=4_i64 {
            let names: Vec<(String,)> =
                sqlx::query_as(SQL).bind("").bind(limit).fetch_all(&mut *conn).await.unwrap();
            assert_eq!(names.len(), limit.min(3) as usize, "the seeded plans, at most {limit}");
        }
        let (runs, prepared_again): (i64, i64) =
            sqlx::query_as("SELECT run, reprep FROM sqlite_stmt WHERE sql = ?")
                .bind(SQL)
                .fetch_one(&mut *conn)
                .await
                .expect("the statement is cached on this connection (sqlite_stmt lists it)");
        assert_eq!(runs, 4, "one cached statement ran four times");
        assert_eq!(prepared_again, 0, "the statement was prepared again {prepared_again} times in 4 runs");
    }

    /// Under steady writes the WAL starts over from its beginning instead of growing by every
    /// commit: its file stays a fraction of what was written to it. (Before the checkpoint loop
    /// finished rounds on the writer, the file was as long as everything ever written.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        let (dir, _, db) = super::migrated_for_test(hookline_e2e::Backend::Sqlite).await;
        db.writer
            .execute_unprepared("CREATE TABLE wal_test (id INTEGER PRIMARY KEY, body BLOB)")
            .await
            .unwrap();
        let wal = dir.path().join("hookline.db-wal");
        let mut commits: u64 = 0;
        // Long enough for several checkpoint rounds (on a busy machine they come later than every
        // 200 ms), and enough commits to fill the WAL past `WAL_RESET_FRAMES` between them.
        let started = Instant::now();
        // At least four times `WAL_RESET_FRAMES` written, at three frames a commit.
        let enough = (4 * super::WAL_RESET_FRAMES / 3) as u64;
        while started.elapsed() < Duration::from_millis(2500) || commits < enough {
            let txn = db.begin_write().await.unwrap();
            // Two overflow pages and a leaf: at least three WAL frames per commit.
            txn.execute_unprepared("INSERT INTO wal_test (body) VALUES (zeroblob(8000))").await.unwrap();
            txn.commit().await.unwrap();
            commits += 1;
        }
        // A lower bound: a commit here writes about four frames. A WAL that never starts over
        // is as long as everything written to it (≈ 1.4 × this); one that does is as long as
        // what is written between two restarts (`WAL_RESET_FRAMES`, and what is committed before
        // the next checkpoint round sees it).
        let frame = 4096 + 24;
        let written = commits * 3 * frame;
        let length = std::fs::metadata(&wal).unwrap().len();
        assert!(
            length < written * 2 / 3,
            "the WAL is {length} bytes after {commits} commits (≥ {written} bytes written to it): it never started over"
        );
    }
}
