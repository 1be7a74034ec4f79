//! Who may read, decided once for every route (`super::finish`):
//!
//! 1. the settings are refreshed when older than their TTL (`crate::live`),
//!    so a `launch public` or a changed campaign reaches every function
//!    within it;
//! 2. a bearer token that reached a public route (no authorizer in front)
//!    is verified by the function (`crate::tokens`) and its claims put where
//!    the authorizer's would be; an invalid one is remembered for the 401
//!    of a route that needs a caller, and never makes a public read fail;
//! 3. during the soft launch (API.md v1.1), every read except
//!    [`open_during_soft_launch`] needs a signed-up member's token: 401
//!    without one, 403 for a token of someone who is not a member (staff —
//!    committee, moderators, marketing — read without a member profile).

use super::extract::{caller_from, AuthFailure, VerifiedClaims};
use super::problem::ApiError;
use crate::auth::{Caller, COMMITTEE, MARKETING, MODERATOR};
use crate::error::Error;
use crate::store::Table;
use crate::tokens::TokenError;
use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Reads open to anyone during the soft launch: what a visitor needs
/// before signing up, the API's documentation, the links in mails (signed
/// tokens of their own: an unsubscribe link must always work), and the
/// member's own data (those routes need a token and answer 404 to someone
/// not signed up, which is how a frontend learns to show the sign-up).
pub fn open_during_soft_launch(path: &str) -> bool {
    matches!(path, "/health" | "/community" | "/openapi.json" | "/docs")
        || path == "/members/me"
        || path.starts_with("/members/me/")
        || path.starts_with("/r/")
        || path.starts_with("/unsubscribe/")
        || path.starts_with("/local/")
}

fn bearer(req: &Request) -> Option<Result<String, &'static str>> {
    let h = req.headers().get(header::AUTHORIZATION)?;
    let Ok(h) = h.to_str() else {
        return Some(Err("the Authorization header is not valid text"));
    };
    Some(
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned())
            .ok_or("the Authorization header must be 'Bearer <token>'"),
    )
}

pub async fn access<T: Table + Clone>(
    State(app): State<App<T>>,
    mut req: Request,
    next: Next,
) -> Response {
    app.refresh_or_keep().await;
    let ext = req.extensions();
    let verified_upstream =
        caller_from(ext).ok().flatten().is_some() || ext.get::<AuthFailure>().is_some();
    if !verified_upstream {
        if let (Some(v), Some(token)) = (app.verifier.clone(), bearer(&req)) {
            match token {
                Err(why) => {
                    req.extensions_mut().insert(AuthFailure(why.into()));
                }
                Ok(t) => match v.verify(&t).await {
                    Ok(claims) => {
                        req.extensions_mut().insert(VerifiedClaims(claims));
                    }
                    Err(TokenError::Unavailable) => {
                        return ApiError::from(Error::KeysUnavailable).into_response();
                    }
                    Err(e) => {
                        req.extensions_mut().insert(AuthFailure(e.to_string()));
                    }
                },
            }
        }
    }
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    if read && app.settings().invite_only && !open_during_soft_launch(req.uri().path()) {
        let caller = match caller_from(req.extensions()) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let why = req.extensions().get::<AuthFailure>().map(|f| f.0.clone());
                return ApiError::Unauthorized(why.unwrap_or_else(|| {
                    "the community is open to invited members only for now: sign in".into()
                }))
                .into_response();
            }
            Err(e) => return e.into_response(),
        };
        if let Err(e) = member_or_staff(&app, &caller).await {
            return e.into_response();
        }
    }
    next.run(req).await
}

async fn member_or_staff<T: Table>(app: &App<T>, c: &Caller) -> Result<(), ApiError> {
    if [COMMITTEE, MODERATOR, MARKETING]
        .iter()
        .any(|g| c.in_group(g))
    {
        return Ok(());
    }
    // Eventually consistent (0.5 RCU): a member who signed up a second ago
    // may be refused once, and retries.
    match app
        .table
        .get(&crate::members::key(&c.id), false)
        .await
        .map_err(Error::from)?
    {
        Some(profile) if !crate::members::is_closed(&profile) => Ok(()),
        _ => Err(Error::Forbidden(
            "the community is open to invited members only for now: sign up with your invite code first"
                .into(),
        )
        .into()),
    }
}
