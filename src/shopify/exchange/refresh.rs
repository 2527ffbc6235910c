//! `refresh_token_exchanged_access_token`: renews an expiring offline token.

use std::time::Duration;

use serde_json::{Value, json};

use super::{exchange_failure, expiry, network_failure, oauth_error, string_member};
use crate::shopify::ShopifyApp;
use crate::shopify::model::{AccessToken, HttpLog, Log, Res, TokenExchangeResult};
use crate::shopify::protocol;
use crate::shopify::secret::Secret;
use crate::shopify::shop::shop_domain;

const ATTEMPTS: usize = 3;

/// A token is refreshed once it expires within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

impl ShopifyApp {
    /// Whether `token` should be refreshed now: it has a refresh token that is still valid,
    /// and it expires within [`REFRESH_MARGIN`] (or has no expiry).
    pub fn needs_refresh(&self, token: &AccessToken) -> bool {
        let now = self.clock.now();
        let has_refresh_token = token.refresh_token.as_ref().is_some_and(|t| !t.is_empty());
        let refresh_alive = token.refresh_token_expires.is_none_or(|at| at > now);
        let expiring = token.expires.is_none_or(|at| at <= now + REFRESH_MARGIN);
        has_refresh_token && refresh_alive && expiring
    }

    /// Refreshes an expiring access token when it expires within a minute.
    ///
    /// `ok` with no `access_token` means no refresh was needed. The new token keeps the
    /// input's access mode and user.
    pub async fn refresh_token_exchanged_access_token(&self, access_token: &AccessToken) -> TokenExchangeResult {
        let now = self.clock.now();
        let no_refresh = |code: &'static str, detail: &str| TokenExchangeResult {
            ok: true,
            shop: Some(access_token.shop.clone()),
            log: Log::new(code, detail),
            response: Res::new(200, ""),
            access_token: None,
            http_logs: Vec::new(),
        };
        if access_token.refresh_token_expires.is_some_and(|at| at <= now) {
            return exchange_failure(
                Some(access_token.shop.clone()),
                "refresh_token_expired",
                "the refresh token has expired: exchange a new session token",
                Res::new(401, ""),
                Vec::new(),
            );
        }
        let refresh_token = access_token.refresh_token.as_ref().map_or("", Secret::expose);
        if access_token.expires.is_none() && refresh_token.is_empty() {
            return no_refresh("non_expiring_no_refresh_needed", "the token does not expire");
        }
        if access_token.expires.is_some_and(|at| at > now + REFRESH_MARGIN) {
            return no_refresh("token_still_valid", "the token is still valid");
        }
        let config_error = |detail: &str| {
            exchange_failure(None, "configuration_error", detail, protocol::configuration_error(), Vec::new())
        };
        let Some(domain) = shop_domain(&access_token.shop) else {
            return config_error("the token's shop is not a valid shop name");
        };
        if refresh_token.is_empty() {
            return config_error("the token has no refresh token");
        }

        let body = json!({
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        });
        let shop = access_token.shop.clone();
        let mut http_logs = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = match self.post_oauth(&domain, &body).await {
                Ok(response) => response,
                Err(error) => return network_failure(shop, error, http_logs),
            };
            // Refresh answers are never logged, not even redacted.
            let logged = Res { body: String::new(), ..response.clone() };
            match response.status {
                200 => {
                    let now = self.clock.now();
                    let Some(refreshed) = parse_refreshed(&response.body, access_token, now) else {
                        http_logs.push(HttpLog::new("refresh_error", "Shopify's answer is not a token", logged));
                        return exchange_failure(
                            Some(shop),
                            "refresh_error",
                            "Shopify's answer is not a token",
                            Res::new(500, ""),
                            http_logs,
                        );
                    };
                    http_logs.push(HttpLog::new("success", "token refreshed", logged));
                    return TokenExchangeResult {
                        ok: true,
                        shop: Some(shop),
                        log: Log::new("success", "refreshed the access token"),
                        response: Res::new(200, ""),
                        access_token: Some(refreshed),
                        http_logs,
                    };
                }
                500..=504 if attempt < ATTEMPTS => {
                    let detail = format!(
                        "HTTP {} from Shopify, retrying (attempt {attempt} of {})",
                        response.status,
                        ATTEMPTS - 1
                    );
                    http_logs.push(HttpLog::new("server_error_retry", detail, logged));
                }
                500..=504 => {
                    let detail = format!("HTTP {} from Shopify after {ATTEMPTS} attempts", response.status);
                    http_logs.push(HttpLog::new("server_error", detail.clone(), logged));
                    return exchange_failure(Some(shop), "server_error", &detail, Res::new(500, ""), http_logs);
                }
                status => {
                    let error = oauth_error(&response.body);
                    let (code, answer) = match error.as_str() {
                        "invalid_grant" => ("invalid_grant", Res::new(401, "")),
                        "invalid_client" => ("invalid_client", Res::new(500, "")),
                        _ => ("refresh_error", Res::new(500, "")),
                    };
                    let detail = format!("refresh failed with HTTP {status} ({error})");
                    http_logs.push(HttpLog::new(code, detail.clone(), logged));
                    return exchange_failure(Some(shop), code, &detail, answer, http_logs);
                }
            }
        }
    }
}

/// The refreshed token from a `200` body; `None` when the body is not a token object.
fn parse_refreshed(body: &str, previous: &AccessToken, now: time::OffsetDateTime) -> Option<AccessToken> {
    let json: Value = serde_json::from_str(body).ok().filter(Value::is_object)?;
    let expires_at = |key: &str| expiry(&json, key, now).map(|at| at.unwrap_or(now)).ok();
    Some(AccessToken {
        shop: previous.shop.clone(),
        token: string_member(&json, "access_token").into(),
        expires: Some(expires_at("expires_in")?),
        scope: string_member(&json, "scope"),
        access_mode: previous.access_mode,
        refresh_token: Some(string_member(&json, "refresh_token").into()),
        refresh_token_expires: Some(expires_at("refresh_token_expires_in")?),
        user: previous.user.clone(),
    })
}
