//! Session tokens (id tokens): HS256 JWTs signed with the app's secret.
//!
//! The signature and structure are checked by `jsonwebtoken`; the time claims are checked
//! here against the injected clock, with Shopify's 10-second leeway.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::AppConfig;
use super::model::python_int;

/// Clock skew tolerated on `iat`, `nbf` and `exp`, in seconds.
pub const LEEWAY_SECONDS: i128 = 10;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Correctly signed, but past its `exp` (leeway included).
    Expired,
    /// Anything else: malformed, wrong algorithm, bad signature, bad claim.
    Invalid,
}

impl TokenError {
    /// The reference's log code for this failure.
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "expired_id_token",
            Self::Invalid => "invalid_id_token",
        }
    }
}

/// Verifies `token` with the current or the old secret and returns its claims.
///
/// A token signed with the old secret during a rotation is classified like any other: an
/// expired one reports [`TokenError::Expired`].
pub fn decode(token: &str, config: &AppConfig, now: i64) -> Result<Map<String, Value>, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = config
        .secrets_for_tokens()
        .find_map(|secret| {
            jsonwebtoken::decode::<Map<String, Value>>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
                .ok()
                // No critical header extension is supported: a token that declares one is refused
                // (RFC 7515, section 4.1.11), as Shopify's reference does.
                .filter(|data| data.header.crit.is_none())
        })
        .ok_or(TokenError::Invalid)?
        .claims;
    check_claims(&claims, i128::from(now))?;
    Ok(claims)
}

fn check_claims(claims: &Map<String, Value>, now: i128) -> Result<(), TokenError> {
    let time_claim = |name: &str| -> Result<Option<i128>, TokenError> {
        claims.get(name).map(|value| python_int(value).ok_or(TokenError::Invalid)).transpose()
    };
    if time_claim("iat")?.is_some_and(|iat| iat > now + LEEWAY_SECONDS) {
        return Err(TokenError::Invalid);
    }
    if time_claim("nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
        return Err(TokenError::Invalid);
    }
    if time_claim("exp")?.is_some_and(|exp| exp <= now - LEEWAY_SECONDS) {
        return Err(TokenError::Expired);
    }
    for name in ["sub", "jti"] {
        if claims.get(name).is_some_and(|value| !value.is_string()) {
            return Err(TokenError::Invalid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_critical_header_extensions() {
        let config =
            AppConfig { client_id: "api-key".to_owned(), client_secret: "hush".to_owned(), old_client_secret: None };
        let key = jsonwebtoken::EncodingKey::from_secret(b"hush");
        let claims = json!({"aud": "api-key"});
        let mut header = jsonwebtoken::Header::default();
        let plain = jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default();
        assert!(decode(&plain, &config, 1_000).is_ok());
        header.crit = Some(vec!["exp".to_owned()]);
        let critical = jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default();
        assert_eq!(decode(&critical, &config, 1_000), Err(TokenError::Invalid));
    }

    #[test]
    fn applies_the_leeway_at_its_edges() {
        let claims = |value: Value| value.as_object().cloned().unwrap_or_default();
        let now = 1_000;
        assert_eq!(check_claims(&claims(json!({"exp": 990})), now), Err(TokenError::Expired));
        assert_eq!(check_claims(&claims(json!({"exp": 991})), now), Ok(()));
        assert_eq!(check_claims(&claims(json!({"nbf": 1011})), now), Err(TokenError::Invalid));
        assert_eq!(check_claims(&claims(json!({"iat": 1010})), now), Ok(()));
        assert_eq!(check_claims(&claims(json!({"sub": 42})), now), Err(TokenError::Invalid));
        assert_eq!(check_claims(&claims(json!({"exp": "x"})), now), Err(TokenError::Invalid));
    }
}
