//! `exchange_using_client_credentials`: an offline access token for the app's own shop, with
//! no session token (the client-credentials grant of apps installed by their own organisation).

use serde_json::{Value, json};

use super::{exchange_failure, expiry, not_a_token, string_member};
use crate::shopify::ShopifyApp;
use crate::shopify::model::{
    AccessMode, ClientCredentialsAccessToken, ClientCredentialsExchangeResult, HttpLog, Log, Res,
};
use crate::shopify::protocol;
use crate::shopify::shop::{is_valid_shop_name, name_of, shop_domain};

impl ShopifyApp {
    /// Obtains an offline access token for `shop`, the shop name (`s1` for
    /// `s1.myshopify.com`), with the client-credentials grant.
    ///
    /// A single attempt: neither `429` nor `5xx` is retried. The returned shop is the
    /// lowercase shop name.
    pub async fn exchange_using_client_credentials(&self, shop: &str) -> ClientCredentialsExchangeResult {
        let config_error = |detail: &str| {
            exchange_failure(None, "configuration_error", detail, protocol::configuration_error(), Vec::new())
        };
        if shop.is_empty() {
            return config_error("the shop is required");
        }
        let Some(domain) = shop_domain(shop).filter(|_| is_valid_shop_name(shop)) else {
            return config_error("the shop is not a shop name (such as `shop-name`)");
        };
        let shop = name_of(&domain);

        let body = json!({
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "grant_type": "client_credentials",
        });
        let refusal = |error: &str| match error {
            "invalid_client" => ("invalid_client", Res::new(500, "")),
            _ => ("exchange_error", Res::new(500, "")),
        };
        let (response, logged) =
            match self.post_oauth_once(&domain, &shop, &body, "client credentials exchange", refusal).await {
                Ok(answer) => answer,
                Err(failure) => return failure,
            };
        let now = self.clock.now();
        let Some(access_token) = parse_access_token(&response.body, &shop, now) else {
            return not_a_token(shop, logged, Vec::new());
        };
        let detail = "client credentials exchanged for an offline access token";
        ClientCredentialsExchangeResult {
            ok: true,
            shop: Some(shop),
            log: Log::new("success", detail),
            response: Res::new(200, ""),
            access_token: Some(access_token),
            http_logs: vec![HttpLog::new("success", detail, logged)],
        }
    }
}

/// Builds the token from a `200` body; `None` when the body is not a token object.
fn parse_access_token(body: &str, shop: &str, now: time::OffsetDateTime) -> Option<ClientCredentialsAccessToken> {
    let json: Value = serde_json::from_str(body).ok().filter(Value::is_object)?;
    Some(ClientCredentialsAccessToken {
        shop: shop.to_owned(),
        token: string_member(&json, "access_token").into(),
        expires: expiry(&json, "expires_in", now).ok()?,
        scope: string_member(&json, "scope"),
        access_mode: AccessMode::Offline,
        user: None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::shopify::AppConfig;
    use crate::shopify::clock::ManualClock;
    use crate::shopify::http::{BoxFuture, Transport, TransportError, UpstreamRequest};

    /// Answers every request with one canned response and records what was sent.
    struct Canned {
        answer: Result<Res, TransportError>,
        sent: Mutex<Vec<UpstreamRequest>>,
    }

    impl Transport for Canned {
        fn send(&self, request: UpstreamRequest) -> BoxFuture<'_, Result<Res, TransportError>> {
            self.sent.lock().unwrap_or_else(|poison| poison.into_inner()).push(request);
            Box::pin(std::future::ready(self.answer.clone()))
        }
    }

    fn canned(answer: Result<Res, TransportError>) -> (ShopifyApp, Arc<Canned>) {
        let transport = Arc::new(Canned { answer, sent: Mutex::new(Vec::new()) });
        let config =
            AppConfig { client_id: "api-key".to_owned(), client_secret: "hush".into(), old_client_secret: None };
        let app = ShopifyApp::new(config, transport.clone())
            .map(|app| app.with_clock(Arc::new(ManualClock::at(1_750_000_000))));
        match app {
            Ok(app) => (app, transport),
            Err(error) => panic!("test config refused: {error}"),
        }
    }

    fn sent(transport: &Canned) -> Vec<UpstreamRequest> {
        transport.sent.lock().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    #[tokio::test]
    async fn success_builds_an_offline_token_and_redacts_the_log() {
        let body = r#"{"access_token":"shpat_cc","scope":"read_products","expires_in":86399}"#;
        let (app, transport) = canned(Ok(Res::new(200, body)));
        let result = app.exchange_using_client_credentials("S1").await;
        assert!(result.ok);
        assert_eq!(result.shop.as_deref(), Some("s1"));
        let token = result.access_token.unwrap_or_else(|| panic!("no token"));
        assert_eq!(token.token.expose(), "shpat_cc");
        assert_eq!(token.access_mode, AccessMode::Offline);
        assert_eq!(
            token.expires.map(crate::shopify::model::iso_seconds::format),
            Some("2025-06-16T15:06:39Z".to_owned())
        );
        assert!(!result.http_logs[0].res.body.contains("shpat_cc"));
        let sent = sent(&transport);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].url, "https://s1.myshopify.com/admin/oauth/access_token");
    }

    #[tokio::test]
    async fn the_secret_never_goes_to_a_host_that_is_not_a_shop() {
        for shop in ["", "evil.com/x?", "evil.com#", "s1.myshopify.com.evil.com", "s1\n", "-s1", "s1.myshopify.com"] {
            let (app, transport) = canned(Ok(Res::new(200, "{}")));
            let result = app.exchange_using_client_credentials(shop).await;
            assert_eq!(result.log.code, "configuration_error", "{shop:?}");
            assert_eq!(result.response.status, 500);
            assert!(sent(&transport).is_empty(), "{shop:?}");
        }
    }

    #[tokio::test]
    async fn a_single_attempt_and_errors_mapped() {
        let (app, transport) = canned(Ok(Res::new(429, "")));
        let result = app.exchange_using_client_credentials("s1").await;
        assert_eq!(result.log.code, "exchange_error");
        assert_eq!(sent(&transport).len(), 1);

        let (app, _) = canned(Ok(Res::new(401, r#"{"error":"invalid_client"}"#)));
        let result = app.exchange_using_client_credentials("s1").await;
        assert_eq!(result.log.code, "invalid_client");
        assert_eq!(result.response.status, 500);

        let (app, _) = canned(Err(TransportError::Timeout));
        let result = app.exchange_using_client_credentials("s1").await;
        assert_eq!(result.log.code, "network_error");
        assert_eq!(result.http_logs[0].res.status, 0);
        assert_eq!(result.shop.as_deref(), Some("s1"));

        let (app, _) = canned(Ok(Res::new(200, "not json")));
        let result = app.exchange_using_client_credentials("s1").await;
        assert_eq!(result.log.code, "exchange_error");
        assert!(!result.ok);
    }
}
