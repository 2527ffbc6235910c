//! Webhooks: `app/uninstalled`, `app/scopes_update` and the three compliance topics.
//!
//! Each handler runs its work once per delivery through [`once`], and must be idempotent:
//! a delivery whose work was cut off is run again by Shopify's retry.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::deliveries::Claim;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::extract::Webhook;

/// Runs `work` unless this delivery was already handled. 200 when done (now or before); 409
/// while another copy of the delivery is being handled, so Shopify retries later; an error
/// releases the claim so that Shopify's retry runs the work again.
async fn once<F>(state: &AppState, webhook: &Webhook, work: F) -> Result<StatusCode, AppError>
where
    F: Future<Output = Result<(), AppError>>,
{
    let Some(id) = &webhook.webhook_id else {
        work.await?;
        return Ok(StatusCode::OK);
    };
    let claim = match state.deliveries.claim(id, &webhook.topic, &webhook.shop, state.shopify.clock().now()).await? {
        Claim::Claimed(claim) => claim,
        Claim::Done => {
            tracing::info!(topic = %webhook.topic, shop = %webhook.shop, "repeated webhook delivery skipped");
            return Ok(StatusCode::OK);
        }
        Claim::InProgress => {
            tracing::info!(topic = %webhook.topic, shop = %webhook.shop, "webhook delivery already in progress");
            return Ok(StatusCode::CONFLICT);
        }
    };
    if let Err(error) = work.await {
        state.deliveries.release(&claim).await?;
        return Err(error);
    }
    state.deliveries.finish(&claim).await?;
    Ok(StatusCode::OK)
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
/// tokens included. A delivery that arrives late, after the shop installed the app again,
/// deletes nothing: when the shop holds a token obtained at or after `X-Shopify-Triggered-At`,
/// the uninstall was about an earlier install (on a tie the token is kept: a revoked token
/// stored by mistake is harmless, a deleted live one breaks the app).
pub async fn app_uninstalled(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    if wrong_topic(&webhook, "app/uninstalled") {
        return Ok(StatusCode::BAD_REQUEST);
    }
    once(&state, &webhook, async {
        let repository = state.tokens.repository();
        let deleted = match webhook.triggered_at {
            Some(at) => repository.delete_shop_uninstalled(&webhook.shop, at).await?,
            None => Some(repository.delete_shop(&webhook.shop).await?),
        };
        let Some(deleted) = deleted else {
            tracing::info!(shop = %webhook.shop, triggered_at = ?webhook.triggered_at, "app uninstalled before the current install: nothing deleted");
            return Ok(());
        };
        let connections = state.oauth.store().delete_shop(&webhook.shop).await?;
        tracing::info!(shop = %webhook.shop, deleted, connections, "app uninstalled");
        Ok(())
    })
    .await
}

/// `POST /webhooks/app/scopes_update`: records the scopes the merchant granted.
pub async fn scopes_update(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    if wrong_topic(&webhook, "app/scopes_update") {
        return Ok(StatusCode::BAD_REQUEST);
    }
    let Some(current) = webhook.payload.get("current").and_then(Value::as_array) else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    let scopes = current.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",");
    once(&state, &webhook, async {
        let updated = state.tokens.repository().update_scopes(&webhook.shop, &scopes).await?;
        tracing::info!(shop = %webhook.shop, %scopes, updated, "scopes updated");
        Ok(())
    })
    .await
}

/// `POST /webhooks/compliance`: the privacy topics, told apart by `X-Shopify-Topic`.
///
/// `shop/redact` (48 hours after uninstall) deletes the shop's data. The customer topics are
/// logged for the app to act on: this template stores no customer data.
pub async fn compliance(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    let topic = webhook.topic.as_str();
    if !matches!(topic, "shop/redact" | "customers/redact" | "customers/data_request") {
        tracing::warn!(%topic, shop = %webhook.shop, "unknown compliance topic");
        return Ok(StatusCode::BAD_REQUEST);
    }
    once(&state, &webhook, async {
        if topic == "shop/redact" {
            let deleted = state.tokens.repository().delete_shop(&webhook.shop).await?;
            let connections = state.oauth.store().delete_shop(&webhook.shop).await?;
            tracing::info!(shop = %webhook.shop, deleted, connections, "shop data redacted");
        } else {
            let customer_id = webhook.payload.pointer("/customer/id").cloned().unwrap_or(Value::Null);
            tracing::info!(%topic, shop = %webhook.shop, %customer_id, "customer privacy request: this template stores no customer data");
        }
        Ok(())
    })
    .await
}
