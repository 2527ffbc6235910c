//! Session tokens (id tokens): HS256 JWTs signed with the app's secret.
//!
//! The signature and structure are checked by `jsonwebtoken`; the time claims are checked
//! here against the injected clock, with Shopify's 10-second leeway.

use std::sync::LazyLock;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::AppConfig;
use super::model::python_int;
use super::shop::Dest;

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

/// What `jsonwebtoken` checks: HS256 and the signature only; the time claims are checked by
/// [`check_claims`], against the injected clock. Built once.
static VALIDATION: LazyLock<Validation> = LazyLock::new(|| {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
});

/// Verifies `token` with the current or the old secret and returns its claims.
///
/// A token signed with the old secret during a rotation is classified like any other: an
/// expired one reports [`TokenError::Expired`].
pub fn decode(token: &str, config: &AppConfig, now: i64) -> Result<Map<String, Value>, TokenError> {
    let claims = config
        .secrets_for_tokens()
        .find_map(|secret| {
            jsonwebtoken::decode::<Map<String, Value>>(token, &DecodingKey::from_secret(secret.as_bytes()), &VALIDATION)
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

/// Who a surface's session tokens are issued to, and so which claims they must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A staff member in the Shopify admin or POS (App Home, admin and POS extensions): the
    /// token can be exchanged for the shop's access tokens, so it must be admin-issued:
    /// `iss` = `https://{shop}.myshopify.com/admin`, `dest` = `https://{shop}.myshopify.com`,
    /// and an `exp`.
    Staff,
    /// A buyer in checkout or a customer account: `dest` names the shop (bare or as its
    /// origin), nothing else is required. Such a token never reaches the Admin API.
    Buyer,
}

/// Why a correctly signed token is refused on a surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// The token was not issued for this surface (a buyer's token on an admin surface, an
    /// `iss` naming another shop, no `exp`): `invalid_id_token`.
    WrongSurface,
    /// `dest` does not name a shop in the form the surface requires: `invalid_shop`.
    InvalidShop,
}

impl ClaimError {
    /// The reference's log code for this failure.
    pub fn code(self) -> &'static str {
        match self {
            Self::WrongSurface => "invalid_id_token",
            Self::InvalidShop => "invalid_shop",
        }
    }
}

/// Checks the claims `audience` requires of a verified token and returns the shop it names.
pub fn check_audience(claims: &Map<String, Value>, audience: Audience) -> Result<Dest, ClaimError> {
    let dest = claims.get("dest").and_then(Value::as_str);
    match audience {
        Audience::Buyer => dest.and_then(Dest::parse).ok_or(ClaimError::InvalidShop),
        Audience::Staff => {
            let iss = claims.get("iss").and_then(Value::as_str).ok_or(ClaimError::WrongSurface)?;
            if !claims.contains_key("exp") {
                return Err(ClaimError::WrongSurface);
            }
            let dest = dest.and_then(Dest::parse).ok_or(ClaimError::InvalidShop)?;
            // A bare shop domain is what buyer-facing tokens carry.
            if !dest.is_origin {
                return Err(ClaimError::WrongSurface);
            }
            let issuer = format!("https://{}/admin", dest.domain);
            if !iss.eq_ignore_ascii_case(&issuer) {
                return Err(ClaimError::WrongSurface);
            }
            Ok(dest)
        }
    }
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
            AppConfig { client_id: "api-key".to_owned(), client_secret: "hush".into(), old_client_secret: None };
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
    fn staff_tokens_must_be_admin_issued_for_their_shop() {
        let claims = |value: Value| value.as_object().cloned().unwrap_or_default();
        let admin = claims(json!({
            "iss": "https://s1.myshopify.com/admin", "dest": "https://s1.myshopify.com", "exp": 1
        }));
        assert_eq!(check_audience(&admin, Audience::Staff).map(|dest| dest.shop()), Ok("s1".to_owned()));
        assert!(check_audience(&admin, Audience::Buyer).is_ok());
        let buyer = claims(json!({"dest": "s1.myshopify.com", "exp": 1}));
        assert_eq!(check_audience(&buyer, Audience::Staff), Err(ClaimError::WrongSurface));
        assert_eq!(check_audience(&buyer, Audience::Buyer).map(|dest| dest.domain), Ok("s1.myshopify.com".to_owned()));
        for (bad, error) in [
            (
                json!({"iss": "https://s2.myshopify.com/admin", "dest": "https://s1.myshopify.com", "exp": 1}),
                ClaimError::WrongSurface,
            ),
            (
                json!({"iss": "https://s1.myshopify.com", "dest": "https://s1.myshopify.com", "exp": 1}),
                ClaimError::WrongSurface,
            ),
            (
                json!({"iss": "https://s1.myshopify.com/admin", "dest": "https://s1.myshopify.com"}),
                ClaimError::WrongSurface,
            ),
            (
                json!({"iss": "https://s1.myshopify.com/admin", "dest": "s1.myshopify.com", "exp": 1}),
                ClaimError::WrongSurface,
            ),
            (
                json!({"iss": "https://s1.myshopify.com:443/admin", "dest": "https://s1.myshopify.com:443", "exp": 1}),
                ClaimError::InvalidShop,
            ),
            (json!({"iss": "https://s1.myshopify.com/admin", "exp": 1}), ClaimError::InvalidShop),
        ] {
            assert_eq!(check_audience(&claims(bad.clone()), Audience::Staff), Err(error), "{bad}");
        }
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
