//! `verify_webhook_req` and `verify_flow_action_req`: requests whose raw body is signed with
//! the app's secret, the base64 HMAC travelling in a header.

use crate::shopify::ShopifyApp;
use crate::shopify::model::{Log, Req, Res, ResultForReq};
use crate::shopify::protocol;
use crate::shopify::shop::shop_name;
use crate::shopify::signature;

/// What differs between the body-HMAC request kinds.
struct BodyHmacKind {
    /// The kind's name, for log details.
    name: &'static str,
    /// HMAC header names, in order: the first one present is used, even when empty.
    hmac_headers: &'static [&'static str],
    /// Shop-domain header names, in order: the first one present is used.
    shop_headers: &'static [&'static str],
}

const WEBHOOK: BodyHmacKind = BodyHmacKind {
    name: "Webhook",
    hmac_headers: &["x-shopify-hmac-sha256", "shopify-hmac-sha256"],
    shop_headers: &["x-shopify-shop-domain", "shopify-shop-domain"],
};

const FLOW_ACTION: BodyHmacKind = BodyHmacKind {
    name: "Flow action",
    hmac_headers: &["x-shopify-hmac-sha256"],
    shop_headers: &["x-shopify-shop-domain"],
};

impl ShopifyApp {
    /// Verifies a webhook: a `POST` whose raw body is signed in `X-Shopify-Hmac-SHA256` (or
    /// `Shopify-Hmac-SHA256`) with the current or the old secret.
    ///
    /// The shop comes from `X-Shopify-Shop-Domain` (or `Shopify-Shop-Domain`). That header is
    /// not signed, so unlike the reference it must be a valid shop: otherwise `400`
    /// (`invalid_shop`). Without the header the shop is `""`.
    pub fn verify_webhook_req(&self, req: &Req) -> ResultForReq {
        self.verify_body_hmac(req, &WEBHOOK)
    }

    /// Verifies a Shopify Flow action request: a `POST` whose raw body is signed in
    /// `X-Shopify-Hmac-SHA256`. The shop header is checked as for webhooks.
    pub fn verify_flow_action_req(&self, req: &Req) -> ResultForReq {
        self.verify_body_hmac(req, &FLOW_ACTION)
    }

    /// The checks of [`verify_webhook_req`](Self::verify_webhook_req) that need no body (the
    /// method, an HMAC header that is present and short enough to be a digest): the failure,
    /// or `None` when only the body can decide. Lets an adapter refuse before reading a body.
    pub fn precheck_webhook_req(&self, req: &Req) -> Option<ResultForReq> {
        precheck(req, &WEBHOOK)
    }

    /// The checks of [`verify_flow_action_req`](Self::verify_flow_action_req) that need no
    /// body, as [`precheck_webhook_req`](Self::precheck_webhook_req).
    pub fn precheck_flow_action_req(&self, req: &Req) -> Option<ResultForReq> {
        precheck(req, &FLOW_ACTION)
    }

    fn verify_body_hmac(&self, req: &Req, kind: &BodyHmacKind) -> ResultForReq {
        let name = kind.name;
        if let Some(failure) = precheck(req, kind) {
            return failure;
        }
        let received = first_present(req, kind.hmac_headers).unwrap_or_default();
        // A non-ASCII header cannot be a base64 digest: it fails like any wrong value.
        if !signature::verify_base64_hmac(&self.config.secrets_for_hmac(), &req.body, received) {
            return ResultForReq::failure(
                None,
                "invalid_hmac",
                format!("the {name} HMAC does not match the body: respond 401 Unauthorized"),
                protocol::unauthorized(),
            );
        }
        let shop = match first_present(req, kind.shop_headers) {
            None => String::new(),
            Some(header) => match shop_name(header) {
                Some(shop) => shop,
                None => {
                    return ResultForReq::failure(
                        None,
                        "invalid_shop",
                        format!("the {name} shop-domain header is not a myshopify.com shop: respond 400 Bad Request"),
                        protocol::bad_request(),
                    );
                }
            },
        };
        ResultForReq {
            ok: true,
            shop: Some(shop),
            log: Log::new("verified", format!("{name} request verified: respond 200 OK")),
            response: Res::new(200, ""),
        }
    }
}

/// The longest HMAC header looked at: a base64 SHA-256 digest has 44 characters, so a longer
/// value is refused as invalid without being decoded.
const MAX_HMAC_HEADER_LEN: usize = 128;

/// Method first, then the HMAC header: present, non-empty and at most
/// [`MAX_HMAC_HEADER_LEN`] bytes.
fn precheck(req: &Req, kind: &BodyHmacKind) -> Option<ResultForReq> {
    let name = kind.name;
    if req.method.is_empty() {
        return Some(ResultForReq::failure(
            None,
            "configuration_error",
            "the request method is required".to_owned(),
            protocol::configuration_error(),
        ));
    }
    if req.method != "POST" {
        return Some(ResultForReq::failure(
            None,
            "post_method_expected",
            format!("{name} requests must use POST: respond 405 Method Not Allowed"),
            Res::new(405, "Method not allowed"),
        ));
    }
    let received = first_present(req, kind.hmac_headers).unwrap_or_default();
    if received.is_empty() {
        return Some(ResultForReq::failure(
            None,
            "missing_hmac_header",
            format!("the {name} HMAC header is missing: respond 400 Bad Request"),
            protocol::bad_request(),
        ));
    }
    if received.len() > MAX_HMAC_HEADER_LEN {
        return Some(ResultForReq::failure(
            None,
            "invalid_hmac",
            format!("the {name} HMAC header is too long to be a digest: respond 401 Unauthorized"),
            protocol::unauthorized(),
        ));
    }
    None
}

