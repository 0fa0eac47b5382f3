//! Batch statements whose rows travel as one JSON array parameter.
//!
//! The hot paths (accepting messages, creating deliveries, recording attempts) write tens to
//! hundreds of rows per transaction. Built as multi-row `INSERT … VALUES (…), (…)`, every batch
//! size is a different SQL text: prepared again each time, with one bound value per cell. Here the
//! text is the same for one row or a thousand, so each connection prepares it once, and the rows
//! are one parameter that the database unpacks itself: SQLite with `jsonb_each` (the rows bound as
//! a JSONB blob, [`crate::store::jsonb`]), PostgreSQL with `jsonb_populate_recordset` (bound as JSON
//! text), typed by the table's own row type.
//!
//! The statements of one batch also travel together: on SQLite as one multi-statement text, on
//! PostgreSQL as data-modifying CTEs of one statement. One round trip to the database per batch
//! instead of one per statement: on this 2-core machine each round trip to SQLite's worker
//! thread costs tens of microseconds of thread hand-off, more than the statement itself.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use crate::store::jsonb;

/// A timestamp as the database driver itself writes one (RFC 3339, `+00:00`): SQLite compares
/// timestamps as text, so rows written here must sort exactly like rows written through sea-orm.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The rows of one statement: an array written row by row straight from typed rows (structs
/// deriving `Serialize`, borrowing what they can), without building `serde_json::Value` trees —
/// on the hot paths those cost an allocation per key and per value, for every row. The array is
/// SQLite's binary JSON ([`crate::store::jsonb`]), which `jsonb_each` walks as it is; PostgreSQL gets
/// it rendered as JSON text.
pub(crate) struct Rows {
    jsonb: Vec<u8>,
    len: usize,
}

impl Default for Rows {
    fn default() -> Self {
        let mut jsonb = Vec::new();
        jsonb::open(&mut jsonb, false);
        jsonb::close(&mut jsonb, 0);
        Rows { jsonb, len: 0 }
    }
}

