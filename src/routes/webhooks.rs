//! Webhooks: `app/uninstalled`, `app/scopes_update` and the three compliance topics.
//!
//! Each handler runs its work once per delivery: [`once`] claims the delivery id first and
//! releases it if the work fails, so Shopify's retry is not lost.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::error::AppError;
use crate::state::AppState;
use crate::web::extract::Webhook;

/// Runs `work` unless this delivery was already handled; always 200 on success.
async fn once<F>(state: &AppState, webhook: &Webhook, work: F) -> Result<StatusCode, AppError>
where
    F: Future<Output = Result<(), AppError>>,
{
    let Some(id) = &webhook.webhook_id else {
        work.await?;
        return Ok(StatusCode::OK);
    };
    if !state.deliveries.claim(id, &webhook.topic, &webhook.shop, state.shopify.clock().now()).await? {
        tracing::info!(topic = %webhook.topic, shop = %webhook.shop, "repeated webhook delivery skipped");
        return Ok(StatusCode::OK);
    }
    if let Err(error) = work.await {
        state.deliveries.release(id).await?;
        return Err(error);
    }
    Ok(StatusCode::OK)
}

/// `POST /webhooks/app/uninstalled`: forgets every token of the shop, third-party provider
/// tokens included.
pub async fn app_uninstalled(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    once(&state, &webhook, async {
        let deleted = state.tokens.repository().delete_shop(&webhook.shop).await?;
        let connections = state.oauth.store().delete_shop(&webhook.shop).await?;
        tracing::info!(shop = %webhook.shop, deleted, connections, "app uninstalled");
        Ok(())
    })
    .await
}

/// `POST /webhooks/app/scopes_update`: records the scopes the merchant granted.
pub async fn scopes_update(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    let payload = webhook.payload();
    let Some(current) = payload.get("current").and_then(Value::as_array) else {
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
            let customer_id = webhook.payload().pointer("/customer/id").cloned().unwrap_or(Value::Null);
            tracing::info!(%topic, shop = %webhook.shop, %customer_id, "customer privacy request: this template stores no customer data");
        }
        Ok(())
    })
    .await
}
