use actix_web::{HttpResponse, web};
use hookline_core::Context;
use hookline_types::HealthOut;

/// Liveness: the process answers.
///
/// Always 200 `{"status": "ok"}` while the process serves HTTP; it checks no dependency (the
/// database is `/readyz`). No authentication; `HEAD` is answered too.
#[utoipa::path(get, path = "/healthz", operation_id = "health.live", tag = "Health",
    responses((status = 200, description = "Alive", body = HealthOut)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthOut { status: "ok".to_owned() })
}

/// Readiness: the database answers.
///
/// Pings the database: 200 `{"status": "ok"}`, or 503 `{"status": "database unavailable"}` when it
/// does not answer. No authentication; `HEAD` is answered too.
#[utoipa::path(get, path = "/readyz", operation_id = "health.ready", tag = "Health",
    responses((status = 200, description = "Ready", body = HealthOut), (status = 503, description = "The database does not answer", body = HealthOut)))]
pub async fn readyz(ctx: web::Data<Context>) -> HttpResponse {
    if ctx.db.ping().await {
        HttpResponse::Ok().json(HealthOut { status: "ok".to_owned() })
    } else {
        HttpResponse::ServiceUnavailable().json(HealthOut { status: "database unavailable".to_owned() })
    }
}
