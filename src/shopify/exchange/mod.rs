//! Calls to Shopify's OAuth endpoint (`/admin/oauth/access_token`): token exchange, refresh,
//! client credentials and the authorization-code grant.

mod authorization_code;
mod client_credentials;
mod refresh;
mod token_exchange;

pub use authorization_code::CALLBACK_MAX_AGE_SECONDS;

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::ShopifyApp;
use super::http::{TransportError, USER_AGENT, UpstreamRequest};
use super::model::{
    AccessMode, AccessToken, ClientCredentialsExchangeResult, HttpLog, Log, Res, TokenExchangeResult, User, json_truthy,
};
use crate::shopify::secret::Secret;

/// Longest lifetime taken from an `expires_in` member (a century).
const MAX_EXPIRES_IN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Longest wait honoured from a `Retry-After` header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

impl ShopifyApp {
    /// POSTs a JSON body to the shop's OAuth token endpoint. `shop_domain` is validated.
    async fn post_oauth(&self, shop_domain: &str, body: &Value) -> Result<Res, TransportError> {
        let request = UpstreamRequest {
            method: "POST",
            url: self.origin.url(shop_domain, "/admin/oauth/access_token"),
            headers: vec![
                UpstreamRequest::header("Content-Type", "application/json"),
                UpstreamRequest::header("Accept", "application/json"),
                UpstreamRequest::header("User-Agent", USER_AGENT),
            ],
            body: body.to_string().into(),
        };
        self.transport.send(request).await
    }

    /// One POST to the token endpoint, never retried: the `200` answer with its redacted copy
    /// for the log, or the finished failure (a network error, or Shopify's refusal, whose
    /// OAuth `error` `refusal` maps to a code and an answer). `what` names the call in details.
    async fn post_oauth_once<R: OAuthResult>(
        &self,
        shop_domain: &str,
        shop: &str,
        body: &Value,
        what: &str,
        refusal: fn(&str) -> (&'static str, Res),
    ) -> Result<(Res, Res), R> {
        let response = match self.post_oauth(shop_domain, body).await {
            Ok(response) => response,
            Err(error) => return Err(network_failure(shop.to_owned(), error, Vec::new())),
        };
        let logged = Res { body: redact_token_body(&response.body), ..response.clone() };
        if response.status == 200 {
            return Ok((response, logged));
        }
        let error = oauth_error(&response.body);
        let (code, answer) = refusal(&error);
        let detail = format!("{what} failed with HTTP {} ({error})", response.status);
        let http_logs = vec![HttpLog::new(code, detail.clone(), logged)];
        Err(exchange_failure(Some(shop.to_owned()), code, &detail, answer, http_logs))
    }
}

/// The wait a `429` asks for: `Retry-After` seconds (fractions allowed), 1 s when absent,
/// capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(response: &Res) -> Duration {
    response
        .header("retry-after")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map_or(Duration::from_secs(1), |seconds| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
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
            // Clamped so that no answer can overflow the clock: past a century is "far future".
            Ok(Some(now + Duration::from_secs_f64(seconds.clamp(0.0, MAX_EXPIRES_IN.as_secs_f64()))))
        }
    }
}

/// Builds an Admin API access token from a `200` body of token exchange or of the
/// authorization-code grant; `None` when the body is not a token object. An online token takes
/// its staff member from `associated_user`.
fn parse_access_token(body: &str, shop: &str, access_mode: AccessMode, now: OffsetDateTime) -> Option<AccessToken> {
    let json: Value = serde_json::from_str(body).ok().filter(Value::is_object)?;
    let user = match (access_mode, json.get("associated_user")) {
        (AccessMode::Online, Some(associated)) if json_truthy(associated) => {
            let mut user: User = serde_json::from_value(associated.clone()).ok()?;
            user.scope = string_member(&json, "associated_user_scope");
            Some(user)
        }
        _ => None,
    };
    Some(AccessToken {
        shop: shop.to_owned(),
        token: string_member(&json, "access_token").into(),
        expires: expiry(&json, "expires_in", now).ok()?,
        scope: string_member(&json, "scope"),
        access_mode,
        refresh_token: json.get("refresh_token").and_then(Value::as_str).map(Secret::new),
        refresh_token_expires: expiry(&json, "refresh_token_expires_in", now).ok()?,
        user,
    })
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

/// A `200` whose body is not a token: the call fails with `exchange_error`.
fn not_a_token<R: OAuthResult>(shop: String, logged: Res, mut http_logs: Vec<HttpLog>) -> R {
    let detail = "Shopify's answer is not a token";
    http_logs.push(HttpLog::new("exchange_error", detail, logged));
    exchange_failure(Some(shop), "exchange_error", detail, Res::new(500, ""), http_logs)
}

/// The request never got an answer.
fn network_failure<R: OAuthResult>(shop: String, error: TransportError, mut http_logs: Vec<HttpLog>) -> R {
    let detail = format!("network error talking to Shopify: {error}");
    http_logs.push(HttpLog::new("network_error", detail.clone(), Res::default()));
    exchange_failure(Some(shop), "network_error", &detail, Res::new(500, ""), http_logs)
}
