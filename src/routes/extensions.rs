//! Endpoints for UI extensions. Admin and POS extensions get data from the Admin API with
//! the shop's offline token; checkout and customer-account extensions get the app's own data.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::shopify::graphql::GraphqlRequest;
use crate::state::AppState;
use crate::web::admin_api::{AdminApi, graphql_failure};
use crate::web::extract::{ExtensionSurface, UiExtension};

/// `POST /api/extensions/{admin,pos,checkout,customer-account}` (the extractor answers the
/// `OPTIONS` preflight).
pub async fn extension(State(state): State<AppState>, extension: UiExtension) -> Result<Response, AppError> {
    match extension.surface {
        ExtensionSurface::Admin | ExtensionSurface::Pos => {
            let api = AdminApi::connect(
                &state,
                &extension.shop,
                &extension.id_token,
                extension.invalid_token_response.map(Arc::new),
            )
            .await?;
            let result = api.graphql(GraphqlRequest::new("{ shop { name } }")).await?;
            if !result.ok {
                return Ok(graphql_failure(&result));
            }
            let name = result.data.as_ref().and_then(|data| data.pointer("/shop/name")).cloned().unwrap_or(Value::Null);
            Ok(Json(json!({ "shop": extension.shop, "name": name })).into_response())
        }
        ExtensionSurface::Checkout | ExtensionSurface::CustomerAccount => {
            Ok(Json(json!({ "shop": extension.shop, "message": "Hello from the Rust app" })).into_response())
        }
    }
}
