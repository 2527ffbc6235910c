//! Pages for people rather than for the protocol: the landing page that `/` shows a browser
//! outside the Shopify admin, and the not-found fallback (a page for a browser, JSON for a fetch:
//! see [`crate::web::error_pages`]). The protocol's own answers (the patch-page redirect, 401
//! with retry headers) are left as they are.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};

use crate::error::{AppError, ErrorAnswer};
use crate::state::AppState;

/// The landing page (`templates/landing.html`).
#[derive(Template)]
#[template(path = "landing.html")]
struct LandingPage<'a> {
    app_url: &'a str,
}

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

/// The fallback (and a missing static file): 404, as a page or JSON.
pub async fn not_found() -> ErrorAnswer {
    ErrorAnswer::not_found()
}
