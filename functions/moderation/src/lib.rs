//! `moderation`: reports and moderation. `POST /reports` (members),
//! `GET /moderation/queue`, `POST /moderation/{target_type}/{id}` and
//! `POST /ideas/{id}/merge` (moderator group).

mod handler;

use axum::routing::{get, post};
use axum::Router;
use community::store::Table;
use community::App;

/// The routes, for mounting next to other functions' routes (local server).
pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/reports", post(handler::report::<T>))
        .route("/moderation/queue", get(handler::queue::<T>))
        .route("/moderation/{target_type}/{id}", post(handler::decide::<T>))
        .route("/ideas/{id}/merge", post(handler::merge::<T>))
        .with_state(app)
}

/// The function's complete Router (what Lambda runs).
pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
