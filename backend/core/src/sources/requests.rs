//! The request log of each source: every request a source received, with what became of it.
//!
//! Rows are written by one background task in batches ([`RequestLog`]), off the ingest path:
//! the message of an accepted request is durable before its 2xx (through the ingest writer);
//! its log row follows within [`FLUSH_EVERY`] (a crash in between loses the log line, never the
//! message). Rejected requests are logged at most [`REJECTED_PER_SECOND`] per source and second.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use hookline_types::{
    ApiKeyScope, IdOrUid, ListResponse, MessageId, ReceivedBy, SourceId, SourceRequestId, SourceRequestOut,
    SourceRequestOutcome,
};
use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder};
use tokio::sync::mpsc;

use crate::{
    Context,
    error::{CoreError, CoreResult},
    store::db::Db,
    store::entities::{source_requests, sources},
    store::pagination::{PageRequest, paginate},
    store::scope::TenantScoped,
    tenancy::principal::Principal,
};

/// How often the log task writes what it collected.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// At most this many rows per insert.
const MAX_ROWS: usize = 500;
/// Rejected requests logged per source and second (beyond, they are counted on `/metrics` only).
pub const REJECTED_PER_SECOND: u32 = 10;
/// Bodies of stale and rejected requests are kept up to this size in the log.
pub const MAX_LOGGED_BODY: usize = 64 * 1024;

/// A request to log.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub id: String,
    pub tenant_id: String,
    pub source_id: String,
    pub received_at: DateTime<Utc>,
    pub outcome: SourceRequestOutcome,
    pub reason: Option<String>,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub body_size: usize,
    pub body: Option<String>,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub status: u16,
}

/// The sending side of the log task.
pub struct RequestLog {
    rows: mpsc::UnboundedSender<(LoggedRequest, Option<tokio::sync::oneshot::Sender<()>>)>,
}

impl RequestLog {
    /// Starts the log task on the current tokio runtime.
    pub fn start(db: Db) -> RequestLog {
        let (rows, rx) = mpsc::unbounded_channel();
        tokio::spawn(log_task(db, rx));
        RequestLog { rows }
    }

    pub fn log(&self, request: LoggedRequest) {
        let _ = self.rows.send((request, None));
    }

