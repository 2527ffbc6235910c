//! Webhooks: `app/uninstalled` and `app/scopes_update`, whose work is a database write done
//! before the answer, and every other topic (the compliance topics, `products/update`...),
//! stored as a job and answered at once (see [`crate::jobs`] and [`crate::app_jobs`]).
//!
//! Each delivery is handled once (see [`crate::deliveries`]) and answered with [`answer`].
//! Work must be idempotent: a delivery whose work was cut off is run again by Shopify's retry,
//! and a job whose worker died runs again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, any};
use serde::Deserialize;
use serde_json::Value;

use crate::deliveries::Once;
use crate::error::AppError;
use crate::jobs::NewJob;
use crate::shop_data::{Forget, Forgotten};
use crate::state::AppState;
use crate::web::extract::Webhook;

/// The answer to a delivery handled once: 200 when its work is done (now or before), 409
/// while another copy is being handled, so that Shopify retries later.
pub fn answer<T>(webhook: &Webhook, once: &Once<T>) -> StatusCode {
    match once {
        Once::Ran(_) => StatusCode::OK,
        Once::Done => {
            tracing::info!(topic = %webhook.topic, shop = %webhook.shop, "repeated webhook delivery skipped");
            StatusCode::OK
        }
        Once::InProgress => {
            tracing::info!(topic = %webhook.topic, shop = %webhook.shop, "webhook delivery already in progress");
            StatusCode::CONFLICT
        }
    }
}

/// A delivery of another topic than the route's (the topic header is not signed).
fn wrong_topic(webhook: &Webhook, expected: &str) -> bool {
    if webhook.topic == expected {
        return false;
    }
    tracing::warn!(topic = %webhook.topic, %expected, shop = %webhook.shop, "webhook topic does not match its route");
    true
}

/// `POST /webhooks/app/uninstalled`: forgets every token of the shop, third-party provider
/// tokens included, in one write with the delivery's claim. A delivery that arrives late,
/// after the shop installed the app again, deletes nothing: when the shop holds a token
/// obtained at or after `X-Shopify-Triggered-At`, the uninstall was about an earlier install
/// (on a tie the token is kept: a revoked token stored by mistake is harmless, a deleted live
/// one breaks the app).
pub async fn app_uninstalled(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    if wrong_topic(&webhook, "app/uninstalled") {
        return Ok(StatusCode::BAD_REQUEST);
    }
    let now = state.shopify.clock().now();
    // Its billing answer too (in this instance): a reinstall asks Shopify again.
    state.billing.forget(&webhook.shop);
    let forget = Forget::Uninstall { triggered_at: webhook.triggered_at };
    let once = state.shop_data.forget(webhook.delivery(), now, &webhook.shop, forget).await?;
    match &once {
        Once::Ran(Some(Forgotten { tokens, connections })) => {
            tracing::info!(shop = %webhook.shop, deleted = tokens, connections, "app uninstalled");
        }
        Once::Ran(None) => {
            tracing::info!(shop = %webhook.shop, triggered_at = ?webhook.triggered_at, "app uninstalled before the current install: nothing deleted");
        }
        Once::Done | Once::InProgress => {}
    }
    Ok(answer(&webhook, &once))
}

/// The part of an `app/scopes_update` payload this app reads.
#[derive(Deserialize)]
struct ScopesUpdate {
    current: Vec<Value>,
}

/// `POST /webhooks/app/scopes_update`: records the scopes the merchant granted.
pub async fn scopes_update(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    if wrong_topic(&webhook, "app/scopes_update") {
        return Ok(StatusCode::BAD_REQUEST);
    }
    let Ok(ScopesUpdate { current }) = webhook.payload() else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    let scopes = current.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",");
    let now = state.shopify.clock().now();
    let once = state
        .deliveries
        .once(webhook.delivery(), now, async {
            let updated = state.tokens.repository().update_scopes(&webhook.shop, &scopes).await?;
            tracing::info!(shop = %webhook.shop, %scopes, updated, "scopes updated");
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(answer(&webhook, &once))
}

/// The mandatory privacy topics, all delivered at `POST /webhooks/compliance`.
pub const COMPLIANCE_TOPICS: [&str; 3] = ["customers/data_request", "customers/redact", "shop/redact"];

/// The route of a webhook topic run as a job: `POST /webhooks/{topic}`, handled by
/// [`enqueue`].
pub fn job_route(topic: &'static str) -> MethodRouter<AppState> {
    any(move |State(state): State<AppState>, webhook: Webhook| async move {
        if wrong_topic(&webhook, topic) {
            return Ok(StatusCode::BAD_REQUEST);
        }
        enqueue(&state, webhook).await
    })
}

/// `POST /webhooks/compliance`: the privacy topics, told apart by `X-Shopify-Topic`, each run
/// as a job (see `app_jobs::compliance`).
pub async fn compliance(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    if !COMPLIANCE_TOPICS.contains(&webhook.topic.as_str()) {
        tracing::warn!(topic = %webhook.topic, shop = %webhook.shop, "unknown compliance topic");
        return Ok(StatusCode::BAD_REQUEST);
    }
    enqueue(&state, webhook).await
}

/// Stores the delivery as a job of its topic, in one transaction with the delivery's claim,
/// and answers 200 at once: the job's handler runs on a worker, with retries (see
/// [`crate::jobs`]). A repeated delivery enqueues nothing.
pub async fn enqueue(state: &AppState, webhook: Webhook) -> Result<StatusCode, AppError> {
    // The body is a JSON object (checked by the extractor), so it is UTF-8.
    let Ok(payload) = String::from_utf8(webhook.body.to_vec()) else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    let job = NewJob::new(webhook.topic.clone()).shop(webhook.shop.clone()).raw_payload(payload);
    let once = state.jobs.enqueue_delivery(&state.deliveries, webhook.delivery(), job).await?;
    if let Once::Ran(job) = once {
        tracing::debug!(topic = %webhook.topic, shop = %webhook.shop, job, "webhook delivery enqueued");
    }
    Ok(answer(&webhook, &once))
}
