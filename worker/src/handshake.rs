//! The CloudEvents abuse-protection handshake as the engine makes it: before an attempt to an
//! endpoint that makes the handshake ([`hookline_core::handshake`] has the rules and the state
//! every worker shares), an `OPTIONS` request with `WebHook-Request-Origin`, once per endpoint at a
//! time, again a day later or when the endpoint's URL changed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use hookline_core::{
    Context,
    handshake::{self, ALLOWED_ORIGIN, ALLOWED_RATE, Answer, REQUEST_ORIGIN},
};

use crate::{
    http::{DEFAULT_TOTAL_TIMEOUT, SsrfPolicy, check_literal_host},
    send::{Target, classify, describe},
};

/// A refusal is kept this long: deliveries that waited for the same handshake take it instead
/// of asking again; a later attempt (the circuit's probe, after its cool-down) asks again.
const REFUSAL_KEPT: Duration = Duration::from_secs(1);

/// Why an attempt could not be made.
#[derive(Debug)]
pub enum Failed {
    /// The endpoint answered and refused (the reason, for the attempt log): it is paused.
    Refused(String),
    /// No answer (DNS, connection, timeout, SSRF): an ordinary failed attempt of that class.
    Unreachable(&'static str, String),
}

/// What this process knows of each endpoint's handshake.
pub struct Handshakes {
    origin: String,
    known: Mutex<HashMap<String, Known>>,
    /// One handshake per endpoint at a time: the others wait for its answer.
    asking: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Clone)]
struct Known {
    /// The URL the answer is about.
    url: String,
    at: Instant,
    /// `None`: accepted.
    refused: Option<String>,
}

impl Handshakes {
    /// `public_url`: `HOOKLINE_PUBLIC_URL`, whose host is the origin we give.
    pub fn new(public_url: &str) -> Handshakes {
        Handshakes {
            origin: handshake::origin(public_url),
            known: Mutex::new(HashMap::new()),
            asking: Mutex::new(HashMap::new()),
        }
    }

    fn known(&self, target: &Target) -> Option<Result<(), Failed>> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let entry = known.get(&target.id).filter(|k| k.url == target.url)?;
        match &entry.refused {
            None if entry.at.elapsed() < handshake::VALID_FOR.to_std().unwrap_or(Duration::MAX) => {
                Some(Ok(()))
            }
            Some(reason) if entry.at.elapsed() < REFUSAL_KEPT => Some(Err(Failed::Refused(reason.clone()))),
            _ => None,
        }
    }

    /// Ok when the endpoint accepted a handshake for its current URL within a day; else asks it
    /// (one request per endpoint however many deliveries wait), records an acceptance and its rate
    /// for every worker, and answers for all of them.
    pub async fn ensure(
        &self,
        ctx: &Context,
        target: &Target,
        client: &reqwest::Client,
        policy: &SsrfPolicy,
    ) -> Result<(), Failed> {
        if let Some(known) = self.known(target) {
            return known;
        }
        let lock = {
            let mut asking = self.asking.lock().unwrap_or_else(|p| p.into_inner());
            asking.entry(target.id.clone()).or_default().clone()
        };
        let _asking = lock.lock().await;
        // Whoever held the lock may have asked meanwhile.
        if let Some(known) = self.known(target) {
            return known;
        }
        let answer = self.ask(target, client, policy).await?;
        let refused = match answer {
            Answer::Accepted { rate_per_minute } => {
                // The rate holds for every worker's claims; if it cannot be stored, the claims go
                // on sending one delivery at a time, and the next handshake stores it.
                if let Err(err) = handshake::accepted(
                    &ctx.db.writer,
                    &target.id,
                    &target.tenant_id,
                    rate_per_minute,
                    Utc::now(),
                )
                .await
                {
                    tracing::warn!(endpoint = %target.id, error = %err, "could not record an accepted handshake");
                }
                None
            }
            Answer::Refused(reason) => Some(reason),
        };
        let known = Known { url: target.url.clone(), at: Instant::now(), refused: refused.clone() };
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(target.id.clone(), known);
        match refused {
            None => Ok(()),
            Some(reason) => Err(Failed::Refused(reason)),
        }
    }

    /// The `OPTIONS` request, and what its answer means.
    async fn ask(
        &self,
        target: &Target,
        client: &reqwest::Client,
        policy: &SsrfPolicy,
    ) -> Result<Answer, Failed> {
        let url = target.parsed_url.clone().map_err(|err| Failed::Unreachable("config", err))?;
        check_literal_host(&url, policy).map_err(|err| Failed::Unreachable("ssrf", err.to_string()))?;
        let timeout =
            target.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))).unwrap_or(DEFAULT_TOTAL_TIMEOUT);
        let response = client
            .request(reqwest::Method::OPTIONS, url)
            .timeout(timeout)
            .header(REQUEST_ORIGIN, &self.origin)
            .send()
            .await
            .map_err(|err| {
                Failed::Unreachable(classify(&err), format!("handshake (OPTIONS): {}", describe(&err)))
            })?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        Ok(handshake::judge(
            response.status().as_u16(),
            header(ALLOWED_ORIGIN),
            header(ALLOWED_RATE),
            &self.origin,
        ))
    }
}
