//! Authentication pages: the patch-id-token (bounce) page.

use axum::extract::State;
use axum::http::request::Parts;

use crate::shopify::model::Res;
use crate::state::AppState;
use crate::web::core_request;

/// `GET /auth/patch-id-token`: loads App Bridge, which fetches a fresh session token and
/// returns to `shopify-reload`.
pub async fn patch_id_token(State(state): State<AppState>, parts: Parts) -> Res {
    let result = state.shopify.app_home_patch_id_token(&core_request(&parts, &state.config.app_url, Vec::new()));
    tracing::debug!(code = %result.log.code, "patch-id-token page");
    result.response
}
