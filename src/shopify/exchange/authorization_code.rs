//! The authorization-code grant, for non-embedded apps, legacy installs and online tokens by
//! redirect: the consent-screen URL, the check of the callback Shopify redirects back to, and
//! `exchange_authorization_code`.

use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{exchange_failure, not_a_token, parse_access_token};
use crate::shopify::ShopifyApp;
use crate::shopify::model::{
    AccessMode, HttpLog, Log, OAuthCallbackResult, Req, Res, TokenExchangeResult, json_truthy,
};
use crate::shopify::protocol;
use crate::shopify::secret::Secret;
use crate::shopify::shop::{name_of, shop_domain, shop_name};
use crate::shopify::signature;
use crate::shopify::urls::{UrlParts, encode_query, parse_query, quote_all};

/// How far the callback's signed `timestamp` may be from now, either way, in seconds.
pub const CALLBACK_MAX_AGE_SECONDS: i64 = 90;

impl ShopifyApp {
    /// The consent screen the browser is sent to: `https://{shop}/admin/oauth/authorize` with
    /// `client_id`, `scope`, `redirect_uri` and `state` (and `grant_options[]=per-user` for an
    /// online token). Always the shop's real host: the configured origin is only for
    /// server-to-server calls. `None` when `shop` is not a valid shop.
    pub fn authorization_url(
        &self,
        shop: &str,
        scopes: &str,
        redirect_uri: &str,
        state: &str,
        access_mode: AccessMode,
    ) -> Option<String> {
        let domain = shop_domain(shop)?;
        let mut params = vec![
            ("client_id", self.config.client_id.as_str()),
            ("scope", scopes),
            ("redirect_uri", redirect_uri),
            ("state", state),
        ];
        if access_mode == AccessMode::Online {
            params.push(("grant_options[]", "per-user"));
        }
        let params: Vec<(String, String)> = params.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Some(format!("https://{domain}/admin/oauth/authorize?{}", encode_query(&params)))
    }

    /// Verifies the callback of the authorization-code grant: a single `hmac` (lowercase hex
    /// HMAC-SHA256 over the other parameters, current or old secret, constant time), a fresh
    /// `timestamp` (within [`CALLBACK_MAX_AGE_SECONDS`] of the injected clock), a valid `shop`
    /// equal to `expected_shop`, a `state` equal to `expected_state` (constant time), and a
    /// `code`.
    ///
    /// Failures answer `401` (hmac, timestamp), `403` (state, another shop) or `400` (a
    /// malformed callback), with a plain-text sentence.
    pub fn verify_oauth_callback(&self, req: &Req, expected_state: &str, expected_shop: &str) -> OAuthCallbackResult {
        if req.url.is_empty() {
            return failure("configuration_error", "the request URL is required", protocol::configuration_error());
        }
        let params = parse_query(&UrlParts::parse(&req.url).query, true);
        let single = |key: &str| {
            let mut values = params.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
            match (values.next(), values.next()) {
                (Some(value), None) if !value.is_empty() => Some(value),
                _ => None,
            }
        };
        let Some(hmac) = single("hmac") else {
            return rejected(400, "missing_hmac", "the callback has no single hmac parameter");
        };
        let message = signed_message(&params);
        if !signature::verify_hex_hmac(&self.config.secrets_for_hmac(), message.as_bytes(), hmac) {
            return rejected(401, "invalid_hmac", "the callback's hmac does not match its parameters");
        }
        let Some(timestamp) = single("timestamp").filter(|t| t.bytes().all(|b| b.is_ascii_digit())) else {
            return rejected(400, "invalid_timestamp", "the callback has no valid timestamp");
        };
        let fresh = timestamp.parse::<i64>().is_ok_and(|t| (self.now_unix() - t).abs() <= CALLBACK_MAX_AGE_SECONDS);
        if !fresh {
            return rejected(401, "timestamp_too_old", "the callback is too old: start the installation again");
        }
        let Some(shop) = single("shop").and_then(shop_name) else {
            return rejected(400, "invalid_shop", "the shop parameter is not a myshopify.com shop");
        };
        if shop_name(expected_shop).as_deref() != Some(shop.as_str()) {
            return rejected(403, "shop_mismatch", "the installation in this browser was started for another shop");
        }
        let state_matches = single("state").is_some_and(|state| {
            !expected_state.is_empty() && bool::from(state.as_bytes().ct_eq(expected_state.as_bytes()))
        });
        if !state_matches {
            return rejected(403, "invalid_state", "the state does not match the installation started in this browser");
        }
        let Some(code) = single("code") else {
            return rejected(400, "missing_code", "the callback has no authorization code");
        };
        OAuthCallbackResult {
            ok: true,
            shop: Some(shop),
            log: Log::new("verified", "authorization-code callback verified"),
            response: Res::new(200, ""),
            code: Some(Secret::new(code)),
        }
    }

