//! Hookline's HTTP adapter (actix-web). The only crate that knows HTTP status codes: it parses
//! requests, authenticates them to a `Principal`, calls one `hookline-core` service per handler and
//! maps results and errors to responses.

pub mod auth;
pub mod error;
pub mod head;
pub mod headers;
pub mod http_metrics;
pub mod idempotency;
pub mod json;
pub mod query;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod security_headers;
pub mod text;

use std::{net::TcpListener, path::PathBuf};

use actix_web::{App, HttpServer, middleware, web};
use hookline_core::Context;

/// The running HTTP server [`serve`] and [`serve_ops`] return.
pub use actix_web::dev::Server;
pub use routes::openapi::document as openapi_document;

/// Adds every route and the shared state to an actix app.
pub fn configure(cfg: &mut web::ServiceConfig, ctx: Context, dashboard_dir: PathBuf) {
    let body_limit = json::body_limit(ctx.config.max_payload_bytes);
    cfg.app_data(web::Data::new(ctx))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::Data::new(routes::dashboard::DashboardDir(dashboard_dir)))
        .configure(ops_routes)
        .route("/api/openapi.json", web::get().to(routes::openapi::openapi_json))
        .route("/api/docs", web::get().to(routes::openapi::docs))
        .route("/stripe/webhook", web::post().to(routes::v1::billing::stripe_webhook))
        .route("/in/{token}", web::post().to(routes::ingest::ingest))
        .route("/in/{token}", web::get().to(routes::ingest::handshake))
        .configure(routes::v1::configure)
        .default_service(web::to(routes::unmatched::unmatched));
}

/// Whether `GET /metrics` answers without `HOOKLINE_METRICS_TOKEN`: only on a loopback listener.
#[derive(Clone, Copy, Debug)]
pub struct MetricsOpen(pub bool);

fn metrics_open(listener: &TcpListener) -> MetricsOpen {
    MetricsOpen(listener.local_addr().is_ok_and(|addr| addr.ip().is_loopback()))
}

/// Health and metrics: on the API's listener, and alone on a worker's ([`serve_ops`]).
fn ops_routes(cfg: &mut web::ServiceConfig) {
    // HEAD too: load balancers probe with it (actix answers it without the body).
    cfg.route("/healthz", web::get().to(routes::health::healthz))
        .route("/healthz", web::head().to(routes::health::healthz))
        .route("/readyz", web::get().to(routes::health::readyz))
        .route("/readyz", web::head().to(routes::health::readyz))
        .route("/metrics", web::get().to(routes::metrics::metrics));
}

/// The routes of a `hookline worker` process: health and metrics only (`HOOKLINE_WORKER_LISTEN`),
/// so each worker replica can be probed and scraped. Everything else is 404.
pub fn serve_ops(ctx: Context, listener: TcpListener) -> std::io::Result<Server> {
    let open = metrics_open(&listener);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(security_headers::middleware))
            .app_data(web::Data::new(ctx.clone()))
            .app_data(open)
            .configure(ops_routes)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(error::ApiError::not_found("route"))
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// Starts the HTTP server on an already-bound listener (port 0 works: tests start many). Signals
/// are left to the caller, which stops the server and the workers together.
pub fn serve(ctx: Context, listener: TcpListener, dashboard_dir: PathBuf) -> std::io::Result<Server> {
    let open = metrics_open(&listener);
    if !open.0 && ctx.config.metrics_token.is_none() {
        tracing::warn!(
            "the API listens beyond loopback without HOOKLINE_METRICS_TOKEN: GET /metrics is refused until it is set"
        );
    }
    let server = HttpServer::new(move || {
        let ctx = ctx.clone();
        let dashboard_dir = dashboard_dir.clone();
        App::new()
            .app_data(open)
            .wrap(middleware::from_fn(head::middleware))
            .wrap(middleware::from_fn(idempotency::middleware))
            .wrap(middleware::from_fn(text::middleware))
            .wrap(middleware::from_fn(rate_limit::middleware))
            .wrap(middleware::Logger::new("%r %s %Dms %{x-request-id}i").log_target("hookline::http"))
            .wrap(middleware::from_fn(http_metrics::middleware))
            .wrap(middleware::from_fn(security_headers::middleware))
            .wrap(middleware::from_fn(request_id::middleware))
            .configure(|cfg| configure(cfg, ctx, dashboard_dir))
    })
    .disable_signals()
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}
