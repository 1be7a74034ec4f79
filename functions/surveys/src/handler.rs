use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use community::auth::Caller;
use community::campaigns::valid_id;
use community::error::Error;
use community::http::{with_receipt, ApiError, IdempotencyKey, JsonBody, ListParams};
use community::store::Table;
use community::surveys::{self, ResponseRequest, SurveyView};
use community::App;

fn id_of(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Error::NotFound("survey").into())
    }
}

pub async fn list<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    p: ListParams,
) -> Result<Response, ApiError> {
    p.no_others()?;
    Ok(Json(surveys::list(&app, &caller, p.limit, p.cursor).await?).into_response())
}

pub async fn get_one<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SurveyView>, ApiError> {
    id_of(&id)?;
    Ok(Json(surveys::get(&app, &caller, &id).await?))
}

#[tracing::instrument(skip_all, fields(member = %caller.id.as_str(), survey = %id))]
pub async fn respond<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    idem: IdempotencyKey,
    JsonBody(req): JsonBody<ResponseRequest>,
) -> Result<Response, ApiError> {
    id_of(&id)?;
    let receipt = idem.receipt(&caller, &format!("POST /surveys/{id}/responses"));
    let table = app.table.clone();
    with_receipt(&table, receipt, StatusCode::CREATED, |r| async move {
        surveys::respond(&app, &caller, &id, req, r.as_ref()).await
    })
    .await
}

/// Whether the request asks for CSV (`Accept: text/csv`, before JSON).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .find(|m| m == "text/csv" || m == "application/json")
        .is_some_and(|m| m == "text/csv")
}

pub async fn results<T: Table + Clone>(
    State(app): State<App<T>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    id_of(&id)?;
    if wants_csv(&headers) {
        let csv = surveys::export_csv(&app, &caller, &id).await?;
        let mut res = csv.into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.csv\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }
    Ok(Json(surveys::results(&app, &caller, &id).await?).into_response())
}
