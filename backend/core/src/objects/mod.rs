//! The object store: payloads too large to keep in the database row (the claim check). Local
//! files under `<data dir>/objects` by default; an S3-compatible bucket with
//! `HOOKLINE_OBJECT_STORE=s3://bucket/prefix` and the usual `AWS_*` settings (read by the
//! `object_store` crate: `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`).
//!
//! An object is written before the row that names it commits; a row that never committed leaves
//! an orphan, which [`sweep_orphans`] removes later. Whoever deletes payload rows releases their
//! objects after the commit ([`release`]): an object goes when no row names it any more (a
//! broadcast's messages share one).

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::{ObjectStore, PutPayload, path::Path};
use sha2::{Digest, Sha256};

use crate::{
    config::Config,
    error::{CoreError, CoreResult},
    store::{db::Db, entities::message_payloads},
};

/// How much of a claim-checked payload stays in its row, for the payload search.
pub const SEARCH_PREFIX_BYTES: usize = 256 * 1024;

/// The handle on the object store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// `local:<dir>` or `s3://bucket/prefix`, for logs and errors.
    pub description: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("description", &self.description).finish()
    }
}

/// A payload kept in the object store: the row keeps this instead of the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: i64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

impl Objects {
    /// A store of local files under `dir` (created if missing).
    pub fn local(dir: &std::path::Path) -> anyhow::Result<Objects> {
        std::fs::create_dir_all(dir)
            .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", dir.display()))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|err| anyhow::anyhow!("{}: {err}", dir.display()))?;
        Ok(Objects { store: Arc::new(local), description: format!("local:{}", dir.display()) })
    }

    /// Opens the store `config.object_store` names (creating the local directory).
    pub fn open(config: &Config) -> anyhow::Result<Objects> {
        let spec = config.object_store.trim();
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "HOOKLINE_OBJECT_STORE={spec}: no bucket name");
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|err| anyhow::anyhow!("HOOKLINE_OBJECT_STORE={spec}: {err}"))?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            };
            return Ok(Objects { store, description: spec.to_owned() });
        }
        Objects::local(std::path::Path::new(spec))
            .map_err(|err| anyhow::anyhow!("HOOKLINE_OBJECT_STORE: {err}"))
    }

    /// Writes `bytes` under `key` (replacing an object there).
    pub async fn put(&self, key: &str, bytes: Bytes) -> CoreResult<()> {
        self.store.put(&Path::from(key), PutPayload::from_bytes(bytes)).await.map_err(store_error)?;
        Ok(())
    }

    /// The object's bytes.
    pub async fn get(&self, key: &str) -> CoreResult<Bytes> {
        let found = self.store.get(&Path::from(key)).await.map_err(store_error)?;
        found.bytes().await.map_err(store_error)
    }

    /// The object's bytes as they arrive from the store, without holding the whole object. A
    /// local file is read [`STREAM_CHUNK`] bytes per blocking read (`object_store`'s own stream
    /// reads 8 KiB per blocking task: over a third of a 1 MiB delivery's CPU went to it).
    pub async fn stream(
        &self,
        key: &str,
    ) -> CoreResult<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>> {
        use futures_util::StreamExt;
        let found = self.store.get(&Path::from(key)).await.map_err(store_error)?;
        let range = found.range.clone();
        Ok(match found.payload {
            object_store::GetResultPayload::File(file, _) => file_chunks(file, range),
            object_store::GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        })
    }

    /// Deletes the object; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> CoreResult<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Deletes the objects, logging (not failing on) the ones that could not be deleted: a
    /// payload row is already gone when this runs, and the orphan sweep retries.
    pub async fn delete_all(&self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            if let Err(err) = self.delete(&key).await {
                tracing::warn!(key, error = %err, "could not delete an object; the orphan sweep will retry");
            }
        }
    }

    /// Every object under `prefix`, with its last modification time.
    pub async fn list(&self, prefix: &str) -> CoreResult<Vec<(String, DateTime<Utc>)>> {
        let prefix = Path::from(prefix);
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(store_error)?;
        Ok(metas.into_iter().map(|meta| (meta.location.to_string(), meta.last_modified)).collect())
    }
}

fn store_error(err: object_store::Error) -> CoreError {
    CoreError::Internal(anyhow::anyhow!("object store: {err}"))
}

/// How much of a local object one blocking read takes while it is streamed.
pub const STREAM_CHUNK: usize = 256 * 1024;

/// `range` of a local file, [`STREAM_CHUNK`] bytes at a time, each read on the blocking pool.
fn file_chunks(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> futures_util::stream::BoxStream<'static, std::io::Result<Bytes>> {
    use futures_util::StreamExt;
    let state = (Some(file), range.start, range.end - range.start);
    futures_util::stream::try_unfold(state, |(file, offset, remaining)| async move {
        let Some(mut file) = file else { return Ok(None) };
        if remaining == 0 {
            return Ok(None);
        }
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            file.seek(SeekFrom::Start(offset))?;
            let want = remaining.min(STREAM_CHUNK as u64);
            let mut chunk = Vec::with_capacity(want as usize);
            (&mut file).take(want).read_to_end(&mut chunk)?;
            Ok::<_, std::io::Error>((file, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        if chunk.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the object is shorter than its size",
            ));
        }
        let read = chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (Some(file), offset + read, remaining - read))))
    })
    .boxed()
}

/// A payload's bytes as an answer sends them.
pub enum PayloadBody {
    /// Kept in its database row.
    Inline(String),
    /// Read from the object store as it is sent ([`Objects::stream`]).
    Stream(futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>),
}

