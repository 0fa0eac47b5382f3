pub mod dashboard;
pub mod health;
pub mod openapi;
pub mod v1;
