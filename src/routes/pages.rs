//! Pages for people rather than for the protocol: the landing page that `/` shows a browser
//! outside the Shopify admin, and the not-found answer (an HTML page for a browser, JSON for a
//! fetch). The protocol's own answers (the patch-page redirect, 401 with retry headers) are
//! left as they are.

use askama::Template;
use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::error::AppError;
use crate::state::AppState;

/// The landing page (`templates/landing.html`).
#[derive(Template)]
#[template(path = "landing.html")]
struct LandingPage<'a> {
    app_url: &'a str,
}

/// The not-found page (`templates/not_found.html`).
#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage;

/// Whether a request to `/` comes from a browser outside the admin: no embedded-app parameter
/// in the query and no session token in a header. Anything else gets the protocol's answer.
#[derive(Debug, Clone, Copy)]
pub struct OutsideTheAdmin(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for OutsideTheAdmin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let embedded = parts.uri.query().is_some_and(|query| {
            query.split('&').any(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                matches!(name, "shop" | "host" | "id_token" | "embedded" | "hmac")
            })
        });
        Ok(Self(!embedded && !parts.headers.contains_key(header::AUTHORIZATION)))
    }
}

/// The landing page: what the app is, and a form that starts the install on a shop.
pub fn landing(state: &AppState) -> Result<Response, AppError> {
    Ok(Html(LandingPage { app_url: &state.config.app_url }.render()?).into_response())
}

/// The fallback: 404 as an HTML page when the client accepts HTML, JSON otherwise.
pub async fn not_found(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && let Ok(html) = NotFoundPage.render() {
        return (StatusCode::NOT_FOUND, Html(html)).into_response();
    }
    (StatusCode::NOT_FOUND, Json(json!({ "errors": [{ "message": "not found" }] }))).into_response()
}
