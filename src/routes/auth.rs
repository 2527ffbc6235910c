//! Authentication pages: the patch-id-token (bounce) page, and the authorization-code install
//! flow (`/auth/login`, `/auth/callback`) for non-embedded apps, legacy installs and online
//! tokens by redirect, which keeps its state in a signed cookie.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::{Cookie, SameSite};

use crate::error::AppError;
use crate::sessions;
use crate::shopify::model::{AccessMode, Res};
use crate::shopify::secret::Secret;
use crate::shopify::signature;
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

/// The cookie that carries an install from `/auth/login` to `/auth/callback`.
pub const INSTALL_COOKIE: &str = "shopify_install";
/// How long an install may take from `/auth/login` to `/auth/callback`.
pub const INSTALL_LIFETIME: time::Duration = time::Duration::minutes(10);

/// What `/auth/login` hands to `/auth/callback`. It travels in a signed cookie, not in the
/// database, so starting an install stores nothing. The access mode needs no keeping: the
/// token Shopify returns says whether it is online.
#[derive(Debug, Serialize, Deserialize)]
struct PendingInstall {
    /// The shop the consent screen was opened for (validated by the core).
    shop: String,
    /// The `state` sent to Shopify.
    state: Secret,
    /// Unix seconds from which the install can no longer finish.
    expires: i64,
}

impl PendingInstall {
    /// `<payload>.<signature>`: the JSON in base64, and its base64 HMAC-SHA256 under a key
    /// derived from `secret` (so the signature stands for nothing else the secret signs).
    fn seal(&self, secret: &str) -> String {
        // Strings and a number always serialize.
        let payload = STANDARD.encode(serde_json::to_vec(self).unwrap_or_default());
        let signature = signature::base64_hmac(&cookie_key(secret), payload.as_bytes());
        format!("{payload}.{signature}")
    }

    /// The install sealed in `value`, if its signature is right (checked first, in constant
    /// time) and it has not expired at `now` (Unix seconds).
    fn open(value: &str, secret: &str, now: i64) -> Option<Self> {
        let (payload, signature) = value.split_once('.')?;
        if !signature::verify_base64_hmac(&[&cookie_key(secret)], payload.as_bytes(), signature) {
            return None;
        }
        let install: Self = serde_json::from_slice(&STANDARD.decode(payload).ok()?).ok()?;
        (now < install.expires).then_some(install)
    }
}

fn cookie_key(secret: &str) -> String {
    signature::hex_hmac(secret, b"install-cookie")
}

/// A `Set-Cookie` value for the install cookie (an empty `value` with a zero `max_age` clears
/// it):
/// `HttpOnly`, `SameSite=Lax` (sent on Shopify's top-level redirect back), only under `/auth`,
/// `Secure` unless `SESSION_COOKIE_SECURE` allows plain-http localhost.
fn install_cookie(value: &str, max_age: time::Duration, secure: bool) -> String {
    Cookie::build((INSTALL_COOKIE, value))
        .path("/auth")
        .max_age(max_age)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build()
        .to_string()
}

/// The install cookie the browser sent, if any.
fn sent_install_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == INSTALL_COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

/// `GET /auth/login?shop=...[&mode=online]`: starts the authorization-code grant. Puts a fresh
/// `state` (256 random bits) and the shop in the signed install cookie, valid for
/// [`INSTALL_LIFETIME`], and sends the browser to the shop's consent screen; `400` for a
/// missing or invalid shop or mode.
pub async fn login(State(state): State<AppState>, RawQuery(query): RawQuery) -> Res {
    let params = parse_query(query.as_deref().unwrap_or_default(), false);
    let access_mode = match first_value(&params, "mode") {
        None | Some("offline") => AccessMode::Offline,
        Some("online") => AccessMode::Online,
        Some(_) => return Res::new(400, "Bad Request: mode must be offline or online"),
    };
    let shop = first_value(&params, "shop").unwrap_or_default();
    let expires = (state.shopify.clock().now() + INSTALL_LIFETIME).unix_timestamp();
    let pending = PendingInstall { shop: shop.to_owned(), state: sessions::random_token().into(), expires };
    let redirect_uri = format!("{}{CALLBACK_PATH}", state.config.app_url);
    let Some(location) =
        state.shopify.authorization_url(shop, &state.config.scopes, &redirect_uri, pending.state.expose(), access_mode)
    else {
        return Res::new(400, "Bad Request: shop must be a myshopify.com shop, such as s1.myshopify.com");
    };
    tracing::info!(shop = %pending.shop, mode = access_mode.as_str(), "install started");
    let cookie = install_cookie(
        &pending.seal(state.config.api_secret.expose()),
        INSTALL_LIFETIME,
        state.config.session_cookie_secure,
    );
    Res::new(302, "").with_header("Location", location).with_header("Set-Cookie", cookie)
}

/// Where Shopify sends the browser back to (the path the Shopify CLI allows by default).
pub const CALLBACK_PATH: &str = "/auth/callback";

/// `GET /auth/callback`: finishes the authorization-code grant. Whatever the outcome, the
/// answer clears the install cookie, so this attempt is over. The cookie must be intact and
/// unexpired; then the query is verified (hmac, timestamp, shop and state against the
/// cookie's), the code is exchanged, the token is stored, and the browser lands in the app in
/// the admin. Every failure answers a 4xx (502 when Shopify cannot be reached) and stores
/// nothing.
pub async fn callback(State(state): State<AppState>, parts: Parts) -> impl IntoResponse {
    let cleared = install_cookie("", time::Duration::ZERO, state.config.session_cookie_secure);
    ([(header::SET_COOKIE, cleared)], finish_install(&state, &parts).await)
}

async fn finish_install(state: &AppState, parts: &Parts) -> Result<Res, AppError> {
    let now = state.shopify.clock().now().unix_timestamp();
    let pending = sent_install_cookie(parts)
        .and_then(|value| PendingInstall::open(&value, state.config.api_secret.expose(), now));
    let Some(pending) = pending else {
        tracing::info!("install callback without a valid install cookie");
        return Ok(Res::new(
            403,
            "Forbidden: no installation is in progress in this browser, or it took too long; start again",
        ));
    };
    let request = core_request(parts, &state.config.app_url, Vec::new());
    let verified = state.shopify.verify_oauth_callback(&request, pending.state.expose(), &pending.shop);
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
