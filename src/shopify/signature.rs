//! HMAC-SHA256 signatures: body HMACs in headers (webhooks, Flow) and hex query signatures
//! (App Proxy, OAuth callback). Every comparison runs in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message);
    mac
}

/// Base64 (standard, padded) HMAC-SHA256 of `message`: what Shopify puts in
/// `X-Shopify-Hmac-SHA256`.
pub fn base64_hmac(secret: &str, message: &[u8]) -> String {
    STANDARD.encode(mac(secret, message).finalize().into_bytes())
}

/// Lowercase hex HMAC-SHA256 of `message`: the App Proxy and OAuth signature format.
pub fn hex_hmac(secret: &str, message: &[u8]) -> String {
    mac(secret, message).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `header` is the canonical base64 HMAC of `message` under one of `secrets`.
pub fn verify_base64_hmac(secrets: &[&str], message: &[u8], header: &str) -> bool {
    let Ok(expected) = STANDARD.decode(header) else {
        return false;
    };
    // Only the canonical spelling counts, as it does for Shopify's string comparison.
    if STANDARD.encode(&expected) != header {
        return false;
    }
    secrets.iter().any(|secret| mac(secret, message).verify_slice(&expected).is_ok())
}

/// Whether `signature` (raw bytes) is the HMAC of `message` under `secret`.
pub fn hmac_matches(secret: &str, message: &[u8], signature: &[u8]) -> bool {
    mac(secret, message).verify_slice(signature).is_ok()
}

/// Whether `signature` is the lowercase hex HMAC of `message` under one of `secrets`.
pub fn verify_hex_hmac(secrets: &[&str], message: &[u8], signature: &str) -> bool {
    let Some(expected) = decode_lower_hex(signature) else {
        return false;
    };
    secrets.iter().any(|secret| hmac_matches(secret, message, &expected))
}

fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks(2).map(|pair| Some(digit(pair[0])? * 16 + digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_with_any_secret_and_only_canonical_encodings() {
        let header = base64_hmac("new", b"body");
        assert!(verify_base64_hmac(&["new"], b"body", &header));
        assert!(verify_base64_hmac(&["old", "new"], b"body", &header));
        assert!(!verify_base64_hmac(&["old"], b"body", &header));
        assert!(!verify_base64_hmac(&["new"], b"body2", &header));
        assert!(!verify_base64_hmac(&["new"], b"body", header.trim_end_matches('=')));
        assert!(!verify_base64_hmac(&["new"], b"body", "é"));

        let hex = hex_hmac("new", b"a=1");
        assert!(verify_hex_hmac(&["new"], b"a=1", &hex));
        assert!(!verify_hex_hmac(&["new"], b"a=1", &hex.to_uppercase()));
        assert!(!verify_hex_hmac(&["new"], b"a=1", "zz"));
    }
}
