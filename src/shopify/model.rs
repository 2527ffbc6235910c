//! The request/response model and the result types of the auth core.
//!
//! Field names and shapes follow Shopify's reference package (`shopifyapp`), so that its
//! documentation maps one to one onto this module.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::secret::Secret;

/// An incoming request, as the core sees it: framework-agnostic. Its `Debug` output hides
/// credentials: the query, the body, and the values of authorization, HMAC and cookie headers.
#[derive(Clone, Default)]
pub struct Req {
    /// The HTTP method, as sent (`POST`, `GET`...).
    pub method: String,
    /// Header names and values in arrival order.
    pub headers: Vec<(String, String)>,
    /// The full absolute URL, query included.
    pub url: String,
    /// The raw body bytes.
    pub body: Vec<u8>,
}

impl Req {
    /// The value of a header, looked up case-insensitively; the last of duplicates wins.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Whether a header is present at all, even with an empty value.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Headers whose values are credentials.
const SECRET_HEADERS: [&str; 5] =
    ["authorization", "x-shopify-hmac-sha256", "shopify-hmac-sha256", "x-shopify-access-token", "cookie"];

impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let secret = SECRET_HEADERS.iter().any(|secret| name.eq_ignore_ascii_case(secret));
                (name.as_str(), if secret { "[REDACTED]" } else { value.as_str() })
            })
            .collect();
        let url = match self.url.split_once('?') {
            Some((before, _)) => format!("{before}?[REDACTED]"),
            None => self.url.clone(),
        };
        f.debug_struct("Req")
            .field("method", &self.method)
            .field("headers", &headers)
            .field("url", &url)
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .finish()
    }
}

/// A response the caller should send, or a response received from Shopify.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Res {
    /// HTTP status code.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// Headers in the order they should be sent.
    #[serde(serialize_with = "serialize_pairs")]
    pub headers: Vec<(String, String)>,
}

impl Res {
    /// A response with a status, a body and no headers.
    pub fn new(status: u16, body: &str) -> Self {
        Self { status, body: body.to_owned(), headers: Vec::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The value of a header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

fn serialize_pairs<S: Serializer>(pairs: &[(String, String)], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (key, value) in pairs {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

/// What happened, as a stable machine-readable code and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Log {
    /// Stable outcome code (`verified`, `invalid_hmac`...), the same as the reference's.
    pub code: Cow<'static, str>,
    /// A sentence for humans. Never contains a token, secret or HMAC.
    pub detail: String,
}

impl Log {
    /// A log entry from a code and a detail sentence.
    pub fn new(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self { code: code.into(), detail: detail.into() }
    }
}

/// One exchange with Shopify, kept for diagnostics (the response body is redacted).
#[derive(Debug, Clone, Serialize)]
pub struct HttpLog {
    /// Outcome code of this attempt (`success`, `rate_limited_retry`...).
    pub code: Cow<'static, str>,
    /// A sentence for humans.
    pub detail: String,
    /// What Shopify answered (status 0 for a network failure).
    pub res: Res,
}

impl HttpLog {
    /// A log entry for one attempt.
    pub fn new(code: impl Into<Cow<'static, str>>, detail: impl Into<String>, res: Res) -> Self {
        Self { code: code.into(), detail: detail.into(), res }
    }
}

/// A verified session token (id token) and its claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenDetails {
    /// Whether Shopify accepts this token in a token exchange (admin, POS and App Home tokens).
    pub exchangeable: bool,
    /// The raw token.
    pub token: Secret,
    /// The decoded payload, in its original key order.
    pub claims: Map<String, Value>,
}

/// Outcome of a check that only says yes or no: webhooks, Flow actions, the helpers.
#[derive(Debug, Clone, Serialize)]
pub struct ResultForReq {
    /// Whether the request passed.
    pub ok: bool,
    /// The shop, where known.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer.
    pub response: Res,
}

impl ResultForReq {
    /// A failed check.
    pub fn failure(shop: Option<String>, code: &'static str, detail: impl Into<String>, response: Res) -> Self {
        Self { ok: false, shop, log: Log::new(code, detail), response }
    }
}

/// Outcome of the checkout and customer-account extension checks.
#[derive(Debug, Clone, Serialize)]
pub struct ResultWithNonExchangeableIdToken {
    /// Whether the request passed.
    pub ok: bool,
    /// The shop, where known.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer.
    pub response: Res,
    /// The verified token, on success.
    pub id_token: Option<IdTokenDetails>,
}

/// Outcome of the admin, POS and App Home checks, whose token can be exchanged.
#[derive(Debug, Clone, Serialize)]
pub struct ResultWithExchangeableIdToken {
    /// Whether the request passed.
    pub ok: bool,
    /// The shop, where known.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer.
    pub response: Res,
    /// The token's `sub` claim.
    pub user_id: Option<String>,
    /// The verified token, on success.
    pub id_token: Option<IdTokenDetails>,
    /// What to answer if Shopify later rejects the token (asks the client for a fresh one).
    pub invalid_token_response: Option<Res>,
}

/// Outcome of the App Proxy check.
#[derive(Debug, Clone, Serialize)]
pub struct ResultWithLoggedInCustomerId {
    /// Whether the request passed.
    pub ok: bool,
    /// The shop, where known.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer.
    pub response: Res,
    /// The storefront customer's id, when one is logged in.
    pub logged_in_customer_id: Option<String>,
}

/// Whether a token acts for the app (`offline`) or for one staff member (`online`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// A token for the app itself; survives staff sessions.
    Offline,
    /// A token bound to one staff member.
    Online,
}

impl AccessMode {
    /// The mode's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Online => "online",
        }
    }
}

