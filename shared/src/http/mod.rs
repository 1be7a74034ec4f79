//! The HTTP boundary shared by every function: problem+json errors, request
//! extractors (JSON bodies, the caller's claims, idempotency keys, list
//! parameters) and the layers every Router gets.

pub mod extract;
pub mod problem;

pub use extract::{AuthFailure, IdempotencyKey, JsonBody, ListParams, MaybeCaller};
pub use problem::ApiError;

use axum::extract::DefaultBodyLimit;
use axum::Router;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Adds what every function's Router needs: the body limit and
/// problem+json answers for unknown routes and methods.
pub fn finish(router: Router) -> Router {
    router
        .fallback(problem::no_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// `GET /health`.
pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}
