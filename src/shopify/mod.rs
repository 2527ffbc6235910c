//! The Shopify auth core: framework-agnostic functions over a small request/response model.
//!
//! It mirrors Shopify's reference package (`shopifyapp`): the same function names, result
//! shapes and log codes, with the hardening listed in the project's decisions. It never reads
//! the environment or a database; the axum adapter in [`crate::web`] feeds it requests.

pub mod clock;
pub mod exchange;
pub mod graphql;
pub mod helpers;
pub mod http;
pub mod id_token;
pub mod model;
pub mod protocol;
pub mod secret;
pub mod shop;
pub mod signature;
#[cfg(test)]
mod testing;
pub mod urls;
pub mod verify;

use std::sync::Arc;

use clock::{Clock, SystemClock};
use http::{ShopOrigin, Transport};
use secret::Secret;

/// The app's credentials, as configured in the Partner Dashboard.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The client id (API key).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// The previous secret, still accepted during a rotation.
    pub old_client_secret: Option<Secret>,
}

impl AppConfig {
    /// Secrets for HMAC checks: the current one first, then the old one.
    pub fn secrets_for_hmac(&self) -> Vec<&str> {
        std::iter::once(self.client_secret.expose()).chain(self.old_secret()).collect()
    }

    /// Secrets for session-token checks: the old one first, then the current one.
    pub fn secrets_for_tokens(&self) -> impl Iterator<Item = &str> {
        self.old_secret().into_iter().chain(std::iter::once(self.client_secret.expose()))
    }

    fn old_secret(&self) -> Option<&str> {
        self.old_client_secret.as_ref().map(Secret::expose).filter(|secret| !secret.is_empty())
    }
}

/// Why a [`ShopifyApp`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The client id is empty.
    #[error("the client id (SHOPIFY_API_KEY) is required")]
    MissingClientId,
    /// The client secret is empty.
    #[error("the client secret (SHOPIFY_API_SECRET) is required")]
    MissingClientSecret,
}

/// Random jitter for retry backoff, in milliseconds (0..=100).
pub type Jitter = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The auth core: the app's credentials plus the clock and the upstream transport it uses.
/// Cheap to clone.
#[derive(Clone)]
pub struct ShopifyApp {
    config: Arc<AppConfig>,
    origin: ShopOrigin,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
}

impl std::fmt::Debug for ShopifyApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyApp").field("config", &self.config).field("origin", &self.origin).finish()
    }
}

impl ShopifyApp {
    /// The core with the real clock and the given transport. Refuses an empty client id or
    /// secret.
    pub fn new(config: AppConfig, transport: Arc<dyn Transport>) -> Result<Self, ConfigError> {
        if config.client_id.is_empty() {
            return Err(ConfigError::MissingClientId);
        }
        if config.client_secret.is_empty() {
            return Err(ConfigError::MissingClientSecret);
        }
        Ok(Self {
            config: Arc::new(config),
            origin: ShopOrigin::default(),
            transport,
            clock: Arc::new(SystemClock),
            jitter: Arc::new(random_jitter),
        })
    }

    /// Sends every Shopify call to `origin` instead of `https://{shop}`.
    pub fn with_origin(mut self, origin: ShopOrigin) -> Self {
        self.origin = origin;
        self
    }

    /// Uses `clock` for the time and for waits.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `jitter` for retry backoff.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The app's credentials.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The clock the core uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now_unix(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }
}

/// 0..=100 ms, from the standard library's randomly seeded hasher (no RNG crate needed).
fn random_jitter() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) % 101
}
