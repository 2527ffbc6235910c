//! Webhooks: `app/uninstalled`, `app/scopes_update` and the three compliance topics.
//!
//! Each handler runs its work once per delivery (see [`crate::deliveries`]) and answers with
//! [`answer`]. Work must be idempotent: a delivery whose work was cut off is run again by
//! Shopify's retry.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::deliveries::Once;
use crate::error::AppError;
use crate::shop_data::Forgotten;
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
    let once = state.shop_data.forget(webhook.delivery(), now, &webhook.shop, webhook.triggered_at).await?;
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

/// `POST /webhooks/compliance`: the privacy topics, told apart by `X-Shopify-Topic`.
///
/// `shop/redact` (48 hours after uninstall) deletes the shop's data. The customer topics are
/// logged for the app to act on: this template stores no customer data.
pub async fn compliance(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    let topic = webhook.topic.as_str();
    let now = state.shopify.clock().now();
    let once = match topic {
        "shop/redact" => {
            let once = state.shop_data.forget(webhook.delivery(), now, &webhook.shop, None).await?;
            if let Once::Ran(Some(Forgotten { tokens, connections })) = &once {
                tracing::info!(shop = %webhook.shop, deleted = tokens, connections, "shop data redacted");
            }
            once.map(drop)
        }
        "customers/redact" | "customers/data_request" => {
            let once = state.deliveries.mark_once(webhook.delivery(), now).await?;
            if let Once::Ran(()) = once {
                let customer_id =
                    webhook.payload::<Value>().ok().and_then(|payload| payload.pointer("/customer/id").cloned());
                let customer_id = customer_id.unwrap_or(Value::Null);
                tracing::info!(%topic, shop = %webhook.shop, %customer_id, "customer privacy request: this template stores no customer data");
            }
            once
        }
        _ => {
            tracing::warn!(%topic, shop = %webhook.shop, "unknown compliance topic");
            return Ok(StatusCode::BAD_REQUEST);
        }
    };
    Ok(answer(&webhook, &once))
}
