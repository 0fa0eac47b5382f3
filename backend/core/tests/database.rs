//! Database-facing unit tests of hookline-core, on SQLite and on a throw-away PostgreSQL.

use chrono::{Duration, Utc};
use hookline_core::{
    Config, Context, Db,
    billing::usage,
    crypto::Keys,
    ids::NewId,
    ingest::idempotency,
    store::entities::{idempotency_keys, usage_counters},
};
use hookline_e2e::{Backend, both_databases, fresh_database};
use hookline_types::{AppId, TenantId};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

both_databases!(
    usage_counters_add_up_exactly_under_concurrent_writers,
    expired_idempotency_keys_are_purged_in_batches_and_live_ones_stay,
    migrations_can_run_again_on_an_up_to_date_database,
);

struct TestDb {
    ctx: Context,
    _dir: tempfile::TempDir,
}

async fn context(backend: Backend) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, dir.path());
    let config = Config::with_database(&url, dir.path()).unwrap();
    let db = Db::connect(&config).await.unwrap();
    db.migrate(&config).await.unwrap();
    TestDb { ctx: Context::new(db, Keys::for_tests(), config).unwrap(), _dir: dir }
}

async fn usage_counters_add_up_exactly_under_concurrent_writers(backend: Backend) {
    let test = context(backend).await;
    let tenant = TenantId::new_id();
    let app = AppId::new_id();
    let at = Utc::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ctx = test.ctx.clone();
        let (tenant, app) = (tenant.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                usage::add(&ctx.db.conn, &tenant, &app, usage::Metric::MessagesAccepted, 1, at)
                    .await
                    .unwrap();
                usage::add(&ctx.db.conn, &tenant, &app, usage::Metric::PayloadBytes, 100, at).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rows = usage_counters::Entity::find()
        .filter(usage_counters::Column::TenantId.eq(tenant.as_str()))
        .all(&test.ctx.db.conn)
        .await
        .unwrap();
    let value = |app_id: &str, metric: usage::Metric| {
        rows.iter().find(|r| r.app_id == app_id && r.metric == metric.as_str()).map(|r| r.value)
    };
    assert_eq!(value("", usage::Metric::MessagesAccepted), Some(200));
    assert_eq!(value(app.as_str(), usage::Metric::MessagesAccepted), Some(200));
    assert_eq!(value("", usage::Metric::PayloadBytes), Some(20_000));
    assert_eq!(rows.len(), 4, "one row per (tenant or app) × metric in this hour");
    assert!(rows.iter().all(|r| r.hour_start == usage::hour_start(at)));
}

async fn expired_idempotency_keys_are_purged_in_batches_and_live_ones_stay(backend: Backend) {
    let test = context(backend).await;
    let tenant = TenantId::new_id();
    let now = Utc::now();
    for n in 0..25 {
        let age = if n < 20 { Duration::hours(25) + Duration::seconds(n) } else { Duration::hours(1) };
        idempotency_keys::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            principal: Set("key:k".to_owned()),
            key: Set(format!("key-{n}")),
            request_fingerprint: Set("f".to_owned()),
            state: Set("done".to_owned()),
            response_status: Set(Some(202)),
            response_body: Set(Some("{}".to_owned())),
            created_at: Set(now - age),
        }
        .insert(&test.ctx.db.conn)
        .await
        .unwrap();
    }
    assert_eq!(idempotency::purge_expired(&test.ctx, 8).await.unwrap(), 8);
    assert_eq!(idempotency::purge_expired(&test.ctx, 8).await.unwrap(), 8);
    assert_eq!(idempotency::purge_expired(&test.ctx, 8).await.unwrap(), 4);
    assert_eq!(idempotency::purge_expired(&test.ctx, 8).await.unwrap(), 0);
    let left = idempotency_keys::Entity::find().all(&test.ctx.db.conn).await.unwrap();
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|k| now - k.created_at < Duration::hours(2)));
}

async fn migrations_can_run_again_on_an_up_to_date_database(backend: Backend) {
    let test = context(backend).await;
    test.ctx.db.migrate(&test.ctx.config).await.unwrap();
    assert!(test.ctx.db.ping().await);
}

/// Commits never checkpoint the SQLite WAL (that would put an fsync on the commit path); the
/// background checkpointer copies it into the database file within a few hundred milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_wal_is_checkpointed_in_the_background_not_by_commits() {
    let test = context(Backend::Sqlite).await;
    let file = test._dir.path().join("hookline.db");
    let tenant = TenantId::new_id();
    let at = Utc::now();
    let before = std::fs::metadata(&file).unwrap().len();
    // Far more than SQLite's automatic threshold of 1,000 pages would allow to pile up.
    for n in 0..3_000 {
        usage::add(&test.ctx.db.writer, &tenant, &AppId::new_id(), usage::Metric::PayloadBytes, n, at)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let size = std::fs::metadata(&file).unwrap().len();
        if size > before + 100 * 4096 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the database file stayed at {size} bytes");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
