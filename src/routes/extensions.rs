//! Endpoints for UI extensions. Admin and POS extensions get data from the Admin API with
//! the shop's offline token; checkout and customer-account extensions get the app's own data.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::shopify::graphql::GraphqlRequest;
use crate::state::AppState;
use crate::web::admin_api::{AdminApi, GraphqlError};
use crate::web::extract::{ExtensionSurface, UiExtension};

/// `{ shop { name } }`'s answer.
#[derive(Deserialize)]
struct ShopName {
    shop: Named,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// `POST /api/extensions/{admin,pos,checkout,customer-account}` (the extractor answers the
/// `OPTIONS` preflight).
pub async fn extension(State(state): State<AppState>, extension: UiExtension) -> Result<Response, GraphqlError> {
    match extension.surface {
        ExtensionSurface::Admin | ExtensionSurface::Pos => {
            let api = AdminApi::connect(
                &state,
                &extension.shop,
                &extension.id_token,
                extension.invalid_token_response.map(Arc::new),
            )
            .await?;
            let data: ShopName = api.query(GraphqlRequest::new("{ shop { name } }")).await?;
            Ok(Json(json!({ "shop": extension.shop, "name": data.shop.name })).into_response())
        }
        ExtensionSurface::Checkout | ExtensionSurface::CustomerAccount => {
            Ok(Json(json!({ "shop": extension.shop, "message": "Hello from the Rust app" })).into_response())
        }
    }
}
