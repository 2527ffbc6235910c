//! Pages for people rather than for the protocol: the landing page that `/` shows a browser
//! outside the Shopify admin, and the error answers (404 and 5xx: an HTML page for a browser,
//! JSON for a fetch). The protocol's own answers (the patch-page redirect, 401 with retry headers) are
//! left as they are.

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::error::{AppError, ErrorAnswer};
use crate::state::AppState;

/// The landing page (`templates/landing.html`).
#[derive(Template)]
#[template(path = "landing.html")]
struct LandingPage<'a> {
    app_url: &'a str,
}

/// The error page (`templates/error.html`): a 404 or a 5xx for a person.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    advice: &'a str,
    message: &'a str,
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

/// The fallback (and a missing static file): 404, as a page or JSON (see [`error_pages`]).
pub async fn not_found() -> ErrorAnswer {
    ErrorAnswer::new(StatusCode::NOT_FOUND, "not found")
}

/// Middleware around the whole app: an [`ErrorAnswer`] (a 404, a 5xx) becomes an HTML page
/// when the client accepts HTML, JSON (`{"errors":[{"message"}]}`) otherwise, keeping its
/// status and headers (`Retry-After`). Every other answer, the protocol's included, passes
/// untouched.
pub async fn error_pages(request: Request, next: Next) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let response = next.run(request).await;
    let Some(answer) = response.extensions().get::<ErrorAnswer>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let body = if wants_html { error_page(&answer) } else { None };
    let (content_type, body) = match body {
        Some(html) => ("text/html; charset=utf-8", html),
        None => ("application/json", json!({ "errors": [{ "message": answer.message }] }).to_string()),
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts.headers.append(header::VARY, HeaderValue::from_static("accept"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The answer to a handler that panicked: logged, then a 500 like any other.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let reason = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    // A panic message may be long (a formatted value): its start says enough.
    let reason = reason.char_indices().nth(500).map_or(reason, |(end, _)| &reason[..end]);
    tracing::error!(reason, "a handler panicked");
    ErrorAnswer::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
}

/// The HTML page for an error answer (`None` if the template fails: JSON is sent instead).
fn error_page(answer: &ErrorAnswer) -> Option<String> {
    let (heading, advice) = match answer.status {
        StatusCode::NOT_FOUND => ("Not found", "This app has no page here. Open the app from the Shopify admin."),
        StatusCode::SERVICE_UNAVAILABLE => ("Busy for a moment", "The app is busy. Try again in a moment."),
        _ => (
            "Something went wrong",
            "The app could not answer this time. Try again in a moment; if it keeps happening, contact the app's developer.",
        ),
    };
    let page = ErrorPage { status: answer.status.as_u16(), heading, advice, message: &answer.message };
    page.render().inspect_err(|error| tracing::error!(%error, "the error page failed to render")).ok()
}