    /// Exchanges the `code` of a verified callback for an access token of `shop`, in a single
    /// attempt (a code is single-use). Asks for an expiring offline token; the token is online,
    /// with its staff member, when the consent screen was opened with `grant_options[]=per-user`.
    ///
    /// A code Shopify refuses gives `invalid_code` and a `400` answer.
    pub async fn exchange_authorization_code(&self, shop: &str, code: &Secret) -> TokenExchangeResult {
        let config_error = |detail: &str| {
            exchange_failure(None, "configuration_error", detail, protocol::configuration_error(), Vec::new())
        };
        let Some(domain) = shop_domain(shop) else {
            return config_error("the shop is not a valid shop");
        };
        if code.is_empty() {
            return config_error("the authorization code is empty");
        }
        let shop = name_of(&domain);
        let body = json!({
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "code": code,
            "expiring": 1,
        });
        let refusal = |error: &str| match error {
            "invalid_client" => ("invalid_client", Res::new(500, "")),
            "invalid_request" | "invalid_grant" => (
                "invalid_code",
                Res::new(400, "Bad Request: Shopify refused the authorization code; start the installation again"),
            ),
            _ => ("exchange_error", Res::new(500, "")),
        };
        let (response, logged) =
            match self.post_oauth_once(&domain, &shop, &body, "authorization code exchange", refusal).await {
                Ok(answer) => answer,
                Err(failure) => return failure,
            };
        let online = serde_json::from_str::<Value>(&response.body)
            .ok()
            .and_then(|json| json.get("associated_user").map(json_truthy))
            .unwrap_or(false);
        let access_mode = if online { AccessMode::Online } else { AccessMode::Offline };
        let Some(access_token) = parse_access_token(&response.body, &shop, access_mode, self.clock.now()) else {
            return not_a_token(shop, logged, Vec::new());
        };
        let detail = format!("exchanged the authorization code for an {} access token", access_mode.as_str());
        TokenExchangeResult {
            ok: true,
            shop: Some(shop),
            log: Log::new("success", detail.clone()),
            response: Res::new(200, ""),
            access_token: Some(access_token),
            http_logs: vec![HttpLog::new("success", detail, logged)],
        }
    }

    /// The app's page in the Shopify admin (`https://admin.shopify.com/store/{shop}/apps/{client id}`),
    /// where an installation or a connection ends. `None` when `shop` is not a valid shop.
    pub fn admin_app_url(&self, shop: &str) -> Option<String> {
        let shop = shop_name(shop)?;
        Some(format!("https://admin.shopify.com/store/{shop}/apps/{}", quote_all(&self.config.client_id)))
    }
}

/// The text Shopify signs in a callback: every parameter but `hmac` (and the legacy
/// `signature`), decoded, with `%` and `&` escaped (and `=` in names), as `name=value` sorted
/// by name and joined by `&`.
fn signed_message(params: &[(String, String)]) -> String {
    let escape = |text: &str| text.replace('%', "%25").replace('&', "%26");
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(key, _)| key != "hmac" && key != "signature")
        .map(|(key, value)| (escape(key).replace('=', "%3D"), escape(value)))
        .collect();
    pairs.sort();
    pairs.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&")
}

fn rejected(status: u16, code: &'static str, detail: &str) -> OAuthCallbackResult {
    let reason = match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Bad Request",
    };
    failure(code, detail, Res::new(status, &format!("{reason}: {detail}")))
}

