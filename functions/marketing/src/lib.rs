//! `marketing`: the marketing group's reading routes.
//! `GET /insights` (aggregates maintained by the insights consumer) and
//! `GET /ambassadors` (the last scheduled run's ambassadors, with the
//! breakdown of their score), and the brand partners' report
//! (`GET /brands/me/report`: a `brand:<slug>` token's own campaigns and
//! their figures, read from the same aggregates; `community::brands`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use community::auth::Caller;
use community::http::extract::ListParams;
use community::http::ApiError;
use community::store::Table;
use community::App;
use serde_json::Value;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/insights", get(insights::<T>))
        .route("/ambassadors", get(ambassadors::<T>))
        .route("/brands/me/report", get(brand_report::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}

async fn insights<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(community::insights::read(&app, &caller).await?))
}

async fn brand_report<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(community::brands::report(&app, &caller).await?))
}

async fn ambassadors<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<community::ideas::ListPage<community::ambassadors::AmbassadorView>>, ApiError> {
    params.no_others()?;
    Ok(Json(
        community::ambassadors::list(&app, &caller, params.limit, params.cursor).await?,
    ))
}
