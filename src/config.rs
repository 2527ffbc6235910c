//! Settings, read once at start from the environment (and `.env`), validated into a typed
//! struct. See the environment table in the README.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;

use crate::oauth::{ClientAuth, ProviderConfig};
use crate::shopify::secret::Secret;
use crate::shopify::shop::shop_name;
use crate::tokens::encryption::{EncryptionKeys, KEY_LEN};

/// The app's validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The client id (`SHOPIFY_API_KEY`).
    pub api_key: String,
    /// The client secret (`SHOPIFY_API_SECRET`).
    pub api_secret: Secret,
    /// The previous secret during a rotation (`SHOPIFY_OLD_API_SECRET`).
    pub old_api_secret: Option<Secret>,
    /// Requested access scopes, comma-separated (`SCOPES`).
    pub scopes: String,
    /// The app's public origin, without a trailing slash (`SHOPIFY_APP_URL`, else `HOST`).
    pub app_url: String,
    /// The listen port (`PORT`).
    pub port: u16,
    /// Where the database lives (`DATABASE_URL`); a secret: a PostgreSQL URL may hold a
    /// password.
    pub database_url: Secret,
    /// The Admin API version (`SHOPIFY_API_VERSION`).
    pub api_version: String,
    /// Where Shopify calls go instead of `https://{shop}` (`SHOPIFY_SHOP_ORIGIN`, tests only).
    pub shop_origin: Option<String>,
    /// Whether the session cookie is `Secure` (`SESSION_COOKIE_SECURE`; off only for a
    /// plain-http localhost app URL).
    pub session_cookie_secure: bool,
    /// Shops whose client-credentials token is kept renewed (`SHOPIFY_CLIENT_CREDENTIALS_SHOPS`).
    pub client_credentials_shops: Vec<String>,
    /// Third-party OAuth2 providers (`OAUTH_PROVIDERS` and `OAUTH_<NAME>_*`).
    pub oauth_providers: Vec<ProviderConfig>,
    /// The keys stored tokens are encrypted with (`TOKEN_ENCRYPTION_KEYS`); `None`: they are
    /// stored in plaintext.
    pub token_encryption_keys: Option<EncryptionKeys>,
    /// Timeouts and the concurrency limit of the server.
    pub limits: Limits,
    /// How this instance runs background jobs.
    pub jobs: JobSettings,
    /// Billing: whether App Home requires a plan, test charges, where plans live.
    pub billing: BillingSettings,
    /// The bearer token of the operators' routes (`OPS_TOKEN`); `None`: those routes answer 404.
    pub ops_token: Option<Secret>,
}

/// How the app bills (`src/billing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingSettings {
    /// The billing gate guards App Home's pages and `/api/products` (`BILLING_REQUIRED`).
    pub required: bool,
    /// Charges are test charges (`SHOPIFY_BILLING_TEST`, true unless set false: set it false in
    /// production).
    pub test: bool,
    /// Plans in code, or Shopify's managed pricing (`BILLING_MODE=managed` with
    /// `SHOPIFY_APP_HANDLE`).
    pub mode: crate::billing::Mode,
}

/// How background jobs run (`src/jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// Jobs this instance runs at once (`JOB_WORKERS`); 0 runs none here (a web-only
    /// instance: others run them).
    pub workers: usize,
    /// Attempts before a job is kept as failed (`JOB_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The wait before the first retry, doubled for each later one up to an hour, with
    /// jitter (`JOB_RETRY_BASE_SECS`).
    pub retry_base: Duration,
    /// How long one attempt may run before it counts as failed (`JOB_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// The visibility timeout (`JOB_LEASE_SECS`): a running job's lease, renewed by its worker
    /// every third of it; the job of a worker that died runs again once its lease ran out.
    pub lease: Duration,
    /// How long running jobs may take to finish once the app is told to stop
    /// (`JOB_SHUTDOWN_GRACE_SECS`); the rest are put back for another instance.
    pub shutdown_grace: Duration,
}

