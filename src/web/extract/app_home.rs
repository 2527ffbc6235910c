//! App Home: the embedded page's document loads and the fetch requests it makes.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};

use crate::error::AppError;
use crate::shopify::model::{IdTokenDetails, Res};
use crate::state::AppState;
use crate::web::admin_api::AdminApi;
use crate::web::{append_headers, core_request};

/// Where App Home sends a document load that has no usable session token.
pub const PATCH_ID_TOKEN_PATH: &str = "/auth/patch-id-token";

/// A verified App Home request: a document load with `id_token` in the URL, or a fetch from
/// the page with `Authorization: Bearer <session token>`. Rejects with the protocol's answer
/// (302 to the patch-id-token page, or 401 asking App Bridge for a fresh token).
#[derive(Debug, Clone)]
pub struct AppHome {
    /// The shop's name (`s1`).
    pub shop: String,
    /// The staff member (`sub` claim).
    pub user_id: Option<String>,
    /// The verified session token, exchangeable for access tokens.
    pub id_token: IdTokenDetails,
    /// What to answer when Shopify later rejects a token obtained for this request (shared
    /// with the request's [`AdminApi`], not copied).
    pub invalid_token_response: Arc<Res>,
    /// The admin's language, from a document load's `locale` parameter (English otherwise):
    /// every embedded page's texts.
    pub texts: crate::i18n::Texts,
    document_headers: Vec<(String, String)>,
}

impl AppHome {
    /// An HTML page with the headers an App Home document must carry
    /// (`Content-Security-Policy: frame-ancestors ...` and `Link`).
    pub fn page(&self, html: String) -> Response {
        let mut response = Html(html).into_response();
        append_headers(&mut response, &self.document_headers);
        response
    }
}

impl FromRequestParts<AppState> for AppHome {
    type Rejection = Res;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let request = core_request(parts, &state.config.app_url, Vec::new());
        let result = state.shopify.verify_app_home_req(&request, PATCH_ID_TOKEN_PATH);
        tracing::debug!(code = %result.log.code, shop = ?result.shop, "app home request");
        match (result.ok, result.shop, result.id_token, result.invalid_token_response) {
            (true, Some(shop), Some(id_token), Some(invalid_token_response)) => Ok(Self {
                texts: crate::i18n::Texts::from_query(parts.uri.query()),
                shop,
                user_id: result.user_id,
                id_token,
                invalid_token_response: Arc::new(invalid_token_response),
                document_headers: result.response.headers,
            }),
            _ => Err(result.response),
        }
    }
}

/// A verified App Home request together with the shop's Admin API, like
/// `authenticate.admin(request)` in Shopify's JavaScript templates.
pub struct Admin {
    /// The verified request.
    pub session: AppHome,
    /// The shop's Admin API, with a valid offline token.
    pub api: AdminApi,
}

impl Admin {
    /// An HTML page with the App Home document headers.
    pub fn page(&self, html: String) -> Response {
        self.session.page(html)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = AppHome::from_request_parts(parts, state).await.map_err(AppError::Protocol)?;
        let api = AdminApi::connect(
            state,
            &session.shop,
            &session.id_token,
            Some(Arc::clone(&session.invalid_token_response)),
        )
        .await?;
        Ok(Self { session, api })
    }
}
