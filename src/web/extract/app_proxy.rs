//! The App Proxy: storefront requests Shopify forwards with a signed query.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::shopify::model::Res;
use crate::state::AppState;
use crate::web::core_request;

/// A verified App Proxy request.
#[derive(Debug, Clone)]
pub struct AppProxy {
    /// The shop's name (`s1`).
    pub shop: String,
    /// The logged-in customer's id, when a customer is logged in.
    pub logged_in_customer_id: Option<String>,
}

impl FromRequestParts<AppState> for AppProxy {
    type Rejection = Res;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let result = state.shopify.verify_app_proxy_req(&core_request(parts, &state.config.app_url, Vec::new()));
        tracing::debug!(code = %result.log.code, shop = ?result.shop, "app proxy request");
        match (result.ok, result.shop) {
            (true, Some(shop)) => {
                Ok(Self { shop, logged_in_customer_id: result.logged_in_customer_id.filter(|id| !id.is_empty()) })
            }
            _ => Err(result.response),
        }
    }
}
