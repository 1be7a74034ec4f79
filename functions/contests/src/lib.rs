//! `contests`: contests and product-testing campaigns.
//! `GET /contests`, `GET /contests/{id}`, `POST /contests/{id}/entries`,
//! `POST /contests/{id}/draw` (marketing), `GET /product-tests`,
//! `GET /product-tests/{id}`, `POST /product-tests/{id}/applications`,
//! `POST /product-tests/{id}/selection` (marketing),
//! `GET /contests/{id}/draw/entries`, `GET /product-tests/{id}/selection/entries`
//! (the pages of a draw's entry list), `GET /contests/{id}/results` (a
//! survey contest's answers, aggregated: marketing or the contest's brand).

mod handler;

use axum::routing::{get, post};
use axum::Router;
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/contests", get(handler::list::<T>))
        .route("/contests/{id}", get(handler::get_one::<T>))
        .route("/contests/{id}/entries", post(handler::enter::<T>))
        .route("/contests/{id}/draw", post(handler::draw::<T>))
        .route("/contests/{id}/results", get(handler::results::<T>))
        .route(
            "/contests/{id}/draw/entries",
            get(handler::draw_entries::<T>),
        )
        .route("/product-tests", get(handler::list_tests::<T>))
        .route("/product-tests/{id}", get(handler::get_test::<T>))
        .route(
            "/product-tests/{id}/applications",
            post(handler::apply::<T>),
        )
        .route("/product-tests/{id}/selection", post(handler::select::<T>))
        .route(
            "/product-tests/{id}/selection/entries",
            get(handler::selection_entries::<T>),
        )
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
