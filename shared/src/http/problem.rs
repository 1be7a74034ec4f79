//! RFC 9457 problem details. Every error response goes through `ApiError`,
//! the single mapping from errors to HTTP. Bodies never carry Debug output.

use crate::domain::FieldError;
use crate::error::Error;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, wrong types, bad headers or parameters (400).
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// No valid token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Body over the limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Domain(#[from] Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Domain(Error::Store(e))
    }
}

impl ApiError {
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::BadRequest {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

fn problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: String,
    errors: Option<&[FieldError]>,
) -> Response {
    let body = Problem {
        kind,
        title,
        status: status.as_u16(),
        detail,
        errors,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut res = (status, bytes).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        match self {
            ApiError::BadRequest { detail, errors } => problem(
                S::BAD_REQUEST,
                "/problems/bad-request",
                "The request is malformed",
                detail,
                (!errors.is_empty()).then_some(&errors[..]),
            ),
            ApiError::Unauthorized(d) => {
                let mut r = problem(
                    S::UNAUTHORIZED,
                    "/problems/unauthorized",
                    "Authentication required",
                    d,
                    None,
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            ApiError::PayloadTooLarge => problem(
                S::PAYLOAD_TOO_LARGE,
                "/problems/payload-too-large",
                "Request body too large",
                format!("request bodies are limited to {} bytes", super::BODY_LIMIT),
                None,
            ),
            ApiError::NoRoute => problem(
                S::NOT_FOUND,
                "/problems/no-route",
                "Not found",
                "no such route".into(),
                None,
            ),
            ApiError::MethodNotAllowed => problem(
                S::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
                "this route does not take this method".into(),
                None,
            ),
            ApiError::Domain(e) => match e {
                Error::Invalid(errors) => problem(
                    S::UNPROCESSABLE_ENTITY,
                    "/problems/validation",
                    "Some fields are invalid",
                    summary(&errors),
                    Some(&errors),
                ),
                Error::NotFound(what) => problem(
                    S::NOT_FOUND,
                    "/problems/not-found",
                    "Not found",
                    format!("no such {what}"),
                    None,
                ),
                Error::Forbidden(d) => {
                    problem(S::FORBIDDEN, "/problems/forbidden", "Not allowed", d, None)
                }
                Error::Conflict(d) => {
                    problem(S::CONFLICT, "/problems/conflict", "Conflict", d, None)
                }
                Error::KeyInUse => {
                    let fe = FieldError::new(
                        "Idempotency-Key",
                        "a request with this key is still being processed; retry it in a moment",
                    );
                    let mut r = problem(
                        S::CONFLICT,
                        "/problems/conflict",
                        "Conflict",
                        format!("{}: {}", fe.field, fe.message),
                        Some(std::slice::from_ref(&fe)),
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
                Error::ConflictOn(fe) => problem(
                    S::CONFLICT,
                    "/problems/conflict",
                    "Conflict",
                    format!("{}: {}", fe.field, fe.message),
                    Some(std::slice::from_ref(&fe)),
                ),
                Error::RateLimited { retry_after } => {
                    let mut r = problem(
                        S::TOO_MANY_REQUESTS,
                        "/problems/rate-limited",
                        "Too many requests",
                        format!(
                            "you have reached the limit for this action; retry in {retry_after} seconds"
                        ),
                        None,
                    );
                    if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    r
                }
                Error::Busy | Error::Store(StoreError::Throttled | StoreError::Conflict) => {
                    let mut r = problem(
                        S::SERVICE_UNAVAILABLE,
                        "/problems/busy",
                        "Busy",
                        "too many requests at once on this object; retry in a moment".into(),
                        None,
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
                Error::KeysUnavailable => {
                    let mut r = problem(
                        S::SERVICE_UNAVAILABLE,
                        "/problems/keys-unavailable",
                        "Sign-in cannot be checked right now",
                        "the keys that verify your sign-in could not be fetched from the identity provider; your token may be fine: retry in a few seconds".into(),
                        None,
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    r
                }
                Error::Replay | Error::Store(_) => {
                    let source = std::error::Error::source(&e).map(|s| format!("{s:?}"));
                    tracing::error!(error = %crate::observe::redact(&e.to_string()), source = %crate::observe::redact(source.as_deref().unwrap_or("")), "internal error");
                    problem(
                        S::INTERNAL_SERVER_ERROR,
                        "/problems/internal",
                        "Internal error",
                        "something went wrong on our side; it has been logged".into(),
                        None,
                    )
                }
            },
        }
    }
}

pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