impl Rows {
    pub(crate) fn push<T: serde::Serialize + ?Sized>(&mut self, row: &T) {
        jsonb::write(&mut self.jsonb, row).expect("rows serialise to JSON (string keys only)");
        // The array's size stays current: four bytes, so the blob is whole after every row.
        jsonb::close(&mut self.jsonb, 0);
        self.len += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The array as one JSONB blob.
    fn jsonb(&self) -> Vec<u8> {
        self.jsonb.clone()
    }

    /// The array as JSON text.
    fn text(&self) -> String {
        jsonb::to_json_text(&self.jsonb)
    }
}

impl<T: serde::Serialize> FromIterator<T> for Rows {
    fn from_iter<I: IntoIterator<Item = T>>(rows: I) -> Rows {
        let mut all = Rows::default();
        for row in rows {
            all.push(&row);
        }
        all
    }
}

/// One statement of a batch: `INSERT INTO table (columns) <rows of JSON parameter n> tail`.
pub(crate) struct Insert {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    /// `ON CONFLICT …`, or empty.
    pub tail: &'static str,
}

impl Insert {
    fn sql(&self, backend: DbBackend, param: usize) -> String {
        let columns = self.columns.join(", ");
        let table = self.table;
        let tail = self.tail;
        match backend {
            DbBackend::Sqlite => {
                let values: Vec<String> = self.columns.iter().map(|c| format!("value ->> '{c}'")).collect();
                // `WHERE true` keeps SQLite from reading an ON CONFLICT tail as a join constraint.
                // A bare `?`: sqlx binds a multi-statement text's anonymous parameters in order,
                // statement after statement, while numbered ones (`?4`) are bound wrongly past
                // the third statement (it counts the unnamed slots below them as used).
                // `jsonb_each` hands each row over as a binary JSON object, which `->>` reads
                // without parsing the row's text again for every column.
                format!(
                    "INSERT INTO {table} ({columns}) SELECT {} FROM jsonb_each(?) WHERE true {tail}",
                    values.join(", ")
                )
            }
            _ => format!(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_recordset(NULL::{table}, ${param}::jsonb) {tail}"
            ),
        }
    }
}

/// Any other statement of a batch reading one JSON array parameter: its SQLite text with one
/// `?` (reading it with `jsonb_each`), its PostgreSQL text with `{p}` where the parameter goes.
pub(crate) struct Other {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The statements of one batch must not touch the same rows: PostgreSQL runs all of a
/// statement's CTEs on one snapshot, so a conflict between two of them is an error, not skipped.
///
/// Builds the SQL text of a batch of inserts, then other statements, optionally followed by a
/// last statement whose rows the batch returns (its SQLite text with one `?`, its PostgreSQL
/// text with `{p}`, like [`Other`]). The text does not depend on the rows: [`BatchSql`]
/// builds it once per backend.
pub(crate) fn batch_sql(
    backend: DbBackend,
    inserts: &[Insert],
    others: &[Other],
    last: Option<(&str, &str)>,
) -> String {
    match backend {
        DbBackend::Sqlite => {
            let mut statements: Vec<String> =
                inserts.iter().enumerate().map(|(i, insert)| insert.sql(backend, i + 1)).collect();
            statements.extend(others.iter().map(|other| other.sqlite.to_owned()));
            statements.extend(last.map(|(sqlite, _)| sqlite.to_owned()));
            statements.join(";\n")
        }
        _ => {
            // Data-modifying CTEs run even when nothing reads them.
            let mut ctes: Vec<String> = inserts
                .iter()
                .enumerate()
                .map(|(i, insert)| format!("i{} AS ({})", i + 1, insert.sql(backend, i + 1)))
                .collect();
            ctes.extend(others.iter().enumerate().map(|(i, other)| {
                let param = inserts.len() + i + 1;
                format!("o{param} AS ({})", other.postgres.replace("{p}", &format!("${param}")))
            }));
            let last = last.map_or("SELECT 1".to_owned(), |(_, postgres)| {
                postgres.replace("{p}", &format!("${}", inserts.len() + others.len() + 1))
            });
            format!("WITH {} {last}", ctes.join(",\n"))
        }
    }
}

fn statement(backend: DbBackend, sql: &str, rows: &[&Rows]) -> Statement {
    let values: Vec<Value> = rows
        .iter()
        .map(|rows| match backend {
            // A BLOB that is JSONB: `jsonb_each` takes it without parsing or copying it again.
            DbBackend::Sqlite => Value::Bytes(Some(rows.jsonb())),
            _ => Value::String(Some(rows.text())),
        })
        .collect();
    Statement::from_sql_and_values(backend, sql, values)
}

/// Runs a batch built by [`batch_sql`] with one JSON array per statement (empty arrays insert
/// nothing). One round trip.
pub(crate) async fn run<C: ConnectionTrait>(conn: &C, sql: &str, rows: &[&Rows]) -> Result<(), DbErr> {
    conn.execute_raw(statement(conn.get_database_backend(), sql, rows)).await?;
    Ok(())
}

/// Like [`run`], returning the last statement's rows.
pub(crate) async fn query<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    rows: &[&Rows],
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    conn.query_all_raw(statement(conn.get_database_backend(), sql, rows)).await
}

/// The SQL of a batch, built on first use for each backend.
pub(crate) struct BatchSql {
    sqlite: std::sync::OnceLock<String>,
    /// The SQLite text between `BEGIN IMMEDIATE` and `COMMIT` ([`sqlite_transaction`]).
    sqlite_transaction: std::sync::OnceLock<String>,
    postgres: std::sync::OnceLock<String>,
    inserts: &'static [Insert],
    others: &'static [Other],
    last: Option<(&'static str, &'static str)>,
}

impl BatchSql {
    pub(crate) const fn new(inserts: &'static [Insert]) -> BatchSql {
        BatchSql {
            sqlite: std::sync::OnceLock::new(),
            sqlite_transaction: std::sync::OnceLock::new(),
            postgres: std::sync::OnceLock::new(),
            inserts,
            others: &[],
            last: None,
        }
    }

