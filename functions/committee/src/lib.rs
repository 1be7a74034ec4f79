//! `committee`: the feasibility committee's routes (`committee` group).
//! `GET /review-queue` (under review, or `state=unanswered`), `POST /ideas/{id}/decision`,
//! `POST /ideas/{id}/progress`, `POST /ideas/{id}/answer` (also `moderator`).

mod handler;

use axum::routing::{get, post};
use axum::Router;
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/review-queue", get(handler::queue::<T>))
        .route("/ideas/{id}/decision", post(handler::decide::<T>))
        .route("/ideas/{id}/progress", post(handler::progress::<T>))
        .route("/ideas/{id}/answer", post(handler::answer::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
