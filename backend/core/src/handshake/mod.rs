//! The CloudEvents abuse-protection handshake (CloudEvents HTTP 1.0 Web Hooks, section 4). Before
//! an endpoint that makes it is sent anything, and again a day later ([`VALID_FOR`]), the engine
//! asks it with an `OPTIONS` request carrying `WebHook-Request-Origin` (the host of
//! `HOOKLINE_PUBLIC_URL`) whether it takes events from us, and at what rate. This module holds the
//! rules — which endpoints make it ([`enabled_stored`]), what an answer means ([`judge`]) — and the state
//! every worker shares in `endpoint_health` ([`accepted`], [`forget`]); the engine
//! (`hookline-worker`) sends the request, and a refusal pauses the endpoint through the circuit
//! breaker (`delivery`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr, sea_query::OnConflict};

use crate::{
    CoreResult,
    store::entities::{endpoint_health, endpoints},
};

/// The request header naming who asks: the host of `HOOKLINE_PUBLIC_URL`.
pub const REQUEST_ORIGIN: &str = "WebHook-Request-Origin";
/// The answer's header naming the origin it allows (ours, or `*`).
pub const ALLOWED_ORIGIN: &str = "WebHook-Allowed-Origin";
/// The answer's header giving the rate it allows, in requests per minute (or `*`: any).
pub const ALLOWED_RATE: &str = "WebHook-Allowed-Rate";
/// How long an accepted handshake holds before the endpoint is asked again.
pub const VALID_FOR: chrono::Duration = chrono::Duration::hours(24);

/// Whether an endpoint makes the handshake: its own setting, else the default of its stored
/// format (on for the CloudEvents formats, off for Standard Webhooks).
pub fn enabled_stored(stored: Option<bool>, format: &str) -> bool {
    stored.unwrap_or(matches!(format, "cloudevents_structured" | "cloudevents_binary"))
}

/// Whether a handshake accepted at `at` still holds at `now`.
pub fn still_valid(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    at.is_some_and(|at| now - at < VALID_FOR && at <= now + chrono::Duration::minutes(5))
}

/// The `WebHook-Request-Origin` we send: the host of the public URL (no scheme, no port, as the
/// specification's examples have it).
pub fn origin(public_url: &str) -> String {
    url::Url::parse(public_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| public_url.to_owned())
}

/// What an endpoint's answer to the handshake means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It takes our events; at most this many requests a minute (`None`: no limit).
    Accepted { rate_per_minute: Option<u32> },
    /// It does not, in words for the attempt log and the operational webhook.
    Refused(String),
}

/// Judges the answer to the `OPTIONS` request: a 2xx status whose `WebHook-Allowed-Origin` is
/// `origin` (compared without case) or `*` accepts; its `WebHook-Allowed-Rate` (a positive whole
/// number of requests per minute, or `*`; absent = no limit) becomes the endpoint's rate.
pub fn judge(status: u16, allowed_origin: Option<&str>, allowed_rate: Option<&str>, origin: &str) -> Answer {
    if !(200..300).contains(&status) {
        return Answer::Refused(format!(
            "the endpoint answered the handshake (OPTIONS) with status {status}"
        ));
    }
    let Some(allowed) = allowed_origin.map(str::trim) else {
        return Answer::Refused(format!(
            "the endpoint's answer to the handshake has no {ALLOWED_ORIGIN} header"
        ));
    };
    if allowed != "*" && !allowed.eq_ignore_ascii_case(origin) {
        let shown: String = allowed.chars().take(200).collect();
        return Answer::Refused(format!("the endpoint allows the origin {shown:?}, not {origin:?}"));
    }
    match allowed_rate.map(str::trim) {
        None | Some("*") => Answer::Accepted { rate_per_minute: None },
        Some(rate) => match rate.parse::<u32>() {
            Ok(n) if n > 0 => Answer::Accepted { rate_per_minute: Some(n) },
            _ => {
                let shown: String = rate.chars().take(50).collect();
                Answer::Refused(format!("{ALLOWED_RATE} {shown:?} is neither a positive whole number nor *"))
            }
        },
    }
}

