//! A fake Stripe API on 127.0.0.1 for the billing tests: answers the calls Hookline makes
//! (customers, Checkout sessions, billing-portal sessions, billing meter events) the way Stripe
//! does for the fields Hookline reads, records every request, deduplicates meter events by
//! identifier as Stripe does, can fail a meter event after recording it (a network error after
//! Stripe processed the request), and sends signed webhooks back.

use std::{
    collections::{BTreeMap, HashMap},
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const WEBHOOK_SECRET: &str = "whsec_fake_stripe_endpoint_secret";
pub const SECRET_KEY: &str = "sk_test_fake";
pub const PRO_PRICE: &str = "price_fake_pro";

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct StripeCall {
    pub method: String,
    pub path: String,
    /// The form-encoded body, decoded (`payload[value]` stays as one key).
    pub form: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    calls: Vec<StripeCall>,
    customers_by_key: HashMap<String, String>,
    next: u32,
    /// Meter events by identifier: (customer, value).
    meter_events: BTreeMap<String, (String, i64)>,
    fail_next_meter_event: bool,
}

pub struct FakeStripe {
    base_url: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn stripe_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status"))
        .json(json!({"error": {"type": kind, "message": message}}))
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let call = StripeCall {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        form: form.clone(),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
    };
    let mut state = state.lock().unwrap();
    state.calls.push(call.clone());
    if call.authorization.as_deref() != Some(&format!("Bearer {SECRET_KEY}")) {
        return stripe_error(401, "invalid_request_error", "Invalid API Key provided");
    }
    state.next += 1;
    let n = state.next;
    match (call.method.as_str(), call.path.as_str()) {
        ("POST", "/v1/customers") => {
            let id = match &call.idempotency_key {
                Some(key) => state
                    .customers_by_key
                    .entry(key.clone())
                    .or_insert_with(|| format!("cus_fake{n}"))
                    .clone(),
                None => format!("cus_fake{n}"),
            };
            HttpResponse::Ok().json(
                json!({"id": id, "object": "customer", "email": form.get("email"), "name": form.get("name")}),
            )
        }
        ("POST", "/v1/checkout/sessions") => HttpResponse::Ok().json(json!({
            "id": format!("cs_fake{n}"),
            "object": "checkout.session",
            "mode": form.get("mode"),
            "customer": form.get("customer"),
            "client_reference_id": form.get("client_reference_id"),
            "url": format!("https://checkout.stripe.test/pay/cs_fake{n}"),
        })),
        ("POST", "/v1/billing_portal/sessions") => HttpResponse::Ok().json(json!({
            "id": format!("bps_fake{n}"),
            "object": "billing_portal.session",
            "customer": form.get("customer"),
            "url": format!("https://billing.stripe.test/p/bps_fake{n}"),
        })),
        ("POST", "/v1/billing/meter_events") => {
            let identifier = form.get("identifier").cloned().unwrap_or_else(|| format!("gen{n}"));
            if state.meter_events.contains_key(&identifier) {
                return stripe_error(
                    400,
                    "invalid_request_error",
                    &format!("An event already exists with identifier {identifier}."),
                );
            }
            let customer = form.get("payload[stripe_customer_id]").cloned().unwrap_or_default();
            let value = form.get("payload[value]").and_then(|v| v.parse().ok()).unwrap_or(0);
            state.meter_events.insert(identifier.clone(), (customer, value));
            if std::mem::take(&mut state.fail_next_meter_event) {
                // Recorded, but the answer never makes it back.
                return stripe_error(500, "api_error", "simulated failure after the event was recorded");
            }
            HttpResponse::Ok().json(json!({
                "object": "billing.meter_event",
                "identifier": identifier,
                "event_name": form.get("event_name"),
            }))
        }
        _ => stripe_error(404, "invalid_request_error", "Unrecognized request URL"),
    }
}

impl FakeStripe {
    pub fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let data = web::Data::new(state.clone());
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(handle)))
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listening")
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeStripe { base_url, state, handle }
    }

    pub fn url(&self) -> &str {
        &self.base_url
    }

    pub fn calls(&self) -> Vec<StripeCall> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, path: &str) -> Vec<StripeCall> {
        self.calls().into_iter().filter(|c| c.path == path).collect()
    }

    /// Meter events Stripe has (once per identifier): identifier → (customer, value).
    pub fn meter_events(&self) -> BTreeMap<String, (String, i64)> {
        self.state.lock().unwrap().meter_events.clone()
    }

    /// The next meter event is recorded, and then answered with a 500.
    pub fn fail_next_meter_event_after_recording(&self) {
        self.state.lock().unwrap().fail_next_meter_event = true;
    }

    /// The `Stripe-Signature` header Stripe would send for `body` at `timestamp`.
    pub fn signature(secret: &str, body: &str, timestamp: i64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("t={timestamp},v1={hex}")
    }

    /// An event as Stripe shapes it.
    pub fn event(id: &str, kind: &str, object: Value) -> Value {
        json!({
            "id": id,
            "object": "event",
            "api_version": "2025-11-17.clover",
            "created": chrono::Utc::now().timestamp(),
            "livemode": false,
            "pending_webhooks": 1,
            "type": kind,
            "data": {"object": object},
        })
    }

    /// Posts `event` to Hookline's webhook URL, signed with `secret` at `timestamp` (now when
    /// `None`); returns the status.
    pub async fn send_webhook(target: &str, event: &Value, secret: &str, timestamp: Option<i64>) -> u16 {
        let body = event.to_string();
        let timestamp = timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp());
        reqwest::Client::new()
            .post(target)
            .header("content-type", "application/json")
            .header("stripe-signature", Self::signature(secret, &body, timestamp))
            .body(body)
            .send()
            .await
            .expect("posting the webhook")
            .status()
            .as_u16()
    }
}
