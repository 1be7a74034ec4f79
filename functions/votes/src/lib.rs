//! `votes`: `PUT /ideas/{id}/vote` and `DELETE /ideas/{id}/vote`;
//! `PUT /ideas/{id}/follow` and `DELETE /ideas/{id}/follow`.

mod handler;

use axum::routing::put;
use axum::Router;
use community::store::Table;
use community::App;

/// The routes, for mounting next to other functions' routes (local server).
pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route(
            "/ideas/{id}/vote",
            put(handler::cast::<T>).delete(handler::withdraw::<T>),
        )
        .route(
            "/ideas/{id}/follow",
            put(handler::follow::<T>).delete(handler::unfollow::<T>),
        )
        .with_state(app)
}

/// The function's complete Router (what Lambda runs).
pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
