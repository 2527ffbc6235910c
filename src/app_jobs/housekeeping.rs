//! The template's clean-up, a periodic job (once per period across every instance): expired
//! sessions, webhook delivery ids past their retention, failed jobs past theirs.

use tower_sessions::ExpiredDeletion;

use crate::jobs::{Job, JobError};
use crate::state::AppState;

/// Deletes what has expired.
pub async fn run(state: AppState, _job: Job) -> Result<(), JobError> {
    crate::sessions::Store::new(&state.db)
        .delete_expired()
        .await
        .map_err(|error| JobError::retry(format!("expired sessions: {error}")))?;
    let deliveries = state.deliveries.forget_expired(state.shopify.clock().now()).await?;
    let failed_jobs = state.jobs.forget_old_failures().await?;
    tracing::info!(deliveries, failed_jobs, "housekeeping: old rows deleted");
    Ok(())
}
