//! The state every handler shares.

use std::sync::Arc;

use sqlx::SqlitePool;

use crate::config::Config;
use crate::deliveries::WebhookDeliveries;
use crate::shopify::clock::Clock;
use crate::shopify::http::{ReqwestTransport, ShopOrigin};
use crate::shopify::{AppConfig, ShopifyApp};
use crate::tokens::{OfflineTokens, SqliteTokenRepository, TokenRepository};

/// Handler state: settings, the auth core, the token store and the database. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The validated settings.
    pub config: Arc<Config>,
    /// The Shopify auth core.
    pub shopify: ShopifyApp,
    /// Offline tokens on demand.
    pub tokens: Arc<OfflineTokens>,
    /// Webhook deliveries already handled.
    pub deliveries: WebhookDeliveries,
    /// The database pool.
    pub pool: SqlitePool,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The credentials were refused.
    #[error(transparent)]
    Config(#[from] crate::shopify::ConfigError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl AppState {
    /// Wires the state from settings, a migrated pool and a clock.
    pub fn new(config: Config, pool: SqlitePool, clock: Arc<dyn Clock>) -> Result<Self, StateError> {
        let credentials = AppConfig {
            client_id: config.api_key.clone(),
            client_secret: config.api_secret.clone(),
            old_client_secret: config.old_api_secret.clone(),
        };
        let mut shopify = ShopifyApp::new(credentials, Arc::new(ReqwestTransport::new()?))?.with_clock(clock);
        if let Some(origin) = &config.shop_origin {
            shopify = shopify.with_origin(ShopOrigin::new(origin.clone()));
        }
        let repository: Arc<dyn TokenRepository> = Arc::new(SqliteTokenRepository::new(pool.clone()));
        let tokens = Arc::new(OfflineTokens::new(repository, shopify.clone()));
        Ok(Self { config: Arc::new(config), shopify, tokens, deliveries: WebhookDeliveries::new(pool.clone()), pool })
    }
}
