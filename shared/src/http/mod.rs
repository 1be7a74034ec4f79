//! The HTTP boundary shared by every function: problem+json errors, request
//! extractors (JSON bodies, the caller's claims, idempotency keys, list
//! parameters) and the layers every Router gets.

pub mod access;
pub mod extract;
pub mod problem;

pub use extract::{
    AuthFailure, IdempotencyKey, JsonBody, ListParams, MaybeCaller, OptionalJsonBody,
    VerifiedClaims,
};
pub use problem::ApiError;

use axum::extract::DefaultBodyLimit;
use axum::Router;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Adds what every function's Router needs: the body limit,
/// problem+json answers for unknown routes and methods, who may read
/// (`access`: fresh settings, tokens on public routes, the soft launch),
/// and the request span (`crate::observe::http_request`, which also
/// flushes metrics).
pub fn finish<T: Table + Clone + Send + Sync + 'static>(router: Router, app: &App<T>) -> Router {
    router
        .fallback(problem::no_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::access::<T>,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(fingerprint_body))
        .layer(axum::middleware::from_fn(conditional))
        .layer(axum::middleware::from_fn(crate::observe::http_request))
}

/// Conditional GETs and who may cache them, for every route:
/// - a `200` to a `GET` or `HEAD` gets an `ETag` (a hash of its body), and
///   a request whose `If-None-Match` names it gets `304` with no body;
/// - a request with an `Authorization` header is answered
///   `Cache-Control: private, no-cache` whatever the handler said: a shared
///   cache (the CDN, docs/operations.md) never stores what a token read,
///   and the member's browser revalidates with the ETag;
/// - an anonymous read keeps the handler's `Cache-Control`
///   (`public, max-age=…` on the public lists and pages), which the CDN
///   honours.
pub async fn conditional(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{header, Method};
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let authorised = req.headers().contains_key(header::AUTHORIZATION);
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let res = next.run(req).await;
    if !read {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    if authorised {
        parts.headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if parts.status != StatusCode::OK {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT * 64).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response body unreadable");
            return ApiError::from(crate::store::StoreError::unavailable(e)).into_response();
        }
    };
    let tag = etag(&bytes);
    if let Ok(v) = HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, v);
    }
    if if_none_match.is_some_and(|inm| matches_etag(&inm, &tag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A strong entity tag: the first 16 bytes of the body's SHA-256.
pub fn etag(body: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(body);
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` value (`*`, or a list of tags, weak or not)
/// names `tag` (RFC 9110 §13.1.2: weak comparison).
pub fn matches_etag(if_none_match: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(tag))
}

/// `GET /health`.
pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

use crate::error::Error;
use crate::receipt::{Receipt, Stored};
use crate::store::{StoreError, Table};
use crate::App;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::future::Future;

/// Runs a creating request under its `Idempotency-Key`, when it has one
/// (`crate::receipt`): the key is claimed first, so a retry while this
/// request runs gets 409; a key already used answers its stored response
/// (`Idempotent-Replayed: true`), or 422 when it was used for another route
/// or another body; the effect's transaction writes the response over the
/// claim; an error releases the key, so the client may retry it.
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
        if let Some(answer) = claim(table, r).await? {
            return Ok(answer);
        }
    }
    let outcome = run(receipt.clone()).await;
    match outcome {
        Ok(v) => {
            if let Some(r) = &receipt {
                // A request that succeeded without writing anything (its
                // effect was already there) keeps no claim.
                if !r.was_written() {
                    release(table, r).await;
                }
            }
            Ok((status, axum::Json(v)).into_response())
        }
        Err(Error::Replay) => {
            let Some(r) = &receipt else {
                return Err(Error::Replay.into());
            };
            match r.load(table).await? {
                Some(stored) => replay(r, stored),
                None => Err(Error::Replay.into()),
            }
        }
        Err(e) => {
            if let Some(r) = receipt.as_ref().filter(|r| !r.was_written()) {
                release(table, r).await;
            }
            Err(e.into())
        }
    }
}

/// Claims the key for this request (`None`: claimed, run it), or answers
/// what the key's item says: the stored response (a replay), 422 for
/// another request, 409 while the first one runs.
async fn claim<T: Table>(table: &T, r: &Receipt) -> Result<Option<Response>, ApiError> {
    for _ in 0..2 {
        match table.transact(vec![r.claim_write()]).await {
            Ok(()) => return Ok(None),
            Err(StoreError::ConditionFailed { .. }) => {
                if let Some(stored) = r.load(table).await? {
                    return replay(r, stored).map(Some);
                }
                // Freed just now (the first request failed): claim it again.
            }
            // A transaction in flight holds the item: the first request
            // with the key is committing its effect (DynamoDB's
            // TransactionConflict on the put).
            Err(StoreError::Conflict) => return Err(Error::KeyInUse.into()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::KeyInUse.into())
}

/// Frees this request's claim; if that fails the claim expires by itself
/// (`receipt::IN_FLIGHT_MS`).
async fn release<T: Table>(table: &T, r: &Receipt) {
    match table.transact(vec![r.release_write()]).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
        Err(e) => tracing::warn!(error = %e, "idempotency key not released; it expires by itself"),
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
    if let (Some(first), Some(now)) = (stored.fingerprint.as_deref(), r.fingerprint()) {
        if first != now {
            return Err(Error::invalid(
                "Idempotency-Key",
                "was already used with a different request body",
            )
            .into());
        }
    }
    if stored.running() {
        return Err(Error::KeyInUse.into());
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = (status, axum::Json(stored.body)).into_response();
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(res)
}

/// The fingerprint of a request body sent with an `Idempotency-Key`, for
/// the `IdempotencyKey` extractor (`crate::receipt::fingerprint`).
#[derive(Debug, Clone)]
pub struct BodyFingerprint(pub String);

/// Reads the body of a request that carries an `Idempotency-Key` (within
/// the body limit: 413 beyond it), puts its fingerprint in the request's
/// extensions, and passes the same body on.
pub async fn fingerprint_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !req.headers().contains_key("idempotency-key") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    parts
        .extensions
        .insert(BodyFingerprint(crate::receipt::fingerprint(&bytes)));
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
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
