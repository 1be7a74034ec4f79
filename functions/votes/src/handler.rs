use axum::extract::{Path, State};
use axum::Json;
use community::auth::Caller;
use community::domain::IdeaId;
use community::error::Error;
use community::follows::{self, FollowView};
use community::http::ApiError;
use community::store::Table;
use community::votes::{self, VoteView};
use community::App;

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn cast<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<VoteView>, ApiError> {
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(votes::cast(&app, &caller, &id).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn withdraw<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<VoteView>, ApiError> {
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(votes::withdraw(&app, &caller, &id).await?))
}

/// `PUT /ideas/{id}/follow`: idempotent.
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn follow<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FollowView>, ApiError> {
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(follows::set(&app, &caller, &id, true).await?))
}

/// `DELETE /ideas/{id}/follow`: idempotent; sticks for a voter.
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn unfollow<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FollowView>, ApiError> {
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(follows::set(&app, &caller, &id, false).await?))
}
