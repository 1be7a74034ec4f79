use axum::extract::{Path, State};
use axum::Json;
use community::answers::{self, AnswerRequest};
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
    mut params: ListParams,
) -> Result<Json<ListPage<QueuedIdea>>, ApiError> {
    let state = params.rest.remove("state");
    let older = params.rest.remove("older_than_days");
    params.no_others()?;
    let older_than_days = match older.as_deref() {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n <= 3650 => Some(n),
            _ => {
                return Err(ApiError::bad_request(
                    "older_than_days",
                    "must be a whole number of days from 0 to 3650",
                ))
            }
        },
    };
    match state.as_deref() {
        None | Some("under_review") => {
            if older_than_days.is_some() {
                return Err(ApiError::bad_request(
                    "older_than_days",
                    "applies to state=unanswered only",
                ));
            }
            Ok(Json(
                committee::review_queue(&app, &caller, params.limit, params.cursor).await?,
            ))
        }
        Some("unanswered") => Ok(Json(
            answers::unanswered(&app, &caller, older_than_days, params.limit, params.cursor)
                .await?,
        )),
        Some(_) => Err(ApiError::bad_request(
            "state",
            "must be under_review or unanswered",
        )),
    }
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn answer<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AnswerRequest>,
) -> Result<Json<IdeaView>, ApiError> {
    answers::staff_role(&caller)?;
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    Ok(Json(answers::answer(&app, &caller, &id, req).await?))
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
