//! A batteries-included starter for embedded Shopify apps on axum.
//!
//! [`shopify`] is the framework-agnostic auth core, [`web`] adapts it to axum, [`tokens`]
//! stores access tokens, [`oauth`] connects third-party providers, [`sessions`] keeps the
//! state of top-level flows, and [`routes`] holds the handlers, grouped by surface.

pub mod app_billing;
pub mod app_jobs;
pub mod billing;
pub mod config;
pub mod db;
pub mod deliveries;
pub mod error;
pub mod i18n;
pub mod jobs;
pub mod oauth;
pub mod products;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod shop_cache;
pub mod shop_data;
pub mod shopify;
pub mod state;
pub mod tokens;
pub mod web;

use axum::Router;
use axum::body::Body;
use axum::handler::HandlerWithoutStateExt;
use axum::http::{HeaderValue, Request, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Largest request body accepted (webhook payloads included).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The whole app: every route, with tracing, a body limit and the request limits of the
/// settings ([`server::limit_requests`]). `main` serves it; the tests drive the same router.
pub fn app(state: AppState) -> Router {
    let limits = from_fn_with_state(server::RequestLimits::new(&state.config.limits), server::limit_requests);
    // Signed bodies: a request the headers alone condemn is answered before the limits read its
    // body. `route_layer`: no fallback of the merged router gets these checks.
    // Any method: a wrong one gets the protocol's 405 from the verifier, not axum's.
    let mut webhooks = Router::new()
        .route("/webhooks/app/uninstalled", any(routes::webhooks::app_uninstalled))
        .route("/webhooks/app/scopes_update", any(routes::webhooks::scopes_update))
        .route("/webhooks/compliance", any(routes::webhooks::compliance));
    // Every other topic with a job handler (`app_jobs::registry`) at /webhooks/{topic}.
    for &topic in state.jobs.registry().webhook_topics() {
        if !routes::webhooks::COMPLIANCE_TOPICS.contains(&topic) {
            webhooks = webhooks.route(&format!("/webhooks/{topic}"), routes::webhooks::job_route(topic));
        }
    }
    let webhooks = webhooks
        .route_layer(limits.clone())
        .route_layer(from_fn_with_state(state.clone(), web::extract::precheck_webhook));
    let flow_actions = Router::new()
        .route("/api/flow/action", any(routes::flow::action))
        .route_layer(limits.clone())
        .route_layer(from_fn_with_state(state.clone(), web::extract::precheck_flow_action));
    // UI-extension endpoints, called cross-origin from Shopify's extension sandboxes: every
    // answer allows any origin and exposes the protocol's headers, the limits' own answers (503,
    // 408, 413) included, so the CORS headers go outside them.
    let expose = HeaderValue::from_static(
        "X-Shopify-Retry-Invalid-Session-Request, X-Shopify-API-Request-Failure-Reauthorize-Url",
    );
    let extensions = Router::new()
        .route("/api/extensions/{surface}", post(routes::extensions::extension).options(routes::extensions::extension))
        .route_layer(limits.clone())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose));
    // App Home's pages and their fetches: behind the billing gate when BILLING_REQUIRED.
    let mut app_home = Router::new()
        .route("/", get(routes::app_home::home))
        .route("/api/products", post(routes::app_home::create_product))
        .route("/settings", get(routes::app_home::settings));
    if state.config.billing.required {
        app_home = app_home.route_layer(billing::gate::require(&state, &[]));
    }
    Router::new()
        .merge(app_home)
        .route("/plans", get(routes::plans::page))
        .route("/plans/subscribe", get(routes::plans::subscribe))
        .route("/api/plans/cancel", post(routes::plans::cancel))
        .route("/settings/back-home", get(routes::app_home::back_home))
        .route("/settings/open-products", get(routes::app_home::open_products))
        .route(web::extract::PATCH_ID_TOKEN_PATH, get(routes::auth::patch_id_token))
        .route("/auth/login", get(routes::auth::login))
        .route(routes::auth::CALLBACK_PATH, get(routes::auth::callback))
        .route("/proxy", get(routes::proxy::page))
        .route("/proxy/{*path}", get(routes::proxy::page))
        .route("/api/connections/{provider}", get(routes::connect::status))
        .route("/api/connections/{provider}/confirm", post(routes::connect::confirm))
        .merge(session_routes(&state))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/ops/jobs", get(routes::ops::jobs))
        .route("/ops/jobs/{id}/retry", post(routes::ops::retry))
        .nest_service("/static", ServeDir::new("static").not_found_service(routes::pages::not_found.into_service()))
        .fallback(routes::pages::not_found)
        .layer(limits.clone())
        .merge(extensions)
        .merge(webhooks)
        .merge(flow_actions)
        .with_state(state)
        // Outside the request limits: a body announced over the limit is refused unread.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        // 404s and 5xx as a page or JSON; a panicking handler (a bug) as a 500, not a dropped
        // connection.
        .layer(web::error_pages::ErrorPagesLayer)
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// Top-level flows that keep state in a server-side session: the third-party provider
/// connections (started only with a verified session token). Only these routes get the session
/// layer (and its cookie): embedded App Home requests stay cookie-free.
fn session_routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for provider in state.oauth.configs() {
        router = router
            .route(&provider.start_path(), routes::connect::start_route(provider.name.clone()))
            .route(&provider.redirect_path, routes::connect::callback_route(provider.name.clone()));
    }
    router.layer(sessions::layer(&state.db, state.config.session_cookie_secure))
}

/// One span per request, with the method and the path only: queries carry session tokens
/// and signatures, and headers carry HMACs, so neither is recorded.
fn request_span(request: &Request<Body>) -> tracing::Span {
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
}
