//! Authentication pages: the patch-id-token (bounce) page, and the authorization-code install
//! flow (`/auth/login`, `/auth/callback`) for non-embedded apps, legacy installs and online
//! tokens by redirect. Only the install flow runs under the session layer.

use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::error::AppError;
use crate::sessions;
use crate::shopify::model::{AccessMode, Res};
use crate::shopify::urls::{first_value, parse_query};
use crate::state::AppState;
use crate::web::core_request;

/// `GET /auth/patch-id-token`: loads App Bridge, which fetches a fresh session token and
/// returns to `shopify-reload`.
pub async fn patch_id_token(State(state): State<AppState>, parts: Parts) -> Res {
    let result = state.shopify.app_home_patch_id_token(&core_request(&parts, &state.config.app_url, Vec::new()));
    tracing::debug!(code = %result.log.code, "patch-id-token page");
    result.response
}

/// What the session keeps between `/auth/login` and `/auth/callback`.
#[derive(Debug, Serialize, Deserialize)]
struct PendingInstall {
    /// The shop the consent screen was opened for (validated by the core).
    shop: String,
    /// The `state` sent to Shopify.
    state: String,
}

/// The session key of the install in progress.
const PENDING_INSTALL: &str = "shopify_install";

/// `GET /auth/login?shop=...[&mode=online]`: starts the authorization-code grant. Keeps a fresh
/// `state` (256 random bits) in the server-side session and sends the browser to the shop's
/// consent screen; `400` for a missing or invalid shop or mode.
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Res, AppError> {
    let params = parse_query(query.as_deref().unwrap_or_default(), false);
    let access_mode = match first_value(&params, "mode") {
        None | Some("offline") => AccessMode::Offline,
        Some("online") => AccessMode::Online,
        Some(_) => return Ok(Res::new(400, "Bad Request: mode must be offline or online")),
    };
    let shop = first_value(&params, "shop").unwrap_or_default();
    let pending = PendingInstall { shop: shop.to_owned(), state: sessions::random_token() };
    let redirect_uri = format!("{}{CALLBACK_PATH}", state.config.app_url);
    let Some(location) =
        state.shopify.authorization_url(shop, &state.config.scopes, &redirect_uri, &pending.state, access_mode)
    else {
        return Ok(Res::new(400, "Bad Request: shop must be a myshopify.com shop, such as s1.myshopify.com"));
    };
    session.insert(PENDING_INSTALL, &pending).await?;
    tracing::info!(shop = %pending.shop, mode = access_mode.as_str(), "install started");
    Ok(Res::new(302, "").with_header("Location", location))
}

/// Where Shopify sends the browser back to (the path the Shopify CLI allows by default).
pub const CALLBACK_PATH: &str = "/auth/callback";

/// `GET /auth/callback`: finishes the authorization-code grant. The session's `state` is used
/// up first, so any failure below also ends this attempt. Then the query is verified (hmac,
/// timestamp, shop, state), the code is exchanged, the token is stored, and the browser lands in
/// the app in the admin. Every failure answers a 4xx (502 when Shopify cannot be reached) and
/// stores nothing.
pub async fn callback(State(state): State<AppState>, session: Session, parts: Parts) -> Result<Res, AppError> {
    let Some(pending) = sessions::take::<PendingInstall>(&session, PENDING_INSTALL).await? else {
        tracing::info!("install callback without an install in progress");
        return Ok(Res::new(403, "Forbidden: no installation is in progress in this browser; start again"));
    };
    let request = core_request(&parts, &state.config.app_url, Vec::new());
    let verified = state.shopify.verify_oauth_callback(&request, &pending.state, &pending.shop);
    tracing::info!(code = %verified.log.code, shop = %pending.shop, "install callback");
    let (true, Some(shop), Some(code)) = (verified.ok, verified.shop, verified.code) else {
        return Ok(verified.response);
    };
    let result = state.shopify.exchange_authorization_code(&shop, &code).await;
    let token = match result.access_token {
        Some(token) if result.ok => token,
        _ => {
            tracing::warn!(code = %result.log.code, %shop, "authorization code exchange failed");
            return Ok(if (400..500).contains(&result.response.status) {
                result.response
            } else {
                Res::new(502, "Bad Gateway: Shopify could not exchange the authorization code; try again")
            });
        }
    };
    state.tokens.repository().save(&token).await?;
    tracing::info!(%shop, mode = token.access_mode.as_str(), "installed");
    let Some(location) = state.shopify.admin_app_url(&shop) else {
        return Ok(Res::new(400, "Bad Request: shop must be a myshopify.com shop"));
    };
    Ok(Res::new(302, "").with_header("Location", location))
}
