//! The Plans page (`templates/plans.html`): the shop's current plan, the plans to choose, and
//! cancelling. Not behind the billing gate: it is where a merchant without a plan picks one.

use askama::Template;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::billing::gate::{is_fetch, payment_page, returned_from_confirmation};
use crate::billing::{ActivePayment, BillingError, Charge, Interval, Mode};
use crate::error::AppError;
use crate::i18n::Texts;
use crate::state::AppState;
use crate::web::core_request;
use crate::web::extract::Admin;

/// A plan as the page lists it.
struct PlanRow {
    name: &'static str,
    price: String,
}

/// `templates/plans.html`.
#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage<'a> {
    api_key: &'a str,
    current: Option<&'a ActivePayment>,
    /// Back from a confirmation page, the charge not active yet.
    pending: bool,
    plans: Vec<PlanRow>,
    managed: bool,
    t: Texts,
}

/// The price of a plan as a merchant reads it, in the admin's language (`10.00 USD every 30
/// days, 7-day trial`).
fn price(charge: &Charge, t: Texts) -> String {
    match *charge {
        Charge::Recurring { amount, currency_code, interval, trial_days, usage, .. } => {
            let every = match interval {
                Interval::Every30Days => "plans.every_30_days",
                Interval::Annual => "plans.every_year",
            };
            let mut parts = vec![t.fill(every, &[("price", &format!("{amount} {currency_code}"))])];
            if trial_days > 0 {
                parts.push(t.fill("plans.trial", &[("days", &trial_days.to_string())]));
            }
            if let Some(usage) = usage {
                parts.push(t.fill("plans.usage", &[("price", &format!("{} {currency_code}", usage.capped_amount))]));
            }
            parts.join(", ")
        }
        Charge::OneTime { amount, currency_code } => {
            t.fill("plans.once", &[("price", &format!("{amount} {currency_code}"))])
        }
    }
}

/// `GET /plans`: the current plan and the plans to choose. Back from a confirmation page
/// (`charge_id`), Shopify is asked again, and an answer without the charge is not kept (the
/// charge becomes active shortly: the page says so).
pub async fn page(State(state): State<AppState>, admin: Admin, parts: Parts) -> Result<Response, AppError> {
    let returned = returned_from_confirmation(&parts);
    if returned {
        state.billing.forget(&admin.api.shop);
    }
    let status = match state.billing.check(&admin.api).await {
        Ok(status) => status,
        Err(error) => return Ok(error.answer(&state, &admin, false)),
    };
    let current = state.billing.paid_for(&status, &[]);
    let pending = returned && current.is_none();
    if pending {
        state.billing.forget(&admin.api.shop);
    }
    let t = admin.session.texts;
    let plans = state
        .billing
        .plans()
        .iter()
        .filter(|plan| current.is_none_or(|current| current.name != plan.name))
        .map(|plan| PlanRow { name: plan.name, price: price(&plan.charge, t) })
        .collect();
    let managed = matches!(state.billing.mode(), Mode::Managed { .. });
    let page = PlansPage { api_key: &state.config.api_key, current, pending, plans, managed, t };
    Ok(admin.page(page.render()?))
}

/// The plan asked for (none with managed pricing).
#[derive(Deserialize)]
pub struct Choice {
    plan: Option<String>,
}

/// `GET /plans/subscribe?plan=Pro`: creates the plan's charge (or, with managed pricing, goes
/// to Shopify's plan page) and leaves the iframe for its confirmation page, which returns to
/// `/plans`.
pub async fn subscribe(
    State(state): State<AppState>,
    admin: Admin,
    parts: Parts,
    Query(Choice { plan }): Query<Choice>,
) -> Response {
    let shop = admin.api.shop.clone();
    match payment_page(&state, &admin, plan.as_deref().unwrap_or_default(), "/plans").await {
        Ok(target) => {
            let request = core_request(&parts, &state.config.app_url, Vec::new());
            state.shopify.app_home_parent_redirect(&request, &target, &shop, None).response.into_response()
        }
        Err(error) => error.answer(&state, &admin, is_fetch(&parts)),
    }
}

/// What `POST /api/plans/cancel` reads.
#[derive(Deserialize)]
pub struct Cancel {
    subscription_id: String,
    #[serde(default)]
    prorate: bool,
}

/// `POST /api/plans/cancel` (`{"subscription_id": "gid://...", "prorate": true}`): cancels one
/// of the shop's active subscriptions; `{"cancelled": id}`, or `{"errors": [...]}`.
pub async fn cancel(
    State(state): State<AppState>,
    admin: Admin,
    request: Result<Json<Cancel>, JsonRejection>,
) -> Response {
    let Ok(Json(request)) = request else {
        let errors = json!({ "errors": [{ "message": "expected {\"subscription_id\": \"gid://...\"}" }] });
        return (StatusCode::BAD_REQUEST, Json(errors)).into_response();
    };
    let owned = match state.billing.check(&admin.api).await {
        Ok(status) => status.subscriptions.iter().any(|subscription| subscription.id == request.subscription_id),
        Err(error) => return error.answer(&state, &admin, true),
    };
    if !owned {
        return BillingError::NotTheShops.answer(&state, &admin, true);
    }
    match state.billing.cancel(&admin.api, &request.subscription_id, request.prorate).await {
        Ok(()) => Json(json!({ "cancelled": request.subscription_id })).into_response(),
        Err(error) => error.answer(&state, &admin, true),
    }
}
