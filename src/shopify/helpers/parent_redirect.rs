//! `app_home_parent_redirect`: leaves the App Home iframe, sending the whole browser tab (or a
//! new one) to a URL.

use crate::shopify::ShopifyApp;
use crate::shopify::model::{Log, Req, Res, ResultForReq};
use crate::shopify::protocol::{self, LINK_HEADER, REAUTHORIZE_HEADER};
use crate::shopify::shop::{SHOP_SUFFIX, name_of, shop_domain};
use crate::shopify::urls::{
    UrlParts, flatten_groups, group_by_key, json_for_script, parse_query, with_query_and_fragment,
};

/// Query parameters of the embedded-app protocol that are dropped from a redirect back into
/// the Shopify admin (they describe the current load, and some are credentials).
const PROTOCOL_PARAMS: [&str; 10] =
    ["hmac", "locale", "protocol", "session", "id_token", "shop", "timestamp", "host", "embedded", "appLoadId"];

impl ShopifyApp {
    /// Builds the answer that sends the top window (`target` `_top`, the default) or a new one
    /// (`_blank`) to `redirect_url`: a page with `window.open` for a document request, a `401`
    /// with `X-Shopify-API-Request-Failure-Reauthorize-Url` for a fetch request.
    ///
    /// `shop` (`s1` or `s1.myshopify.com`) must be a valid shop before it goes into the
    /// `Content-Security-Policy` header (`400`, `invalid_shop`); the returned shop is the
    /// lowercase shop name. `redirect_url` must be an http(s) URL without control characters.
    pub fn app_home_parent_redirect(
        &self,
        req: &Req,
        redirect_url: &str,
        shop: &str,
        target: Option<&str>,
    ) -> ResultForReq {
        let valid_domain = shop_domain(shop);
        let shop_name = valid_domain.as_deref().map(name_of);
        if req.url.is_empty() {
            return ResultForReq::failure(
                None,
                "configuration_error",
                "the request URL is required",
                protocol::configuration_error(),
            );
        }
        let target = target.unwrap_or("_top");
        if !matches!(target, "_top" | "_blank") {
            return ResultForReq::failure(
                shop_name,
                "invalid_target",
                "the target must be _top or _blank: respond 400 Bad Request",
                protocol::bad_request(),
            );
        }
        let scheme = UrlParts::parse(redirect_url).scheme;
        if !matches!(scheme.as_str(), "http" | "https") {
            return ResultForReq::failure(
                None,
                "configuration_error",
                "the redirect URL must use http or https",
                protocol::configuration_error(),
            );
        }
        // It goes into a header or a script: no control character may ride along.
        if redirect_url.chars().any(|c| c.is_ascii_control()) {
            return ResultForReq::failure(
                None,
                "configuration_error",
                "the redirect URL contains control characters",
                protocol::configuration_error(),
            );
        }
        let (Some(domain), Some(shop)) = (valid_domain, shop_name) else {
            return ResultForReq::failure(
                None,
                "invalid_shop",
                "the shop is not a myshopify.com shop: respond 400 Bad Request",
                protocol::bad_request(),
            );
        };
        let url = strip_protocol_params(redirect_url);
        let log = Log::new(
            "app_home_parent_redirect_success",
            "respond with this response to redirect outside the App Home iframe",
        );
        let response = if req.has_header("authorization") {
            Res::new(401, "").with_header(REAUTHORIZE_HEADER, url)
        } else {
            let body = format!(
                "{}<script>window.open({}, {});</script>",
                protocol::app_bridge_tag(&self.config.client_id),
                json_for_script(&url),
                json_for_script(target)
            );
            Res::new(200, &body)
                .with_header("Content-Type", "text/html")
                .with_header("Link", LINK_HEADER)
                .with_header("Content-Security-Policy", protocol::frame_ancestors(&domain))
        };
        ResultForReq { ok: true, shop: Some(shop), log, response }
    }
}

