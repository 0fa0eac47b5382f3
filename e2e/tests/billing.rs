//! Billing against a fake Stripe on 127.0.0.1: checkout → webhook → plan upgraded; payment
//! failure → grace → downgrade; forged or stale signatures change nothing; duplicate events are
//! applied once; an overage report retried after a network error is billed once; without keys
//! billing says it is off.

use std::time::{Duration, Instant};

use hookline_e2e::{
    Backend, Client, ServerOptions, TestServer, both_databases,
    fake_stripe::{FakeStripe, PRO_PRICE, SECRET_KEY, WEBHOOK_SECRET},
};
use serde_json::{Value, json};

both_databases!(
    checkout_then_webhook_upgrades_and_duplicate_events_apply_once,
    a_failed_payment_keeps_the_plan_through_grace_then_downgrades,
    forged_or_stale_signatures_change_nothing,
    the_last_hour_of_the_previous_month_is_billed_after_the_rollover_once_despite_a_retry,
    without_keys_billing_says_it_is_off,
    a_stripe_refusal_is_a_clear_502_and_changes_nothing,
    a_subscription_update_delivered_after_its_deletion_leaves_the_tenant_on_free,
    an_unpaid_checkout_completion_does_not_grant_pro,
    the_plan_follows_the_subscriptions_price_and_an_enterprise_invoice_never_demotes,
);

const WAIT: Duration = Duration::from_secs(30);