/// The staff member an online token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// Shopify's user id.
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The scopes granted to this user.
    pub scope: String,
    /// E-mail address.
    pub email: String,
    /// Whether the user owns the store.
    pub account_owner: bool,
    /// Preferred locale.
    pub locale: String,
    /// Whether the user is a collaborator.
    pub collaborator: bool,
    /// Whether the e-mail address is verified.
    pub email_verified: bool,
}

/// An Admin API access token obtained by token exchange, refresh or authorization code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The shop's name (`s1` for `s1.myshopify.com`).
    pub shop: String,
    /// The access token itself.
    pub token: Secret,
    /// When the token expires (`None`: never).
    #[serde(with = "iso_seconds")]
    pub expires: Option<OffsetDateTime>,
    /// Granted scopes, comma-separated.
    pub scope: String,
    /// Offline or online.
    pub access_mode: AccessMode,
    /// The refresh token of an expiring token.
    pub refresh_token: Option<Secret>,
    /// When the refresh token expires.
    #[serde(with = "iso_seconds")]
    pub refresh_token_expires: Option<OffsetDateTime>,
    /// The staff member of an online token.
    pub user: Option<User>,
}

/// An access token obtained with the client-credentials grant (always offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientCredentialsAccessToken {
    /// The shop's name.
    pub shop: String,
    /// The access token itself.
    pub token: Secret,
    /// When the token expires.
    #[serde(with = "iso_seconds")]
    pub expires: Option<OffsetDateTime>,
    /// Granted scopes.
    pub scope: String,
    /// Always offline.
    pub access_mode: AccessMode,
    /// Always `None`.
    pub user: Option<User>,
}

/// Outcome of token exchange and of refresh.
#[derive(Debug, Clone, Serialize)]
pub struct TokenExchangeResult {
    /// Whether a usable token came out (or none was needed).
    pub ok: bool,
    /// The shop, where known.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer the client on failure.
    pub response: Res,
    /// The new token, when one was obtained.
    pub access_token: Option<AccessToken>,
    /// One entry per request sent to Shopify.
    pub http_logs: Vec<HttpLog>,
}

/// Outcome of the client-credentials grant.
#[derive(Debug, Clone, Serialize)]
pub struct ClientCredentialsExchangeResult {
    /// Whether a token came out.
    pub ok: bool,
    /// The shop, where known.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer the client on failure.
    pub response: Res,
    /// The new token.
    pub access_token: Option<ClientCredentialsAccessToken>,
    /// One entry per request sent to Shopify.
    pub http_logs: Vec<HttpLog>,
}

/// Outcome of the authorization-code callback check.
#[derive(Debug, Clone)]
pub struct OAuthCallbackResult {
    /// Whether the callback passed every check.
    pub ok: bool,
    /// The shop's name (`s1`), once its format is checked.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// What to answer on failure.
    pub response: Res,
    /// The authorization code to exchange, on success.
    pub code: Option<Secret>,
}