/// For a URL on the Shopify admin or a shop's domain with a query, the URL rebuilt without the
/// protocol parameters (and without port or user info). Any other URL is kept byte for byte.
fn strip_protocol_params(redirect_url: &str) -> String {
    let parts = UrlParts::parse(redirect_url);
    let host = parts.hostname().unwrap_or_default();
    if !(host == "admin.shopify.com" || host.ends_with(SHOP_SUFFIX)) || parts.query.is_empty() {
        return redirect_url.to_owned();
    }
    let kept = parse_query(&parts.query, true).into_iter().filter(|(key, _)| !PROTOCOL_PARAMS.contains(&key.as_str()));
    let scheme = if parts.scheme.is_empty() { "https" } else { &parts.scheme };
    with_query_and_fragment(
        format!("{scheme}://{host}{}", parts.path),
        &flatten_groups(group_by_key(kept)),
        &parts.fragment,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::testing::app_with;

    fn app() -> ShopifyApp {
        app_with("api-key\"><script>", None)
    }

    fn request(headers: &[(&str, &str)]) -> Req {
        Req {
            method: "GET".to_owned(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            url: "https://app.example.com/home?shop=s1.myshopify.com".to_owned(),
            body: Vec::new(),
        }
    }

    #[test]
    fn document_requests_get_an_escaped_window_open_page() {
        let result = app().app_home_parent_redirect(&request(&[]), "https://example.com/a?b=1&c=</script>", "S1", None);
        assert!(result.ok);
        assert_eq!(result.shop.as_deref(), Some("s1"));
        assert_eq!(result.response.status, 200);
        assert!(result.response.body.ends_with(
            "<script>window.open(\"https://example.com/a?b=1&c=\\u003C/script\\u003E\", \"_top\");</script>"
        ));
        assert!(!result.response.body.contains("\"><script>\""));
        assert_eq!(
            result.response.header("Content-Security-Policy"),
            Some("frame-ancestors https://s1.myshopify.com https://admin.shopify.com;")
        );
    }

    #[test]
    fn fetch_requests_get_the_reauthorize_header_without_protocol_params() {
        let result = app().app_home_parent_redirect(
            &request(&[("Authorization", "")]),
            "HTTPS://Admin.Shopify.com:443/store/s1/apps?shop=s1&hmac=x&host=h&embedded=1&appLoadId=9&keep=a+b&id_token=t&keep=c&locale=en#frag",
            "s1",
            Some("_blank"),
        );
        assert_eq!(result.response.status, 401);
        assert_eq!(
            result.response.header(REAUTHORIZE_HEADER),
            Some("https://admin.shopify.com/store/s1/apps?keep=a+b&keep=c#frag")
        );
        assert_eq!(strip_protocol_params("https://example.com/x?id_token=t"), "https://example.com/x?id_token=t");
    }

    #[test]
    fn csp_injection_through_the_shop_is_refused() {
        for shop in ["evil.com; script-src *", "s1.myshopify.com\r\nSet-Cookie: a=b", "", "evil.com/x"] {
            let result = app().app_home_parent_redirect(&request(&[]), "https://example.com/", shop, None);
            assert_eq!(result.log.code, "invalid_shop", "{shop:?}");
            assert_eq!(result.response, protocol::bad_request());
            assert_eq!(result.shop, None);
        }
    }

    #[test]
    fn bad_targets_schemes_and_control_characters_are_refused() {
        let req = request(&[]);
        let result = app().app_home_parent_redirect(&req, "https://e.com/", "s1", Some("_self"));
        assert_eq!(result.log.code, "invalid_target");
        assert_eq!(result.shop.as_deref(), Some("s1"));
        for url in ["javascript:alert(1)", "/relative", "https://e.com/\r\nX: y"] {
            let result = app().app_home_parent_redirect(&req, url, "s1", None);
            assert_eq!(result.log.code, "configuration_error", "{url:?}");
            assert_eq!(result.response.status, 500);
        }
    }
}