fn options(stripe: &FakeStripe) -> ServerOptions {
    ServerOptions::default()
        .env("HOOKLINE_STRIPE_API_BASE", stripe.url())
        .env("HOOKLINE_STRIPE_SECRET_KEY", SECRET_KEY)
        .env("HOOKLINE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("HOOKLINE_STRIPE_PRO_PRICE", PRO_PRICE)
        .env("HOOKLINE_MAINTENANCE_INTERVAL_SECONDS", "1")
        .env("HOOKLINE_BILLING_GRACE_SECONDS", "2")
}

async fn billing(api: &Client) -> Value {
    api.get("/api/v1/billing").await.expect(200)
}

/// Starts Checkout and returns (tenant id, Stripe customer id) as the fake saw them.
async fn checkout(api: &Client, stripe: &FakeStripe) -> (String, String) {
    let session = api.post("/api/v1/billing/checkout", json!({})).await.expect(201);
    assert!(session["url"].as_str().unwrap().starts_with("https://checkout.stripe.test/pay/"), "{session}");
    let call = stripe.calls_to("/v1/checkout/sessions").pop().expect("a Checkout call");
    assert_eq!(call.form.get("mode").map(String::as_str), Some("subscription"));
    assert_eq!(call.form.get("line_items[0][price]").map(String::as_str), Some(PRO_PRICE));
    let tenant = call.form["client_reference_id"].clone();
    let customer = call.form["customer"].clone();
    (tenant, customer)
}

async fn webhook(server: &TestServer, event: &Value) -> u16 {
    FakeStripe::send_webhook(&server.url("/stripe/webhook"), event, WEBHOOK_SECRET, None).await
}

async fn checkout_then_webhook_upgrades_and_duplicate_events_apply_once(db: Backend) {
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let api = server.tenant_on("acme", "free");
    let before = billing(&api).await;
    assert_eq!(
        (before["enabled"].as_bool(), before["plan"].as_str()),
        (Some(true), Some("free")),
        "{before}"
    );
    let (tenant, customer) = checkout(&api, &stripe).await;
    let created = stripe.calls_to("/v1/customers");
    assert_eq!(created.len(), 1);
    assert!(created[0].idempotency_key.is_some(), "customer creation is idempotent");
    assert_eq!(created[0].form.get("metadata[hookline_tenant_id]"), Some(&tenant));

    let completed = FakeStripe::event(
        "evt_1",
        "checkout.session.completed",
        json!({"object": "checkout.session", "id": "cs_1", "client_reference_id": tenant, "customer": customer, "subscription": "sub_1", "mode": "subscription", "payment_status": "paid"}),
    );
    assert_eq!(webhook(&server, &completed).await, 204);
    let after = billing(&api).await;
    assert_eq!(after["plan"], "pro", "{after}");
    assert_eq!(after["billing_state"], "active");
    assert_eq!(after["stripe_subscription_id"], "sub_1");
    assert_eq!(after["stripe_customer_id"], customer.as_str());
    // The plan's limits follow within the cache's two seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(api.get("/api/v1/usage").await.expect(200)["quota"]["plan"], "pro");

    // A second checkout reuses the customer.
    checkout(&api, &stripe).await;
    assert_eq!(stripe.calls_to("/v1/customers").len(), 1, "no second customer");
    // The customer portal.
    let portal = api
        .post("/api/v1/billing/portal", json!({"return_url": "https://app.example/billing"}))
        .await
        .expect(201);
    assert!(portal["url"].as_str().unwrap().starts_with("https://billing.stripe.test/p/"));
    let call = stripe.calls_to("/v1/billing_portal/sessions").pop().unwrap();
    assert_eq!(call.form.get("customer"), Some(&customer));
    assert_eq!(call.form.get("return_url").map(String::as_str), Some("https://app.example/billing"));

    // Cancelled: back to free. Upgraded again with a new event. The old cancellation delivered
    // again is not applied again.
    let deleted = FakeStripe::event(
        "evt_2",
        "customer.subscription.deleted",
        json!({"object": "subscription", "id": "sub_1", "customer": customer, "status": "canceled"}),
    );
    assert_eq!(webhook(&server, &deleted).await, 204);
    assert_eq!(billing(&api).await["plan"], "free");
    let updated = FakeStripe::event(
        "evt_3",
        "customer.subscription.updated",
        json!({"object": "subscription", "id": "sub_2", "customer": customer, "status": "active",
               "items": {"data": [{"price": {"id": PRO_PRICE}}]}}),
    );
    assert_eq!(webhook(&server, &updated).await, 204);
    assert_eq!(billing(&api).await["plan"], "pro");
    assert_eq!(webhook(&server, &deleted).await, 204, "a duplicate is acknowledged");
    let still = billing(&api).await;
    assert_eq!(
        (still["plan"].as_str(), still["stripe_subscription_id"].as_str()),
        (Some("pro"), Some("sub_2")),
        "{still}"
    );
    // Another tenant is untouched throughout.
    let other = server.tenant_on("other", "free");
    assert_eq!(billing(&other).await["plan"], "free");
}

async fn a_failed_payment_keeps_the_plan_through_grace_then_downgrades(db: Backend) {
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let late = server.tenant_on("late", "free");
    let good = server.tenant_on("good", "free");
    let mut customers = Vec::new();
    for (n, api) in [&late, &good].into_iter().enumerate() {
        let (tenant, customer) = checkout(api, &stripe).await;
        let event = FakeStripe::event(
            &format!("evt_up{n}"),
            "checkout.session.completed",
            json!({"object": "checkout.session", "client_reference_id": tenant, "customer": customer, "subscription": format!("sub_{n}"), "payment_status": "paid"}),
        );
        assert_eq!(webhook(&server, &event).await, 204);
        customers.push(customer);
    }
    for (n, customer) in customers.iter().enumerate() {
        let failed = FakeStripe::event(
            &format!("evt_fail{n}"),
            "invoice.payment_failed",
            json!({"object": "invoice", "id": format!("in_{n}"), "customer": customer}),
        );
        assert_eq!(webhook(&server, &failed).await, 204);
    }
    let state = billing(&late).await;
    assert_eq!(
        (state["plan"].as_str(), state["billing_state"].as_str()),
        (Some("pro"), Some("past_due")),
        "{state}"
    );
    assert!(state["grace_until"].is_string());
    // The good tenant pays within its grace period.
    let paid = FakeStripe::event(
        "evt_paid",
        "invoice.paid",
        json!({"object": "invoice", "id": "in_1b", "customer": customers[1]}),
    );
    assert_eq!(webhook(&server, &paid).await, 204);
    // Grace is 2 s here; maintenance runs every second.
    let deadline = Instant::now() + WAIT;
    loop {
        let state = billing(&late).await;
        if state["plan"] == "free" {
            assert_eq!(state["billing_state"], "canceled");
            break;
        }
        assert!(Instant::now() < deadline, "never downgraded: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let good_state = billing(&good).await;
    assert_eq!(
        (good_state["plan"].as_str(), good_state["billing_state"].as_str()),
        (Some("pro"), Some("active")),
        "{good_state}"
    );
}

async fn forged_or_stale_signatures_change_nothing(db: Backend) {
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let api = server.tenant_on("acme", "free");
    let (tenant, customer) = checkout(&api, &stripe).await;
    let event = FakeStripe::event(
        "evt_x",
        "checkout.session.completed",
        json!({"object": "checkout.session", "client_reference_id": tenant, "customer": customer, "subscription": "sub_x", "payment_status": "paid"}),
    );
    let target = server.url("/stripe/webhook");
    assert_eq!(FakeStripe::send_webhook(&target, &event, "whsec_forged", None).await, 401, "wrong secret");
    let stale = chrono::Utc::now().timestamp() - 600;
    assert_eq!(FakeStripe::send_webhook(&target, &event, WEBHOOK_SECRET, Some(stale)).await, 401, "too old");
    let future = chrono::Utc::now().timestamp() + 600;
    assert_eq!(
        FakeStripe::send_webhook(&target, &event, WEBHOOK_SECRET, Some(future)).await,
        401,
        "from the future"
    );
    // A valid signature over another body.
    let signature = FakeStripe::signature(WEBHOOK_SECRET, "{}", chrono::Utc::now().timestamp());
    let response = reqwest::Client::new()
        .post(&target)
        .header("stripe-signature", signature)
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "tampered body");
    let response = reqwest::Client::new().post(&target).body(event.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 401, "no signature");
    assert_eq!(billing(&api).await["plan"], "free", "nothing changed");
    // The event was not recorded as applied: the genuine delivery applies it.
    assert_eq!(webhook(&server, &event).await, 204);
    assert_eq!(billing(&api).await["plan"], "pro");
}

async fn the_last_hour_of_the_previous_month_is_billed_after_the_rollover_once_despite_a_retry(db: Backend) {
    use chrono::{Datelike, TimeZone, Timelike};
    // The last hour of the previous month: finished whenever the test runs, and outside the
    // current month, which is all a reporter that forgets the rollover looks at.
    let now = chrono::Utc::now();
    let month_start = chrono::Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    let hour = month_start - chrono::TimeDelta::hours(1);
    assert_eq!((hour.minute(), hour.hour()), (0, 23));
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let api = server.tenant_on("payer", "pro");
    server.cli(&["plan", "set", "--tenant", "payer", "--plan", "pro", "--monthly-messages", "2"]);
    let (tenant, customer) = checkout(&api, &stripe).await;
    // That hour: five messages accepted, three past the two included. (Seeded in the counters:
    // the reporter only bills finished hours, and a test cannot wait for one.)
    stripe.fail_next_meter_event_after_recording();
    let db_url = match db {
        Backend::Sqlite => format!("{}?mode=rwc", server.database_url),
        Backend::Postgres => server.database_url.clone(),
    };
    let conn = sea_orm::Database::connect(db_url.as_str()).await.unwrap();
    use sea_orm::ConnectionTrait;
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "INSERT INTO usage_counters (tenant_id, app_id, hour_start, metric, value) VALUES ($1, '', $2, 'messages_accepted', 5)"
        }
        _ => {
            "INSERT INTO usage_counters (tenant_id, app_id, hour_start, metric, value) VALUES (?, '', ?, 'messages_accepted', 5)"
        }
    };
    conn.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [tenant.clone().into(), hour.into()],
    ))
    .await
    .unwrap();
    let identifier = format!("hl-{tenant}-{}", hour.timestamp());
    let deadline = Instant::now() + WAIT;
    // First try: recorded by Stripe, answered 500. Second try: Stripe says it has it.
    while stripe.calls_to("/v1/billing/meter_events").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the report was not retried: {:?}",
            stripe.calls_to("/v1/billing/meter_events")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Later runs have nothing left to report.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let calls = stripe.calls_to("/v1/billing/meter_events");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.form.get("identifier") == Some(&identifier)), "{calls:?}");
    assert_eq!(calls[0].form.get("event_name").map(String::as_str), Some("hookline_messages"));
    let billed = stripe.meter_events();
    assert_eq!(billed.len(), 1, "{billed:?}");
    assert_eq!(billed[&identifier], (customer, 3), "three messages of overage, once");
}

