//! The README's recipes, compiled: the code between the markers below is shown in the README
//! (indentation aside), and a test fails when the two drift apart.

#![allow(dead_code)]

use axum::extract::State;
use axum::http::StatusCode;
use shopify_app_rust::AppState;
use shopify_app_rust::error::AppError;
use shopify_app_rust::routes::webhooks::answer;
use shopify_app_rust::web::extract::Webhook;

// recipe: a webhook topic
#[derive(serde::Deserialize)]
struct Order {
    id: u64,
}

pub async fn orders_create(State(state): State<AppState>, webhook: Webhook) -> Result<StatusCode, AppError> {
    let Ok(order) = webhook.payload::<Order>() else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    let now = state.shopify.clock().now();
    let once = state
        .deliveries
        .once(webhook.delivery(), now, async {
            tracing::info!(shop = %webhook.shop, order_id = order.id, "order created");
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(answer(&webhook, &once))
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
    assert_eq!(recipes, 1);
}
