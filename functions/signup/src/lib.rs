//! `signup`: becoming a member and managing one's profile.
//! `POST /members`, `GET /members/me`, `PATCH /members/me`,
//! `GET /members/me/points`, `GET /members/me/contributions`,
//! `POST /members/me/redemptions`, `GET /members/me/redemptions`,
//! `GET /members/me/following`, `GET /members/me/votes`,
//! `GET /members/me/export` and `DELETE /members/me` (GDPR).

mod handler;

use axum::routing::{get, post};
use axum::Router;
use community::store::Table;
use community::App;

/// The routes, for mounting next to other functions' routes (local server).
pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/members", post(handler::sign_up::<T>))
        .route(
            "/members/me",
            get(handler::me::<T>)
                .patch(handler::update::<T>)
                .delete(handler::erase::<T>),
        )
        .route("/members/me/export", get(handler::export::<T>))
        .route("/members/me/points", get(handler::points::<T>))
        .route("/members/me/following", get(handler::following::<T>))
        .route("/members/me/votes", get(handler::votes::<T>))
        .route(
            "/members/me/contributions",
            get(handler::contributions::<T>),
        )
        .route(
            "/members/me/redemptions",
            get(handler::redemptions::<T>).post(handler::redeem::<T>),
        )
        .with_state(app)
}

/// The function's complete Router, without an identity provider (tests,
/// and the local server, which signs its own tokens).
pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}

/// What Lambda runs: the Router, with the identity provider whose sign-in
/// an erasure deletes (the Cognito user pool).
pub fn router_with_directory<T: Table + Clone>(
    app: App<T>,
    directory: std::sync::Arc<dyn community::identity::Directory>,
) -> Router {
    community::http::finish(routes(app.clone()).layer(axum::Extension(directory)), &app)
}
