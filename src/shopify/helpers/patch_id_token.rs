//! `app_home_patch_id_token`: the page App Bridge uses to fetch a fresh session token.

use crate::shopify::ShopifyApp;
use crate::shopify::model::{Log, Req, Res, ResultForReq};
use crate::shopify::protocol::{self, SHORT_LINK_HEADER};
use crate::shopify::shop::shop_domain;
use crate::shopify::urls::{UrlParts, first_value, parse_query};

impl ShopifyApp {
    /// Renders the patch-id-token page: only the App Bridge script, which gets a fresh
    /// session token and goes back to `shopify-reload`.
    ///
    /// Unlike the reference, the `shop` parameter must be a valid shop before it reaches the
    /// `Content-Security-Policy` header, and `shopify-reload` must be a root-relative path:
    /// App Bridge sends the fresh session token there, so it must never leave the app.
    pub fn app_home_patch_id_token(&self, req: &Req) -> ResultForReq {
        let failure = |code: &'static str, detail: &str| ResultForReq {
            ok: false,
            shop: None,
            log: Log::new(code, detail),
            response: protocol::bad_request(),
        };
        if req.url.is_empty() {
            return failure("missing_request_url", "the request URL is required");
        }
        let query = parse_query(&UrlParts::parse(&req.url).query, false);
        let Some(shop) = first_value(&query, "shop") else {
            return failure("missing_shop", "the shop query parameter is required");
        };
        let Some(reload) = first_value(&query, "shopify-reload") else {
            return failure("missing_shopify_reload", "the shopify-reload query parameter is required");
        };
        if !is_root_relative(reload) {
            return failure("invalid_shopify_reload", "shopify-reload must be a path of this app, such as /home?a=1");
        }
        let Some(domain) = shop_domain(shop) else {
            return failure("invalid_shop", "the shop query parameter is not a myshopify.com shop");
        };
        let response = Res::new(200, &protocol::app_bridge_tag(&self.config.client_id))
            .with_header("Content-Type", "text/html")
            .with_header("Link", SHORT_LINK_HEADER)
            .with_header("Content-Security-Policy", protocol::frame_ancestors(&domain));
        ResultForReq {
            ok: true,
            shop: Some(domain),
            log: Log::new(
                "patch_id_token_page_success",
                "serve this page so App Bridge can fetch a fresh session token",
            ),
            response,
        }
    }
}

/// Whether `target` is a path on the page's own origin (`/home?a=1`): it starts with one `/`
/// (`//host` and `/\host` are other hosts to a browser) and has no whitespace or control
/// characters (which browsers strip from URLs).
fn is_root_relative(target: &str) -> bool {
    target.starts_with('/')
        && !matches!(target.as_bytes().get(1), Some(b'/' | b'\\'))
        && !target.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_app_are_reload_targets() {
        for good in ["/", "/home?a=1&b=%2F", "/settings/back-home"] {
            assert!(is_root_relative(good), "{good:?}");
        }
        for bad in ["", "home", "https://evil.com/", "//evil.com", "/\\evil.com", "/\t/evil.com", "javascript:alert(1)"]
        {
            assert!(!is_root_relative(bad), "{bad:?}");
        }
    }
}
