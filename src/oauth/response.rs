//! The provider's token response (RFC 6749, section 5.1), read leniently where providers
//! differ: `expires_in` may be any JSON number (an integer past `u64`'s range arrives as a
//! float, some providers send floats outright), and is clamped to [`MAX_LIFETIME`].

use std::time::Duration;

use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse};
use serde::{Deserialize, Serialize};
use serde_json::Number;

/// The longest access-token lifetime taken from a provider (100 years): a longer, absurd or
/// overflowing `expires_in` is read as this far-future expiry.
pub const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A token response. Its `Debug` output hides both tokens (the `oauth2` secret types do).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProviderTokenResponse {
    access_token: AccessToken,
    #[serde(deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive")]
    token_type: BasicTokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_in: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshToken>,
    #[serde(rename = "scope")]
    #[serde(deserialize_with = "oauth2::helpers::deserialize_space_delimited_vec")]
    #[serde(serialize_with = "oauth2::helpers::serialize_space_delimited_vec")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
}

impl TokenResponse for ProviderTokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    /// The lifetime, at most [`MAX_LIFETIME`]; a negative one is zero.
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.as_ref().map(lifetime)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

/// `expires_in` seconds as a lifetime, clamped to `0..=MAX_LIFETIME` before any conversion.
fn lifetime(seconds: &Number) -> Duration {
    let max = MAX_LIFETIME.as_secs();
    let seconds = match (seconds.as_u64(), seconds.as_f64()) {
        (Some(whole), _) => whole.min(max),
        // Float to integer casts saturate (and NaN becomes 0): no overflow, no panic.
        (None, Some(float)) if float.is_finite() && float > 0.0 => (float.min(max as f64) as u64).min(max),
        _ => 0,
    };
    Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(expires_in: &str) -> Option<Duration> {
        let body = format!(r#"{{"access_token":"at","token_type":"Bearer","expires_in":{expires_in}}}"#);
        serde_json::from_str::<ProviderTokenResponse>(&body).map(|response| response.expires_in()).unwrap_or_default()
    }

    #[test]
    fn expires_in_is_clamped_to_the_longest_lifetime() {
        assert_eq!(parse("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("3600.9"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("null"), None);
        assert_eq!(parse("-5"), Some(Duration::ZERO));
        assert_eq!(parse("-1e300"), Some(Duration::ZERO));
        for huge in ["18446744073709551615", "1e20", "1.7e308", "99999999999999999999999"] {
            assert_eq!(parse(huge), Some(MAX_LIFETIME), "{huge}");
        }
    }

    #[test]
    fn the_standard_fields_are_read() {
        let body = r#"{"access_token":"at","token_type":"bearer","refresh_token":"rt","scope":"read write"}"#;
        let response: ProviderTokenResponse = serde_json::from_str(body).unwrap();
        assert_eq!(response.access_token().secret(), "at");
        assert_eq!(response.refresh_token().map(|token| token.secret().as_str()), Some("rt"));
        let scopes: Vec<&str> = response.scopes().into_iter().flatten().map(|scope| scope.as_str()).collect();
        assert_eq!(scopes, ["read", "write"]);
        assert_eq!(response.expires_in(), None);
        assert!(!format!("{response:?}").contains("\"at\""));
    }
}
