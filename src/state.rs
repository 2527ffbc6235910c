//! The state every handler shares.

use std::sync::Arc;

use crate::billing::Billing;
use crate::config::Config;
use crate::db::Db;
use crate::deliveries::WebhookDeliveries;
use crate::jobs::Jobs;
use crate::oauth::{OAuthError, OAuthProviders};
use crate::products::Products;
use crate::shop_data::ShopData;
use crate::shopify::clock::Clock;
use crate::shopify::http::{ReqwestTransport, ShopOrigin, Transport};
use crate::shopify::{AppConfig, ShopifyApp};
use crate::tokens::{
    CachedTokenRepository, ClientCredentialsTokens, OfflineTokens, SqlTokenRepository, StoreError, TokenCipher,
    TokenRepository,
};

/// Handler state: settings, the auth core, the token store and the database, read through
/// [`Shared`]'s fields (`state.config`...). Cloned for every request: one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler shares, behind [`AppState`].
pub struct Shared {
    /// The validated settings.
    pub config: Arc<Config>,
    /// The Shopify auth core.
    pub shopify: ShopifyApp,
    /// Offline tokens on demand.
    pub tokens: Arc<OfflineTokens>,
    /// Webhook deliveries already handled.
    pub deliveries: WebhookDeliveries,
    /// What the app stores per shop, forgotten on uninstall and redact.
    pub shop_data: ShopData,
    /// The database.
    pub db: Db,
    /// Third-party OAuth2 providers and their tokens.
    pub oauth: Arc<OAuthProviders>,
    /// Background jobs: enqueue, inspect (workers run them, see [`crate::jobs`]).
    pub jobs: Jobs,
    /// The `products/update` example's records.
    pub products: Products,
    /// Plans, the shops' billing answers, the Billing API.
    pub billing: Arc<Billing>,
    /// Client-credentials tokens, when `SHOPIFY_CLIENT_CREDENTIALS_SHOPS` names shops (`main`
    /// spawns their renewal).
    pub client_credentials: Option<Arc<ClientCredentialsTokens>>,
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
    /// The database could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An OAuth provider is misconfigured.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

impl AppState {
    /// Wires the state from settings, a migrated database and a clock.
    pub fn new(config: Config, db: Db, clock: Arc<dyn Clock>) -> Result<Self, StateError> {
        let credentials = AppConfig {
            client_id: config.api_key.clone(),
            client_secret: config.api_secret.clone(),
            old_client_secret: config.old_api_secret.clone(),
        };
        // One HTTP client for every upstream call: Shopify and the OAuth providers.
        let transport: Arc<dyn Transport> = Arc::new(ReqwestTransport::new()?);
        let mut shopify = ShopifyApp::new(credentials, transport.clone())?.with_clock(clock.clone());
        if let Some(origin) = &config.shop_origin {
            shopify = shopify.with_origin(ShopOrigin::new(origin.clone()));
        }
        let cipher = TokenCipher::new(config.token_encryption_keys.clone());
        let stored: Arc<dyn TokenRepository> =
            Arc::new(SqlTokenRepository::new(db.clone(), cipher.clone(), clock.clone()));
        let cached = Arc::new(CachedTokenRepository::new(stored, clock.clone()));
        let tokens = Arc::new(OfflineTokens::new(cached.clone(), shopify.clone()));
        let oauth = OAuthProviders::new(
            config.oauth_providers.clone(),
            &config.app_url,
            transport,
            clock.clone(),
            db.clone(),
            cipher,
        )?;
        let jobs = Jobs::new(db.clone(), crate::app_jobs::registry(), config.jobs, clock.clone());
        let products = Products::new(db.clone(), clock.clone());
        let billing =
            Arc::new(Billing::new(crate::app_billing::PLANS, config.billing.mode.clone(), config.billing.test, clock));
        let client_credentials = (!config.client_credentials_shops.is_empty())
            .then(|| Arc::new(ClientCredentialsTokens::new(shopify.clone(), config.client_credentials_shops.clone())));
        let deliveries = WebhookDeliveries::new(db.clone(), config.limits.request_timeout);
        let shop_data = ShopData::new(deliveries.clone(), cached);
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            shopify,
            tokens,
            deliveries,
            shop_data,
            db,
            oauth: Arc::new(oauth),
            jobs,
            products,
            billing,
            client_credentials,
        })))
    }

    /// Rewrites every stored token (Shopify's and the providers', linked or pending) that is
    /// not under the first key of `TOKEN_ENCRYPTION_KEYS` under it: plaintext rows and rows
    /// under an older key. `main` runs it at start, which completes a key rotation; it is safe
    /// while other processes run it or write tokens. Returns how many rows were rewritten.
    pub async fn reencrypt_tokens(&self) -> Result<u64, StoreError> {
        Ok(self.tokens.repository().reencrypt().await? + self.oauth.store().reencrypt().await?)
    }
}
