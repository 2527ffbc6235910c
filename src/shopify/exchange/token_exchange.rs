//! `exchange_using_token_exchange`: a session token in, an Admin API access token out.

use serde_json::{Value, json};

use super::{
    exchange_failure, network_failure, not_a_token, oauth_error, parse_access_token, redact_token_body, retry_after,
};
use crate::shopify::ShopifyApp;
use crate::shopify::model::{AccessMode, HttpLog, IdTokenDetails, Log, Res, TokenExchangeResult};
use crate::shopify::protocol;
use crate::shopify::shop::{Dest, name_of};

const ATTEMPTS: usize = 3;

impl ShopifyApp {
    /// Exchanges a verified, exchangeable session token for an access token of `access_mode`.
    ///
    /// `expiring` asks for an expiring offline token with a refresh token (online tokens
    /// always expire). A rejected session token answers with `invalid_token_response`, so the
    /// client fetches a fresh one and retries.
    pub async fn exchange_using_token_exchange(
        &self,
        access_mode: AccessMode,
        id_token: &IdTokenDetails,
        invalid_token_response: Option<Res>,
        expiring: bool,
    ) -> TokenExchangeResult {
        let config_error = |detail: &str| {
            exchange_failure(None, "configuration_error", detail, protocol::configuration_error(), Vec::new())
        };
        if access_mode == AccessMode::Online && !expiring {
            return config_error("online access tokens always expire: expiring must be true");
        }
        if !id_token.exchangeable {
            return config_error("this session token cannot be exchanged");
        }
        if id_token.token.is_empty() {
            return config_error("the session token is empty");
        }
        // The same strict rule as the verifiers: a dest with a port or a path never reaches here
        // from them, and is refused if a caller builds one by hand.
        let Some(Dest { domain, .. }) = id_token.claims.get("dest").and_then(Value::as_str).and_then(Dest::parse)
        else {
            return config_error("the session token's dest is not a myshopify.com shop");
        };
        let shop = name_of(&domain);

        let requested_token_type = match access_mode {
            AccessMode::Online => "urn:shopify:params:oauth:token-type:online-access-token",
            AccessMode::Offline => "urn:shopify:params:oauth:token-type:offline-access-token",
        };
        let body = json!({
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": id_token.token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": requested_token_type,
            "expiring": u8::from(expiring),
        });

        let mut http_logs = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = match self.post_oauth(&domain, &body).await {
                Ok(response) => response,
                Err(error) => return network_failure(shop, error, http_logs),
            };
            let logged = Res { body: redact_token_body(&response.body), ..response.clone() };
            if response.status == 200 {
                let now = self.clock.now();
                let Some(access_token) = parse_access_token(&response.body, &shop, access_mode, now) else {
                    return not_a_token(shop, logged, http_logs);
                };
                http_logs.push(HttpLog::new("success", "token exchange succeeded", logged));
                return TokenExchangeResult {
                    ok: true,
                    shop: Some(shop),
                    log: Log::new(
                        "success",
                        format!("exchanged the session token for an {} access token", access_mode.as_str()),
                    ),
                    response: Res::new(200, ""),
                    access_token: Some(access_token),
                    http_logs,
                };
            }
            if response.status == 429 {
                if attempt < ATTEMPTS {
                    let wait = retry_after(&response);
                    http_logs.push(HttpLog::new(
                        "rate_limited_retry",
                        format!("rate limited; retrying in {}s", wait.as_secs_f64()),
                        logged,
                    ));
                    self.clock.sleep(wait).await;
                    continue;
                }
                http_logs.push(HttpLog::new("rate_limit_exceeded", "still rate limited after 3 attempts", logged));
                return exchange_failure(
                    Some(shop),
                    "rate_limit_exceeded",
                    "still rate limited after 3 attempts",
                    protocol::too_many_requests(),
                    http_logs,
                );
            }
            let error = oauth_error(&response.body);
            let (code, answer) = match error.as_str() {
                "invalid_subject_token" => {
                    ("invalid_subject_token", invalid_token_response.unwrap_or_else(|| Res::new(401, "")))
                }
                "invalid_client" => ("invalid_client", Res::new(500, "")),
                _ => ("exchange_error", Res::new(500, "")),
            };
            let detail = format!("token exchange failed with HTTP {} ({error})", response.status);
            http_logs.push(HttpLog::new(code, detail.clone(), logged));
            return exchange_failure(Some(shop), code, &detail, answer, http_logs);
        }
    }
}
