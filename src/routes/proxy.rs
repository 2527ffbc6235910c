//! The App Proxy: pages Shopify serves on the storefront under `/apps/<subpath>`.

use askama::Template;
use axum::extract::OriginalUri;
use axum::response::{Html, IntoResponse, Response};

use crate::error::AppError;
use crate::web::extract::AppProxy;

/// The storefront page (`templates/proxy.html`).
#[derive(Template)]
#[template(path = "proxy.html")]
struct ProxyPage<'a> {
    shop: &'a str,
    logged_in_customer_id: Option<&'a str>,
    path: &'a str,
}

/// `GET /proxy` and `GET /proxy/*`: greets the customer, or the guest.
pub async fn page(proxy: AppProxy, OriginalUri(uri): OriginalUri) -> Result<Response, AppError> {
    let page = ProxyPage {
        shop: &proxy.shop,
        logged_in_customer_id: proxy.logged_in_customer_id.as_deref(),
        path: uri.path(),
    };
    Ok(Html(page.render()?).into_response())
}
