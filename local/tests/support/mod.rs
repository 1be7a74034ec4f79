//! Helpers shared by the local server's router tests (each test binary
//! includes this module with `mod support;`).

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Sends one request through the router; the status and the JSON body
/// (`null` when the body is not JSON). The response is checked against
/// docs/openapi.json (`community::testing::contract`).
pub async fn send(
    r: &Router,
    method: &str,
    path: &str,
    tok: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = tok {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .expect("request");
    let res = r.clone().oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    community::testing::contract::assert_documented(method, path, status, ct.as_deref(), &bytes);
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
