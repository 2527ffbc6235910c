//! Client-credentials tokens for server-to-server apps (installed by their own organisation):
//! one valid offline token per configured shop, renewed in the background before its 24-hour
//! expiry. Time and waits come from the core's injected clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::TokenError;
use crate::shopify::ShopifyApp;
use crate::shopify::model::ClientCredentialsAccessToken;

/// A token is renewed this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60 * 60);
/// After a failed renewal, the next attempt comes this much later.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// How often a token without an expiry is looked at again.
pub const RECHECK_NON_EXPIRING: Duration = Duration::from_secs(24 * 60 * 60);
/// A token is handed out only while it stays valid for at least this long.
const USABLE_FOR: Duration = Duration::from_secs(60);

/// A kept token and when to renew it.
struct Kept {
    token: ClientCredentialsAccessToken,
    renew_at: Option<OffsetDateTime>,
}

/// Client-credentials tokens of the configured shops, kept in memory (a lost token costs one
/// request to get again).
pub struct ClientCredentialsTokens {
    shopify: ShopifyApp,
    shops: Vec<String>,
    kept: tokio::sync::Mutex<HashMap<String, Kept>>,
}

impl std::fmt::Debug for ClientCredentialsTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentialsTokens").field("shops", &self.shops).finish_non_exhaustive()
    }
}

impl ClientCredentialsTokens {
    /// Tokens for `shops` (shop names, `s1`), obtained through `shopify`.
    pub fn new(shopify: ShopifyApp, shops: Vec<String>) -> Self {
        Self { shopify, shops, kept: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// The shops kept renewed.
    pub fn shops(&self) -> &[String] {
        &self.shops
    }

    /// A token of `shop` valid for at least another minute: the kept one, or a new one.
    pub async fn token(&self, shop: &str) -> Result<ClientCredentialsAccessToken, TokenError> {
        let mut kept = self.kept.lock().await;
        let now = self.shopify.clock().now();
        if let Some(usable) = kept.get(shop).filter(|kept| kept.token.expires.is_none_or(|at| at > now + USABLE_FOR)) {
            return Ok(usable.token.clone());
        }
        let fresh = self.obtain(shop).await?;
        let token = fresh.token.clone();
        kept.insert(shop.to_owned(), fresh);
        Ok(token)
    }

    /// Renews every configured shop's token that is missing or due (see [`RENEW_BEFORE`]);
    /// returns how long to wait until the next renewal is due. A failed renewal keeps the old
    /// token and is tried again after [`RETRY_AFTER_FAILURE`].
    pub async fn renew_due(&self) -> Duration {
        let mut kept = self.kept.lock().await;
        let mut wait = RECHECK_NON_EXPIRING;
        for shop in &self.shops {
            let now = self.shopify.clock().now();
            let due = kept.get(shop).is_none_or(|kept| kept.renew_at.is_some_and(|at| at <= now));
            let mut shop_wait = None;
            if due {
                match self.obtain(shop).await {
                    Ok(fresh) => {
                        kept.insert(shop.clone(), fresh);
                    }
                    Err(error) => {
                        tracing::warn!(%shop, %error, "client credentials renewal failed; retrying soon");
                        shop_wait = Some(RETRY_AFTER_FAILURE);
                    }
                }
            }
            let until_renewal = kept.get(shop).and_then(|kept| kept.renew_at).map(|at| {
                let until = at - self.shopify.clock().now();
                Duration::try_from(until).unwrap_or(Duration::ZERO).max(Duration::from_secs(1))
            });
            wait = wait.min(shop_wait.or(until_renewal).unwrap_or(RECHECK_NON_EXPIRING));
        }
        wait
    }

    /// Renews forever: spawn it once at start (`tokio::spawn(tokens.clone().run())`).
    pub async fn run(self: Arc<Self>) {
        loop {
            let wait = self.renew_due().await;
            self.shopify.clock().sleep(wait).await;
        }
    }

    /// A new token, due for renewal [`RENEW_BEFORE`] before it expires (at half its lifetime
    /// for a token that lives less than twice that).
    async fn obtain(&self, shop: &str) -> Result<Kept, TokenError> {
        let result = self.shopify.exchange_using_client_credentials(shop).await;
        match result.access_token {
            Some(token) if result.ok => {
                let now = self.shopify.clock().now();
                let renew_at = token.expires.map(|expires| {
                    let lifetime = expires - now;
                    now + (lifetime - RENEW_BEFORE).max(lifetime / 2)
                });
                tracing::info!(%shop, expires = ?token.expires, "client credentials token obtained");
                Ok(Kept { token, renew_at })
            }
            _ => Err(TokenError::Rejected { code: result.log.code.to_string(), response: result.response }),
        }
    }
}
