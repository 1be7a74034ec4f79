//! Tokens that reach a function without API Gateway's authorizer.
//!
//! The member routes are behind API Gateway's JWT authorizer, which verifies
//! the token and hands the function its claims. The public routes have no
//! authorizer (an anonymous visitor must get through), yet a token sent to
//! them matters: during the soft launch every read needs a member's token,
//! and `GET /ideas/{id}` tells a member whether they voted. So a function
//! verifies such a token itself, as the authorizer would: signature against
//! the user pool's keys (its JWKS, fetched on the first token and cached),
//! issuer, expiry, and audience (`aud` of an ID token or `client_id` of an
//! access token). On the local server, the local authorizer
//! (local/src/auth.rs) has already done this for every route.
//!
//! Settings (deployed functions, read by `crate::lambda::init`):
//! `COMMUNITY_JWT_ISSUER` (the user pool's issuer URL; its keys are at
//! `{issuer}/.well-known/jwks.json`) and `COMMUNITY_JWT_AUDIENCE` (the app
//! client ids, comma-separated), the same as API Gateway's authorizer.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long fetched keys are used before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// A token naming a key we do not have refetches the keys, at most this
/// often (a token signed by a rotated-in key; never a flood of fetches).
const REFETCH_AFTER: Duration = Duration::from_secs(60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Claims as API Gateway passes them to a function: every value a string,
/// arrays rendered `[a b]`.
pub fn claim_strings(claims: &Map<String, Value>) -> HashMap<String, String> {
    fn s(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => format!("[{}]", a.iter().map(s).collect::<Vec<_>>().join(" ")),
            other => other.to_string(),
        }
    }
    claims.iter().map(|(k, v)| (k.clone(), s(v))).collect()
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

struct Jwks {
    url: String,
    client: HttpClient,
    keys: RwLock<Option<(Arc<JwkSet>, Instant)>>,
    fetching: tokio::sync::Mutex<()>,
}

enum Keys {
    /// HS256 with a shared secret (tests; the local server's tokens).
    Secret(DecodingKey),
    Jwks(Box<Jwks>),
}

pub struct TokenVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Vec<String>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not one we accept (401).
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched: the token may be fine (503).
    #[error("the token could not be checked right now")]
    Unavailable,
}

fn invalid(m: impl Into<String>) -> TokenError {
    TokenError::Invalid(m.into())
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0} is set but {1} is not")]
    Missing(&'static str, &'static str),
    #[error("no TLS roots for the JWKS client: {0}")]
    Tls(std::io::Error),
}

impl TokenVerifier {
    /// HS256 tokens signed with `secret` (tests, local tools).
    pub fn hs256(secret: &str) -> TokenVerifier {
        TokenVerifier {
            keys: Keys::Secret(DecodingKey::from_secret(secret.as_bytes())),
            issuer: None,
            audience: Vec::new(),
        }
    }

    /// RS256 tokens of `issuer`, whose keys are at `jwks_url`, for one of
    /// `audience`.
    pub fn jwks(
        jwks_url: &str,
        issuer: &str,
        audience: Vec<String>,
    ) -> Result<TokenVerifier, SetupError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(SetupError::Tls)?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(TokenVerifier {
            keys: Keys::Jwks(Box::new(Jwks {
                url: jwks_url.to_owned(),
                client,
                keys: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(()),
            })),
            issuer: Some(issuer.trim_end_matches('/').to_owned()),
            audience,
        })
    }

    /// For the user pool `issuer` (its keys at
    /// `{issuer}/.well-known/jwks.json`) and the app client ids of
    /// `audience` (comma-separated): the deployed functions'
    /// `COMMUNITY_JWT_ISSUER` and `COMMUNITY_JWT_AUDIENCE`. None when no
    /// issuer is set.
    pub fn for_issuer(
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Option<TokenVerifier>, SetupError> {
        let Some(issuer) = issuer.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let audience: Vec<String> = audience
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if audience.is_empty() {
            return Err(SetupError::Missing(
                "COMMUNITY_JWT_ISSUER",
                "COMMUNITY_JWT_AUDIENCE",
            ));
        }
        let issuer = issuer.trim_end_matches('/');
        Self::jwks(&format!("{issuer}/.well-known/jwks.json"), issuer, audience).map(Some)
    }

    /// The token's claims (as API Gateway passes them), or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        let header = decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let (key, alg) = match &self.keys {
            Keys::Secret(k) => (k.clone(), Algorithm::HS256),
            Keys::Jwks(j) => {
                if header.alg != Algorithm::RS256 {
                    return Err(invalid("it must be signed with RS256"));
                }
                let kid = header.kid.ok_or_else(|| invalid("it names no key (kid)"))?;
                (j.key(&kid).await?, Algorithm::RS256)
            }
        };
        let mut v = Validation::new(alg);
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        let claims = decode::<Map<String, Value>>(token, &key, &v)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        if !self.audience.is_empty() && !self.for_us(&claims) {
            return Err(invalid("it was issued for another client"));
        }
        Ok(claim_strings(&claims))
    }

    /// API Gateway's audience rule: `aud` (an ID token) or `client_id` (an
    /// access token) names one of the audience.
    fn for_us(&self, claims: &Map<String, Value>) -> bool {
        let named = |v: Option<&Value>| match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        named(claims.get("aud"))
            .into_iter()
            .chain(named(claims.get("client_id")))
            .any(|a| self.audience.contains(&a))
    }
}

impl Jwks {
    fn cached(&self) -> Option<(Arc<JwkSet>, Instant)> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let unknown = || invalid(format!("unknown signing key {kid}"));
        let find = |set: &JwkSet| {
            set.find(kid).map(|jwk| {
                DecodingKey::from_jwk(jwk)
                    .map_err(|e| invalid(format!("the signing key {kid} is unusable: {e}")))
            })
        };
        if let Some((set, at)) = self.cached() {
            if at.elapsed() < KEYS_TTL {
                if let Some(k) = find(&set) {
                    return k;
                }
                if at.elapsed() < REFETCH_AFTER {
                    return Err(unknown());
                }
            }
        }
        let _one = self.fetching.lock().await;
        // Fetched by another request meanwhile?
        if let Some((set, at)) = self.cached() {
            if at.elapsed() < REFETCH_AFTER {
                return find(&set).unwrap_or_else(|| Err(unknown()));
            }
        }
        let set = Arc::new(self.fetch().await?);
        let found = find(&set);
        match self.keys.write() {
            Ok(mut k) => *k = Some((set, Instant::now())),
            Err(p) => *p.into_inner() = Some((set, Instant::now())),
        }
        found.unwrap_or_else(|| Err(unknown()))
    }

    async fn fetch(&self) -> Result<JwkSet, TokenError> {
        use http_body_util::BodyExt;
        let unavailable = |e: String| {
            tracing::warn!(url = %self.url, error = %e, "the token signing keys could not be fetched");
            TokenError::Unavailable
        };
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|_| unavailable("bad JWKS URL".into()))?;
        let res = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(uri))
            .await
            .map_err(|_| unavailable("timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(unavailable(format!("HTTP {}", res.status())));
        }
        let body = tokio::time::timeout(FETCH_TIMEOUT, res.into_body().collect())
            .await
            .map_err(|_| unavailable("timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("not a JWKS: {e}")))
    }
}
