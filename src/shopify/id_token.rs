//! Session tokens (id tokens): HS256 JWTs signed with the app's secret.
//!
//! Checked here in one pass, with the rules of `jsonwebtoken` (whose header type this reads):
//! three base64url parts without padding, a JSON header whose `alg` is HS256, an HMAC-SHA256
//! signature compared in constant time, claims that are a JSON object without a repeated
//! `exp`, `nbf`, `sub`, `iss` or `aud`. The time claims are checked against the injected clock,
//! with Shopify's 10-second leeway.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::model::python_int;
use super::shop::Dest;
use super::{AppConfig, signature};

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
    let claims = verified_claims(token, config).ok_or(TokenError::Invalid)?;
    check_claims(&claims, i128::from(now))?;
    Ok(claims)
}

/// The claims of `token` when it is an HS256 JWT signed with one of the app's secrets.
fn verified_claims(token: &str, config: &AppConfig) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // What the signature covers: the header and the payload, as sent.
    let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    // No critical header extension is supported: a token that declares one is refused (RFC
    // 7515, section 4.1.11), as Shopify's reference does.
    if header.alg != Algorithm::HS256 || header.crit.is_some() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if !config.secrets_for_tokens().any(|secret| signature::hmac_matches(secret, signed, &signature)) {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(claims.0)
}

/// Whether `jsonwebtoken`'s own reading of a claim gets past its JSON `text`: it gives up on a
/// `sub` that is an array or an object, and on an `exp` or `nbf` that is a non-empty one, and
/// then refuses the token (other shapes it reads as "not a number" and lets through).
fn readable_by_jsonwebtoken(name: &str, text: &str) -> bool {
    let text = text.trim();
    let container = text.starts_with('[') || text.starts_with('{');
    let empty =
        |open: char, close: char| text.strip_prefix(open).is_some_and(|rest| rest.trim_start() == close.to_string());
    match name {
        "sub" => !container,
        "exp" | "nbf" => !container || empty('[', ']') || empty('{', '}'),
        _ => true,
    }
}