/// Stripe refusing the server's requests (here: a wrong secret key) is `502
/// billing_provider_error` for the tenant, not a 500; Stripe's answer stays in the server log.
async fn a_stripe_refusal_is_a_clear_502_and_changes_nothing(db: Backend) {
    let stripe = FakeStripe::start();
    let server =
        TestServer::start_with(db, options(&stripe).env("HOOKLINE_STRIPE_SECRET_KEY", "sk_test_wrong")).await;
    let api = server.tenant_on("acme", "free");
    for path in ["/api/v1/billing/checkout", "/api/v1/billing/portal"] {
        let refused = api.post(path, json!({})).await.expect_error(502, "billing_provider_error");
        let detail = refused["detail"].as_str().unwrap();
        assert!(detail.contains("Stripe"), "{refused}");
        assert!(!detail.contains("sk_test"), "no key material in the answer: {refused}");
    }
    assert!(!stripe.calls_to("/v1/customers").is_empty(), "Stripe was asked (and refused)");
    let state = billing(&api).await;
    assert_eq!(
        (state["plan"].as_str(), state["stripe_customer_id"].as_str()),
        (Some("free"), None),
        "{state}"
    );
}

async fn without_keys_billing_says_it_is_off(db: Backend) {
    let server = TestServer::start(db).await;
    let api = server.tenant_on("acme", "free");
    let state = billing(&api).await;
    assert_eq!(state["enabled"], false, "{state}");
    assert_eq!(state["plan"], "free");
    let refused = api.post("/api/v1/billing/checkout", json!({})).await.expect_error(409, "billing_disabled");
    assert!(refused["detail"].as_str().unwrap().contains("HOOKLINE_STRIPE_SECRET_KEY"), "{refused}");
    api.post("/api/v1/billing/portal", json!({})).await.expect_error(409, "billing_disabled");
    let event = FakeStripe::event("evt_1", "invoice.paid", json!({"customer": "cus_x"}));
    assert_eq!(
        FakeStripe::send_webhook(&server.url("/stripe/webhook"), &event, WEBHOOK_SECRET, None).await,
        409
    );
}

