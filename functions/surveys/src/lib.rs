//! `surveys`: surveys and panels (enquêtes).
//! `GET /surveys` (the open surveys whose audience holds the caller),
//! `GET /surveys/{id}`, `POST /surveys/{id}/responses`,
//! `GET /surveys/{id}/results` (marketing or the survey's brand; CSV of the
//! responses, pseudonymised, for marketing with `Accept: text/csv`).

mod handler;

use axum::routing::{get, post};
use axum::Router;
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/surveys", get(handler::list::<T>))
        .route("/surveys/{id}", get(handler::get_one::<T>))
        .route("/surveys/{id}/responses", post(handler::respond::<T>))
        .route("/surveys/{id}/results", get(handler::results::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