/// Outcome of an Admin GraphQL request.
#[derive(Debug, Clone, Serialize)]
pub struct GQLResult {
    /// Whether Shopify answered with data and no errors.
    pub ok: bool,
    /// The shop, on success.
    pub shop: Option<String>,
    /// What happened.
    pub log: Log,
    /// Shopify's response, or what to answer the client on failure.
    pub response: Res,
    /// The `data` member of the answer.
    pub data: Option<Value>,
    /// The `extensions` member of the answer (query cost and throttle status).
    pub extensions: Option<Value>,
    /// One entry per request sent to Shopify.
    pub http_logs: Vec<HttpLog>,
}

/// Whether a JSON value counts as "set" the way Shopify's reference tests it: not null,
/// false, zero, empty string, empty array or empty object.
pub fn json_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
    }
}

/// A JSON value as an integer, the way Python's `int()` converts it in Shopify's reference:
/// integers, floats (truncated toward zero), booleans (0/1) and [`python_int_str`] strings.
pub(crate) fn python_int(value: &Value) -> Option<i128> {
    match value {
        Value::Bool(flag) => Some(i128::from(*flag)),
        Value::Number(number) => number
            .as_i64()
            .map(i128::from)
            .or_else(|| number.as_u64().map(i128::from))
            .or_else(|| number.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i128)),
        Value::String(text) => python_int_str(text),
        _ => None,
    }
}

/// Text as an integer with Python's `int()` syntax: surrounding whitespace, an optional sign,
/// decimal digits with single underscores between them. Values beyond `i128` saturate (Python
/// integers are unbounded, so they still compare as huge rather than failing).
pub(crate) fn python_int_str(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !valid {
        return None;
    }
    let magnitude = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0i128, |acc, digit| acc.saturating_mul(10).saturating_add(i128::from(digit - b'0')));
    Some(if negative { -magnitude } else { magnitude })
}

/// Serde for `Option<OffsetDateTime>` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub mod iso_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    /// Formats a time as `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn format(at: OffsetDateTime) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    }

    /// Parses an RFC 3339 time; a time without offset is taken as UTC.
    pub fn parse(text: &str) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(text, &Rfc3339).or_else(|_| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339)).ok()
    }

    /// Serde `serialize_with`.
    pub fn serialize<S: Serializer>(at: &Option<OffsetDateTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_str(&format(*at)),
            None => serializer.serialize_none(),
        }
    }

    /// Serde `deserialize_with`: an absent, null, empty or unparsable time is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        Ok(text.as_deref().and_then(parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_integers_like_python() {
        assert_eq!(python_int(&json!(5)), Some(5));
        assert_eq!(python_int(&json!(5.9)), Some(5));
        assert_eq!(python_int(&json!(-5.9)), Some(-5));
        assert_eq!(python_int(&json!(true)), Some(1));
        assert_eq!(python_int(&json!(" +1_750_000_000 ")), Some(1_750_000_000));
        assert_eq!(python_int_str("-42"), Some(-42));
        assert_eq!(python_int_str(&"9".repeat(60)), Some(i128::MAX));
        for bad in [
            json!(""),
            json!(" "),
            json!("+"),
            json!("1.5"),
            json!("0x10"),
            json!("1__0"),
            json!("_1"),
            json!("1_"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(python_int(&bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_credentials() {
        let req = Req {
            method: "POST".into(),
            headers: vec![
                ("Authorization".into(), "Bearer SESSION".into()),
                ("X-Shopify-Hmac-SHA256".into(), "HMAC".into()),
                ("X-Shopify-Topic".into(), "app/uninstalled".into()),
            ],
            url: "https://app.example.com/?id_token=SESSION&hmac=HMAC".into(),
            body: b"BODY".to_vec(),
        };
        let id_token = IdTokenDetails { exchangeable: true, token: "SESSION".into(), claims: Map::new() };
        let client_credentials = ClientCredentialsAccessToken {
            shop: "s1".into(),
            token: "SECRET".into(),
            expires: None,
            scope: String::new(),
            access_mode: AccessMode::Offline,
            user: None,
        };
        let printed = format!("{req:?} {id_token:?} {client_credentials:?}");
        for secret in ["SESSION", "HMAC", "BODY", "SECRET"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("app/uninstalled"));
    }
}