/// An endpoint's rate in deliveries per second: the lower of its own (and its plan's) limit and
/// the rate its handshake allowed (requests per minute); `None` when neither limits it.
pub fn effective_rate(per_second: Option<u32>, handshake_per_minute: Option<i32>) -> Option<f64> {
    let allowed = handshake_per_minute.filter(|n| *n > 0).map(|n| f64::from(n) / 60.0);
    match (per_second.map(f64::from), allowed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Records an accepted handshake for every worker: when, and the rate it allowed.
pub async fn accepted<C: ConnectionTrait>(
    conn: &C,
    endpoint_id: &str,
    tenant_id: &str,
    rate_per_minute: Option<u32>,
    now: DateTime<Utc>,
) -> CoreResult<()> {
    let rate = rate_per_minute.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let row = endpoint_health::ActiveModel {
        endpoint_id: sea_orm::Set(endpoint_id.to_owned()),
        tenant_id: sea_orm::Set(tenant_id.to_owned()),
        consecutive_failures: sea_orm::Set(0),
        failing_since: sea_orm::Set(None),
        circuit_open_until: sea_orm::Set(None),
        tokens: sea_orm::Set(0.0),
        tokens_at: sea_orm::Set(None),
        updated_at: sea_orm::Set(now),
        handshake_at: sea_orm::Set(Some(now)),
        handshake_rate: sea_orm::Set(rate),
        paused_reason: sea_orm::Set(None),
    };
    endpoint_health::Entity::insert(row)
        .on_conflict(
            OnConflict::column(endpoint_health::Column::EndpointId)
                .update_columns([
                    endpoint_health::Column::HandshakeAt,
                    endpoint_health::Column::HandshakeRate,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Forgets an endpoint's handshake (its URL, format or setting changed): it is asked again before
/// its next delivery, and its allowed rate no longer applies.
pub async fn forget<C: ConnectionTrait>(conn: &C, endpoint: &endpoints::Model) -> CoreResult<()> {
    endpoint_health::Entity::update_many()
        .col_expr(endpoint_health::Column::HandshakeAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(endpoint_health::Column::HandshakeRate, Expr::value(Option::<i32>::None))
        .filter(sea_orm::ColumnTrait::eq(&endpoint_health::Column::EndpointId, endpoint.id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "hooks.example.com";

    #[test]
    fn an_answer_allowing_our_origin_or_any_is_accepted_with_its_rate() {
        assert_eq!(
            judge(200, Some(ORIGIN), Some("120"), ORIGIN),
            Answer::Accepted { rate_per_minute: Some(120) }
        );
        assert_eq!(
            judge(204, Some("HOOKS.example.com"), None, ORIGIN),
            Answer::Accepted { rate_per_minute: None }
        );
        assert_eq!(judge(200, Some(" * "), Some("*"), ORIGIN), Answer::Accepted { rate_per_minute: None });
    }

    #[test]
    fn an_answer_without_the_origin_or_with_another_or_a_bad_rate_or_status_is_refused() {
        for (status, allowed, rate) in [
            (405, Some(ORIGIN), None),
            (500, Some("*"), None),
            (200, None, Some("10")),
            (200, Some("other.example.com"), None),
            (200, Some(ORIGIN), Some("0")),
            (200, Some(ORIGIN), Some("-5")),
            (200, Some(ORIGIN), Some("fast")),
        ] {
            let answer = judge(status, allowed, rate, ORIGIN);
            assert!(matches!(answer, Answer::Refused(_)), "{status} {allowed:?} {rate:?} gave {answer:?}");
        }
        let Answer::Refused(reason) = judge(200, Some("other.example.com"), None, ORIGIN) else {
            unreachable!()
        };
        assert!(reason.contains("other.example.com") && reason.contains(ORIGIN), "{reason}");
    }

    #[test]
    fn the_cloudevents_formats_make_the_handshake_unless_told_otherwise() {
        assert!(enabled_stored(None, "cloudevents_structured"));
        assert!(enabled_stored(None, "cloudevents_binary"));
        assert!(!enabled_stored(None, "json"));
        assert!(!enabled_stored(Some(false), "cloudevents_binary"));
        assert!(enabled_stored(Some(true), "json"));
        assert!(enabled_stored(None, "cloudevents_binary") && !enabled_stored(None, "json"));
    }

    #[test]
    fn the_origin_is_the_public_urls_host() {
        assert_eq!(origin("https://hooks.example.com"), "hooks.example.com");
        assert_eq!(origin("http://127.0.0.1:8080/"), "127.0.0.1");
    }

    #[test]
    fn the_rate_is_the_lower_of_the_endpoints_and_the_handshakes() {
        assert_eq!(effective_rate(None, None), None);
        assert_eq!(effective_rate(Some(5), None), Some(5.0));
        assert_eq!(effective_rate(None, Some(30)), Some(0.5));
        assert_eq!(effective_rate(Some(1), Some(120)), Some(1.0));
        assert_eq!(effective_rate(Some(10), Some(120)), Some(2.0));
    }

    #[test]
    fn a_handshake_holds_for_a_day() {
        let now = Utc::now();
        assert!(still_valid(Some(now - chrono::Duration::hours(23)), now));
        assert!(!still_valid(Some(now - chrono::Duration::hours(25)), now));
        assert!(!still_valid(None, now));
    }
}
