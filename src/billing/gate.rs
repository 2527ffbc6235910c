//! The billing gate: `.route_layer(billing::gate::require(&state, &["Pro"]))` lets a request
//! through only when its shop pays for one of the named plans. Otherwise it sends the merchant
//! to the confirmation page of a new charge (or to managed pricing's plan page): a document
//! load leaves the iframe (the parent-redirect page), a fetch gets 401 with
//! `X-Shopify-API-Request-Failure-Reauthorize-Url`. A merchant back from the confirmation page
//! (`charge_id` in the URL) before the charge is active gets a page asking for a reload, never
//! another redirect (Shopify sends a merchant who declines to the admin's apps page).

use askama::Template;
use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::middleware::{FromFnLayer, Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{BillingError, Mode};
use crate::i18n::Texts;
use crate::shopify::http::BoxFuture;
use crate::state::AppState;
use crate::web::admin_api::{GraphqlError, failure_reason};
use crate::web::core_request;
use crate::web::extract::Admin;

/// The gate's state: the app's state and the plans the gate requires.
#[derive(Clone)]
pub struct Required {
    state: AppState,
    plans: &'static [&'static str],
}

/// The gate as a function axum's middleware can hold.
type GateFn = fn(State<Required>, Request, Next) -> BoxFuture<'static, Response>;

/// The layer that requires one of `plans` (`&[]`: any plan of `app_billing::PLANS`, or with
/// managed pricing any subscription of the app). Name plans that `PLANS` declares: another
/// name lets nobody through (a 404 page).
pub fn require(
    state: &AppState,
    plans: &'static [&'static str],
) -> FromFnLayer<GateFn, Required, (State<Required>, Request)> {
    let gate: GateFn = |state, request, next| Box::pin(gate(state, request, next));
    from_fn_with_state(Required { state: state.clone(), plans }, gate)
}

/// The page shown to a merchant back from a confirmation page before the charge is active
/// (`templates/billing_pending.html`).
#[derive(Template)]
#[template(path = "billing_pending.html")]
struct PendingPage<'a> {
    api_key: &'a str,
    t: Texts,
}

/// The page shown when billing could not be checked or requested.
#[derive(Template)]
#[template(path = "billing_error.html")]
struct ErrorPage<'a> {
    api_key: &'a str,
    t: Texts,
    /// Why, in the admin's language (Shopify's own words inside).
    reason: String,
}

async fn gate(State(Required { state, plans }): State<Required>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let admin = match Admin::from_request_parts(&mut parts, &state).await {
        Ok(admin) => admin,
        Err(error) => return error.into_response(),
    };
    let (fetch, returned) = (is_fetch(&parts), returned_from_confirmation(&parts));
    let shop = admin.api.shop.clone();
    if returned {
        state.billing.forget(&shop);
    }
    match state.billing.check(&admin.api).await {
        Ok(status) if state.billing.paid_for(&status, plans).is_some() => {
            return next.run(Request::from_parts(parts, body)).await;
        }
        Ok(_) => {}
        Err(error) => return error.answer(&state, &admin, fetch),
    }
    if returned {
        // Back from a confirmation page: Shopify sends a merchant who declines to the admin's
        // apps page, so this one approved, and the charge is not active yet. No new charge
        // (and no cached "no plan"): a page that asks for a reload.
        state.billing.forget(&shop);
        tracing::info!(%shop, "back from a confirmation page before the charge is active");
        if fetch {
            return (
                StatusCode::PAYMENT_REQUIRED,
                Json(json!({ "errors": [{ "message": "the plan is not active yet" }] })),
            )
                .into_response();
        }
        return match (PendingPage { api_key: &state.config.api_key, t: admin.session.texts }).render() {
            Ok(html) => (StatusCode::PAYMENT_REQUIRED, admin.page(html)).into_response(),
            Err(error) => crate::error::AppError::from(error).into_response(),
        };
    }
    let plan = match (state.billing.mode(), plans.first(), state.billing.plans().first()) {
        (Mode::Managed { .. }, _, _) => "",
        (Mode::Plans, Some(plan), _) => plan,
        (Mode::Plans, None, Some(plan)) => plan.name,
        (Mode::Plans, None, None) => return BillingError::UnknownPlan(String::new()).answer(&state, &admin, fetch),
    };
    let target = match payment_page(&state, &admin, plan, "").await {
        Ok(target) => target,
        Err(error) => return error.answer(&state, &admin, fetch),
    };
    let core = core_request(&parts, &state.config.app_url, Vec::new());
    state.shopify.app_home_parent_redirect(&core, &target, &shop, None).response.into_response()
}

impl BillingError {
    /// The failure as the merchant sees it: the app's errors as they answer (a token to
    /// refresh, a busy database), Shopify's refusals and failures as a page in the admin's
    /// language or, for a `fetch`, JSON in English (422, 502): never a 500.
    pub fn answer(self, state: &AppState, admin: &Admin, fetch: bool) -> Response {
        let shop = admin.api.shop.as_str();
        let (status, key, detail) = match self {
            BillingError::App(error) => return error.into_response(),
            BillingError::Api(GraphqlError::UserErrors(ref errors)) => {
                let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
                (StatusCode::UNPROCESSABLE_ENTITY, "billing_error.refused", messages.join("; "))
            }
            BillingError::NotTheShops => {
                (StatusCode::UNPROCESSABLE_ENTITY, "billing_error.not_the_shops", String::new())
            }
            BillingError::UnknownPlan(ref name) => (StatusCode::NOT_FOUND, "billing_error.unknown_plan", name.clone()),
            BillingError::Api(GraphqlError::Failed(ref result)) => {
                (StatusCode::BAD_GATEWAY, "billing_error.failed", failure_reason(result))
            }
            BillingError::Api(ref error) => (StatusCode::BAD_GATEWAY, "billing_error.failed", error.to_string()),
        };
        tracing::warn!(shop, error = %self, "billing failed");
        if fetch {
            return (status, Json(json!({ "errors": [{ "message": self.to_string() }] }))).into_response();
        }
        let t = admin.session.texts;
        let reason = t.fill(key, &[("detail", &detail)]);
        match (ErrorPage { api_key: &state.config.api_key, t, reason }).render() {
            Ok(html) => (status, admin.page(html)).into_response(),
            Err(error) => crate::error::AppError::from(error).into_response(),
        }
    }
}

/// Whether a request is a fetch from the page (it carries its session token in a header).
pub fn is_fetch(parts: &axum::http::request::Parts) -> bool {
    parts.headers.contains_key(axum::http::header::AUTHORIZATION)
}

/// Whether the merchant comes back from a confirmation page (`charge_id` in the URL).
pub fn returned_from_confirmation(parts: &axum::http::request::Parts) -> bool {
    parts.uri.query().is_some_and(|query| query.split('&').any(|pair| pair.starts_with("charge_id=")))
}

/// Where the merchant goes to pay for `plan`: the confirmation page of a new charge (created
/// with `return_path` of the app as its return URL), or managed pricing's plan page.
pub async fn payment_page(
    state: &AppState,
    admin: &Admin,
    plan: &str,
    return_path: &str,
) -> Result<String, BillingError> {
    let shop = &admin.api.shop;
    match state.billing.mode() {
        Mode::Managed { handle } => {
            Ok(format!("https://admin.shopify.com/store/{shop}/charges/{handle}/pricing_plans"))
        }
        Mode::Plans => {
            let return_url =
                format!("https://admin.shopify.com/store/{shop}/apps/{}{return_path}", state.config.api_key);
            state.billing.request(&admin.api, plan, &return_url).await
        }
    }
}