    /// Inserts, then other statements.
    pub(crate) const fn with_others(inserts: &'static [Insert], others: &'static [Other]) -> BatchSql {
        BatchSql {
            sqlite: std::sync::OnceLock::new(),
            sqlite_transaction: std::sync::OnceLock::new(),
            postgres: std::sync::OnceLock::new(),
            inserts,
            others,
            last: None,
        }
    }

    /// Inserts, other statements, then a statement returning rows: (SQLite text, PostgreSQL
    /// text).
    pub(crate) const fn with_last(
        inserts: &'static [Insert],
        others: &'static [Other],
        last: (&'static str, &'static str),
    ) -> BatchSql {
        BatchSql {
            sqlite: std::sync::OnceLock::new(),
            sqlite_transaction: std::sync::OnceLock::new(),
            postgres: std::sync::OnceLock::new(),
            inserts,
            others,
            last: Some(last),
        }
    }

    pub(crate) fn get(&self, backend: DbBackend) -> &str {
        let cell = if backend == DbBackend::Sqlite { &self.sqlite } else { &self.postgres };
        cell.get_or_init(|| batch_sql(backend, self.inserts, self.others, self.last))
    }

    fn sqlite_transaction(&self) -> &str {
        self.sqlite_transaction
            .get_or_init(|| format!("BEGIN IMMEDIATE;\n{};\nCOMMIT", self.get(DbBackend::Sqlite)))
    }
}

/// SQLite: runs a batch as a transaction of its own, `BEGIN IMMEDIATE`, its statements and
/// `COMMIT` in one text, and returns its last statement's rows. One round trip to the writer
/// connection's thread instead of three (begin, batch, commit): under load each round trip is
/// two wake-ups, of that thread and of the waiting task, and each can wait milliseconds for a
/// core while the single writer, the serial section, stands still. The connection is held
/// throughout: when a statement fails, the transaction is rolled back on it before it goes back
/// to the pool, so nothing else ever runs inside a transaction left open.
pub(crate) async fn sqlite_transaction(
    writer: &sea_orm::DatabaseConnection,
    batch: &'static BatchSql,
    rows: &[&Rows],
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    use sea_orm::{RuntimeErr, sqlx};
    let mut conn = writer.get_sqlite_connection_pool().acquire().await.map_err(|err| match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        err => DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(err))),
    })?;
    let mut query = sqlx::query(batch.sqlite_transaction());
    for rows in rows {
        // A BLOB that is JSONB, as in [`run`].
        query = query.bind(rows.jsonb());
    }
    match query.fetch_all(&mut *conn).await {
        Ok(returned) => Ok(returned.into_iter().map(sea_orm::QueryResult::from).collect()),
        Err(err) => {
            // Whichever statement failed, the transaction is still open (or never began, if
            // `BEGIN` itself failed: then `ROLLBACK` says so, and there is nothing to undo).
            if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await
                && !rollback.to_string().contains("no transaction is active")
            {
                // Not knowing the connection's state, it is not given back to the pool.
                tracing::error!(error = %rollback, "rolling back a failed batch failed; closing the writer connection");
                let _ = conn.close().await;
            }
            Err(DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(err))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERTS: &[Insert] = &[
        Insert { table: "a", columns: &["x", "y"], tail: "" },
        Insert { table: "b", columns: &["z"], tail: "ON CONFLICT DO NOTHING" },
    ];

    #[test]
    fn sqlite_batches_are_statements_reading_their_own_parameter() {
        assert_eq!(
            batch_sql(DbBackend::Sqlite, INSERTS, &[], None),
            "INSERT INTO a (x, y) SELECT value ->> 'x', value ->> 'y' FROM jsonb_each(?) WHERE true ;\n\
             INSERT INTO b (z) SELECT value ->> 'z' FROM jsonb_each(?) WHERE true ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn postgres_batches_are_one_statement_of_ctes() {
        assert_eq!(
            batch_sql(DbBackend::Postgres, INSERTS, &[], None),
            "WITH i1 AS (INSERT INTO a (x, y) SELECT x, y FROM jsonb_populate_recordset(NULL::a, $1::jsonb) ),\n\
             i2 AS (INSERT INTO b (z) SELECT z FROM jsonb_populate_recordset(NULL::b, $2::jsonb) ON CONFLICT DO NOTHING) SELECT 1"
        );
    }

    // More statements than three: sqlx binds numbered parameters of a multi-statement text
    // wrongly past the third statement, which this catches.
    static QUEUE_FIVE_TIMES: BatchSql = BatchSql::with_last(
        &[
            crate::ingest::MESSAGES,
            crate::ingest::FANOUT_QUEUE,
            crate::ingest::FANOUT_QUEUE,
            Insert { tail: "ON CONFLICT (message_id) DO NOTHING", ..crate::ingest::FANOUT_QUEUE },
            crate::ingest::FANOUT_QUEUE,
        ],
        &[Other {
            sqlite: "UPDATE fanout_queue SET endpoint_id = j.e FROM (SELECT value ->> 'id' AS id, \
                     value ->> 'e' AS e FROM jsonb_each(?)) AS j WHERE fanout_queue.message_id = j.id",
            postgres: "UPDATE fanout_queue q SET endpoint_id = j.e FROM jsonb_to_recordset({p}::jsonb) \
                       AS j(id text, e text) WHERE q.message_id = j.id",
        }],
        (
            "SELECT value ->> 'id' AS id FROM jsonb_each(?)",
            "SELECT j.id FROM jsonb_to_recordset({p}::jsonb) AS j(id text)",
        ),
    );

    hookline_e2e::both_databases!(a_batch_runs_every_statement_and_returns_the_last_ones_rows);

    async fn a_batch_runs_every_statement_and_returns_the_last_ones_rows(backend: hookline_e2e::Backend) {
        use sea_orm::{EntityTrait, QueryOrder};

        use crate::store::entities::{fanout_queue, messages};
        let (_dir, _, db) = crate::store::db::migrated_for_test(backend).await;
        let at = DateTime::parse_from_rfc3339("2026-11-29T12:34:56.123456Z").unwrap().with_timezone(&Utc);
        let queued = |id: &str| serde_json::json!({"message_id": id, "tenant_id": "t", "app_id": "a", "endpoint_id": null, "created_at": ts(at)});
        let message = serde_json::json!({
            "id": "m0", "tenant_id": "t", "app_id": "a", "event_type": "it's \"quoted\" ünïcode",
            "event_id": null, "channels": ["x", "y"], "payload_size": 7, "created_at": ts(at),
        });
        // Rows from before the batch: one for the conflict clause to skip, one for the update.
        for (id, endpoint) in [("q3", Some("e")), ("q0", None)] {
            fanout_queue::Entity::insert(fanout_queue::ActiveModel {
                message_id: sea_orm::Set(id.to_owned()),
                tenant_id: sea_orm::Set("t".to_owned()),
                app_id: sea_orm::Set("a".to_owned()),
                endpoint_id: sea_orm::Set(endpoint.map(str::to_owned)),
                created_at: sea_orm::Set(at),
            })
            .exec_without_returning(&db.writer)
            .await
            .unwrap();
        }
        let txn = db.begin_write().await.unwrap();
        let rows = query(
            &txn,
            QUEUE_FIVE_TIMES.get(db.backend()),
            &[
                &[message].into_iter().collect(),
                &[queued("q1")].into_iter().collect(),
                &Rows::default(),
                &[queued("q2"), queued("q3")].into_iter().collect(),
                &[queued("q4"), queued("q5")].into_iter().collect(),
                &[serde_json::json!({"id": "q0", "e": "updated"})].into_iter().collect(),
                &[serde_json::json!({"id": "r1"}), serde_json::json!({"id": "r2"})].into_iter().collect(),
            ],
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        let returned: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "id").unwrap()).collect();
        assert_eq!(returned, ["r1", "r2"]);
        let queue = fanout_queue::Entity::find()
            .order_by_asc(fanout_queue::Column::MessageId)
            .all(&db.conn)
            .await
            .unwrap();
        let ids: Vec<&str> = queue.iter().map(|q| q.message_id.as_str()).collect();
        assert_eq!(ids, ["q0", "q1", "q2", "q3", "q4", "q5"], "every statement ran");
        assert!(queue.iter().all(|q| q.created_at == at));
        let set: Vec<(&str, &str)> =
            queue.iter().filter_map(|q| Some((q.message_id.as_str(), q.endpoint_id.as_deref()?))).collect();
        assert_eq!(
            set,
            [("q0", "updated"), ("q3", "e")],
            "the other statement updated its row; the conflicting row was left as it was"
        );
        let stored = messages::Entity::find_by_id("m0").one(&db.conn).await.unwrap().unwrap();
        assert_eq!(stored.event_type, "it's \"quoted\" ünïcode");
        assert_eq!(stored.channels, serde_json::json!(["x", "y"]));
        assert_eq!((stored.payload_size, stored.created_at, stored.event_id), (7, at, None));
    }

    /// A batch in one text with its own `BEGIN IMMEDIATE` and `COMMIT` (SQLite only): it commits
    /// and returns its last statement's rows; when one of its statements fails, nothing of it
    /// stays and the writer connection is left outside any transaction, ready for the next one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_in_one_text_commits_or_leaves_nothing() {
        use sea_orm::{EntityTrait, PaginatorTrait};

        use crate::store::entities::fanout_queue;
        static QUEUE_RETURNING: BatchSql = BatchSql::with_last(
            &[crate::ingest::FANOUT_QUEUE, crate::ingest::FANOUT_QUEUE],
            &[],
            ("SELECT value ->> 'id' AS id FROM jsonb_each(?)", "unused"),
        );
        let (_dir, _, db) = crate::store::db::migrated_for_test(hookline_e2e::Backend::Sqlite).await;
        let at = ts(Utc::now());
        let queued = |id: &str| serde_json::json!({"message_id": id, "tenant_id": "t", "app_id": "a", "endpoint_id": null, "created_at": at});
        let rows = |ids: &[&str]| -> Rows { ids.iter().map(|id| queued(id)).collect() };
        let returned = sqlite_transaction(
            &db.writer,
            &QUEUE_RETURNING,
            &[&rows(&["q1", "q2"]), &rows(&["q3"]), &[serde_json::json!({"id": "r1"})].into_iter().collect()],
        )
        .await
        .unwrap();
        let returned: Vec<String> = returned.iter().map(|r| r.try_get::<String>("", "id").unwrap()).collect();
        assert_eq!(returned, ["r1"]);
        assert_eq!(fanout_queue::Entity::find().count(&db.conn).await.unwrap(), 3, "committed");

        // The second statement repeats a primary key: the first statement's row goes too.
        let failed = sqlite_transaction(
            &db.writer,
            &QUEUE_RETURNING,
            &[&rows(&["q4"]), &rows(&["q1"]), &Rows::default()],
        )
        .await
        .unwrap_err();
        assert!(crate::store::is_unique_violation(&failed), "{failed}");
        assert_eq!(fanout_queue::Entity::find().count(&db.conn).await.unwrap(), 3, "rolled back");
        // No transaction was left open on the writer: a new one begins, and so does a batch.
        let txn = db.begin_write().await.unwrap();
        txn.commit().await.unwrap();
        sqlite_transaction(
            &db.writer,
            &QUEUE_RETURNING,
            &[&rows(&["q4"]), &Rows::default(), &Rows::default()],
        )
        .await
        .unwrap();
        assert_eq!(fanout_queue::Entity::find().count(&db.conn).await.unwrap(), 4);
    }

    #[test]
    fn timestamps_are_written_like_the_driver_writes_them() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T12:00:00.5Z").unwrap().with_timezone(&Utc);
        assert_eq!(ts(at), "2026-11-29T12:00:00.500+00:00");
    }

    #[test]
    fn rows_are_one_json_array() {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            id: &'a str,
            n: Option<i32>,
        }
        assert_eq!(Rows::default().text(), "[]");
        let rows: Rows = [Row { id: "a\"b", n: None }, Row { id: "c", n: Some(2) }].into_iter().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.text(), r#"[{"id":"a\"b","n":null},{"id":"c","n":2}]"#);
    }
}
