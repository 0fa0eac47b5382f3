//! Billing: the tenant's plan and billing state, Stripe Checkout and customer portal sessions,
//! and Stripe's own webhooks.

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, billing::stripe};
use hookline_types::{BillingOut, BillingSessionIn, BillingSessionOut, ErrorBody};

use crate::{auth::Auth, error::ApiResult};

fn session_input(body: &web::Bytes) -> ApiResult<BillingSessionIn> {
    crate::json::optional_body(body)
}

/// The tenant's plan, billing state and this month's quota.
///
/// Needs the `read` scope; portal tokens get 404. `enabled` is false when this server has no
/// Stripe key (checkout and portal then answer 409 `billing_disabled`); `grace_until` is set after
/// a failed payment.
#[utoipa::path(get, path = "/api/v1/billing", operation_id = "v1.billing.get", tag = "Billing",
    responses((status = 200, description = "Billing", body = BillingOut)),
    security(("bearer" = [])))]
pub async fn get(ctx: web::Data<Context>, Auth(principal): Auth) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(stripe::get(&ctx, &principal).await?))
}

/// A Stripe Checkout Session for the Pro subscription: send the user to its `url`.
///
/// Needs the `admin` scope; portal tokens get 404. The body is optional: Stripe sends the user
/// back to `return_url` (default: the dashboard's billing page) with `?checkout=success` or
/// `?checkout=cancelled`. The organization's Stripe customer is created the first time, and the
/// plan changes when Stripe's webhook reports the payment, not when this returns.
#[utoipa::path(post, path = "/api/v1/billing/checkout", operation_id = "v1.billing.checkout", tag = "Billing",
    request_body(content = Option<BillingSessionIn>, example = json!({"return_url": "https://hookline.example.com/billing"})),
    responses(
        (status = 201, description = "The session", body = BillingSessionOut),
        (status = 409, description = "Billing is not configured on this server (billing_disabled)", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused the request (billing_provider_error)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn checkout(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let input = session_input(&body)?;
    Ok(HttpResponse::Created().json(stripe::checkout(&ctx, &principal, input).await?))
}

/// A Stripe customer-portal session (invoices, payment method, cancellation).
///
/// Needs the `admin` scope; portal tokens get 404. The body is optional: Stripe's portal links
/// back to `return_url` (default: the dashboard's billing page). The organization's Stripe
/// customer is created the first time.
#[utoipa::path(post, path = "/api/v1/billing/portal", operation_id = "v1.billing.portal", tag = "Billing",
    request_body(content = Option<BillingSessionIn>, example = json!({"return_url": "https://hookline.example.com/billing"})),
    responses(
        (status = 201, description = "The session", body = BillingSessionOut),
        (status = 409, description = "Billing is not configured on this server (billing_disabled)", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused the request (billing_provider_error)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn portal(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let input = session_input(&body)?;
    Ok(HttpResponse::Created().json(stripe::portal(&ctx, &principal, input).await?))
}

/// Stripe's webhooks to Hookline, verified with `HOOKLINE_STRIPE_WEBHOOK_SECRET` (5-minute
/// timestamp tolerance) and applied once each.
///
/// Called by Stripe, not by API clients: no API key, the `Stripe-Signature` header over the exact
/// body is the credential. Completed checkouts, `customer.subscription.created`, `.updated` and
/// `.deleted`, `invoice.paid` and `invoice.payment_failed` update the organization's plan and
/// billing state; other events, events for no known organization and events older than one
/// already applied to their subscription are recorded and ignored. 409 `billing_disabled` when
/// `HOOKLINE_STRIPE_WEBHOOK_SECRET` is unset.
#[utoipa::path(post, path = "/stripe/webhook", operation_id = "stripe.webhook", tag = "Billing",
    request_body(content = Object, description = "A Stripe event, as Stripe sends it", content_type = "application/json",
        example = json!({
            "id": "evt_1QdL3kFz8xYw2aBcR4sT5uVw",
            "object": "event",
            "type": "customer.subscription.updated",
            "created": 1772442845,
            "data": {
                "object": {
                    "id": "sub_1QdL2jFz8xYw2aBcKlMnOpQr",
                    "object": "subscription",
                    "customer": "cus_RWq8XyZ1aBcDeF",
                    "status": "active",
                    "items": {"data": [{"price": {"id": "price_1QdKzXFz8xYw2aBcPro0001"}}]}
                }
            }
        })),
    responses(
        (status = 204, description = "Applied (or already applied)"),
        (status = 401, description = "Missing, forged or stale signature: nothing changed", body = ErrorBody),
        (status = 409, description = "billing_disabled: no Stripe webhook secret is configured on this server (HOOKLINE_STRIPE_WEBHOOK_SECRET)", body = ErrorBody),
    ))]
pub async fn stripe_webhook(
    req: HttpRequest,
    ctx: web::Data<Context>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let signature = req.headers().get("stripe-signature").and_then(|v| v.to_str().ok());
    stripe::webhook(&ctx, signature, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}
