//! Shopify Flow actions.

use axum::Json;
use serde_json::{Value, json};

use crate::web::extract::FlowAction;

/// `POST /api/flow/action`: runs a Flow action and acknowledges it with 200 JSON.
pub async fn action(action: FlowAction) -> Json<Value> {
    let payload = action.payload::<Value>().unwrap_or(Value::Null);
    let run_id = payload.get("action_run_id").cloned().unwrap_or(Value::Null);
    let handle = payload.get("handle").cloned().unwrap_or(Value::Null);
    tracing::info!(shop = %action.shop, %run_id, %handle, "flow action");
    Json(json!({ "ok": true }))
}
