//! Local stand-in for API Gateway's JWT authorizer: verifies HS256 bearer
//! tokens and puts their claims in the request context exactly where the
//! functions read them on AWS (`requestContext.authorizer.jwt.claims`, every
//! value a string, arrays rendered as `[a b]`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use community::http::AuthFailure;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::request::RequestContext;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub const DEFAULT_SECRET: &str = "local-dev-secret";

#[derive(Clone)]
pub struct Verifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl Verifier {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Verifier {
            key: Arc::new(DecodingKey::from_secret(secret.as_bytes())),
            validation: Arc::new(validation),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| format!("the bearer token is not valid: {e}"))
    }
}

fn context(req: &Request, claims: Option<&Map<String, Value>>) -> Option<RequestContext> {
    let now = time::OffsetDateTime::now_utc();
    let mut ctx = json!({
        "routeKey": "$default",
        "accountId": "local",
        "stage": "$default",
        "requestId": ulid::Ulid::new().to_string(),
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "time": community::domain::format_ts(now),
        "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        "http": {
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
        },
    });
    if let Some(c) = claims {
        // Claim values as API Gateway passes them to a function: strings.
        let strs: Map<String, Value> = community::tokens::claim_strings(c)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        ctx["authorizer"] = json!({"jwt": {"claims": strs, "scopes": null}});
    }
    serde_json::from_value(ctx).ok()
}

/// Middleware: verify the bearer token (when one is sent) and fill the
/// request context. Public routes work with or without a token; routes that
/// need a caller answer 401 with the reason.
pub async fn authorize(State(v): State<Verifier>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|h| h.to_str().map(str::to_owned));
    let claims = match header {
        None => None,
        Some(Err(_)) => {
            req.extensions_mut().insert(AuthFailure(
                "the Authorization header is not valid text".into(),
            ));
            None
        }
        Some(Ok(h)) => match h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        {
            None => {
                req.extensions_mut().insert(AuthFailure(
                    "the Authorization header must be 'Bearer <token>'".into(),
                ));
                None
            }
            Some(t) => match v.verify(t.trim()) {
                Ok(c) => Some(c),
                Err(e) => {
                    req.extensions_mut().insert(AuthFailure(e));
                    None
                }
            },
        },
    };
    if let Some(ctx) = context(&req, claims.as_ref()) {
        req.extensions_mut().insert(ctx);
    }
    next.run(req).await
}

/// Signs a local token (the `token` command).
pub fn sign(
    secret: &str,
    sub: &str,
    email: Option<&str>,
    groups: &[String],
    ttl_secs: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "sub": sub,
        "iss": "community-local",
        "iat": now,
        "exp": now + ttl_secs,
        "email_verified": true,
    });
    if let Some(e) = email {
        claims["email"] = json!(e);
    }
    if !groups.is_empty() {
        claims["groups"] = json!(groups);
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}
