use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use community::auth::Caller;
use community::comments::{self, NewComment};
use community::domain::{IdeaId, IdeaStatus};
use community::error::Error;
use community::http::{
    cacheable, with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams, MaybeCaller,
};
use community::ideas::{self, IdeaView, ListRequest, NewIdea, Sort};
use community::store::Table;
use community::App;
use serde_json::json;

pub async fn themes<T: Table + Clone>(State(app): State<App<T>>) -> Response {
    let themes: Vec<_> = app
        .settings()
        .themes
        .iter()
        .map(|t| json!({"id": t.id, "label": t.label, "description": t.description}))
        .collect();
    cacheable(300, Json(themes))
}

/// `GET /community`: the terms, launch mode, themes, threshold and point
/// rules (`community::programme`); public, cached like the themes.
pub async fn community<T: Table + Clone>(State(app): State<App<T>>) -> Response {
    cacheable(60, Json(community::programme::view(&app.settings())))
}

#[tracing::instrument(skip_all)]
pub async fn list<T: Table + Clone>(
    State(app): State<App<T>>,
    params: ListParams,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let status = match params.rest.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) => match IdeaStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                errors.push(community::domain::FieldError::new(
                    "status",
                    "must be one of open, under_review, accepted, rejected, in_progress, implemented",
                ));
                None
            }
        },
    };
    let sort = match params.rest.get("sort").map(String::as_str) {
        None | Some("") | Some("new") => Sort::New,
        Some("top") => Sort::Top,
        Some(_) => {
            errors.push(community::domain::FieldError::new(
                "sort",
                "must be new or top",
            ));
            Sort::New
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    let req = ListRequest {
        theme: params.rest.get("theme").filter(|t| !t.is_empty()).cloned(),
        status,
        sort,
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = match params.rest.get("q") {
        Some(q) => community::search::search(&app, q, req).await?,
        None => ideas::list(&app, req).await?,
    };
    Ok(cacheable(5, Json(page)))
}

/// `GET /ideas/similar?title=`: up to 5 ideas sharing words with a draft
/// title, shown while a member types (`community::search::similar`).
#[tracing::instrument(skip_all)]
pub async fn similar<T: Table + Clone>(
    State(app): State<App<T>>,
    params: ListParams,
) -> Result<Response, ApiError> {
    let title = params
        .rest
        .get("title")
        .map(String::as_str)
        .unwrap_or_default();
    let items = community::search::similar(&app, title).await?;
    Ok(cacheable(5, Json(json!({ "items": items }))))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str()))]
pub async fn create<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<NewIdea>,
) -> Result<Response, ApiError> {
    let receipt = idem.receipt(&caller, "POST /ideas");
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        ideas::create(&app, &caller, req, r.as_ref()).await
    })
    .await
}

/// A hidden idea is shown only to its author and to moderators (when their
/// token reaches the function: see docs/architecture.md, "Moderation").
#[tracing::instrument(skip_all, fields(idea = %id))]
pub async fn get_one<T: Table + Clone>(
    State(app): State<App<T>>,
    MaybeCaller(viewer): MaybeCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    let idea: IdeaView = ideas::get_for(&app, &id, viewer.as_ref()).await?;
    // With a token, the caller's vote and follow state (`"me"`).
    let me = match &viewer {
        Some(c) => Some(community::follows::me(&app, &id, c).await?),
        None => None,
    };
    // Anonymous copies may be cached for 5 s (the CDN); a token's answer is
    // made `private, no-cache` by the boundary (`http::conditional`).
    Ok(cacheable(5, Json(IdeaWithMe { idea, me })))
}

/// An idea, with the caller's state when a token came with the request.
#[derive(serde::Serialize)]
pub struct IdeaWithMe {
    #[serde(flatten)]
    idea: IdeaView,
    #[serde(skip_serializing_if = "Option::is_none")]
    me: Option<community::follows::Me>,
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), idea = %id))]
pub async fn post_comment<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    idem: IdempotencyKey,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewComment>,
) -> Result<Response, ApiError> {
    let idea = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    let receipt = idem.receipt(&caller, &format!("POST /ideas/{}/comments", idea.as_str()));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        comments::post(&app, &caller, &idea, req, r.as_ref()).await
    })
    .await
}

#[tracing::instrument(skip_all, fields(idea = %id))]
pub async fn list_comments<T: Table + Clone>(
    State(app): State<App<T>>,
    MaybeCaller(viewer): MaybeCaller,
    Path(id): Path<String>,
    params: ListParams,
) -> Result<Response, ApiError> {
    let idea = IdeaId::parse(&id).ok_or(Error::NotFound("idea"))?;
    let page = comments::list(&app, &idea, viewer.as_ref(), params.limit, params.cursor).await?;
    Ok(cacheable(5, Json(page)))
}

#[tracing::instrument(skip_all, fields(comment = %id))]
pub async fn get_comment<T: Table + Clone>(
    State(app): State<App<T>>,
    MaybeCaller(viewer): MaybeCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(comments::get(&app, &id, viewer.as_ref()).await?).into_response())
}
