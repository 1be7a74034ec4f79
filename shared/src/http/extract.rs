//! Extractors. Each turns a bad request into a 4xx `ApiError` naming the
//! field or header, never a panic or a 5xx.

use super::problem::ApiError;
use crate::auth::{parse_groups, Caller};
use crate::domain::MemberId;
use crate::receipt::{valid_key, Receipt};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Extensions;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Put in the request extensions by the local server (or `super::access`)
/// when a bearer token was present but did not verify, so the 401 can say
/// why.
#[derive(Debug, Clone)]
pub struct AuthFailure(pub String);

/// The claims of a token a function verified itself (`super::access`: a
/// public route, with no authorizer in front), as API Gateway passes them.
#[derive(Debug, Clone)]
pub struct VerifiedClaims(pub HashMap<String, String>);

/// A JSON body: 400 for malformed JSON or wrong types (naming the field),
/// 413 over the body limit.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    detail: "the request body could not be read".into(),
                    errors: vec![],
                }
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest {
                detail: "a JSON object body is required".into(),
                errors: vec![],
            });
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(JsonBody(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let message = clean_serde_message(&inner);
                if inner.is_syntax() || inner.is_eof() || path == "." {
                    Err(ApiError::BadRequest {
                        detail: format!("the body is not a valid JSON object: {message}"),
                        errors: vec![],
                    })
                } else {
                    Err(ApiError::bad_request(&path, message))
                }
            }
        }
    }
}

/// A JSON body that may be absent (an empty body is the default value).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v == "0");
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    detail: "the request body could not be read".into(),
                    errors: vec![],
                }
            }
        })?;
        if empty || bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        let req = Request::new(axum::body::Body::from(bytes));
        JsonBody::<T>::from_request(req, state)
            .await
            .map(|JsonBody(v)| OptionalJsonBody(v))
    }
}

/// serde's messages without the "at line X column Y" tail.
fn clean_serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn claims(ext: &Extensions) -> Option<&HashMap<String, String>> {
    let authorizer = match ext.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| &j.claims),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    authorizer
        .filter(|c| !c.is_empty())
        .or_else(|| ext.get::<VerifiedClaims>().map(|v| &v.0))
}

/// The caller whose verified claims came with the request, if any.
pub(crate) fn caller_from(ext: &Extensions) -> Result<Option<Caller>, ApiError> {
    let Some(claims) = claims(ext) else {
        return Ok(None);
    };
    let Some(sub) = claims.get("sub") else {
        return Ok(None);
    };
    let id = MemberId::parse(sub).ok_or_else(|| {
        ApiError::Unauthorized("the token's subject is not a supported member id".into())
    })?;
    let groups = claims
        .get("groups")
        .or_else(|| claims.get("cognito:groups"))
        .map(|g| parse_groups(g))
        .unwrap_or_default();
    Ok(Some(Caller {
        id,
        email: claims.get("email").cloned(),
        groups,
        email_verified: claims
            .get("email_verified")
            .and_then(|v| crate::auth::parse_verified(v)),
    }))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match caller_from(&parts.extensions)? {
            Some(c) => Ok(c),
            None => Err(ApiError::Unauthorized(
                match parts.extensions.get::<AuthFailure>() {
                    Some(f) => f.0.clone(),
                    None => "a bearer token is required".into(),
                },
            )),
        }
    }
}

/// The caller when a valid token came with the request (public routes).
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(MaybeCaller(caller_from(&parts.extensions).ok().flatten()))
    }
}

/// The `Idempotency-Key` header, when sent, and the fingerprint of the
/// request's body (`super::fingerprint_body`).
pub struct IdempotencyKey(pub Option<String>, pub Option<String>);

impl IdempotencyKey {
    /// The receipt for this caller and request, when a key was sent: the
    /// key's scope is the member and the route (`METHOD path`).
    pub fn receipt(&self, caller: &Caller, request: &str) -> Option<Receipt> {
        self.0.as_deref().map(|k| {
            Receipt::new(&caller.id, k, request.to_owned()).with_fingerprint(self.1.clone())
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let fingerprint = parts
            .extensions
            .get::<super::BodyFingerprint>()
            .map(|f| f.0.clone());
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None, None)),
            Some(v) => match v.to_str() {
                Ok(k) if valid_key(k) => Ok(IdempotencyKey(Some(k.to_owned()), fingerprint)),
                _ => Err(ApiError::bad_request(
                    "Idempotency-Key",
                    "must be 1 to 128 of A-Z a-z 0-9 - _ . :",
                )),
            },
        }
    }
}

/// `?limit=&cursor=` plus any other query parameters, checked by the route.
pub struct ListParams {
    pub limit: u32,
    pub cursor: Option<String>,
    pub rest: HashMap<String, String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(q)?;
        let mut rest = HashMap::new();
        for (k, v) in pairs {
            if rest.insert(k.clone(), v).is_some() {
                return Err(ApiError::bad_request(&k, "is given more than once"));
            }
        }
        let limit = match rest.remove("limit") {
            None => 20,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(
                        "limit",
                        "must be a whole number from 1 to 100",
                    ))
                }
            },
        };
        let cursor = rest.remove("cursor").filter(|c| !c.is_empty());
        Ok(ListParams {
            limit,
            cursor,
            rest,
        })
    }
}

impl ListParams {
    /// 400 naming the first query parameter the route did not take (its
    /// own ones removed from `rest` before): a list takes only `limit`,
    /// `cursor` and what it documents.
    pub fn no_others(&self) -> Result<(), ApiError> {
        match self.rest.keys().next() {
            Some(other) => Err(ApiError::bad_request(
                other,
                "is not a parameter of this list",
            )),
            None => Ok(()),
        }
    }
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ApiError::bad_request("query", "is not a valid query string"))?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|_| ApiError::bad_request("query", "is not a valid query string"))
}
