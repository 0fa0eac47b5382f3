//! A `data_url` fetch: checked, answered with the payload's exact bytes, logged on the delivery
//! it was minted for and metered (`payload_fetches`) in one transaction before the bytes go out.
//! And the read side: the fetches of an application, a message or an endpoint.

use chrono::Utc;
use hookline_types::{
    ApiKeyScope, AppId, EndpointId, IdOrUid, ListResponse, MessageId, PayloadFetchId, PayloadFetchOut,
    TenantId,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, Order, QueryFilter, Set, TransactionTrait};
use sha2::{Digest, Sha256};

use super::{Links, Refused};
use crate::{
    Context,
    billing::usage,
    catalog::{applications, endpoints},
    error::{CoreError, CoreResult},
    ids::NewId,
    objects::{PayloadBody, payload_body, payload_row},
    store::entities::{deliveries, endpoints as endpoints_table, messages, payload_fetches},
    store::pagination::{PageRequest, paginate, try_map},
    store::scope::TenantScoped,
    tenancy::principal::Principal,
};

/// What the fetcher sent.
#[derive(Debug, Default)]
pub struct FetchRequest<'a> {
    pub message_id: &'a str,
    pub ep: Option<&'a str>,
    pub exp: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The answer to a fetch.
pub enum Fetched {
    Payload {
        /// `"<sha256 hex>"`.
        etag: String,
        size: u64,
        body: PayloadBody,
    },
    /// The fetcher's `If-None-Match` names the payload it has.
    NotModified { etag: String },
}

fn refused(refusal: Refused) -> CoreError {
    match refusal {
        Refused::Invalid => CoreError::Forbidden {
            code: "data_url_invalid",
            detail: "this data_url was not issued for this message and endpoint (altered, forged, or \
                     for another message)"
                .to_owned(),
        },
        Refused::Expired => CoreError::Gone {
            code: "data_url_expired",
            detail: "this data_url has expired; the next attempt or a resend of the delivery carries a \
                     new one"
                .to_owned(),
        },
    }
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// Answers a fetch of `GET /api/v1/payload/{msg}`.
///
/// The URL is the credential: no tenant comes with the request, so the delivery is found by the
/// (message, endpoint) pair the signature vouches for, and everything after that is read within
/// the delivery's tenant.
pub async fn fetch(ctx: &Context, links: &Links, request: FetchRequest<'_>) -> CoreResult<Fetched> {
    links.verify(request.message_id, request.ep, request.exp, request.sig, Utc::now()).map_err(refused)?;
    let endpoint_id = request.ep.expect("verified");
    let delivery = deliveries::Entity::find()
        .filter(deliveries::Column::MessageId.eq(request.message_id))
        .filter(deliveries::Column::EndpointId.eq(endpoint_id))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("message"))?;
    let tenant = TenantId::parse(&delivery.tenant_id).map_err(|err| CoreError::Internal(err.into()))?;
    // Minted for that endpoint: once it is deleted, its URLs stop working.
    endpoints_table::Entity::scoped(&tenant)
        .filter(endpoints_table::Column::Id.eq(delivery.endpoint_id.as_str()))
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("endpoint"))?;
    let row = payload_row(&ctx.db.conn, &tenant, &delivery.message_id).await?;
    let sha256 = match &row.object_sha256 {
        Some(sha256) if row.object_key.is_some() => sha256.clone(),
        _ => hex::encode(Sha256::digest(row.payload.as_bytes())),
    };
    let etag = format!("\"{sha256}\"");
    let not_modified = request.if_none_match.is_some_and(|tags| matches_etag(tags, &etag));
    // Opened before the log is written: a payload whose object is missing is a 500 that is
    // neither logged nor metered as a fetch.
    let body = if not_modified { None } else { Some(payload_body(&ctx.objects, row).await?) };
    let (status, bytes) = match &body {
        None => (304, 0),
        Some((size, _)) => (200, *size),
    };
    let now = Utc::now();
    let txn = ctx.db.writer.begin().await?;
    payload_fetches::ActiveModel {
        id: Set(PayloadFetchId::new_id().into_string()),
        tenant_id: Set(delivery.tenant_id.clone()),
        app_id: Set(delivery.app_id.clone()),
        message_id: Set(delivery.message_id.clone()),
        endpoint_id: Set(delivery.endpoint_id.clone()),
        delivery_id: Set(delivery.id.clone()),
        status: Set(status),
        bytes: Set(bytes as i64),
        ip: Set(request.ip),
        user_agent: Set(request.user_agent.map(|ua| ua.chars().take(512).collect())),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let app = AppId::parse(&delivery.app_id).map_err(|err| CoreError::Internal(err.into()))?;
    usage::add(&txn, &tenant, &app, usage::Metric::PayloadFetches, 1, now).await?;
    txn.commit().await?;
    Ok(match body {
        None => Fetched::NotModified { etag },
        Some((size, body)) => Fetched::Payload { etag, size, body },
    })
}

