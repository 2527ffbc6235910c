//! Operators' routes, behind `Authorization: Bearer <OPS_TOKEN>`: the jobs' counts and the
//! dead-letter list. Without `OPS_TOKEN` they answer 404.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{AppError, ErrorAnswer};
use crate::state::AppState;

/// How many failed jobs `GET /ops/jobs` lists.
pub const FAILED_LISTED: i64 = 50;

/// A request that carries the operators' bearer token (compared in constant time).
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = &state.config.ops_token else {
            // Like a path the app does not serve.
            return Err(ErrorAnswer::not_found().into_response());
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match presented {
            Some(presented) if token == presented => Ok(Operator),
            _ => {
                Err((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "Unauthorized").into_response())
            }
        }
    }
}

/// `GET /ops/jobs`: `{"pending": n, "running": n, "failed": n, "failed_jobs": [...]}`, the
/// failed jobs newest first, with their last error.
pub async fn jobs(_: Operator, State(state): State<AppState>) -> Result<Response, AppError> {
    let counts = state.jobs.counts().await?;
    let failed = state.jobs.failed(FAILED_LISTED).await?;
    let body = json!({
        "pending": counts.pending,
        "running": counts.running,
        "failed": counts.failed,
        "failed_jobs": failed,
    });
    Ok(Json(body).into_response())
}

/// `POST /ops/jobs/{id}/retry`: gives a failed job a new set of attempts, due now; 404 when no
/// failed job has that id.
pub async fn retry(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, AppError> {
    if state.jobs.retry_failed(id).await? {
        Ok(Json(json!({ "retried": id })).into_response())
    } else {
        Ok(ErrorAnswer::new(StatusCode::NOT_FOUND, "no failed job with this id").into_response())
    }
}
