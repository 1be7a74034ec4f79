//! `links`: the public links carried by community mails.
//! `GET /r/{token}` records a unique click and redirects;
//! `GET /unsubscribe/{token}` shows a confirmation page and changes nothing
//! (mail security scanners follow the links of a mail), `POST` withdraws
//! email consent (the page's button, or a mail client's one click, RFC 8058
//! `List-Unsubscribe-Post`); `GET /mails/{id}/stats` (marketing)
//! reports a mail's sent count, unique clicks and unique click rate.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use community::http::ApiError;
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/r/{token}", get(click::<T>))
        .route(
            "/unsubscribe/{token}",
            get(confirm_unsubscribe::<T>).post(unsubscribe::<T>),
        )
        .route("/mails/{id}/stats", get(stats::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}

async fn click<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let url = community::mail::click(&app, &token).await?;
    Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response())
}

async fn confirm_unsubscribe<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    community::mail::unsubscribe_member(&app.settings(), &token)?;
    // The form posts to this same address (`action=""`), whatever prefix
    // the API is served under.
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Html(
            "<!doctype html><html lang=\"fr\"><meta charset=\"utf-8\"><title>Désinscription</title>\
             <p>Vous ne souhaitez plus recevoir les e-mails de la communauté ?</p>\
             <form method=\"post\" action=\"\"><button type=\"submit\">Me désinscrire</button></form>\
             <p>Les messages liés à vos propres idées continueront de vous parvenir.</p></html>",
        ),
    )
        .into_response())
}

async fn unsubscribe<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    community::mail::unsubscribe(&app, &token).await?;
    Ok(Html(
        "<!doctype html><html lang=\"fr\"><meta charset=\"utf-8\"><title>Désinscription</title>\
         <p>C'est noté : vous ne recevrez plus les e-mails de la communauté. \
         Les messages liés à vos propres idées continueront de vous parvenir.</p></html>",
    )
    .into_response())
}

async fn stats<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: community::auth::Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if !caller.in_group(community::auth::MARKETING) {
        return Err(community::error::Error::Forbidden(
            "only marketing may read mail statistics".into(),
        )
        .into());
    }
    let ok = !id.is_empty()
        && id.len() <= 80
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(community::error::Error::NotFound("mail").into());
    }
    Ok(axum::Json(community::mail::stats(&app, &id).await?))
}
