//! Calls to Shopify's OAuth endpoint (`/admin/oauth/access_token`): token exchange, refresh
//! and client credentials.

mod client_credentials;
mod refresh;
mod token_exchange;

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::ShopifyApp;
use super::http::{TransportError, USER_AGENT, UpstreamRequest};
use super::model::{ClientCredentialsExchangeResult, HttpLog, Log, Res, TokenExchangeResult};

/// Longest wait honoured from a `Retry-After` header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

impl ShopifyApp {
    /// POSTs a JSON body to the shop's OAuth token endpoint. `shop_domain` is validated.
    async fn post_oauth(&self, shop_domain: &str, body: &Value) -> Result<Res, TransportError> {
        let request = UpstreamRequest {
            method: "POST",
            url: self.origin.url(shop_domain, "/admin/oauth/access_token"),
            headers: vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("Accept".to_owned(), "application/json".to_owned()),
                ("User-Agent".to_owned(), USER_AGENT.to_owned()),
            ],
            body: body.to_string(),
        };
        self.transport.send(request).await
    }
}

/// The wait a `429` asks for: `Retry-After` seconds (fractions allowed), 1 s when absent,
/// capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(response: &Res) -> Duration {
    response
        .header("retry-after")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map_or(Duration::from_secs(1), |seconds| Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER))
}

/// The `error` member of a JSON error body, `unknown_error` when there is none.
fn oauth_error(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|json| json.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "unknown_error".to_owned())
}

/// A response body fit for a log: tokens and secrets in a JSON object are replaced.
fn redact_token_body(body: &str) -> String {
    const SECRET_KEYS: [&str; 3] = ["access_token", "refresh_token", "client_secret"];
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut object)) if SECRET_KEYS.iter().any(|key| object.contains_key(*key)) => {
            for key in SECRET_KEYS {
                if let Some(value) = object.get_mut(key) {
                    *value = Value::String("[REDACTED]".to_owned());
                }
            }
            Value::Object(object).to_string()
        }
        _ => body.to_owned(),
    }
}

/// `now + seconds` for an `expires_in`-style member: `None` when absent or null, an error
/// when not a number.
fn expiry(json: &Value, key: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, ()> {
    match json.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let seconds = value.as_f64().filter(|s| s.is_finite()).ok_or(())?;
            Ok(Some(now + Duration::from_secs_f64(seconds.max(0.0))))
        }
    }
}

/// A string member, `""` when absent.
fn string_member(json: &Value, key: &str) -> String {
    json.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The result types of the OAuth-endpoint calls, which share one failure shape.
trait OAuthResult {
    /// A failed call.
    fn failed(shop: Option<String>, log: Log, response: Res, http_logs: Vec<HttpLog>) -> Self;
}

impl OAuthResult for TokenExchangeResult {
    fn failed(shop: Option<String>, log: Log, response: Res, http_logs: Vec<HttpLog>) -> Self {
        Self { ok: false, shop, log, response, access_token: None, http_logs }
    }
}

impl OAuthResult for ClientCredentialsExchangeResult {
    fn failed(shop: Option<String>, log: Log, response: Res, http_logs: Vec<HttpLog>) -> Self {
        Self { ok: false, shop, log, response, access_token: None, http_logs }
    }
}

/// A token-endpoint failure that ends the call.
fn exchange_failure<R: OAuthResult>(
    shop: Option<String>,
    code: &'static str,
    detail: &str,
    response: Res,
    http_logs: Vec<HttpLog>,
) -> R {
    R::failed(shop, Log::new(code, detail), response, http_logs)
}

/// The request never got an answer.
fn network_failure<R: OAuthResult>(shop: String, error: TransportError, mut http_logs: Vec<HttpLog>) -> R {
    let detail = format!("network error talking to Shopify: {error}");
    http_logs.push(HttpLog::new("network_error", detail.clone(), Res::default()));
    exchange_failure(Some(shop), "network_error", &detail, Res::new(500, ""), http_logs)
}
