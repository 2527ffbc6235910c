//! Settings, read once at start from the environment (and `.env`), validated into a typed
//! struct. See the environment table in the README.

use std::collections::HashMap;

/// The app's validated settings.
#[derive(Clone)]
pub struct Config {
    /// The client id (`SHOPIFY_API_KEY`).
    pub api_key: String,
    /// The client secret (`SHOPIFY_API_SECRET`).
    pub api_secret: String,
    /// The previous secret during a rotation (`SHOPIFY_OLD_API_SECRET`).
    pub old_api_secret: Option<String>,
    /// Requested access scopes, comma-separated (`SCOPES`).
    pub scopes: String,
    /// The app's public origin, without a trailing slash (`SHOPIFY_APP_URL`, else `HOST`).
    pub app_url: String,
    /// The listen port (`PORT`).
    pub port: u16,
    /// Where the database lives (`DATABASE_URL`).
    pub database_url: String,
    /// The Admin API version (`SHOPIFY_API_VERSION`).
    pub api_version: String,
    /// Where Shopify calls go instead of `https://{shop}` (`SHOPIFY_SHOP_ORIGIN`, tests only).
    pub shop_origin: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &self.api_key)
            .field("api_secret", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .field("app_url", &self.app_url)
            .field("port", &self.port)
            .field("database_url", &self.database_url)
            .field("api_version", &self.api_version)
            .field("shop_origin", &self.shop_origin)
            .finish_non_exhaustive()
    }
}

/// A setting that is missing or malformed; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("invalid environment variable {name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The default Admin API version.
pub const DEFAULT_API_VERSION: &str = "2026-10";
/// The default SQLite database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/app.db";

impl Config {
    /// Reads `.env` (real environment variables win) and then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env file is normal; a malformed one is reported by the values it leaves out.
        let _ = dotenvy::dotenv();
        Self::from_vars(std::env::vars().collect())
    }

    /// Builds the settings from a map of variables.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));

        let api_key = required("SHOPIFY_API_KEY")?;
        let api_secret = required("SHOPIFY_API_SECRET")?;
        let port = match get("PORT") {
            None => 8080,
            Some(port) => port
                .parse()
                .map_err(|_| ConfigError::Invalid { name: "PORT", reason: format!("{port:?} is not a port number") })?,
        };
        let (app_url_name, app_url) = match (get("SHOPIFY_APP_URL"), get("HOST")) {
            (Some(url), _) => ("SHOPIFY_APP_URL", url),
            (None, Some(host)) => ("HOST", host),
            (None, None) => ("SHOPIFY_APP_URL", format!("http://localhost:{port}")),
        };
        let app_url = validate_origin(app_url_name, &app_url)?;
        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !database_url.starts_with("sqlite:") {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "only sqlite: URLs are supported".to_owned(),
            });
        }
        let api_version = get("SHOPIFY_API_VERSION").unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        if !api_version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ConfigError::Invalid {
                name: "SHOPIFY_API_VERSION",
                reason: format!("{api_version:?} is not a version name"),
            });
        }
        let shop_origin = get("SHOPIFY_SHOP_ORIGIN").map(|origin| origin.trim_end_matches('/').to_owned());
        if let Some(origin) = &shop_origin {
            url::Url::parse(&origin.replace("{shop}", "shop.myshopify.com"))
                .map_err(|error| ConfigError::Invalid { name: "SHOPIFY_SHOP_ORIGIN", reason: error.to_string() })?;
        }
        Ok(Self {
            api_key,
            api_secret,
            old_api_secret: get("SHOPIFY_OLD_API_SECRET"),
            scopes: get("SCOPES").unwrap_or_default(),
            app_url,
            port,
            database_url,
            api_version,
            shop_origin,
        })
    }
}

/// An `http(s)` origin (scheme, host, optional port) without a trailing slash.
fn validate_origin(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let with_scheme = if value.contains("://") { value.to_owned() } else { format!("https://{value}") };
    let url =
        url::Url::parse(&with_scheme).map_err(|error| ConfigError::Invalid { name, reason: error.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Invalid { name, reason: "expected an http(s) URL".to_owned() });
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn needs_only_the_key_and_secret() {
        let config = Config::from_vars(vars(&[("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s")])).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.app_url, "http://localhost:8080");
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.api_version, DEFAULT_API_VERSION);
        assert!(!format!("{config:?}").contains("\"s\""));
    }

    #[test]
    fn names_the_missing_variable() {
        let error = Config::from_vars(vars(&[("SHOPIFY_API_KEY", "k")])).unwrap_err();
        assert_eq!(error.to_string(), "missing required environment variable SHOPIFY_API_SECRET");
        let error = Config::from_vars(vars(&[("SHOPIFY_API_SECRET", "s"), ("SHOPIFY_API_KEY", " ")])).unwrap_err();
        assert_eq!(error, ConfigError::Missing("SHOPIFY_API_KEY"));
    }

    #[test]
    fn takes_the_app_url_from_host_as_the_cli_sets_it() {
        let base = [("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s"), ("PORT", "3000")];
        let config =
            Config::from_vars(vars(&[base.as_slice(), &[("HOST", "https://abc.trycloudflare.com/")]].concat()))
                .unwrap();
        assert_eq!(config.app_url, "https://abc.trycloudflare.com");
        assert_eq!(config.port, 3000);
        let error = Config::from_vars(vars(&[base.as_slice(), &[("PORT", "x")]].concat())).unwrap_err();
        assert!(error.to_string().contains("PORT"));
    }
}
