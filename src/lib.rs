//! A batteries-included starter for embedded Shopify apps on axum.
//!
//! [`shopify`] is the framework-agnostic auth core, [`web`] adapts it to axum, [`tokens`]
//! stores access tokens, and [`routes`] holds the handlers, grouped by surface.

pub mod config;
pub mod db;
pub mod error;
pub mod routes;
pub mod shopify;
pub mod state;
pub mod tokens;
pub mod web;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Largest request body accepted (webhook payloads included).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The whole app: every route, with tracing and a body limit. `main` serves it; the tests
/// drive the same router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(routes::app_home::home))
        .route("/api/products", post(routes::app_home::create_product))
        .route(
            web::extract::PATCH_ID_TOKEN_PATH,
            get(routes::auth::patch_id_token),
        )
        .route("/healthz", get(routes::health::healthz))
        .nest_service("/static", ServeDir::new("static"))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// One span per request, with the method and the path only: queries carry session tokens
/// and signatures, and headers carry HMACs, so neither is recorded.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), user_agent)
}
