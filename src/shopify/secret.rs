//! [`Secret`]: client secrets, access, refresh and session tokens, request bodies that carry
//! them. A struct holding one can derive `Debug` and still never print it.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// A secret text: `Debug` shows `[REDACTED]` (from `secrecy`), its memory is wiped on drop,
/// and equality is compared in constant time. Read it with [`Secret::expose`], only where it
/// is sent or checked.
///
/// It serializes as its plain text: the reference-shaped results that carry tokens (a token
/// exchange's `access_token`) keep their wire shape. Never serialize one into a log.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose().as_bytes().ct_eq(other.expose().as_bytes()).into()
    }
}

impl Eq for Secret {}

impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.expose().as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_in_debug_output() {
        #[derive(Debug)]
        #[allow(dead_code)] // read by Debug only
        struct Holder {
            token: Secret,
            refresh: Option<Secret>,
        }
        let holder = Holder { token: Secret::new("shpat_live"), refresh: Some("shprt_live".into()) };
        let debug = format!("{holder:?} {holder:#?}");
        assert!(!debug.contains("shpat_live") && !debug.contains("shprt_live"), "{debug}");
        assert!(debug.contains("REDACTED"));
        assert_eq!(holder.token.expose(), "shpat_live");
        assert_eq!(holder.token, Secret::new("shpat_live"));
        assert_eq!(holder.token, "shpat_live");
        assert_ne!(holder.token, Secret::new("shpat_other"));
        // In full: a prefix or an empty text is not equal.
        assert!(holder.token != "shpat_" && holder.token != "shpat_live_" && Secret::default() != "x");
    }
}
