use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use community::auth::Caller;
use community::campaigns::valid_id;
use community::challenges::{self, ChallengeView, NewProposal, ResultsRequest};
use community::domain::FieldError;
use community::error::Error;
use community::http::{cacheable, with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams};
use community::ideas::Sort;
use community::store::Table;
use community::App;

fn id_of(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Error::NotFound("challenge").into())
    }
}

pub async fn list<T: Table + Clone>(
    State(app): State<App<T>>,
    p: ListParams,
) -> Result<Response, ApiError> {
    Ok(cacheable(
        30,
        Json(challenges::list(&app, p.limit, p.cursor).await?),
    ))
}

pub async fn get_one<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    id_of(&id)?;
    Ok(cacheable(5, Json(challenges::get(&app, &id).await?)))
}

pub async fn proposals<T: Table + Clone>(
    State(app): State<App<T>>,
    Path(id): Path<String>,
    p: ListParams,
) -> Result<Response, ApiError> {
    id_of(&id)?;
    let sort = match p.rest.get("sort").map(String::as_str) {
        None | Some("") | Some("new") => Sort::New,
        Some("top") => Sort::Top,
        Some(_) => {
            return Err(Error::Invalid(vec![FieldError::new("sort", "must be new or top")]).into())
        }
    };
    Ok(cacheable(
        5,
        Json(challenges::proposals(&app, &id, sort, p.limit, p.cursor).await?),
    ))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), challenge = %id))]
pub async fn propose<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<NewProposal>,
) -> Result<Response, ApiError> {
    id_of(&id)?;
    let receipt = idem.receipt(&caller, &format!("POST /challenges/{id}/proposals"));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        challenges::propose(&app, &caller, &id, req, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), challenge = %id))]
pub async fn results<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ResultsRequest>,
) -> Result<Json<ChallengeView>, ApiError> {
    id_of(&id)?;
    Ok(Json(challenges::publish(&app, &caller, &id, req).await?))
}
