//! `ideas`: the idea box. `GET /themes`, `GET /community`, `GET /ideas`, `POST /ideas`,
//! `GET /ideas?q=` (search), `GET /ideas/similar`, `GET /ideas/{id}` (and `GET /health`); comments: `GET`/`POST
//! /ideas/{id}/comments`, `GET /comments/{id}`.

mod handler;

use axum::routing::get;
use axum::Router;
use community::store::Table;
use community::App;

/// The routes, for mounting next to other functions' routes (local server).
pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/health", get(community::http::health))
        .route("/themes", get(handler::themes::<T>))
        .route("/community", get(handler::community::<T>))
        .route("/ideas", get(handler::list::<T>).post(handler::create::<T>))
        .route("/ideas/similar", get(handler::similar::<T>))
        .route("/ideas/{id}", get(handler::get_one::<T>))
        .route(
            "/ideas/{id}/comments",
            get(handler::list_comments::<T>).post(handler::post_comment::<T>),
        )
        .route("/comments/{id}", get(handler::get_comment::<T>))
        .with_state(app)
}

/// The function's complete Router (what Lambda runs).
pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
