//! `verify_app_proxy_req`: storefront requests Shopify forwards through the App Proxy, signed
//! in the `signature` query parameter.

use std::collections::BTreeMap;

use crate::shopify::ShopifyApp;
use crate::shopify::model::{Log, Req, Res, ResultWithLoggedInCustomerId, python_int_str};
use crate::shopify::protocol;
use crate::shopify::shop::shop_name;
use crate::shopify::signature;
use crate::shopify::urls::{UrlParts, first_value, parse_query};

/// How far the signed `timestamp` may be from now, either way, in seconds.
pub const MAX_TIMESTAMP_SKEW_SECONDS: i128 = 90;

impl ShopifyApp {
    /// Verifies an App Proxy request: a fresh `timestamp` and a `signature` over every other
    /// query parameter, with the current or the old secret.
    ///
    /// The shop is the signed `shop` parameter; unlike the reference, when present it must be
    /// a valid shop (`400`, `invalid_shop`), checked once the signature holds.
    pub fn verify_app_proxy_req(&self, req: &Req) -> ResultWithLoggedInCustomerId {
        if req.url.is_empty() {
            return failure("configuration_error", "the request URL is required", protocol::configuration_error());
        }
        let params = parse_query(&UrlParts::parse(&req.url).query, true);
        let count = |key: &str| params.iter().filter(|(k, _)| k == key).count();
        if count("shop") > 1 {
            return unauthorized("multiple_shop_parameters", "the request has several shop parameters");
        }
        let Some(timestamp) = first_value(&params, "timestamp") else {
            return unauthorized("missing_timestamp", "the timestamp parameter is missing");
        };
        let Some(timestamp) = python_int_str(timestamp) else {
            return unauthorized("invalid_timestamp", "the timestamp parameter is not an integer");
        };
        let now = i128::from(self.now_unix());
        if (now - timestamp).abs() > MAX_TIMESTAMP_SKEW_SECONDS {
            return unauthorized("timestamp_too_old", "the timestamp is more than 90 seconds away from now");
        }
        let received = match (count("signature"), first_value(&params, "signature")) {
            (1, Some(received)) => received,
            _ => {
                return unauthorized("missing_signature", "the signature parameter is missing or repeated");
            }
        };
        let message = signed_message(&params);
        // A non-ASCII signature cannot be a hex digest: it fails like any wrong value.
        if !signature::verify_hex_hmac(&self.config.secrets_for_hmac(), message.as_bytes(), received) {
            return unauthorized("invalid_signature", "the signature does not match the parameters");
        }
        let shop = match first_value(&params, "shop") {
            None => None,
            Some(shop) => match shop_name(shop) {
                Some(name) => Some(name),
                None => {
                    return failure(
                        "invalid_shop",
                        "the shop parameter is not a myshopify.com shop: respond 400 Bad Request",
                        protocol::bad_request(),
                    );
                }
            },
        };
        ResultWithLoggedInCustomerId {
            ok: true,
            shop,
            log: Log::new("verified", "App Proxy request verified"),
            response: Res::new(200, ""),
            logged_in_customer_id: first_value(&params, "logged_in_customer_id").map(str::to_owned),
        }
    }
}

/// The text Shopify signs: every parameter but `signature`, decoded, sorted by key (code-point
/// order), as `key=value` (repeated keys as `key=v1,v2`), with no separator.
///
/// Linear in the number of parameters (a sorted map, not a search per parameter): it runs
/// before the signature is checked, on whatever query anyone sends.
fn signed_message(params: &[(String, String)]) -> String {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in params.iter().filter(|(key, _)| key != "signature") {
        grouped.entry(key).or_default().push(value);
    }
    grouped.iter().map(|(key, values)| format!("{key}={}", values.join(","))).collect()
}

fn unauthorized(code: &'static str, detail: &str) -> ResultWithLoggedInCustomerId {
    failure(code, &format!("{detail}: respond 401 Unauthorized"), protocol::unauthorized())
}

fn failure(code: &'static str, detail: &str, response: Res) -> ResultWithLoggedInCustomerId {
    ResultWithLoggedInCustomerId {
        ok: false,
        shop: None,
        log: Log::new(code, detail),
        response,
        logged_in_customer_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::testing::{NOW, app_with};
    use crate::shopify::urls::encode_query;

    fn app() -> ShopifyApp {
        app_with("api-key", Some("previous"))
    }

    /// A proxy URL with `pairs`, signed with `secret`.
    fn signed(pairs: &[(&str, &str)], secret: &str) -> Req {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let signature = signature::hex_hmac(secret, signed_message(&pairs).as_bytes());
        let query = encode_query(&pairs);
        Req { url: format!("https://s1.myshopify.com/apps/x?{query}&signature={signature}"), ..Req::default() }
    }

    #[test]
    fn builds_the_message_like_shopify() {
        let pairs = [("b", "2"), ("a", "1"), ("b", "3"), ("_", ""), ("B", "x")];
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(signed_message(&pairs), "B=x_=a=1b=2,3");
    }

    #[test]
    fn verifies_with_either_secret() {
        let ts = NOW.to_string();
        for secret in ["hush", "previous"] {
            let req =
                signed(&[("shop", "S1.myshopify.com"), ("timestamp", &ts), ("logged_in_customer_id", "")], secret);
            let result = app().verify_app_proxy_req(&req);
            assert!(result.ok, "{secret}");
            assert_eq!(result.shop.as_deref(), Some("s1"));
            assert_eq!(result.logged_in_customer_id.as_deref(), Some(""));
        }
        let req = signed(&[("shop", "s1.myshopify.com"), ("timestamp", &ts)], "other");
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "invalid_signature");
    }

    #[test]
    fn timestamp_window_uses_the_injected_clock() {
        for (offset, code) in
            [(90, "verified"), (-90, "verified"), (91, "timestamp_too_old"), (-91, "timestamp_too_old")]
        {
            let ts = (NOW + offset).to_string();
            let req = signed(&[("shop", "s1"), ("timestamp", &ts)], "hush");
            assert_eq!(app().verify_app_proxy_req(&req).log.code, code, "{offset}");
        }
        let req = signed(&[("timestamp", " +1_750_000_000 ")], "hush");
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "verified");
        let req = signed(&[("timestamp", "1.5e9")], "hush");
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "invalid_timestamp");
    }

    #[test]
    fn non_ascii_or_repeated_signatures_fail_cleanly() {
        let ts = NOW.to_string();
        let req =
            Req { url: format!("https://s1.myshopify.com/apps/x?timestamp={ts}&signature=%C3%A9"), ..Req::default() };
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "invalid_signature");
        let mut req = signed(&[("timestamp", &ts)], "hush");
        req.url.push_str("&signature=00");
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "missing_signature");
        let mut req = signed(&[("shop", "s1"), ("timestamp", &ts)], "hush");
        req.url.push_str("&shop=s2");
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "multiple_shop_parameters");
    }

    #[test]
    fn a_signed_but_invalid_shop_is_refused_after_the_signature() {
        let ts = NOW.to_string();
        let req = signed(&[("shop", "evil.com/x"), ("timestamp", &ts)], "hush");
        let result = app().verify_app_proxy_req(&req);
        assert_eq!(result.log.code, "invalid_shop");
        assert_eq!(result.response, protocol::bad_request());
        assert_eq!(result.shop, None);
        let req = signed(&[("shop", "evil.com/x"), ("timestamp", &ts)], "wrong");
        assert_eq!(app().verify_app_proxy_req(&req).log.code, "invalid_signature");
    }
}
