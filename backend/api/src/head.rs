//! `HEAD` is answered wherever `GET` is (RFC 9110 §9.3.2): the request is routed as a `GET`, and
//! the connection, which parsed a `HEAD`, sends that answer's status and headers without its body.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
};

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
