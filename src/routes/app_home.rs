//! App Home: the embedded page in the Shopify admin and the fetch requests it makes.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::shopify::graphql::GraphqlRequest;
use crate::state::AppState;
use crate::web::extract::Admin;

/// The home page (`templates/app_home.html`).
#[derive(Template)]
#[template(path = "app_home.html")]
struct HomePage<'a> {
    api_key: &'a str,
    shop: &'a str,
}

/// `GET /`: the App Home page, rendered once the shop has a valid offline token.
pub async fn home(State(state): State<AppState>, admin: Admin) -> Result<Response, AppError> {
    let page = HomePage {
        api_key: &state.config.api_key,
        shop: &admin.session.shop,
    };
    Ok(admin.page(page.render()?))
}

const CREATE_PRODUCT: &str = "mutation createProduct($product: ProductCreateInput!) {
  productCreate(product: $product) {
    product { id title handle status }
    userErrors { field message }
  }
}";

/// `POST /api/products`: the GraphQL demo. Creates a product in the shop and answers it as
/// JSON (`{"product": {...}}`), or `{"errors": [...]}` with a 4xx/5xx status.
pub async fn create_product(admin: Admin) -> Result<Response, AppError> {
    let colors = [
        "Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet",
    ];
    let color = colors[usize::try_from(
        admin.access_token.token.len() ^ time::OffsetDateTime::now_utc().nanosecond() as usize,
    )
    .unwrap_or(0)
        % colors.len()];
    let request = GraphqlRequest::new(CREATE_PRODUCT)
        .variables(json!({ "product": { "title": format!("{color} snowboard") } }));
    let result = admin.graphql(request).await?;
    if !result.ok {
        tracing::warn!(code = %result.log.code, "productCreate failed");
        let status = StatusCode::from_u16(result.response.status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error());
        let errors = serde_json::from_str::<Value>(&result.response.body)
            .ok()
            .and_then(|body| body.get("errors").cloned());
        let body =
            json!({ "errors": errors.unwrap_or_else(|| json!([{ "message": result.log.code }])) });
        return Ok((status.unwrap_or(StatusCode::BAD_GATEWAY), Json(body)).into_response());
    }
    let payload = result
        .data
        .as_ref()
        .and_then(|data| data.get("productCreate"))
        .cloned()
        .unwrap_or(Value::Null);
    let user_errors = payload
        .get("userErrors")
        .and_then(Value::as_array)
        .filter(|errors| !errors.is_empty());
    if let Some(errors) = user_errors {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "errors": errors })),
        )
            .into_response());
    }
    Ok(
        Json(json!({ "product": payload.get("product").cloned().unwrap_or(Value::Null) }))
            .into_response(),
    )
}