/// The value of the first of `names` present in the request, even if empty.
fn first_present<'a>(req: &'a Req, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| req.header(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::testing::app_with;

    fn app(old_secret: Option<&str>) -> ShopifyApp {
        app_with("api-key", old_secret)
    }

    fn webhook(headers: &[(&str, &str)], body: &[u8]) -> Req {
        Req {
            method: "POST".to_owned(),
            headers: headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
            url: "https://app.example.com/hook".to_owned(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn verifies_the_raw_body_with_either_secret() {
        let body = "{\"name\":\"café\"}".as_bytes();
        let hmac = signature::base64_hmac("hush", body);
        let req = webhook(&[("X-Shopify-Shop-Domain", "S1.myshopify.com"), ("X-Shopify-Hmac-SHA256", &hmac)], body);
        let result = app(None).verify_webhook_req(&req);
        assert!(result.ok);
        assert_eq!(result.shop.as_deref(), Some("s1"));

        let old = signature::base64_hmac("previous", body);
        let req = webhook(&[("shopify-hmac-sha256", &old)], body);
        assert!(!app(None).verify_webhook_req(&req).ok);
        let result = app(Some("previous")).verify_webhook_req(&req);
        assert!(result.ok);
        assert_eq!(result.shop.as_deref(), Some(""));
        // Flow only knows the X- header family.
        assert_eq!(app(Some("previous")).verify_flow_action_req(&req).log.code, "missing_hmac_header");
    }

    #[test]
    fn the_first_present_hmac_header_wins_even_when_empty() {
        let hmac = signature::base64_hmac("hush", b"x");
        let req = webhook(&[("X-Shopify-Hmac-SHA256", ""), ("Shopify-Hmac-SHA256", &hmac)], b"x");
        let result = app(None).verify_webhook_req(&req);
        assert_eq!(result.log.code, "missing_hmac_header");
        assert_eq!(result.response.status, 400);
    }

    #[test]
    fn a_non_ascii_hmac_header_is_invalid_not_a_crash() {
        let req = webhook(&[("X-Shopify-Hmac-SHA256", "é2iSPlOy/sMZw1a8aD6T5SkP0p=")], b"x");
        let result = app(None).verify_webhook_req(&req);
        assert_eq!(result.log.code, "invalid_hmac");
        assert_eq!(result.response, Res::new(401, "Unauthorized"));
    }

    #[test]
    fn the_precheck_decides_what_needs_no_body_as_the_verifier_does() {
        let hmac = signature::base64_hmac("hush", b"{}");
        let long = "A".repeat(MAX_HMAC_HEADER_LEN + 1);
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 5] = [
            ("GET", &[("X-Shopify-Hmac-SHA256", &hmac)], Some("post_method_expected")),
            ("POST", &[], Some("missing_hmac_header")),
            ("POST", &[("X-Shopify-Hmac-SHA256", &long)], Some("invalid_hmac")),
            ("POST", &[("X-Shopify-Hmac-SHA256", "wrong")], None),
            ("POST", &[("X-Shopify-Hmac-SHA256", &hmac)], None),
        ];
        for (method, headers, code) in cases {
            let mut req = webhook(headers, b"{}");
            req.method = method.to_owned();
            let precheck = app(None).precheck_webhook_req(&req);
            assert_eq!(precheck.as_ref().map(|failure| &*failure.log.code), code, "{method} {headers:?}");
            if let Some(failure) = precheck {
                assert_eq!(failure.response, app(None).verify_webhook_req(&req).response);
            }
        }
        let req = webhook(&[("Shopify-Hmac-SHA256", &hmac)], b"{}");
        assert!(app(None).precheck_webhook_req(&req).is_none());
        assert_eq!(
            app(None).precheck_flow_action_req(&req).map(|failure| failure.log.code).as_deref(),
            Some("missing_hmac_header")
        );
    }

    #[test]
    fn checks_the_method_first() {
        let mut req = webhook(&[], b"");
        req.method = "post".to_owned();
        let result = app(None).verify_flow_action_req(&req);
        assert_eq!(result.log.code, "post_method_expected");
        assert_eq!(result.response, Res::new(405, "Method not allowed"));
        req.method = String::new();
        assert_eq!(app(None).verify_flow_action_req(&req).log.code, "configuration_error");
    }

    #[test]
    fn an_unsigned_shop_header_must_be_a_shop() {
        let hmac = signature::base64_hmac("hush", b"{}");
        for bad in ["evil.com/x.myshopify.com", "", "s1.myshopify.com\r\nX: y"] {
            let req = webhook(&[("X-Shopify-Hmac-SHA256", &hmac), ("X-Shopify-Shop-Domain", bad)], b"{}");
            let result = app(None).verify_webhook_req(&req);
            assert_eq!(result.log.code, "invalid_shop", "{bad:?}");
            assert_eq!(result.response, protocol::bad_request());
            assert_eq!(result.shop, None);
        }
        // The HMAC is checked first: a forged request never learns about the shop check.
        let req = webhook(&[("X-Shopify-Hmac-SHA256", "AAAA"), ("X-Shopify-Shop-Domain", "evil")], b"{}");
        assert_eq!(app(None).verify_webhook_req(&req).log.code, "invalid_hmac");
    }
}
