//! Literal values of the Shopify App Home protocol, shared by the verifiers and helpers.

use super::model::Res;

/// Response header asking App Bridge to fetch a fresh session token and retry.
pub const RETRY_HEADER: &str = "X-Shopify-Retry-Invalid-Session-Request";
/// Response header telling App Bridge to leave the iframe for this URL.
pub const REAUTHORIZE_HEADER: &str = "X-Shopify-API-Request-Failure-Reauthorize-Url";
/// The App Bridge script.
pub const APP_BRIDGE_URL: &str = "https://cdn.shopify.com/shopifycloud/app-bridge.js";
/// The Polaris web components script.
pub const POLARIS_URL: &str = "https://cdn.shopify.com/shopifycloud/polaris.js";
/// The `Link` header of App Home documents: preconnect and preload of both scripts.
pub const LINK_HEADER: &str = "<https://cdn.shopify.com>; rel=\"preconnect\", <https://cdn.shopify.com/shopifycloud/app-bridge.js>; rel=\"preload\"; as=\"script\", <https://cdn.shopify.com/shopifycloud/polaris.js>; rel=\"preload\"; as=\"script\"";
/// The `Link` header of the patch-id-token page.
pub const SHORT_LINK_HEADER: &str =
    "<https://cdn.shopify.com/shopifycloud/app-bridge.js>; rel=\"preload\"; as=\"script\";";

/// The `Content-Security-Policy` value that lets the admin (and only the admin) frame a page.
/// `shop_host` must already be validated.
pub fn frame_ancestors(shop_host: &str) -> String {
    format!("frame-ancestors https://{shop_host} https://admin.shopify.com;")
}

/// The App Bridge script tag. The client id is HTML-escaped.
pub fn app_bridge_tag(client_id: &str) -> String {
    format!("<script data-api-key=\"{}\" src=\"{APP_BRIDGE_URL}\"></script>", escape_html(client_id))
}

/// Escapes text for an HTML attribute or element.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `401 Unauthorized` with no headers.
pub fn unauthorized() -> Res {
    Res::new(401, "Unauthorized")
}

/// `401 Unauthorized` asking for a fresh session token.
pub fn unauthorized_retry() -> Res {
    unauthorized().with_header(RETRY_HEADER, "1")
}

/// An empty `500`, for a call the app itself got wrong.
pub fn configuration_error() -> Res {
    Res::new(500, "")
}

/// `400 Bad Request`.
pub fn bad_request() -> Res {
    Res::new(400, "Bad Request")
}

/// The synthetic answer when Shopify keeps rate-limiting.
pub fn too_many_requests() -> Res {
    Res::new(429, "{\"error\":\"Too many requests\"}").with_header("Content-Type", "application/json")
}
