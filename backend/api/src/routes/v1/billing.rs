//! Billing: the tenant's plan and billing state, Stripe Checkout and customer portal sessions,
//! and Stripe's own webhooks.

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, billing::stripe};
use hookline_types::{BillingOut, BillingSessionIn, BillingSessionOut, ErrorBody};

use crate::{auth::Auth, error::ApiResult};

fn session_input(body: &web::Bytes) -> ApiResult<BillingSessionIn> {
    // The body is optional.
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(BillingSessionIn::default())
    } else {
        crate::json::parse_body(body)
    }
}

/// The tenant's plan, billing state and this month's quota.
#[utoipa::path(get, path = "/api/v1/billing", operation_id = "v1.billing.get", tag = "Billing",
    responses((status = 200, description = "Billing", body = BillingOut)),
    security(("bearer" = [])))]
pub async fn get(ctx: web::Data<Context>, Auth(principal): Auth) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(stripe::get(&ctx, &principal).await?))
}

/// A Stripe Checkout Session for the Pro subscription: send the user to its `url`.
#[utoipa::path(post, path = "/api/v1/billing/checkout", operation_id = "v1.billing.checkout", tag = "Billing",
    request_body = BillingSessionIn,
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
#[utoipa::path(post, path = "/api/v1/billing/portal", operation_id = "v1.billing.portal", tag = "Billing",
    request_body = BillingSessionIn,
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
#[utoipa::path(post, path = "/stripe/webhook", operation_id = "stripe.webhook", tag = "Billing",
    responses(
        (status = 204, description = "Applied (or already applied)"),
        (status = 401, description = "Missing, forged or stale signature: nothing changed", body = ErrorBody),
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
