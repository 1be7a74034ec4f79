use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use community::auth::Caller;
use community::follows;
use community::http::{with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams};
use community::ideas::{IdeaCard, ListPage};
use community::loyalty::{self, RedemptionView};
use community::members::{self, MemberView, Patch, SignUp};
use community::mine::{self, Contribution};
use community::points::{self, LedgerEntry, RedemptionRequest};
use community::store::Table;
use community::App;

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn sign_up<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<SignUp>,
) -> Result<Response, ApiError> {
    let receipt = idem.receipt(&caller, "POST /members");
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        members::sign_up(&app, &caller, req, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn me<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
) -> Result<Json<MemberView>, ApiError> {
    let row = members::get(&app, &caller.id).await?;
    Ok(Json(members::view(&app, row).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn update<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    JsonBody(patch): JsonBody<Patch>,
) -> Result<Json<MemberView>, ApiError> {
    Ok(Json(members::update(&app, &caller, patch).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn points<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<ListPage<LedgerEntry>>, ApiError> {
    members::require(&app, &caller).await?;
    Ok(Json(
        points::ledger(&app, &caller, params.limit, params.cursor).await?,
    ))
}

/// `GET /members/me/redemptions`: the caller's conversions of points into
/// euros, newest first, with the loyalty programme's answer
/// (`pending|credited|rejected`, and its reason).
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn redemptions<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<ListPage<RedemptionView>>, ApiError> {
    params.no_others()?;
    Ok(Json(
        loyalty::list(&app, &caller, params.limit, params.cursor).await?,
    ))
}

/// `GET /members/me/contributions?type=idea|comment|review`: the caller's
/// own contributions with their moderation state (see `community::mine`).
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn contributions<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    mut params: ListParams,
) -> Result<Json<ListPage<Contribution>>, ApiError> {
    let kind = params.rest.remove("type");
    params.no_others()?;
    Ok(Json(
        mine::list(&app, &caller, kind.as_deref(), params.limit, params.cursor).await?,
    ))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn redeem<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<RedemptionRequest>,
) -> Result<Response, ApiError> {
    let receipt = idem.receipt(&caller, "POST /members/me/redemptions");
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::ACCEPTED, |r| async move {
        points::redeem(&app, &caller, req, r.as_ref()).await
    })
    .await
}

/// `GET /members/me/export`: everything held about the caller (GDPR).
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn export<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(community::gdpr::export(&app, &caller).await?))
}

/// `DELETE /members/me`: erasure (GDPR); 202, idempotent. Once the data is
/// erased, the member's sign-in is deleted from the identity provider (on
/// AWS, the Cognito user; `crate::router_with_directory`). If that fails the
/// answer is a 503 and the member's retry finishes it.
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn erase<T: Table + Clone>(
    State(app): State<App<T>>,
    directory: Option<axum::Extension<std::sync::Arc<dyn community::identity::Directory>>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let body = community::gdpr::erase(&app, &caller).await?;
    if let Some(axum::Extension(d)) = directory {
        community::identity::delete_member(d.as_ref(), caller.id.as_str())
            .await
            .map_err(|e| {
            tracing::error!(error = %e, "the member's sign-in was not deleted; a retry of the erasure deletes it");
            community::error::Error::Store(community::store::StoreError::unavailable(e))
        })?;
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /members/me/following`: the ideas the caller follows (see
/// `community::follows::following`).
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn following<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<ListPage<IdeaCard>>, ApiError> {
    params.no_others()?;
    Ok(Json(
        follows::following(&app, &caller, params.limit, params.cursor).await?,
    ))
}

/// `GET /members/me/votes`: the ideas the caller voted for, newest vote first.
#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn votes<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    params: ListParams,
) -> Result<Json<ListPage<IdeaCard>>, ApiError> {
    params.no_others()?;
    Ok(Json(
        follows::voted(&app, &caller, params.limit, params.cursor).await?,
    ))
}
