//! `GET /healthz` (the process is alive and its database answers) and `GET /readyz` (ready
//! for traffic: the database answers and every migration this build knows is applied).

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

/// Answers 200 `ok` when a query succeeds, 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::error!(%error, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Answers 200 `ready` when the database answers and holds every migration of this build (a
/// new instance behind a load balancer waits for them), 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.migrated().await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending"),
        Err(error) => {
            tracing::error!(%error, "readiness check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
