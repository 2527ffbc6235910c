//! Session tokens (id tokens): HS256 JWTs signed with the app's secret.
//!
//! The signature and structure are checked by `jsonwebtoken`; the time claims are checked
//! here against the injected clock, with Shopify's 10-second leeway.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::AppConfig;

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
            jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &DecodingKey::from_secret(secret.as_bytes()),
                &validation,
            )
            .ok()
        })
        .ok_or(TokenError::Invalid)?
        .claims;
    check_claims(&claims, i128::from(now))?;
    Ok(claims)
}

fn check_claims(claims: &Map<String, Value>, now: i128) -> Result<(), TokenError> {
    let time_claim = |name: &str| -> Result<Option<i128>, TokenError> {
        claims
            .get(name)
            .map(|value| python_int(value).ok_or(TokenError::Invalid))
            .transpose()
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

/// A claim value as an integer, with the conversions Shopify's reference accepts: integers,
/// floats (truncated), booleans, and decimal strings with surrounding spaces, a sign and
/// single underscores between digits.
fn python_int(value: &Value) -> Option<i128> {
    match value {
        Value::Bool(flag) => Some(i128::from(*flag)),
        Value::Number(number) => number
            .as_i64()
            .map(i128::from)
            .or_else(|| number.as_u64().map(i128::from))
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i128)
            }),
        Value::String(text) => {
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
            let magnitude: i128 = digits.replace('_', "").parse().ok()?;
            Some(if negative { -magnitude } else { magnitude })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_claims_like_the_reference() {
        assert_eq!(python_int(&json!(5)), Some(5));
        assert_eq!(python_int(&json!(5.9)), Some(5));
        assert_eq!(python_int(&json!(true)), Some(1));
        assert_eq!(python_int(&json!(" +1_750_000_000 ")), Some(1_750_000_000));
        for bad in [
            json!(""),
            json!("1.5"),
            json!("0x10"),
            json!("1__0"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(python_int(&bad), None, "{bad}");
        }
    }

    #[test]
    fn applies_the_leeway_at_its_edges() {
        let claims = |value: Value| value.as_object().cloned().unwrap_or_default();
        let now = 1_000;
        assert_eq!(
            check_claims(&claims(json!({"exp": 990})), now),
            Err(TokenError::Expired)
        );
        assert_eq!(check_claims(&claims(json!({"exp": 991})), now), Ok(()));
        assert_eq!(
            check_claims(&claims(json!({"nbf": 1011})), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(check_claims(&claims(json!({"iat": 1010})), now), Ok(()));
        assert_eq!(
            check_claims(&claims(json!({"sub": 42})), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            check_claims(&claims(json!({"exp": "x"})), now),
            Err(TokenError::Invalid)
        );
    }
}