impl Default for JobSettings {
    /// Four workers, ten attempts, retries after about 10 s, 20 s, 40 s... up to an hour, two
    /// minutes per attempt, leases of 30 seconds, three seconds to finish at shutdown (below the
    /// kill timeouts of Fly.io, 5 s, and Docker or Cloud Run, 10 s).
    fn default() -> Self {
        Self {
            workers: 4,
            max_attempts: 10,
            retry_base: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            lease: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// How long clients and handlers may take, and how many connections and requests the server
/// holds at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open (`HEADER_READ_TIMEOUT_SECS`).
    pub header_read_timeout: Duration,
    /// How long the app may take to answer once the body is in: `503` beyond
    /// (`REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// How long a client may take to send the whole body, read before the request takes a
    /// slot: `408` beyond (`BODY_READ_TIMEOUT_SECS`).
    pub body_read_timeout: Duration,
    /// Requests handled at once, their bodies read: `503` with `Retry-After` beyond
    /// (`MAX_CONCURRENT_REQUESTS`).
    pub max_concurrent_requests: usize,
    /// Connections open at once; beyond, new ones wait in the kernel's accept queue
    /// (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a write to a client may make no progress (the client reads nothing) before
    /// the connection is closed (`SEND_TIMEOUT_SECS`).
    pub send_timeout: Duration,
    /// Connections to PostgreSQL this instance opens at most (`DATABASE_MAX_CONNECTIONS`);
    /// mind the server's `max_connections` across every instance.
    pub database_connections: u32,
}

impl Default for Limits {
    /// Ten seconds for headers and for the body, 120 seconds for an answer (above the slowest
    /// Shopify call chain of a request, see the README), 1024 requests and 4096 connections at
    /// once, 30 seconds for a write to a client to make progress, and 10 PostgreSQL
    /// connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            body_read_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            max_connections: 4096,
            send_timeout: Duration::from_secs(30),
            database_connections: 10,
        }
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
        let api_secret = Secret::new(required("SHOPIFY_API_SECRET")?);
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
        if !database_url.starts_with("sqlite:") && !crate::db::Db::is_postgres(&database_url) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "a sqlite: file or a postgres:// server".to_owned(),
            });
        }
        if crate::db::is_in_memory(&database_url) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "an in-memory database cannot be shared with the writer thread: name a file".to_owned(),
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
        let session_cookie_secure = flag(&get, "SESSION_COOKIE_SECURE", true)?;
        if !session_cookie_secure && !is_plain_http_localhost(&app_url) {
            return Err(ConfigError::Invalid {
                name: "SESSION_COOKIE_SECURE",
                reason: "may be false only when the app URL is plain http on localhost".to_owned(),
            });
        }
        let mut client_credentials_shops = Vec::new();
        for shop in get("SHOPIFY_CLIENT_CREDENTIALS_SHOPS").unwrap_or_default().split(',').map(str::trim) {
            if shop.is_empty() {
                continue;
            }
            let name = shop_name(shop).ok_or_else(|| ConfigError::Invalid {
                name: "SHOPIFY_CLIENT_CREDENTIALS_SHOPS",
                reason: format!("{shop:?} is not a shop"),
            })?;
            if !client_credentials_shops.contains(&name) {
                client_credentials_shops.push(name);
            }
        }
        Ok(Self {
            api_key,
            api_secret,
            old_api_secret: get("SHOPIFY_OLD_API_SECRET").map(Secret::new),
            scopes: get("SCOPES").unwrap_or_default(),
            app_url,
            port,
            database_url: Secret::new(database_url),
            api_version,
            shop_origin,
            session_cookie_secure,
            client_credentials_shops,
            oauth_providers: oauth_providers(&get)?,
            token_encryption_keys: get("TOKEN_ENCRYPTION_KEYS").map(|keys| token_encryption_keys(&keys)).transpose()?,
            limits: limits(&get)?,
            jobs: job_settings(&get)?,
            ops_token: ops_token(get("OPS_TOKEN"))?,
            billing: billing_settings(&get)?,
        })
    }
}