/// An event as Stripe shapes it, created `seconds_ago` (Stripe does not deliver in order).
fn event_created(id: &str, kind: &str, object: Value, seconds_ago: i64) -> Value {
    let mut event = FakeStripe::event(id, kind, object);
    event["created"] = json!(chrono::Utc::now().timestamp() - seconds_ago);
    event
}

/// Whether the event id is recorded as processed (a redelivery is then acknowledged and ignored).
async fn recorded(server: &TestServer, event_id: &str) -> bool {
    use sea_orm::ConnectionTrait;
    let url = match server.backend {
        Backend::Sqlite => format!("{}?mode=ro", server.database_url),
        Backend::Postgres => server.database_url.clone(),
    };
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT id FROM stripe_events WHERE id = $1",
        _ => "SELECT id FROM stripe_events WHERE id = ?",
    };
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [event_id.into()]))
        .await
        .unwrap();
    rows.len() == 1
}

/// Stripe may deliver a subscription's events out of order: an update created before the
/// deletion, arriving after it, must not bring the Pro plan back.
async fn a_subscription_update_delivered_after_its_deletion_leaves_the_tenant_on_free(db: Backend) {
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let api = server.tenant_on("acme", "free");
    let (tenant, customer) = checkout(&api, &stripe).await;
    // As Stripe sends it: the subscription names its price, which is what decides the plan.
    let subscription = json!({"object": "subscription", "id": "sub_1", "customer": customer, "status": "active",
                              "items": {"data": [{"price": {"id": PRO_PRICE}}]}});
    let completed = event_created(
        "evt_paid",
        "checkout.session.completed",
        json!({"object": "checkout.session", "client_reference_id": tenant, "customer": customer, "subscription": "sub_1", "payment_status": "paid"}),
        120,
    );
    assert_eq!(webhook(&server, &completed).await, 204);
    assert_eq!(billing(&api).await["plan"], "pro");
    let mut canceled = subscription.clone();
    canceled["status"] = json!("canceled");
    let deleted = event_created("evt_deleted", "customer.subscription.deleted", canceled, 10);
    assert_eq!(webhook(&server, &deleted).await, 204);
    assert_eq!(billing(&api).await["plan"], "free");
    // Created a minute before the deletion, delivered after it: acknowledged, recorded, ignored.
    let late = event_created("evt_late", "customer.subscription.updated", subscription.clone(), 60);
    assert_eq!(webhook(&server, &late).await, 204);
    let state = billing(&api).await;
    assert_eq!(
        (state["plan"].as_str(), state["billing_state"].as_str(), state["stripe_subscription_id"].as_str()),
        (Some("free"), Some("canceled"), None),
        "{state}"
    );
    assert!(recorded(&server, "evt_late").await, "the ignored event is recorded as processed");
    // A late invoice or checkout event is ignored the same way.
    let late_invoice = event_created(
        "evt_late_invoice",
        "invoice.paid",
        json!({"object": "invoice", "id": "in_1", "customer": customer, "subscription": "sub_1"}),
        30,
    );
    assert_eq!(webhook(&server, &late_invoice).await, 204);
    assert_eq!(billing(&api).await["plan"], "free");
    // A newer event still applies: the tenant subscribes again.
    let mut again = subscription;
    again["id"] = json!("sub_2");
    let resubscribed = event_created("evt_again", "customer.subscription.created", again, 0);
    assert_eq!(webhook(&server, &resubscribed).await, 204);
    let state = billing(&api).await;
    assert_eq!(
        (state["plan"].as_str(), state["stripe_subscription_id"].as_str()),
        (Some("pro"), Some("sub_2")),
        "{state}"
    );
}

