//! The mandatory privacy topics, delivered at `POST /webhooks/compliance` and run as jobs.

use serde::Deserialize;
use serde_json::Value;

use crate::deliveries::Once;
use crate::jobs::{Job, JobError};
use crate::shop_data::{Forget, Forgotten};
use crate::state::AppState;

/// `shop/redact` (48 hours after an uninstall): deletes everything stored about the shop,
/// unless the shop installed the app again after the request arrived (the job may run later).
pub async fn shop_redact(state: AppState, job: Job) -> Result<(), JobError> {
    let shop = job.shop()?;
    let now = state.shopify.clock().now();
    let forget = Forget::Redact { requested_at: job.created_at() };
    match state.shop_data.forget(None, now, shop, forget).await? {
        Once::Ran(Some(Forgotten { tokens, connections })) => {
            tracing::info!(shop, deleted = tokens, connections, "shop data redacted");
        }
        _ => tracing::info!(shop, "shop installed the app again since the redaction request: nothing deleted"),
    }
    Ok(())
}

/// `customers/redact`: this template stores no customer data; an app that does deletes it here.
pub async fn customers_redact(_state: AppState, job: Job) -> Result<(), JobError> {
    log_customer_request(&job)
}

/// `customers/data_request`: this template stores no customer data; an app that does sends
/// it to the merchant here.
pub async fn customers_data_request(_state: AppState, job: Job) -> Result<(), JobError> {
    log_customer_request(&job)
}

/// The part of a customer privacy request the template reads.
#[derive(Deserialize)]
struct CustomerRequest {
    customer: Option<Customer>,
}

#[derive(Deserialize)]
struct Customer {
    id: Value,
}

fn log_customer_request(job: &Job) -> Result<(), JobError> {
    let request: CustomerRequest = job.payload()?;
    let customer_id = request.customer.map_or(Value::Null, |customer| customer.id);
    tracing::info!(topic = job.kind(), shop = job.shop()?, %customer_id, "customer privacy request: this template stores no customer data");
    Ok(())
}
