use axum::extract::{Path, State};
use axum::Json;
use community::auth::Caller;
use community::committee::{self, DecisionRequest, ProgressRequest, QueuedIdea};
use community::domain::IdeaId;
use community::error::Error;
use community::http::{ApiError, JsonBody, ListParams};
use community::ideas::{IdeaView, ListPage};
use community::store::Table;
use community::App;

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn queue<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<ListPage<QueuedIdea>>, ApiError> {
    Ok(Json(
        committee::review_queue(&app, &caller, params.limit, params.cursor).await?,
    ))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn decide<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> Result<Json<IdeaView>, ApiError> {
    committee::require_committee(&caller)?;
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(committee::decide(&app, &caller, &id, req).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn progress<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ProgressRequest>,
) -> Result<Json<IdeaView>, ApiError> {
    committee::require_committee(&caller)?;
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(committee::progress(&app, &caller, &id, req).await?))
}
