//! `app_home_redirect`: moves to another page of the app inside the App Home iframe, keeping
//! the embedded-app query parameters.

use crate::shopify::ShopifyApp;
use crate::shopify::model::{Log, Req, Res, ResultForReq};
use crate::shopify::protocol::{self, LINK_HEADER};
use crate::shopify::shop::{name_of, shop_domain};
use crate::shopify::urls::{
    UrlParts, flatten_groups, group_by_key, json_for_script, parse_query, with_query_and_fragment,
};

/// Request parameters never copied into the redirect: credentials and one-time values.
const NOT_FORWARDED: [&str; 5] = ["id_token", "hmac", "signature", "session", "timestamp"];

impl ShopifyApp {
    /// Builds the answer that moves App Home to `redirect_url`, a root-relative path of the
    /// app, carrying the current request's query parameters (the redirect's own win).
    ///
    /// A fetch request gets a plain `302`; a fetch request bounced through App Bridge
    /// (`X-Shopify-Bounce`) gets a page that navigates; a document request gets a `302` with
    /// the App Home headers. Unlike the reference, `id_token`, `hmac`, `signature`, `session`
    /// and `timestamp` are not forwarded, and `shop` (`s1` or `s1.myshopify.com`) must be a
    /// valid shop before it goes into the `Content-Security-Policy` header (`400`,
    /// `invalid_shop`); the returned shop is the lowercase shop name.
    pub fn app_home_redirect(&self, req: &Req, redirect_url: &str, shop: &str) -> ResultForReq {
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
        if !is_safe_relative_url(redirect_url) {
            return ResultForReq::failure(
                shop_name,
                "invalid_redirect_url",
                "the redirect URL is not a safe root-relative path: respond 400 Bad Request",
                protocol::bad_request(),
            );
        }
        let (Some(domain), Some(shop)) = (valid_domain, shop_name) else {
            let detail = "the shop is not a myshopify.com shop: respond 400 Bad Request";
            return ResultForReq::failure(None, "invalid_shop", detail, protocol::bad_request());
        };
        let location = merge_query(&req.url, redirect_url);
        let log = Log::new("app_home_redirect_success", "respond with this response to redirect within the app");
        let csp = protocol::frame_ancestors(&domain);
        let is_fetch = req.has_header("authorization");
        let response = if is_fetch && req.has_header("x-shopify-bounce") {
            let body = format!(
                "{}<script>window.open({}, \"_self\");</script>",
                protocol::app_bridge_tag(&self.config.client_id),
                json_for_script(&location)
            );
            Res::new(200, &body)
                .with_header("Content-Type", "text/html")
                .with_header("Link", LINK_HEADER)
                .with_header("Content-Security-Policy", csp)
        } else if is_fetch {
            Res::new(302, "").with_header("Location", location)
        } else {
            Res::new(302, "")
                .with_header("Location", location)
                .with_header("Link", LINK_HEADER)
                .with_header("Content-Security-Policy", csp)
        };
        ResultForReq { ok: true, shop: Some(shop), log, response }
    }
}

/// A non-empty path starting with a single `/`, that no browser can read as another host
/// (`//host`, `/\host`), with no control character (browsers drop tabs and newlines, which
/// could turn it into `//host`; the others cannot go into a `Location` header).
fn is_safe_relative_url(url: &str) -> bool {
    url.starts_with('/')
        && !url.starts_with("//")
        && !url.starts_with("/\\")
        && !url.chars().any(|c| c.is_ascii_control())
}

/// The redirect's path with its own query parameters, then the request's parameters it does
/// not already have (minus [`NOT_FORWARDED`]), then its fragment.
fn merge_query(request_url: &str, redirect_url: &str) -> String {
    let redirect = UrlParts::parse(redirect_url);
    let mut merged = group_by_key(parse_query(&redirect.query, true));
    for (key, values) in group_by_key(parse_query(&UrlParts::parse(request_url).query, true)) {
        if !NOT_FORWARDED.contains(&key.as_str()) && !merged.iter().any(|(k, _)| *k == key) {
            merged.push((key, values));
        }
    }
    with_query_and_fragment(redirect.path, &flatten_groups(merged), &redirect.fragment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::testing::app_with;

    fn app() -> ShopifyApp {
        app_with("api-key", None)
    }

    const URL: &str = "https://app.example.com/x?shop=s1.myshopify.com&host=abc&id_token=TOK&hmac=H&session=S&timestamp=1&signature=G&a=1&a=2&sp=x+y%2Fz";

    fn request(headers: &[(&str, &str)]) -> Req {
        Req {
            method: "GET".to_owned(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            url: URL.to_owned(),
            body: Vec::new(),
        }
    }

    #[test]
    fn the_session_token_and_signatures_are_not_forwarded() {
        let result =
            app().app_home_redirect(&request(&[("Authorization", "Bearer t")]), "/dashboard?a=9&new=1#sec", "s1");
        assert!(result.ok);
        assert_eq!(result.response.status, 302);
        assert_eq!(
            result.response.headers,
            vec![(
                "Location".to_owned(),
                "/dashboard?a=9&new=1&shop=s1.myshopify.com&host=abc&sp=x+y%2Fz#sec".to_owned()
            )]
        );
    }

    #[test]
    fn document_and_bounce_requests_get_the_app_home_headers() {
        let result = app().app_home_redirect(&request(&[]), "/d", "S1.myshopify.com");
        assert_eq!(result.shop.as_deref(), Some("s1"));
        assert_eq!(
            result.response.header("Content-Security-Policy"),
            Some("frame-ancestors https://s1.myshopify.com https://admin.shopify.com;")
        );
        assert!(result.response.header("Location").is_some());
        let bounce = app().app_home_redirect(&request(&[("authorization", ""), ("X-Shopify-Bounce", "1")]), "/d", "s1");
        assert_eq!(bounce.response.status, 200);
        assert!(bounce.response.body.contains("window.open(\"/d?shop="));
        assert!(bounce.response.body.ends_with(", \"_self\");</script>"));
        assert!(!bounce.response.body.contains("TOK"));
    }

    #[test]
    fn csp_injection_through_the_shop_is_refused() {
        for shop in ["evil.com; script-src *", "s1\r\nX: y", "", "a.b"] {
            let result = app().app_home_redirect(&request(&[]), "/d", shop);
            assert_eq!(result.log.code, "invalid_shop", "{shop:?}");
            assert_eq!(result.response, protocol::bad_request());
            assert_eq!(result.shop, None);
        }
    }

    #[test]
    fn only_safe_root_relative_paths_are_accepted() {
        for bad in ["", "dashboard", "//evil.com", "/\\evil.com", "/\tx", "/a\u{0}b", "https://e.com/"] {
            let result = app().app_home_redirect(&request(&[]), bad, "s1");
            assert_eq!(result.log.code, "invalid_redirect_url", "{bad:?}");
            assert_eq!(result.shop.as_deref(), Some("s1"));
        }
        assert!(is_safe_relative_url("/a b/%2F%2F"));
    }
}