    /// Waits until everything logged before this call is written (tests, shutdown).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        let marker = LoggedRequest {
            id: String::new(),
            tenant_id: String::new(),
            source_id: String::new(),
            received_at: Utc::now(),
            outcome: SourceRequestOutcome::Rejected,
            reason: None,
            method: String::new(),
            headers: BTreeMap::new(),
            body_size: 0,
            body: None,
            message_id: None,
            event_id: None,
            status: 0,
        };
        if self.rows.send((marker, Some(done))).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn log_task(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<(LoggedRequest, Option<tokio::sync::oneshot::Sender<()>>)>,
) {
    let mut batch = Vec::new();
    loop {
        let mut waiting = Vec::new();
        let n = rx.recv_many(&mut batch, MAX_ROWS).await;
        if n == 0 {
            return;
        }
        // Let a burst gather, then write it in one statement.
        tokio::time::sleep(FLUSH_EVERY).await;
        while batch.len() < MAX_ROWS
            && let Ok(row) = rx.try_recv()
        {
            batch.push(row);
        }
        let mut rows = Vec::with_capacity(batch.len());
        for (row, done) in batch.drain(..) {
            match done {
                Some(done) => waiting.push(done),
                None => rows.push(row),
            }
        }
        if !rows.is_empty()
            && let Err(err) = insert(&db, &rows).await
        {
            crate::metrics::engine_error("source_request_log");
            tracing::warn!(error = %err, n = rows.len(), "could not write source request log rows; they are lost");
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

async fn insert(db: &Db, rows: &[LoggedRequest]) -> Result<(), sea_orm::DbErr> {
    let models = rows.iter().map(|row| source_requests::ActiveModel {
        id: sea_orm::Set(row.id.clone()),
        tenant_id: sea_orm::Set(row.tenant_id.clone()),
        source_id: sea_orm::Set(row.source_id.clone()),
        received_at: sea_orm::Set(row.received_at),
        outcome: sea_orm::Set(outcome_name(row.outcome).to_owned()),
        reason: sea_orm::Set(row.reason.clone()),
        method: sea_orm::Set(row.method.clone()),
        headers: sea_orm::Set(serde_json::to_value(&row.headers).unwrap_or_default()),
        body_size: sea_orm::Set(row.body_size as i64),
        body: sea_orm::Set(row.body.clone()),
        message_id: sea_orm::Set(row.message_id.clone()),
        event_id: sea_orm::Set(row.event_id.clone()),
        status: sea_orm::Set(i32::from(row.status)),
    });
    // 13 columns a row: 500 rows stay far below SQLite's 32,766 variables.
    source_requests::Entity::insert_many(models).exec(&db.writer).await?;
    Ok(())
}

pub fn outcome_name(outcome: SourceRequestOutcome) -> &'static str {
    match outcome {
        SourceRequestOutcome::Accepted => "accepted",
        SourceRequestOutcome::Duplicate => "duplicate",
        SourceRequestOutcome::Stale => "stale",
        SourceRequestOutcome::Rejected => "rejected",
        SourceRequestOutcome::Handshake => "handshake",
        SourceRequestOutcome::Filtered => "filtered",
    }
}

fn parse_outcome(name: &str) -> Option<SourceRequestOutcome> {
    Some(match name {
        "accepted" => SourceRequestOutcome::Accepted,
        "duplicate" => SourceRequestOutcome::Duplicate,
        "stale" => SourceRequestOutcome::Stale,
        "rejected" => SourceRequestOutcome::Rejected,
        "handshake" => SourceRequestOutcome::Handshake,
        "filtered" => SourceRequestOutcome::Filtered,
        _ => return None,
    })
}

/// Filters of `GET /api/v1/source/{src}/request`.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub outcome: Option<String>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

fn to_out(model: source_requests::Model) -> CoreResult<SourceRequestOut> {
    let internal = |err: hookline_types::IdError| CoreError::Internal(err.into());
    Ok(SourceRequestOut {
        id: SourceRequestId::parse(&model.id).map_err(internal)?,
        source_id: SourceId::parse(&model.source_id).map_err(internal)?,
        received_at: model.received_at,
        outcome: parse_outcome(&model.outcome)
            .ok_or_else(|| CoreError::Internal(anyhow::anyhow!("unknown outcome {}", model.outcome)))?,
        reason: model.reason,
        method: model.method,
        headers: crate::store::from_json(model.headers, "request headers")?,
        body_size: model.body_size.max(0) as u64,
        body: model.body,
        message_id: model.message_id.as_deref().map(MessageId::parse).transpose().map_err(internal)?,
        event_id: model.event_id,
        status: model.status.clamp(0, 999) as u16,
    })
}

/// The source's requests, newest first.
pub async fn list(
    ctx: &Context,
    principal: &Principal,
    source: &IdOrUid<SourceId>,
    filter: &RequestFilter,
    page: &PageRequest,
) -> CoreResult<ListResponse<SourceRequestOut>> {
    principal.require_tenant_wide("source")?;
    principal.require(ApiKeyScope::Read)?;
    let model = crate::sources::manage::find(&ctx.db.conn, &principal.tenant_id, source).await?;
    let mut select = source_requests::Entity::scoped(&principal.tenant_id)
        .filter(source_requests::Column::SourceId.eq(model.id.as_str()));
    if let Some(outcome) = &filter.outcome {
        if parse_outcome(outcome).is_none() {
            return Err(CoreError::invalid(
                &["query", "outcome"],
                "one of accepted, duplicate, stale, rejected, handshake, filtered",
            ));
        }
        select = select.filter(source_requests::Column::Outcome.eq(outcome.as_str()));
    }
    if let Some(after) = filter.after {
        select = select.filter(source_requests::Column::ReceivedAt.gte(after));
    }
    if let Some(before) = filter.before {
        select = select.filter(source_requests::Column::ReceivedAt.lt(before));
    }
    let list = paginate(
        &ctx.db.conn,
        select,
        source_requests::Column::Id,
        Order::Desc,
        page,
        |model| model,
        |model| model.id.clone(),
    )
    .await?;
    crate::store::pagination::try_map(list, to_out)
}

/// The source and logged request a received message came from (the message's page links back to
/// it), while the request is still logged. Portal tokens do not see sources: `None` for them.
pub async fn received_by(
    ctx: &Context,
    principal: &Principal,
    message: &MessageId,
) -> CoreResult<Option<ReceivedBy>> {
    if principal.only_app().is_some() {
        return Ok(None);
    }
    let tenant = &principal.tenant_id;
    let Some(request) =
        source_requests::Entity::scoped(tenant)
            .filter(source_requests::Column::MessageId.eq(message.as_str()))
            // Duplicates name the message they repeated; the request that became it came first.
            .filter(source_requests::Column::Outcome.is_in([
                outcome_name(SourceRequestOutcome::Accepted),
                outcome_name(SourceRequestOutcome::Stale),
            ]))
            .order_by(source_requests::Column::Id, Order::Asc)
            .one(&ctx.db.conn)
            .await?
    else {
        return Ok(None);
    };
    let Some(source) = sources::Entity::scoped(tenant)
        .filter(sources::Column::Id.eq(request.source_id.as_str()))
        .one(&ctx.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let internal = |err: hookline_types::IdError| CoreError::Internal(err.into());
    Ok(Some(ReceivedBy {
        source_id: SourceId::parse(&source.id).map_err(internal)?,
        source_name: source.name,
        request_id: SourceRequestId::parse(&request.id).map_err(internal)?,
    }))
}
