use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use community::auth::Caller;
use community::domain::IdeaId;
use community::error::Error;
use community::http::{with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams};
use community::ideas::{IdeaView, ListPage};
use community::merge::{self, MergeRequest};
use community::moderation::{self, Decided, DecisionRequest, QueueItem, ReportRequest};
use community::store::Table;
use community::App;

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn report<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<ReportRequest>,
) -> Result<Response, ApiError> {
    let receipt = idem.receipt(&caller, "POST /reports");
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        moderation::report(&app, &caller, req, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn queue<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<ListPage<QueueItem>>, ApiError> {
    Ok(Json(
        moderation::queue(&app, &caller, params.limit, params.cursor).await?,
    ))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), target_type = %target_type, target = %id))]
pub async fn decide<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path((target_type, id)): Path<(String, String)>,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> Result<Json<Decided>, ApiError> {
    moderation::require_moderator(&caller)?;
    Ok(Json(
        moderation::decide(&app, &caller, &target_type, &id, req).await?,
    ))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn merge<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<MergeRequest>,
) -> Result<Json<IdeaView>, ApiError> {
    moderation::require_moderator(&caller)?;
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(merge::merge(&app, &caller, &id, req).await?))
}
