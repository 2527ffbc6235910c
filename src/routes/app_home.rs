//! App Home: the embedded page in the Shopify admin and the fetch requests it makes.

use std::hash::{BuildHasher, RandomState};

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AppError;
use crate::i18n::Texts;
use crate::products::RecordedProduct;
use crate::routes::pages::OutsideTheAdmin;
use crate::shopify::graphql::GraphqlRequest;
use crate::shopify::model::Res;
use crate::state::AppState;
use crate::web::admin_api::GraphqlError;
use crate::web::core_request;
use crate::web::extract::{Admin, AppHome};

/// The home page (`templates/app_home.html`).
#[derive(Template)]
#[template(path = "app_home.html")]
struct HomePage<'a> {
    api_key: &'a str,
    shop: &'a str,
    products: &'a [RecordedProduct],
    t: Texts,
}

/// `GET /`: the App Home page, rendered once the shop has a valid offline token, with the
/// products the `products/update` job recorded last. A browser outside the admin (no
/// embedded-app parameter, no session token) gets the landing page instead of the protocol's
/// redirect.
pub async fn home(
    State(state): State<AppState>,
    OutsideTheAdmin(outside): OutsideTheAdmin,
    admin: Result<Admin, AppError>,
) -> Result<Response, AppError> {
    let admin = match admin {
        Ok(admin) => admin,
        Err(_) if outside => return crate::routes::pages::landing(&state),
        Err(rejection) => return Err(rejection),
    };
    let products = state.products.latest(&admin.session.shop).await?;
    let page = HomePage {
        api_key: &state.config.api_key,
        shop: &admin.session.shop,
        products: &products,
        t: admin.session.texts,
    };
    Ok(admin.page(page.render()?))
}

const CREATE_PRODUCT: &str = "mutation createProduct($product: ProductCreateInput!) {
  productCreate(product: $product) {
    product { id title handle status }
    userErrors { field message }
  }
}";

/// What `productCreate` answers (its `userErrors` are checked by [`AdminApi::mutate`]).
#[derive(Deserialize)]
struct ProductCreated {
    product: Option<Value>,
}

/// `POST /api/products`: the GraphQL demo. Creates a product in the shop and answers it as
/// JSON (`{"product": {...}}`), or `{"errors": [...]}` with a 4xx/5xx status.
pub async fn create_product(admin: Admin) -> Result<Json<Value>, GraphqlError> {
    let colors = ["Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet"];
    let color = colors[RandomState::new().hash_one("color") as usize % colors.len()];
    let request =
        GraphqlRequest::new(CREATE_PRODUCT).variables(json!({ "product": { "title": format!("{color} snowboard") } }));
    let created: ProductCreated = admin.api.mutate(request, "productCreate").await?;
    Ok(Json(json!({ "product": created.product })))
}

/// The settings page (`templates/settings.html`).
#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    api_key: &'a str,
    t: Texts,
}

/// `GET /settings`: a second App Home page, showing both redirect helpers.
pub async fn settings(State(state): State<AppState>, session: AppHome) -> Result<Response, AppError> {
    Ok(session.page(SettingsPage { api_key: &state.config.api_key, t: session.texts }.render()?))
}

/// `GET /settings/back-home`: an in-app redirect to `/?saved=1`, keeping the embedded
/// context (`shop`, `host`...) but never the session token.
pub async fn back_home(State(state): State<AppState>, session: AppHome, parts: Parts) -> Res {
    let request = core_request(&parts, &state.config.app_url, Vec::new());
    state.shopify.app_home_redirect(&request, "/?saved=1", &session.shop).response
}

/// `GET /settings/open-products`: leaves the iframe for the admin's products page.
pub async fn open_products(State(state): State<AppState>, session: AppHome, parts: Parts) -> Res {
    let request = core_request(&parts, &state.config.app_url, Vec::new());
    let target = format!("https://admin.shopify.com/store/{}/products", session.shop);
    state.shopify.app_home_parent_redirect(&request, &target, &session.shop, None).response
}
