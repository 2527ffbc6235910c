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
    /// `Content-Security-Policy` header.
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
        if first_value(&query, "shopify-reload").is_none() {
            return failure("missing_shopify_reload", "the shopify-reload query parameter is required");
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