/// A token's claims: a JSON object in which the claims `jsonwebtoken` reads itself (`exp`,
/// `nbf`, `sub`, `iss`, `aud`) appear once at most, in a shape it reads.
struct Claims(Map<String, Value>);

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;

        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = Claims;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object of claims")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Claims, A::Error> {
                let mut claims = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    let value: Value = if matches!(name.as_str(), "exp" | "nbf" | "sub") {
                        // Judged on the text sent: serde_json's `Value` turns one special
                        // object form into what it wraps, which jsonwebtoken does not.
                        let raw = access.next_value::<Box<RawValue>>()?;
                        if !readable_by_jsonwebtoken(&name, raw.get()) {
                            return Err(A::Error::custom(format_args!("the claim `{name}` has an unreadable shape")));
                        }
                        serde_json::from_str(raw.get()).map_err(A::Error::custom)?
                    } else {
                        access.next_value()?
                    };
                    let registered = matches!(name.as_str(), "exp" | "nbf" | "sub" | "iss" | "aud");
                    if registered && claims.contains_key(&name) {
                        return Err(A::Error::custom(format_args!("the claim `{name}` appears twice")));
                    }
                    claims.insert(name, value);
                }
                Ok(Claims(claims))
            }
        }

        deserializer.deserialize_map(ClaimsVisitor)
    }
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
        crate::shopify::testing::jwt();
        let key = jsonwebtoken::EncodingKey::from_secret(b"hush");
        let claims = json!({"aud": "api-key"});
        let mut header = jsonwebtoken::Header::default();
        let plain = jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default();
        assert!(decode(&plain, &config, 1_000).is_ok());
        header.crit = Some(vec!["exp".to_owned()]);
        let critical = jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default();
        assert_eq!(decode(&critical, &config, 1_000), Err(TokenError::Invalid));
    }

    /// What `jsonwebtoken` itself would accept with the same rules (HS256, signature only).
    fn jsonwebtoken_accepts(token: &str) -> bool {
        crate::shopify::testing::jwt();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let key = jsonwebtoken::DecodingKey::from_secret(b"hush");
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .is_ok_and(|data| data.header.crit.is_none())
    }

    /// Signs `header.payload` (both already base64url) with `secret`.
    fn signed(header: &str, payload: &str, secret: &str) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| panic!());
        mac.update(format!("{header}.{payload}").as_bytes());
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn accepts_exactly_what_jsonwebtoken_accepts() {
        let config =
            AppConfig { client_id: "api-key".to_owned(), client_secret: "hush".into(), old_client_secret: None };
        let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let hs256 = part(r#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = part(r#"{"aud":"api-key","exp":5,"sub":"42"}"#);
        let good = signed(&hs256, &claims, "hush");
        let mut cases = vec![
            good.clone(),
            signed(&hs256, &claims, "other secret"),
            signed(&part(r#"{"alg":"HS512"}"#), &claims, "hush"),
            signed(&part(r#"{"alg":"none"}"#), &claims, "hush"),
            signed(&part(r#"{"typ":"JWT"}"#), &claims, "hush"),
            signed(&part(r#"{"alg":"HS256","kid":7}"#), &claims, "hush"),
            signed(&part(r#"{"alg":"HS256","alg":"HS256"}"#), &claims, "hush"),
            signed(&part(r#"{"alg":"HS256","crit":["exp"]}"#), &claims, "hush"),
            signed(&hs256, &part(r#"{"exp":1,"exp":2}"#), "hush"),
            signed(&hs256, &part(r#"{"aud":"a","aud":"b"}"#), "hush"),
            signed(&hs256, &part(r#"{"dest":"a","dest":"b"}"#), "hush"),
            signed(&hs256, &part(r#"{"exp":"soon"}"#), "hush"),
            signed(&hs256, &part(r#"{"nbf":[1]}"#), "hush"),
            signed(&hs256, &part(r#"{"sub":7}"#), "hush"),
            signed(&hs256, &part(r#"{"iss":{}}"#), "hush"),
            signed(&hs256, &part(r#"{"aud":null}"#), "hush"),
            signed(&hs256, &part(r#"{"exp":[],"nbf":{}}"#), "hush"),
            signed(&hs256, &part(r#"{"exp":{"a":1}}"#), "hush"),
            signed(&hs256, &part(r#"{"sub":[]}"#), "hush"),
            signed(&hs256, &part(r#"{"sub":{"a":[1]}}"#), "hush"),
            signed(&hs256, &part(r#"{"iss":["a","b"],"aud":[{"x":1}],"exp":-1,"nbf":1e400}"#), "hush"),
            signed(&hs256, &part(r#"{"exp":true,"nbf":null,"sub":false}"#), "hush"),
            signed(&hs256, &part(r#"{"sub":{"$serde_json::private::RawValue":"\"42\""}}"#), "hush"),
            signed(&hs256, &part(r#"{"exp":{"$serde_json::private::RawValue":"99999999999"}}"#), "hush"),
            signed(&hs256, &part(r#"{"nbf":{"$serde_json::private::RawValue":"[]"}}"#), "hush"),
            signed(&hs256, &part(r#"{"exp":[ ],"nbf":{ },"sub":"x"}"#), "hush"),
            signed(&hs256, &part(r#"[1,2,3]"#), "hush"),
            signed(&hs256, &part(r#"{"a":1} x"#), "hush"),
            signed(&hs256, &part(""), "hush"),
            signed(&format!("{hs256}="), &claims, "hush"),
            format!("{good}="),
            format!("{good}.x"),
            format!("x.{good}"),
            good.replacen('.', "..", 1),
            good[..good.len() - 1].to_owned(),
            hs256.clone(),
            String::new(),
        ];
        // Every one-character change of the good token, too.
        for index in 0..good.len() {
            for replacement in ['A', '_', '-', '.', '='] {
                let mut token = good.clone();
                token.replace_range(index..=index, &replacement.to_string());
                cases.push(token);
            }
        }
        for token in &cases {
            assert_eq!(verified_claims(token, &config).is_some(), jsonwebtoken_accepts(token), "{token}");
        }
        assert!(verified_claims(&good, &config).is_some());
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