/// A Checkout Session paid by a delayed method (bank debit) completes `unpaid`: Pro comes with
/// `checkout.session.async_payment_succeeded`, not before.
async fn an_unpaid_checkout_completion_does_not_grant_pro(db: Backend) {
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let api = server.tenant_on("acme", "free");
    let (tenant, customer) = checkout(&api, &stripe).await;
    let session = json!({"object": "checkout.session", "id": "cs_1", "client_reference_id": tenant, "customer": customer, "subscription": "sub_1", "mode": "subscription", "payment_status": "unpaid"});
    let completed = FakeStripe::event("evt_completed", "checkout.session.completed", session.clone());
    assert_eq!(webhook(&server, &completed).await, 204);
    let state = billing(&api).await;
    assert_eq!(state["plan"], "free", "{state}");
    assert_ne!(state["billing_state"], "active", "{state}");
    let mut paid = session;
    paid["payment_status"] = json!("paid");
    let succeeded = FakeStripe::event("evt_succeeded", "checkout.session.async_payment_succeeded", paid);
    assert_eq!(webhook(&server, &succeeded).await, 204);
    let state = billing(&api).await;
    assert_eq!(
        (state["plan"].as_str(), state["billing_state"].as_str(), state["stripe_subscription_id"].as_str()),
        (Some("pro"), Some("active"), Some("sub_1")),
        "{state}"
    );
}

