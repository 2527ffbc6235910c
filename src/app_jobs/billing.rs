//! `app_subscriptions/update`: a shop's subscription changed (approved, cancelled, frozen):
//! its cached billing answer is dropped, so the next request asks Shopify again.

use crate::jobs::{Job, JobError};
use crate::state::AppState;

/// Drops the shop's cached billing answer (in this instance; others ask again within
/// `billing::CACHE_FOR`).
pub async fn subscription_updated(state: AppState, job: Job) -> Result<(), JobError> {
    let shop = job.shop()?;
    state.billing.forget(shop);
    tracing::info!(shop, "subscription changed: billing answer dropped");
    Ok(())
}
