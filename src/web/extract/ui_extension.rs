//! UI extensions (admin, POS, checkout, customer account) calling the app's backend with a
//! session token in `Authorization: Bearer`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::shopify::model::{IdTokenDetails, Res};
use crate::state::AppState;
use crate::web::core_request;

/// The surface an extension runs in, named by the last segment of the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionSurface {
    /// The Shopify admin (`/admin`): its tokens can be exchanged.
    Admin,
    /// Point of Sale (`/pos`): its tokens can be exchanged.
    Pos,
    /// Checkout (`/checkout`).
    Checkout,
    /// Customer accounts (`/customer-account`).
    CustomerAccount,
}

impl ExtensionSurface {
    /// The surface for a path segment.
    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "admin" => Some(Self::Admin),
            "pos" => Some(Self::Pos),
            "checkout" => Some(Self::Checkout),
            "customer-account" => Some(Self::CustomerAccount),
            _ => None,
        }
    }
}

/// A verified UI-extension request. A CORS preflight is answered by the extractor itself
/// (its "rejection" is the 204), so handlers only see real requests.
#[derive(Debug, Clone)]
pub struct UiExtension {
    /// Where the extension runs.
    pub surface: ExtensionSurface,
    /// The shop's name (`s1`).
    pub shop: String,
    /// The verified session token (exchangeable for admin and POS).
    pub id_token: IdTokenDetails,
    /// What to answer when Shopify rejects a token obtained with this session token.
    pub invalid_token_response: Option<Res>,
}

impl FromRequestParts<AppState> for UiExtension {
    type Rejection = Res;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let segment = parts.uri.path().rsplit('/').next().unwrap_or_default();
        let surface = ExtensionSurface::from_segment(segment).ok_or_else(|| Res::new(404, "Not Found"))?;
        let request = core_request(parts, &state.config.app_url, Vec::new());
        let shopify = &state.shopify;
        let (ok, code, shop, response, id_token, invalid_token_response) = match surface {
            ExtensionSurface::Admin | ExtensionSurface::Pos => {
                let result = if surface == ExtensionSurface::Admin {
                    shopify.verify_admin_ui_ext_req(&request)
                } else {
                    shopify.verify_pos_ui_ext_req(&request)
                };
                (
                    result.ok,
                    result.log.code,
                    result.shop,
                    result.response,
                    result.id_token,
                    result.invalid_token_response,
                )
            }
            ExtensionSurface::Checkout | ExtensionSurface::CustomerAccount => {
                let result = if surface == ExtensionSurface::Checkout {
                    shopify.verify_checkout_ui_ext_req(&request)
                } else {
                    shopify.verify_customer_account_ui_ext_req(&request)
                };
                (result.ok, result.log.code, result.shop, result.response, result.id_token, None)
            }
        };
        tracing::debug!(%code, ?surface, shop = ?shop, "ui extension request");
        match (ok, shop, id_token) {
            (true, Some(shop), Some(id_token)) => Ok(Self { surface, shop, id_token, invalid_token_response }),
            _ => Err(response),
        }
    }
}