/// Before: `invoice.paid` and active subscriptions set `pro` whatever was bought, so an
/// enterprise tenant paying by Stripe was demoted by its next invoice.
async fn the_plan_follows_the_subscriptions_price_and_an_enterprise_invoice_never_demotes(db: Backend) {
    const ENTERPRISE_PRICE: &str = "price_fake_enterprise";
    let stripe = FakeStripe::start();
    let server = TestServer::start_with(db, options(&stripe)).await;
    let api = server.tenant_on("bigco", "free");
    let (tenant, customer) = checkout(&api, &stripe).await;
    let out = server.cli(&["plan", "price", "--plan", "enterprise", "--stripe-price", ENTERPRISE_PRICE]);
    assert!(out.contains("enterprise"), "{out}");
    let created = chrono::Utc::now().timestamp();
    let event = |id: &str, kind: &str, object: Value, at: i64| {
        let mut event = FakeStripe::event(id, kind, object);
        event["created"] = at.into();
        event
    };
    // A subscription to the enterprise price: enterprise.
    let subscribed = event(
        "evt_sub",
        "customer.subscription.created",
        json!({"object": "subscription", "id": "sub_e", "customer": customer, "status": "active",
               "items": {"data": [{"price": {"id": ENTERPRISE_PRICE}}]}}),
        created,
    );
    assert_eq!(webhook(&server, &subscribed).await, 204);
    assert_eq!(billing(&api).await["plan"], "enterprise");
    // Its invoices, in the old and the new API shape, and one with no line items: still enterprise.
    for (n, lines) in [
        json!({"data": [{"price": {"id": ENTERPRISE_PRICE}}]}),
        json!({"data": [{"pricing": {"price_details": {"price": ENTERPRISE_PRICE}}}]}),
        json!({"data": []}),
    ]
    .into_iter()
    .enumerate()
    {
        let paid = event(
            &format!("evt_inv{n}"),
            "invoice.paid",
            json!({"object": "invoice", "id": format!("in_{n}"), "customer": customer, "subscription": "sub_e", "lines": lines}),
            created + 1 + n as i64,
        );
        assert_eq!(webhook(&server, &paid).await, 204);
        let state = billing(&api).await;
        assert_eq!(
            (state["plan"].as_str(), state["billing_state"].as_str()),
            (Some("enterprise"), Some("active")),
            "invoice {n}: {state}"
        );
    }
    // A price no plan names changes nothing.
    let unknown = event(
        "evt_unknown",
        "customer.subscription.updated",
        json!({"object": "subscription", "id": "sub_e", "customer": customer, "status": "active",
               "items": {"data": [{"price": {"id": "price_nobody_sells"}}]}}),
        created + 10,
    );
    assert_eq!(webhook(&server, &unknown).await, 204);
    assert_eq!(billing(&api).await["plan"], "enterprise");
    // Moved to the Pro price: pro; a Pro invoice keeps it there.
    let downgraded = event(
        "evt_to_pro",
        "customer.subscription.updated",
        json!({"object": "subscription", "id": "sub_e", "customer": customer, "status": "active",
               "items": {"data": [{"price": {"id": PRO_PRICE}}]}}),
        created + 11,
    );
    assert_eq!(webhook(&server, &downgraded).await, 204);
    assert_eq!(billing(&api).await["plan"], "pro");
    // The free tenant next door, with a Stripe customer but no subscription, is untouched.
    let other = server.tenant_on("small", "free");
    let (_, other_customer) = checkout(&other, &stripe).await;
    let stray = event(
        "evt_stray",
        "invoice.paid",
        json!({"object": "invoice", "id": "in_stray", "customer": other_customer, "lines": {"data": [{"price": {"id": "price_nobody_sells"}}]}}),
        created + 12,
    );
    assert_eq!(webhook(&server, &stray).await, 204);
    assert_eq!(billing(&other).await["plan"], "free");
    assert_ne!(tenant, "", "checkout named the tenant");
}
