//! Connecting a merchant's account on a third-party service (see [`crate::oauth`]).
//!
//! The embedded page opens `/connect/{provider}?id_token=<session token>` at the top level
//! (the provider's consent screen cannot be framed). That start route verifies the session
//! token, keeps its shop and staff member (`sub`), `state` and the PKCE verifier in the
//! server-side session and sends the browser to the provider. The provider redirects back to
//! the provider's redirect path, which uses the state up, exchanges the code and keeps the
//! token as a *pending* connection (for [`crate::oauth::PENDING_LIFETIME`]), then returns into
//! the app in that shop's admin with `?connect={provider}&pending={id}`. Nothing is linked
//! yet: the embedded page confirms with `POST /api/connections/{provider}/confirm` (a
//! session-token fetch, cookie-free), which links the token only if the session token's shop
//! and staff member are the ones that started the connection.
//!
//! The confirmation stops account-linking CSRF: a link to `/connect/{provider}` carrying an
//! attacker's session token, opened by a victim logged in at the provider, ends in the
//! attacker's shop admin, which the victim cannot open, so the victim's provider account is
//! never linked to the attacker's shop. `GET /api/connections/{provider}` tells the embedded
//! page whether the shop is connected.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_sessions::Session;

use crate::error::AppError;
use crate::oauth::{Confirmation, OAuthError};
use crate::sessions;
use crate::shopify::model::Res;
use crate::shopify::model::iso_seconds;
use crate::shopify::secret::Secret;
use crate::shopify::urls::{first_value, parse_query};
use crate::state::AppState;
use crate::web::core_request;
use crate::web::extract::{AppHome, PATCH_ID_TOKEN_PATH};

/// What the session keeps between the start and the callback of a connection.
#[derive(Debug, Serialize, Deserialize)]
struct ConnectionInProgress {
    /// The shop's name (`s1`), from the verified session token.
    shop: String,
    /// The staff member (`sub`) of the verified session token.
    #[serde(default)]
    user_id: Option<String>,
    /// The `state` sent to the provider.
    state: Secret,
    /// The PKCE verifier of the challenge sent to the provider.
    pkce_verifier: Secret,
}

fn session_key(provider: &str) -> String {
    format!("oauth_connect:{provider}")
}

/// `GET /connect/{provider}?id_token=...`: starts a connection for the shop of the verified
/// session token (`401` without one).
pub async fn start(state: AppState, session: Session, parts: Parts, provider: String) -> Result<Res, AppError> {
    let request = core_request(&parts, &state.config.app_url, Vec::new());
    let verified = state.shopify.verify_app_home_req(&request, PATCH_ID_TOKEN_PATH);
    let Some(shop) = verified.shop.filter(|_| verified.ok) else {
        tracing::info!(code = %verified.log.code, %provider, "connection start without a valid session token");
        return Ok(Res::new(401, "Unauthorized: open this page from the app in the Shopify admin"));
    };
    let authorization = state.oauth.authorize(&provider)?;
    let pending = ConnectionInProgress {
        shop,
        user_id: verified.user_id,
        state: authorization.state,
        pkce_verifier: authorization.pkce_verifier,
    };
    session.insert(&session_key(&provider), &pending).await?;
    tracing::info!(shop = %pending.shop, %provider, "connection started");
    Ok(Res::new(302, "").with_header("Location", authorization.url))
}

