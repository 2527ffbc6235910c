//! `GET /healthz`: 200 once the database answers.

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

/// Answers 200 `ok` when a query succeeds, 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::error!(%error, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
