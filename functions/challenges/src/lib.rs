//! `challenges`: co-creation challenges (défis).
//! `GET /challenges`, `GET /challenges/{id}`, `POST /challenges/{id}/proposals`,
//! `GET /challenges/{id}/proposals?sort=new|top`, `POST /challenges/{id}/results`
//! (marketing, or the sponsoring brand). Proposals are ideas, voted with
//! `PUT /ideas/{id}/vote` (the `votes` function).

mod handler;

use axum::routing::{get, post};
use axum::Router;
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/challenges", get(handler::list::<T>))
        .route("/challenges/{id}", get(handler::get_one::<T>))
        .route(
            "/challenges/{id}/proposals",
            get(handler::proposals::<T>).post(handler::propose::<T>),
        )
        .route("/challenges/{id}/results", post(handler::results::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