fn to_out(model: payload_fetches::Model) -> CoreResult<PayloadFetchOut> {
    let internal = |err: hookline_types::IdError| CoreError::Internal(err.into());
    Ok(PayloadFetchOut {
        id: PayloadFetchId::parse(&model.id).map_err(internal)?,
        message_id: MessageId::parse(&model.message_id).map_err(internal)?,
        endpoint_id: EndpointId::parse(&model.endpoint_id).map_err(internal)?,
        status: model.status.clamp(0, u16::MAX as i32) as u16,
        bytes: model.bytes.max(0) as u64,
        ip: model.ip,
        user_agent: model.user_agent,
        created_at: model.created_at,
    })
}

/// Which fetches to list.
#[derive(Clone, Debug, Default)]
pub struct FetchFilter {
    pub message: Option<MessageId>,
    pub endpoint: Option<IdOrUid<EndpointId>>,
}

/// The application's `data_url` fetches, newest first, of one message and/or one endpoint when
/// the filter says so (a message that is not the application's is 404).
pub async fn list(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    filter: &FetchFilter,
    page: &PageRequest,
) -> CoreResult<ListResponse<PayloadFetchOut>> {
    principal.require(ApiKeyScope::Read)?;
    let tenant = &principal.tenant_id;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let mut select =
        payload_fetches::Entity::scoped(tenant).filter(payload_fetches::Column::AppId.eq(app.id.as_str()));
    if let Some(message) = &filter.message {
        let message = messages::Entity::scoped(tenant)
            .filter(messages::Column::AppId.eq(app.id.as_str()))
            .filter(messages::Column::Id.eq(message.as_str()))
            .one(&ctx.db.conn)
            .await?
            .ok_or(CoreError::NotFound("message"))?;
        select = select.filter(payload_fetches::Column::MessageId.eq(message.id));
    }
    if let Some(endpoint) = &filter.endpoint {
        let endpoint = endpoints::find(&ctx.db.conn, tenant, &app.id, endpoint).await?;
        select = select.filter(payload_fetches::Column::EndpointId.eq(endpoint.id));
    }
    let list = paginate(
        &ctx.db.conn,
        select,
        payload_fetches::Column::Id,
        Order::Desc,
        page,
        |m| m,
        |m| m.id.clone(),
    )
    .await?;
    try_map(list, to_out)
}

#[cfg(test)]
mod tests {
    use super::matches_etag;

    #[test]
    fn if_none_match_names_the_etag_in_a_list_weakly_or_as_a_star() {
        let etag = "\"abc\"";
        assert!(matches_etag("\"abc\"", etag));
        assert!(matches_etag("\"x\", \"abc\"", etag));
        assert!(matches_etag("W/\"abc\"", etag));
        assert!(matches_etag("*", etag));
        assert!(!matches_etag("\"abd\"", etag));
        assert!(!matches_etag("abc", etag));
    }
}
