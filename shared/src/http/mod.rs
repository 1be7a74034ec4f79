//! The HTTP boundary shared by every function: problem+json errors, request
//! extractors (JSON bodies, the caller's claims, idempotency keys, list
//! parameters) and the layers every Router gets.

pub mod extract;
pub mod problem;

pub use extract::{
    AuthFailure, IdempotencyKey, JsonBody, ListParams, MaybeCaller, OptionalJsonBody,
};
pub use problem::ApiError;

use axum::extract::DefaultBodyLimit;
use axum::Router;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Adds what every function's Router needs: the body limit,
/// problem+json answers for unknown routes and methods, and the request
/// span (`crate::observe::http_request`, which also flushes metrics).
pub fn finish(router: Router) -> Router {
    router
        .fallback(problem::no_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(crate::observe::http_request))
}

/// `GET /health`.
pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

use crate::error::Error;
use crate::receipt::{Receipt, Stored};
use crate::store::Table;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::future::Future;

/// Runs a POST under its idempotency receipt: a stored response for the same
/// member and key is replayed; otherwise `run` does the work and stores its
/// response in the same atomic write as its effect (see `error::commit`).
pub async fn with_receipt<T, V, F, Fut>(
    table: &T,
    receipt: Option<Receipt>,
    status: StatusCode,
    run: F,
) -> Result<Response, ApiError>
where
    T: Table,
    V: Serialize,
    F: FnOnce(Option<Receipt>) -> Fut,
    Fut: Future<Output = Result<V, Error>>,
{
    if let Some(r) = &receipt {
        if let Some(stored) = r.load(table).await? {
            return replay(r, stored);
        }
    }
    match run(receipt.clone()).await {
        Ok(v) => Ok((status, axum::Json(v)).into_response()),
        Err(Error::Replay) => {
            let Some(r) = &receipt else {
                return Err(Error::Replay.into());
            };
            match r.load(table).await? {
                Some(stored) => replay(r, stored),
                None => Err(Error::Replay.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn replay(r: &Receipt, stored: Stored) -> Result<Response, ApiError> {
    if stored.request != r.request() {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("was already used for another request ({})", stored.request),
        )
        .into());
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = (status, axum::Json(stored.body)).into_response();
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(res)
}

/// Adds `Cache-Control` to a public response.
pub fn cacheable(max_age_secs: u32, res: impl IntoResponse) -> Response {
    let mut res = res.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age_secs}")) {
        res.headers_mut()
            .insert(axum::http::header::CACHE_CONTROL, v);
    }
    res
}