/// The provider's redirect back: uses up the session's state first, then checks the returned
/// `state` (constant time), exchanges the `code` with the PKCE verifier and keeps the token as
/// a pending connection of the shop and staff member that started it, then redirects into the
/// app in that shop's admin with `?connect={provider}&pending={id}` for the embedded page to
/// [`confirm`]. Links nothing. `403` for a missing or wrong state, `400` for a refusal, `502`
/// when the provider fails.
pub async fn callback(
    state: AppState,
    session: Session,
    query: Option<String>,
    provider: String,
) -> Result<Res, AppError> {
    let Some(pending) = sessions::take::<ConnectionInProgress>(&session, &session_key(&provider)).await? else {
        return Ok(Res::new(403, "Forbidden: no connection is in progress in this browser; start again"));
    };
    let params = parse_query(query.as_deref().unwrap_or_default(), true);
    let state_matches = first_value(&params, "state").is_some_and(|returned| pending.state == returned);
    if !state_matches {
        tracing::info!(shop = %pending.shop, %provider, "connection callback with a wrong state");
        return Ok(Res::new(403, "Forbidden: the state does not match the connection started in this browser"));
    }
    if first_value(&params, "error").is_some() {
        tracing::info!(shop = %pending.shop, %provider, "the merchant or the provider declined the connection");
        return Ok(Res::new(400, "Bad Request: the provider did not grant access"));
    }
    let Some(code) = first_value(&params, "code").filter(|code| !code.is_empty()) else {
        return Ok(Res::new(400, "Bad Request: the callback has no authorization code"));
    };
    let Some(app_in_admin) = state.shopify.admin_app_url(&pending.shop) else {
        return Ok(Res::new(400, "Bad Request: the shop is not valid"));
    };
    let user_id = pending.user_id.as_deref();
    let connection = match state
        .oauth
        .connect_pending(&pending.shop, user_id, &provider, code, pending.pkce_verifier.expose())
        .await
    {
        Ok(connection) => connection,
        Err(OAuthError::Rejected(error)) => {
            tracing::warn!(shop = %pending.shop, %provider, %error, "the provider refused the authorization code");
            return Ok(Res::new(400, "Bad Request: the provider refused the authorization code; connect again"));
        }
        Err(error) => return Err(error.into()),
    };
    tracing::info!(shop = %pending.shop, %provider, "connection granted; waiting for the embedded app to confirm it");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("connect", &provider)
        .append_pair("pending", connection.id.expose())
        .finish();
    Ok(Res::new(302, "").with_header("Location", format!("{app_in_admin}?{query}")))
}

/// The body of `POST /api/connections/{provider}/confirm`.
#[derive(Debug, Deserialize)]
pub struct ConfirmRequest {
    /// The `pending` query parameter the callback's redirect gave the embedded page.
    pub pending: String,
}

/// `POST /api/connections/{provider}/confirm` (App Home fetch, session token; JSON body
/// `{"pending": "<id>"}`): links the pending connection `id` when the session token's shop and
/// staff member are the ones that started it. `200` with the connection's status; `403` (nothing
/// linked) when another shop or staff member started it; `404` when there is no such pending
/// connection (unknown, already confirmed, or older than [`crate::oauth::PENDING_LIFETIME`]).
pub async fn confirm(
    State(state): State<AppState>,
    session: AppHome,
    Path(provider): Path<String>,
    Json(request): Json<ConfirmRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let user_id = session.user_id.as_deref();
    match state.oauth.confirm(&provider, &request.pending, &session.shop, user_id).await? {
        Confirmation::Linked(token) => {
            tracing::info!(shop = %session.shop, %provider, "connected");
            Ok((
                StatusCode::OK,
                Json(json!({
                    "provider": provider,
                    "connected": true,
                    "scope": token.scope,
                    "expires": token.expires.map(iso_seconds::format),
                })),
            ))
        }
        Confirmation::WrongOwner => Ok((
            StatusCode::FORBIDDEN,
            Json(json!({
                "provider": provider,
                "connected": false,
                "error": "this connection was started from another shop or by another staff member; connect again",
            })),
        )),
        Confirmation::NotFound => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({
                "provider": provider,
                "connected": false,
                "error": "no such connection is waiting (it expired or was already confirmed); connect again",
            })),
        )),
    }
}

/// `GET /api/connections/{provider}` (App Home fetch, session token): whether the shop has
/// connected the provider, with a token refreshed if it was expiring.
pub async fn status(
    State(state): State<AppState>,
    session: AppHome,
    Path(provider): Path<String>,
) -> Result<Json<Value>, AppError> {
    match state.oauth.token(&session.shop, &provider).await {
        Ok(token) => Ok(Json(json!({
            "provider": provider,
            "connected": true,
            "scope": token.scope,
            "expires": token.expires.map(iso_seconds::format),
        }))),
        Err(OAuthError::NotConnected(_) | OAuthError::Reconnect(_)) => {
            Ok(Json(json!({ "provider": provider, "connected": false })))
        }
        Err(error) => Err(error.into()),
    }
}

/// The start route's handler for `provider`'s static path.
pub fn start_route(provider: String) -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(move |State(state): State<AppState>, session: Session, parts: Parts| {
        let provider = provider.clone();
        async move { start(state, session, parts, provider).await }
    })
}

/// The callback route's handler for `provider`'s redirect path.
pub fn callback_route(provider: String) -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(move |State(state): State<AppState>, session: Session, RawQuery(query): RawQuery| {
        let provider = provider.clone();
        async move { callback(state, session, query, provider).await }
    })
}