/// `TOKEN_ENCRYPTION_KEYS`: comma-separated `id:key` entries, each key 32 bytes in standard
/// base64 (`openssl rand -base64 32`) and each id a short label of letters, digits, `_` and
/// `-`. The first key encrypts, all of them decrypt. Errors never quote a key.
fn token_encryption_keys(value: &str) -> Result<EncryptionKeys, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "TOKEN_ENCRYPTION_KEYS", reason };
    let mut keys: Vec<(String, [u8; KEY_LEN])> = Vec::new();
    for (position, entry) in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()).enumerate() {
        let number = position + 1;
        let (id, key) = entry.split_once(':').ok_or_else(|| invalid(format!("entry {number} is not id:base64-key")))?;
        let id = id.trim();
        if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(format!("entry {number}: the key id must be 1 to 32 letters, digits, _ or -")));
        }
        if keys.iter().any(|(known, _)| known == id) {
            return Err(invalid(format!("key id {id:?} is listed twice")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| invalid(format!("key {id:?} is not base64")))?;
        let key = <[u8; KEY_LEN]>::try_from(bytes)
            .map_err(|bytes| invalid(format!("key {id:?} is {} bytes long, not {KEY_LEN}", bytes.len())))?;
        keys.push((id.to_owned(), key));
    }
    EncryptionKeys::new(keys).ok_or_else(|| invalid("no key is listed".to_owned()))
}

/// The limits, each a whole number of seconds (or of requests or connections) from 1 up to a
/// day (or a million); an unset variable keeps its default.
fn limits(get: &dyn Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
    let number = |name, default, max| whole_number(get, name, default, 1..=max);
    let seconds = |name, default: Duration| number(name, default.as_secs(), DAY_SECS).map(Duration::from_secs);
    let count = |name, default: usize| number(name, default as u64, 1_000_000).map(|n| n as usize);
    let defaults = Limits::default();
    Ok(Limits {
        header_read_timeout: seconds("HEADER_READ_TIMEOUT_SECS", defaults.header_read_timeout)?,
        request_timeout: seconds("REQUEST_TIMEOUT_SECS", defaults.request_timeout)?,
        body_read_timeout: seconds("BODY_READ_TIMEOUT_SECS", defaults.body_read_timeout)?,
        max_concurrent_requests: count("MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests)?,
        max_connections: count("MAX_CONNECTIONS", defaults.max_connections)?,
        send_timeout: seconds("SEND_TIMEOUT_SECS", defaults.send_timeout)?,
        database_connections: number("DATABASE_MAX_CONNECTIONS", defaults.database_connections.into(), 10_000)? as u32,
    })
}

/// `true`/`1` or `false`/`0` in variable `name`; `default` when unset.
fn flag(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name).as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ConfigError::Invalid { name, reason: format!("{other:?} is not true or false") }),
    }
}

/// `BILLING_REQUIRED`, `SHOPIFY_BILLING_TEST`, `BILLING_MODE` (`plans` or `managed`) and, for
/// managed pricing, `SHOPIFY_APP_HANDLE`.
fn billing_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<BillingSettings, ConfigError> {
    let mode = match get("BILLING_MODE").as_deref() {
        None | Some("plans") => crate::billing::Mode::Plans,
        Some("managed") => {
            let handle = get("SHOPIFY_APP_HANDLE").ok_or(ConfigError::Missing("SHOPIFY_APP_HANDLE"))?;
            if !handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ConfigError::Invalid {
                    name: "SHOPIFY_APP_HANDLE",
                    reason: "an app handle is letters, digits and -".to_owned(),
                });
            }
            crate::billing::Mode::Managed { handle }
        }
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "BILLING_MODE",
                reason: format!("{other:?} is not plans or managed"),
            });
        }
    };
    Ok(BillingSettings {
        required: flag(get, "BILLING_REQUIRED", false)?,
        test: flag(get, "SHOPIFY_BILLING_TEST", true)?,
        mode,
    })
}

