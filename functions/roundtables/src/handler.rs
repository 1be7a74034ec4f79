use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use community::auth::Caller;
use community::http::{cacheable, with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams};
use community::roundtables::{self, Attendance, AttendanceRequest, Cancellation, RoundtableView};
use community::store::Table;
use community::App;

pub async fn list<T: Table + Clone>(
    State(app): State<App<T>>,
    p: ListParams,
) -> Result<Response, ApiError> {
    let when = p.rest.get("when").map(String::as_str);
    Ok(cacheable(
        30,
        Json(roundtables::list(&app, when, p.limit, p.cursor).await?),
    ))
}

pub async fn get_one<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
) -> Result<Json<RoundtableView>, ApiError> {
    Ok(Json(roundtables::get(&app, &id).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), event = %id))]
pub async fn register<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    idem: IdempotencyKey,
) -> Result<Response, ApiError> {
    let receipt = idem.receipt(&caller, &format!("POST /events/{id}/registrations"));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        roundtables::register(&app, &caller, &id, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), event = %id))]
pub async fn cancel<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Cancellation>, ApiError> {
    Ok(Json(roundtables::cancel(&app, &caller, &id).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), event = %id))]
pub async fn attendance<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AttendanceRequest>,
) -> Result<Json<Attendance>, ApiError> {
    Ok(Json(
        roundtables::attendance(&app, &caller, &id, req).await?,
    ))
}
