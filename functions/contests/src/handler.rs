use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use community::auth::Caller;
use community::campaigns::valid_id;
use community::contests::{self, ContestView, EntryRequest};
use community::error::Error;
use community::http::{
    cacheable, with_receipt, ApiError, IdempotencyKey, ListParams, OptionalJsonBody,
};
use community::products::{self, ApplicationRequest, ProductTestView};
use community::store::Table;
use community::App;
use serde_json::Value;

fn id_of(id: &str, what: &'static str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Error::NotFound(what).into())
    }
}

pub async fn list<T: Table + Clone>(
    State(app): State<App<T>>,
    p: ListParams,
) -> Result<Response, ApiError> {
    Ok(cacheable(
        30,
        Json(contests::list(&app, p.limit, p.cursor).await?),
    ))
}

pub async fn get_one<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
) -> Result<Json<ContestView>, ApiError> {
    id_of(&id, "contest")?;
    Ok(Json(contests::get(&app, &id).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), contest = %id))]
pub async fn enter<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    idem: IdempotencyKey,
    OptionalJsonBody(req): OptionalJsonBody<EntryRequest>,
) -> Result<Response, ApiError> {
    id_of(&id, "contest")?;
    let receipt = idem.receipt(&caller, &format!("POST /contests/{id}/entries"));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        contests::enter(&app, &caller, &id, req, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), contest = %id))]
pub async fn draw<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    id_of(&id, "contest")?;
    Ok(Json(contests::run_draw(&app, &caller, &id).await?))
}

pub async fn results<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    id_of(&id, "contest")?;
    Ok(Json(contests::results(&app, &caller, &id).await?))
}

pub async fn list_tests<T: Table + Clone>(
    State(app): State<App<T>>,
    p: ListParams,
) -> Result<Response, ApiError> {
    Ok(cacheable(
        30,
        Json(products::list(&app, p.limit, p.cursor).await?),
    ))
}

pub async fn get_test<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
) -> Result<Json<ProductTestView>, ApiError> {
    id_of(&id, "product test")?;
    Ok(Json(products::get(&app, &id).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), test = %id))]
pub async fn apply<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    idem: IdempotencyKey,
    OptionalJsonBody(req): OptionalJsonBody<ApplicationRequest>,
) -> Result<Response, ApiError> {
    id_of(&id, "product test")?;
    let receipt = idem.receipt(&caller, &format!("POST /product-tests/{id}/applications"));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        products::apply(&app, &caller, &id, req, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), test = %id))]
pub async fn select<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    id_of(&id, "product test")?;
    Ok(Json(products::select(&app, &caller, &id).await?))
}

pub async fn draw_entries<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
    p: ListParams,
) -> Result<Response, ApiError> {
    id_of(&id, "contest")?;
    Ok(cacheable(
        300,
        Json(contests::draw_entries(&app, &id, p.cursor.as_deref()).await?),
    ))
}

pub async fn selection_entries<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
    p: ListParams,
) -> Result<Response, ApiError> {
    id_of(&id, "product test")?;
    Ok(cacheable(
        300,
        Json(products::selection_entries(&app, &id, p.cursor.as_deref()).await?),
    ))
}
