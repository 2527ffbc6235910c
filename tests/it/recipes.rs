//! The README's recipes, compiled: the code between the markers below is shown in the README
//! (indentation aside), and a test fails when the two drift apart.

#![allow(dead_code)]

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use shopify_app_rust::AppState;
use shopify_app_rust::billing::{self, BillingError};
use shopify_app_rust::error::AppError;
use shopify_app_rust::i18n::Texts;
use shopify_app_rust::jobs::{Job, JobError, JobRegistry, NewJob, Scope};
use shopify_app_rust::shopify::graphql::GraphqlRequest;
use shopify_app_rust::web::admin_api::bulk::BulkOperationFinished;
use shopify_app_rust::web::admin_api::{AdminApi, GraphqlError};
use shopify_app_rust::web::extract::Admin;

// recipe: a page
#[derive(askama::Template)]
#[template(
    source = r#"{% extends "base.html" %}{% block content %}<s-page heading="Products">{{ count }} products</s-page>{% endblock %}"#,
    ext = "html"
)]
struct ProductsPage<'a> {
    api_key: &'a str,
    t: Texts,
    count: i64,
}

#[derive(serde::Deserialize)]
struct ProductsCount {
    #[serde(rename = "productsCount")]
    products_count: Count,
}

#[derive(serde::Deserialize)]
struct Count {
    count: i64,
}

pub async fn products(State(state): State<AppState>, admin: Admin) -> Result<Response, GraphqlError> {
    let answer: ProductsCount = admin.api.query(GraphqlRequest::new("{ productsCount { count } }")).await?;
    let count = answer.products_count.count;
    let page = ProductsPage { api_key: &state.config.api_key, t: admin.session.texts, count };
    Ok(admin.page(askama::Template::render(&page).map_err(AppError::from)?))
}
// end of recipe

// recipe: a fetch route
pub async fn products_count(admin: Admin) -> Result<Json<Value>, GraphqlError> {
    let answer: ProductsCount = admin.api.query(GraphqlRequest::new("{ productsCount { count } }")).await?;
    Ok(Json(json!({ "count": answer.products_count.count })))
}
// end of recipe

// recipe: a webhook topic
#[derive(serde::Deserialize)]
struct Order {
    id: u64,
}

pub async fn log_order(_state: AppState, job: Job) -> Result<(), JobError> {
    let order: Order = job.payload()?;
    tracing::info!(shop = job.shop()?, order_id = order.id, "order created");
    Ok(())
}
// end of recipe

// recipe: enqueue a job
pub async fn start_sync(State(state): State<AppState>, admin: Admin) -> Result<StatusCode, AppError> {
    let job = NewJob::new("sync_products").shop(&admin.session.shop).payload(serde_json::json!({ "full": true }))?;
    state.jobs.enqueue(job).await?;
    Ok(StatusCode::ACCEPTED)
}
// end of recipe

async fn sync_products(_state: AppState, _job: Job) -> Result<(), JobError> {
    Ok(())
}

async fn nightly_report(_state: AppState, _job: Job) -> Result<(), JobError> {
    Ok(())
}

// recipe: register jobs
pub const DAILY: Duration = Duration::from_secs(24 * 3600);

pub fn registry() -> JobRegistry {
    JobRegistry::new()
        .webhook("orders/create", log_order)
        .on("sync_products", sync_products)
        .every("nightly_report", DAILY, Scope::Global, nightly_report)
        .every("refresh_catalog", DAILY, Scope::PerShop, sync_products)
}
// end of recipe

async fn reports() -> &'static str {
    "reports"
}

// recipe: gate a route
pub fn paid_routes(state: &AppState) -> Router<AppState> {
    Router::new().route("/reports", get(reports)).route_layer(billing::gate::require(state, &["Pro"]))
}
// end of recipe

// recipe: charge usage
pub async fn charge_sync(state: &AppState, shop: &str, synced: u64) -> Result<(), BillingError> {
    let api = AdminApi::for_shop(state, shop).await?;
    let status = state.billing.check(&api).await?;
    let usage =
        state.billing.paid_for(&status, &["Pro"]).and_then(|plan| plan.line_items.iter().find(|item| item.usage));
    let Some(line_item) = usage else {
        return Ok(());
    };
    let key = format!("sync-{shop}-{synced}");
    state.billing.create_usage_record(&api, &line_item.id, "Products synced", ("1.00", "USD"), &key).await?;
    Ok(())
}
// end of recipe

// recipe: every page of a connection
#[derive(serde::Deserialize)]
pub struct ProductId {
    id: String,
}

pub async fn all_product_ids(api: &AdminApi) -> Result<Vec<ProductId>, GraphqlError> {
    let query = "query($after: String) { products(first: 250, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }";
    api.pages(GraphqlRequest::new(query), "/products").collect(10_000).await
}
// end of recipe

// recipe: a bulk query
pub async fn start_export(admin: Admin) -> Result<StatusCode, GraphqlError> {
    admin.api.run_bulk_query("{ products { edges { node { id title } } } }").await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(serde::Deserialize)]
struct ExportedProduct {
    id: String,
    title: String,
}

pub async fn export_finished(state: AppState, job: Job) -> Result<(), JobError> {
    let finished: BulkOperationFinished = job.payload()?;
    let api = AdminApi::for_shop(&state, job.shop()?).await?;
    let operation = api.bulk_operation(&finished.admin_graphql_api_id).await?;
    let mut products = api.bulk_results::<ExportedProduct>(&operation).await?;
    while let Some(product) = products.next().await? {
        tracing::info!(id = product.id, title = product.title, "exported");
    }
    Ok(())
}
// end of recipe

/// `text`'s lines without their indentation, blank lines dropped.
fn unindented(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty()).collect()
}

#[test]
fn the_readme_shows_the_compiled_recipes() {
    let source = include_str!("recipes.rs");
    let readme = include_str!("../../README.md");
    let readme = unindented(readme);
    let mut rest = source;
    let mut recipes = 0;
    // Built, so that this test's own text holds no marker.
    let (begin, finish) = (concat!("// ", "recipe: "), concat!("// ", "end of recipe"));
    while let Some(start) = rest.find(begin) {
        let body = &rest[start..];
        let body = &body[body.find('\n').unwrap_or(0)..];
        let end = body.find(finish).expect("every recipe has its end marker");
        let recipe = unindented(&body[..end]);
        let shown = readme.windows(recipe.len()).any(|window| window == recipe.as_slice());
        assert!(shown, "the README does not show this recipe as compiled here:\n{}", recipe.join("\n"));
        recipes += 1;
        rest = &body[end..];
    }
    assert_eq!(recipes, 9);
}

#[test]
fn the_registered_recipe_jobs_are_known() {
    let registry = registry();
    assert_eq!(registry.webhook_topics(), ["orders/create"]);
    assert!(["sync_products", "nightly_report", "refresh_catalog"].iter().all(|kind| registry.knows(kind)));
}
