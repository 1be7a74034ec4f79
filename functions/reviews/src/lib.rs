//! `reviews`: product reviews and the "Testé par la Communauté" label.
//! `POST /products/{ean}/reviews`, `GET /products/{ean}/reviews`,
//! `GET /products/{ean}/label` (cacheable: product pages call it on every view).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use community::auth::Caller;
use community::http::{cacheable, with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams};
use community::products::{self, ReviewPage, ReviewRequest};
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route(
            "/products/{ean}/reviews",
            get(list::<T>).post(post_review::<T>),
        )
        .route("/products/{ean}/label", get(label::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), ean = %ean))]
async fn post_review<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(ean): Path<String>,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<ReviewRequest>,
) -> Result<Response, ApiError> {
    let receipt = idem.receipt(&caller, &format!("POST /products/{ean}/reviews"));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        products::review(&app, &caller, &ean, req, r.as_ref()).await
    })
    .await
}

async fn list<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(ean): Path<String>,
    p: ListParams,
) -> Result<Json<ReviewPage>, ApiError> {
    Ok(Json(
        products::reviews(&app, &ean, p.limit, p.cursor).await?,
    ))
}

async fn label<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(ean): Path<String>,
) -> Result<Response, ApiError> {
    Ok(cacheable(300, Json(products::label(&app, &ean).await?)))
}