/// `OPS_TOKEN`: at least 32 characters, so that it cannot be guessed.
fn ops_token(value: Option<String>) -> Result<Option<Secret>, ConfigError> {
    match value {
        Some(token) if token.chars().count() < 32 => Err(ConfigError::Invalid {
            name: "OPS_TOKEN",
            reason: "shorter than 32 characters (use `openssl rand -hex 32`)".to_owned(),
        }),
        token => Ok(token.map(Secret::new)),
    }
}

/// A day, the longest any timeout may be set to.
const DAY_SECS: u64 = 24 * 60 * 60;

/// The whole number in variable `name`, within `range`; `default` when unset.
fn whole_number(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(value) = get(name) else {
        return Ok(default);
    };
    value.parse().ok().filter(|n| range.contains(n)).ok_or_else(|| ConfigError::Invalid {
        name,
        reason: format!("{value:?} is not a whole number from {} to {}", range.start(), range.end()),
    })
}

/// The job settings, each a whole number (`JOB_WORKERS` from 0) up to a bound; an unset
/// variable keeps its default.
fn job_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<JobSettings, ConfigError> {
    let seconds =
        |name, default: Duration| whole_number(get, name, default.as_secs(), 1..=DAY_SECS).map(Duration::from_secs);
    let defaults = JobSettings::default();
    Ok(JobSettings {
        workers: whole_number(get, "JOB_WORKERS", defaults.workers as u64, 0..=1024)? as usize,
        max_attempts: whole_number(get, "JOB_MAX_ATTEMPTS", defaults.max_attempts.into(), 1..=100)? as u32,
        retry_base: seconds("JOB_RETRY_BASE_SECS", defaults.retry_base)?,
        timeout: seconds("JOB_TIMEOUT_SECS", defaults.timeout)?,
        // At least 5 s: times are whole seconds, and a lease is renewed every third of it.
        lease: whole_number(get, "JOB_LEASE_SECS", defaults.lease.as_secs(), 5..=DAY_SECS).map(Duration::from_secs)?,
        shutdown_grace: seconds("JOB_SHUTDOWN_GRACE_SECS", defaults.shutdown_grace)?,
    })
}