fn failure(code: &'static str, detail: &str, response: Res) -> OAuthCallbackResult {
    OAuthCallbackResult { ok: false, shop: None, log: Log::new(code, detail), response, code: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::testing::{NOW, app_with};

    fn app() -> ShopifyApp {
        app_with("api-key", Some("previous"))
    }

    fn callback(pairs: &[(&str, &str)], secret: &str) -> Req {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let hmac = signature::hex_hmac(secret, signed_message(&pairs).as_bytes());
        Req {
            url: format!("https://app.example.com/auth/callback?{}&hmac={hmac}", encode_query(&pairs)),
            ..Req::default()
        }
    }

    #[test]
    fn signs_the_message_as_shopify_documents_it() {
        let pairs = [
            ("shop", "some-shop.myshopify.com"),
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("timestamp", "1337178173"),
        ];
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(
            signature::hex_hmac("hush", signed_message(&pairs).as_bytes()),
            "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"
        );
        let tricky = [("a&b=c".to_owned(), "1%&2".to_owned())];
        assert_eq!(signed_message(&tricky), "a%26b%3Dc=1%25%262");
    }

    #[test]
    fn verifies_with_either_secret_and_checks_in_order() {
        let ts = NOW.to_string();
        let valid = [("code", "c0de"), ("shop", "s1.myshopify.com"), ("state", "st4te"), ("timestamp", ts.as_str())];
        for secret in ["hush", "previous"] {
            let result = app().verify_oauth_callback(&callback(&valid, secret), "st4te", "s1.myshopify.com");
            assert!(result.ok, "{secret}: {:?}", result.log);
            assert_eq!((result.shop.as_deref(), result.code.as_ref().map(Secret::expose)), (Some("s1"), Some("c0de")));
            assert!(!format!("{result:?}").contains("c0de"));
        }
        let old = (NOW - 91).to_string();
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, u16);
        let cases: [Case; 7] = [
            (&valid, "other", "invalid_hmac", 401),
            (
                &[("code", "c"), ("shop", "s1"), ("state", "st4te"), ("timestamp", &old)],
                "hush",
                "timestamp_too_old",
                401,
            ),
            (
                &[("code", "c"), ("shop", "s1"), ("state", "st4te"), ("timestamp", "1e9")],
                "hush",
                "invalid_timestamp",
                400,
            ),
            (
                &[("code", "c"), ("shop", "evil.com/x"), ("state", "st4te"), ("timestamp", &ts)],
                "hush",
                "invalid_shop",
                400,
            ),
            (&[("code", "c"), ("shop", "s2"), ("state", "st4te"), ("timestamp", &ts)], "hush", "shop_mismatch", 403),
            (&[("code", "c"), ("shop", "s1"), ("state", "other"), ("timestamp", &ts)], "hush", "invalid_state", 403),
            (&[("shop", "s1"), ("state", "st4te"), ("timestamp", &ts)], "hush", "missing_code", 400),
        ];
        for (pairs, secret, code, status) in cases {
            let result = app().verify_oauth_callback(&callback(pairs, secret), "st4te", "s1.myshopify.com");
            assert_eq!((result.log.code.as_ref(), result.response.status), (code, status));
            assert!(!result.ok && result.code.is_none());
        }
        let unsigned = Req {
            url: format!("https://app.example.com/auth/callback?code=c&shop=s1&timestamp={ts}"),
            ..Req::default()
        };
        assert_eq!(app().verify_oauth_callback(&unsigned, "st4te", "s1").log.code, "missing_hmac");
        let empty_state = app().verify_oauth_callback(&callback(&valid, "hush"), "", "s1");
        assert_eq!(empty_state.log.code, "invalid_state");
    }

    #[test]
    fn the_consent_url_uses_the_real_shop_host() {
        let app = app().with_origin(crate::shopify::http::ShopOrigin::new("http://127.0.0.1:1/{shop}"));
        let url = app.authorization_url(
            "S1",
            "read_products,write_orders",
            "https://a.example/auth/callback",
            "xyz",
            AccessMode::Online,
        );
        assert_eq!(
            url.as_deref(),
            Some(
                "https://s1.myshopify.com/admin/oauth/authorize?client_id=api-key&scope=read_products%2Cwrite_orders&redirect_uri=https%3A%2F%2Fa.example%2Fauth%2Fcallback&state=xyz&grant_options%5B%5D=per-user"
            )
        );
        assert_eq!(app.authorization_url("evil.com/x", "", "", "", AccessMode::Offline), None);
        assert_eq!(
            app.admin_app_url("s1.myshopify.com").as_deref(),
            Some("https://admin.shopify.com/store/s1/apps/api-key")
        );
    }
}
