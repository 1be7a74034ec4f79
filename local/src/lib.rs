//! The local server: every function's routes on one address, over the
//! durable embedded store, with the same request context API Gateway gives.

pub mod auth;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use community::store::Table;
use community::App;

pub const OPENAPI: &str = include_str!("../../docs/openapi.json");
const DOCS_PAGE: &str = include_str!("docs.html");

/// Every HTTP route of every function, plus the local-only pages.
pub fn app<T: Table + Clone>(app: App<T>, verifier: auth::Verifier) -> Router {
    let routes = Router::new()
        .merge(ideas::routes(app.clone()))
        .merge(signup::routes(app.clone()))
        .merge(votes::routes(app))
        .route(
            "/openapi.json",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }));
    community::http::finish(routes).layer(axum::middleware::from_fn_with_state(
        verifier,
        auth::authorize,
    ))
}