/// Whether `origin` is `http://localhost` or a loopback address, where browsers and tests
/// need no TLS.
fn is_plain_http_localhost(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|url| url.scheme() == "http" && is_loopback(&url))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// The providers listed in `OAUTH_PROVIDERS` (comma-separated names), each configured by
/// `OAUTH_<NAME>_AUTHORIZATION_URL`, `_TOKEN_URL`, `_CLIENT_ID` (required), `_CLIENT_SECRET`,
/// `_SCOPES`, `_REDIRECT_PATH`, `_API_BASE_URL` and `_CLIENT_AUTH` (`basic` or `request_body`).
fn oauth_providers(get: &dyn Fn(&str) -> Option<String>) -> Result<Vec<ProviderConfig>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "OAUTH_PROVIDERS", reason };
    let mut providers: Vec<ProviderConfig> = Vec::new();
    for name in get("OAUTH_PROVIDERS").unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_name || providers.iter().any(|p| p.name == name) {
            return Err(invalid(format!("{name:?} is not a new name of lowercase letters, digits and -")));
        }
        let prefix = format!("OAUTH_{}_", name.to_ascii_uppercase().replace('-', "_"));
        let var = |suffix: &str| get(&format!("{prefix}{suffix}"));
        let required = |suffix: &str| var(suffix).ok_or_else(|| invalid(format!("{prefix}{suffix} is required")));
        let endpoint = |suffix: &str, value: String| {
            let url = url::Url::parse(&value).map_err(|error| invalid(format!("{prefix}{suffix}: {error}")))?;
            if url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)) {
                Ok(value)
            } else {
                Err(invalid(format!("{prefix}{suffix} must be an https URL")))
            }
        };
        let redirect_path = var("REDIRECT_PATH").unwrap_or_else(|| format!("/connect/{name}/callback"));
        let path_ok = redirect_path.starts_with("/connect/")
            && redirect_path.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
            && !redirect_path.contains("//")
            && providers.iter().all(|p| p.redirect_path != redirect_path && p.start_path() != redirect_path)
            && redirect_path != format!("/connect/{name}");
        if !path_ok {
            return Err(invalid(format!(
                "{prefix}REDIRECT_PATH must be a path under /connect/ used by no other route"
            )));
        }
        let client_auth = match var("CLIENT_AUTH").as_deref() {
            None | Some("basic") => ClientAuth::Basic,
            Some("request_body") => ClientAuth::RequestBody,
            Some(other) => return Err(invalid(format!("{prefix}CLIENT_AUTH {other:?} is not basic or request_body"))),
        };
        providers.push(ProviderConfig {
            authorization_url: endpoint("AUTHORIZATION_URL", required("AUTHORIZATION_URL")?)?,
            token_url: endpoint("TOKEN_URL", required("TOKEN_URL")?)?,
            client_id: required("CLIENT_ID")?,
            client_secret: var("CLIENT_SECRET").map(Secret::new),
            scopes: var("SCOPES")
                .unwrap_or_default()
                .split([',', ' '])
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect(),
            redirect_path,
            api_base_url: var("API_BASE_URL")
                .map(|url| endpoint("API_BASE_URL", url).map(|url| url.trim_end_matches('/').to_owned()))
                .transpose()?,
            client_auth,
            name,
        });
    }
    Ok(providers)
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
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.api_version, DEFAULT_API_VERSION);
        assert_eq!(config.limits, Limits::default());
        assert!(!format!("{config:?}").contains("\"s\""));
    }

    #[test]
    fn reads_the_limits_and_names_a_bad_one() {
        let base = [("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s")];
        let set = [
            ("HEADER_READ_TIMEOUT_SECS", "2"),
            ("REQUEST_TIMEOUT_SECS", "60"),
            ("BODY_READ_TIMEOUT_SECS", " 5 "),
            ("MAX_CONCURRENT_REQUESTS", "16"),
            ("MAX_CONNECTIONS", "64"),
            ("SEND_TIMEOUT_SECS", "7"),
            ("DATABASE_MAX_CONNECTIONS", "3"),
        ];
        let limits = Config::from_vars(vars(&[base.as_slice(), &set].concat())).unwrap().limits;
        assert_eq!(
            limits,
            Limits {
                header_read_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(60),
                body_read_timeout: Duration::from_secs(5),
                max_concurrent_requests: 16,
                max_connections: 64,
                send_timeout: Duration::from_secs(7),
                database_connections: 3,
            }
        );
        for (name, _) in set {
            for bad in ["0", "-1", "1.5", "ten", "86401000"] {
                let error = Config::from_vars(vars(&[base.as_slice(), &[(name, bad)]].concat())).unwrap_err();
                assert!(matches!(error, ConfigError::Invalid { name: named, .. } if named == name), "{name}={bad}");
            }
        }
    }

    #[test]
    fn reads_the_job_settings_and_names_a_bad_one() {
        let base = [("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s")];
        let config = Config::from_vars(vars(&base)).unwrap();
        assert_eq!(config.jobs, JobSettings::default());
        assert!(config.ops_token.is_none());
        let set = [
            ("JOB_WORKERS", "0"),
            ("JOB_MAX_ATTEMPTS", "3"),
            ("JOB_RETRY_BASE_SECS", "2"),
            ("JOB_TIMEOUT_SECS", "30"),
            ("JOB_LEASE_SECS", "5"),
            ("JOB_SHUTDOWN_GRACE_SECS", "1"),
            ("OPS_TOKEN", "0123456789abcdef0123456789abcdef"),
        ];
        let config = Config::from_vars(vars(&[&base[..], &set[..]].concat())).unwrap();
        let expected = JobSettings {
            workers: 0,
            max_attempts: 3,
            retry_base: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            lease: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(1),
        };
        assert_eq!(config.jobs, expected);
        assert!(config.ops_token.is_some_and(|token| token == *"0123456789abcdef0123456789abcdef"));
        for (name, value) in
            [("JOB_LEASE_SECS", "4"), ("JOB_MAX_ATTEMPTS", "0"), ("JOB_WORKERS", "-1"), ("OPS_TOKEN", "short")]
        {
            let error = Config::from_vars(vars(&[&base[..], &[(name, value)]].concat())).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
            assert!(!error.to_string().contains("short\""), "{error}");
        }
    }

    #[test]
    fn reads_the_billing_settings_and_names_a_bad_one() {
        let base = [("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s")];
        let config = Config::from_vars(vars(&base)).unwrap();
        let expected = BillingSettings { required: false, test: true, mode: crate::billing::Mode::Plans };
        assert_eq!(config.billing, expected);
        let set = [
            ("BILLING_REQUIRED", "true"),
            ("SHOPIFY_BILLING_TEST", "false"),
            ("BILLING_MODE", "managed"),
            ("SHOPIFY_APP_HANDLE", "rust-app"),
        ];
        let config = Config::from_vars(vars(&[&base[..], &set[..]].concat())).unwrap();
        let managed = crate::billing::Mode::Managed { handle: "rust-app".to_owned() };
        assert_eq!(config.billing, BillingSettings { required: true, test: false, mode: managed });
        for (name, pairs) in [
            ("SHOPIFY_APP_HANDLE", vec![("BILLING_MODE", "managed")]),
            ("SHOPIFY_APP_HANDLE", vec![("BILLING_MODE", "managed"), ("SHOPIFY_APP_HANDLE", "a/b")]),
            ("BILLING_MODE", vec![("BILLING_MODE", "free")]),
            ("SHOPIFY_BILLING_TEST", vec![("SHOPIFY_BILLING_TEST", "yes")]),
        ] {
            let error = Config::from_vars(vars(&[&base[..], &pairs[..]].concat())).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn names_the_missing_variable() {
        let error = Config::from_vars(vars(&[("SHOPIFY_API_KEY", "k")])).unwrap_err();
        assert_eq!(error.to_string(), "missing required environment variable SHOPIFY_API_SECRET");
        let error = Config::from_vars(vars(&[("SHOPIFY_API_SECRET", "s"), ("SHOPIFY_API_KEY", " ")])).unwrap_err();
        assert_eq!(error, ConfigError::Missing("SHOPIFY_API_KEY"));
        for in_memory in ["sqlite::memory:", "sqlite:app.db?mode=memory"] {
            let error = Config::from_vars(vars(&[
                ("SHOPIFY_API_KEY", "k"),
                ("SHOPIFY_API_SECRET", "s"),
                ("DATABASE_URL", in_memory),
            ]))
            .unwrap_err();
            assert!(error.to_string().contains("DATABASE_URL"), "{in_memory}: {error}");
        }
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

    #[test]
    fn reads_the_optional_flows() {
        let base = [("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s")];
        let config = Config::from_vars(vars(&base)).unwrap();
        assert!(config.session_cookie_secure);
        assert!(config.client_credentials_shops.is_empty() && config.oauth_providers.is_empty());

        let provider = [
            ("OAUTH_PROVIDERS", "Mail-Co"),
            ("OAUTH_MAIL_CO_AUTHORIZATION_URL", "https://mail.example/oauth/authorize"),
            ("OAUTH_MAIL_CO_TOKEN_URL", "https://mail.example/oauth/token"),
            ("OAUTH_MAIL_CO_CLIENT_ID", "id"),
            ("OAUTH_MAIL_CO_CLIENT_SECRET", "top-secret"),
            ("OAUTH_MAIL_CO_SCOPES", "read, write"),
            ("OAUTH_MAIL_CO_API_BASE_URL", "https://api.mail.example/3.0/"),
            ("OAUTH_MAIL_CO_CLIENT_AUTH", "request_body"),
            ("SHOPIFY_CLIENT_CREDENTIALS_SHOPS", "S1.myshopify.com, s2,s1"),
            ("SHOPIFY_APP_URL", "https://app.example.com"),
        ];
        let config = Config::from_vars(vars(&[base.as_slice(), &provider].concat())).unwrap();
        assert_eq!(config.client_credentials_shops, ["s1", "s2"]);
        let mail = &config.oauth_providers[0];
        assert_eq!((mail.name.as_str(), mail.redirect_path.as_str()), ("mail-co", "/connect/mail-co/callback"));
        assert_eq!(mail.scopes, ["read", "write"]);
        assert_eq!(mail.api_base_url.as_deref(), Some("https://api.mail.example/3.0"));
        assert_eq!(mail.client_auth, ClientAuth::RequestBody);
        assert!(!format!("{config:?}").contains("top-secret"));

        for (name, value) in [
            ("OAUTH_MAIL_CO_TOKEN_URL", "http://mail.example/token"),
            ("OAUTH_MAIL_CO_REDIRECT_PATH", "/auth/callback"),
            ("OAUTH_MAIL_CO_REDIRECT_PATH", "/connect/mail-co"),
            ("OAUTH_MAIL_CO_CLIENT_AUTH", "jwt"),
            ("SHOPIFY_CLIENT_CREDENTIALS_SHOPS", "evil.com/x"),
            ("SESSION_COOKIE_SECURE", "false"),
        ] {
            let mut bad = vars(&[base.as_slice(), &provider].concat());
            bad.insert(name.to_owned(), value.to_owned());
            assert!(Config::from_vars(bad).is_err(), "{name}={value}");
        }
        let local = [("SHOPIFY_APP_URL", "http://localhost:3000"), ("SESSION_COOKIE_SECURE", "false")];
        assert!(!Config::from_vars(vars(&[base.as_slice(), &local].concat())).unwrap().session_cookie_secure);
        let mut missing = vars(&[base.as_slice(), &provider].concat());
        missing.remove("OAUTH_MAIL_CO_CLIENT_ID");
        let error = Config::from_vars(missing).unwrap_err();
        assert!(error.to_string().contains("OAUTH_MAIL_CO_CLIENT_ID is required"), "{error}");
    }

    #[test]
    fn reads_the_token_encryption_keys_without_ever_showing_them() {
        let base = [("SHOPIFY_API_KEY", "k"), ("SHOPIFY_API_SECRET", "s")];
        assert!(Config::from_vars(vars(&base)).unwrap().token_encryption_keys.is_none());

        let (new, old) =
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "H+7Sn8ykVXq0JaWkDXZH4WE3TujyG/SN4uQBh/vjeFA=");
        let keys = format!("2026-03:{new}, old_1:{old}");
        let config = Config::from_vars(vars(&[base.as_slice(), &[("TOKEN_ENCRYPTION_KEYS", &keys)]].concat())).unwrap();
        let parsed = config.token_encryption_keys.as_ref().expect("keys");
        assert_eq!(parsed.current_id(), "2026-03");
        let shown = format!("{config:?}");
        assert!(shown.contains("\"2026-03\", \"old_1\""), "{shown}");
        assert!(!shown.contains(new) && !shown.contains(old) && !shown.contains("AAECAw"), "{shown}");

        for (value, reason) in [
            (format!("a:{new},a:{old}"), "key id \"a\" is listed twice"),
            ("a:not base64!".to_owned(), "key \"a\" is not base64"),
            ("a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd".to_owned(), "key \"a\" is 30 bytes long, not 32"),
            (new.to_owned(), "entry 1 is not id:base64-key"),
            (format!("a:{new},b c:{old}"), "entry 2: the key id must be"),
            (format!(":{new}"), "entry 1: the key id must be"),
            (",".to_owned(), "no key is listed"),
        ] {
            let error = Config::from_vars(vars(&[base.as_slice(), &[("TOKEN_ENCRYPTION_KEYS", &value)]].concat()))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("invalid environment variable TOKEN_ENCRYPTION_KEYS: "), "{error}");
            assert!(error.contains(reason), "{value}: {error}");
            assert!(!error.contains(new) && !error.contains(old), "{error}");
        }
    }
}