/// The payload row of one of `tenant`'s messages; 410 `payload_purged` when retention or an
/// expunge removed it.
pub async fn payload_row<C: sea_orm::ConnectionTrait>(
    conn: &C,
    tenant: &hookline_types::TenantId,
    message_id: &str,
) -> CoreResult<message_payloads::Model> {
    use sea_orm::{ColumnTrait, QueryFilter};

    use crate::store::scope::TenantScoped;
    message_payloads::Entity::scoped(tenant)
        .filter(message_payloads::Column::MessageId.eq(message_id))
        .one(conn)
        .await?
        .ok_or_else(|| CoreError::Gone {
            code: "payload_purged",
            detail: "the message's payload is no longer stored (retention or an expunge removed it)"
                .to_owned(),
        })
}

/// The exact bytes of a stored payload row: its size and its body.
pub async fn payload_body(objects: &Objects, row: message_payloads::Model) -> CoreResult<(u64, PayloadBody)> {
    Ok(match (row.object_key, row.object_size) {
        (Some(key), Some(size)) => (size.max(0) as u64, PayloadBody::Stream(objects.stream(&key).await?)),
        _ => (row.payload.len() as u64, PayloadBody::Inline(row.payload)),
    })
}

/// The whole text of a stored payload row (a claim-checked one read from the store), for what
/// needs the payload at once rather than streamed: the API's answers, content filters.
pub async fn payload_text(objects: &Objects, row: &message_payloads::Model) -> CoreResult<String> {
    match &row.object_key {
        Some(key) => String::from_utf8(Vec::from(objects.get(key).await?))
            .map_err(|err| CoreError::Internal(anyhow::anyhow!("stored payload {key}: {err}"))),
        None => Ok(row.payload.clone()),
    }
}

/// Where a message's payload goes.
pub fn payload_key(tenant: &str, message_id: &str) -> String {
    format!("payloads/{tenant}/{message_id}")
}

/// Puts `text` in the store when it is over `threshold` bytes: the claim check the row keeps.
pub async fn claim_check(
    objects: &Objects,
    threshold: usize,
    tenant: &str,
    message_id: &str,
    text: &str,
) -> CoreResult<Option<StoredObject>> {
    if text.len() <= threshold {
        return Ok(None);
    }
    let key = payload_key(tenant, message_id);
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    objects.put(&key, Bytes::copy_from_slice(text.as_bytes())).await?;
    Ok(Some(StoredObject { key, size: text.len() as i64, sha256 }))
}

/// Deletes the objects among `keys` that no payload row names any more; call it after the
/// transaction that deleted rows naming them committed. Returns how many were deleted.
pub async fn release(db: &Db, objects: &Objects, keys: Vec<String>) -> CoreResult<u64> {
    let mut keys = keys;
    keys.sort();
    keys.dedup();
    let mut deleted = 0;
    for chunk in keys.chunks(500) {
        let named = still_named(db, chunk).await?;
        let unnamed: Vec<String> = chunk.iter().filter(|key| !named.contains(*key)).cloned().collect();
        deleted += unnamed.len() as u64;
        objects.delete_all(unnamed).await;
    }
    Ok(deleted)
}

/// Which of these keys a payload row names.
async fn still_named(db: &Db, keys: &[String]) -> CoreResult<std::collections::HashSet<String>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let rows: Vec<Option<String>> = message_payloads::Entity::find()
        .select_only()
        .column(message_payloads::Column::ObjectKey)
        .filter(message_payloads::Column::ObjectKey.is_in(keys.iter().map(String::as_str)))
        .distinct()
        .into_tuple()
        .all(&db.conn)
        .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Deletes payload objects that no row names and that were written before `before` (an object
/// is written before its row commits: younger ones may still be on their way). Part of the
/// retention maintenance job.
pub async fn sweep_orphans(db: &Db, objects: &Objects, before: DateTime<Utc>) -> CoreResult<u64> {
    let old: Vec<String> = objects
        .list("payloads")
        .await?
        .into_iter()
        .filter(|(_, at)| *at < before)
        .map(|(key, _)| key)
        .collect();
    release(db, objects, old).await
}

/// The start of a claim-checked payload that stays in its row (searchable), cut on a character
/// boundary.
pub fn search_prefix(text: &str) -> &str {
    if text.len() <= SEARCH_PREFIX_BYTES {
        return text;
    }
    let mut end = SEARCH_PREFIX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_prefix_is_cut_on_a_character_boundary() {
        let text = format!("{}é{}", "a".repeat(SEARCH_PREFIX_BYTES - 1), "b".repeat(10));
        let prefix = search_prefix(&text);
        assert_eq!(prefix.len(), SEARCH_PREFIX_BYTES - 1, "the two-byte é does not fit");
        assert_eq!(search_prefix("short"), "short");
    }

    #[tokio::test]
    async fn a_local_store_keeps_lists_and_deletes_objects_and_claim_checks_only_large_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_database("sqlite::memory:", dir.path()).unwrap();
        config.object_store = dir.path().join("objects").display().to_string();
        let objects = Objects::open(&config).unwrap();
        assert_eq!(claim_check(&objects, 10, "t1", "m1", "small").await.unwrap(), None);
        let large = "x".repeat(11);
        let stored = claim_check(&objects, 10, "t1", "m2", &large).await.unwrap().unwrap();
        assert_eq!(stored.key, "payloads/t1/m2");
        assert_eq!(stored.size, 11);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(large.as_bytes())));
        assert_eq!(objects.get(&stored.key).await.unwrap(), Bytes::from(large));
        assert!(dir.path().join("objects/payloads/t1/m2").is_file(), "a file under the data dir");
        let listed: Vec<String> =
            objects.list("payloads").await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(listed, ["payloads/t1/m2"]);
        objects.delete(&stored.key).await.unwrap();
        objects.delete(&stored.key).await.unwrap();
        assert!(objects.list("payloads").await.unwrap().is_empty());
    }
}
