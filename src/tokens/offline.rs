//! Offline tokens on demand: load, refresh near expiry (single-flight), or exchange.

use std::sync::Arc;
use std::time::Duration;

use super::{KeyedLocks, StoreError, TokenKey, TokenRepository};
use crate::shopify::ShopifyApp;
use crate::shopify::model::{AccessMode, AccessToken, IdTokenDetails, Res, TokenExchangeResult};

/// How long a refresh lease protects a refresh in flight (a crashed holder's lease runs out).
const LEASE: Duration = Duration::from_secs(30);
/// How often a request waiting for another process's refresh looks again.
const POLL: Duration = Duration::from_millis(100);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Shopify refused: answer the client with `response` (for example the retry response
    /// that makes App Bridge fetch a fresh session token).
    #[error("Shopify refused the token request ({code})")]
    Rejected {
        /// The core's log code.
        code: String,
        /// What to answer.
        response: Res,
    },
    /// Another process holds the refresh lease for longer than a lease lasts.
    #[error("another process is still refreshing this token")]
    Busy,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to do with a stored token.
enum Plan {
    Use(AccessToken),
    Refresh(AccessToken),
    Exchange,
}

/// Hands out a valid offline token per shop. Refresh is single-flight: within the process a
/// per-shop lock, across processes a lease row in the database.
pub struct OfflineTokens {
    repository: Arc<dyn TokenRepository>,
    shopify: ShopifyApp,
    locks: KeyedLocks<String>,
    holder: String,
}

impl OfflineTokens {
    /// Tokens from `repository`, obtained and refreshed through `shopify`.
    pub fn new(repository: Arc<dyn TokenRepository>, shopify: ShopifyApp) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let holder =
            format!("{}-{:016x}", std::process::id(), RandomState::new().hash_one(std::time::SystemTime::now()));
        Self { repository, shopify, locks: KeyedLocks::new(), holder }
    }

    /// The repository behind these tokens.
    pub fn repository(&self) -> &Arc<dyn TokenRepository> {
        &self.repository
    }

    /// A valid offline token for the shop of a verified session token: the stored one,
    /// refreshed when it expires within a minute, or a new one by token exchange.
    pub async fn get(
        &self,
        shop: &str,
        id_token: &IdTokenDetails,
        invalid_token_response: Option<&Res>,
    ) -> Result<AccessToken, TokenError> {
        let key = TokenKey::offline(shop);
        if let Plan::Use(token) = self.plan(self.repository.load(&key).await?) {
            return Ok(token);
        }
        let lock = self.locks.get(shop.to_owned());
        let _in_process = lock.lock().await;
        for _ in 0..=(LEASE.as_millis() / POLL.as_millis()) {
            // Look again: whoever held the lock may have done the work.
            match self.plan(self.repository.load(&key).await?) {
                Plan::Use(token) => return Ok(token),
                Plan::Exchange => return self.exchange(id_token, invalid_token_response).await,
                Plan::Refresh(_) => {
                    let now = self.shopify.clock().now();
                    if self.repository.try_lease(&key, &self.holder, now, now + LEASE).await? {
                        let outcome = self.refresh(&key, id_token, invalid_token_response).await;
                        self.repository.release_lease(&key, &self.holder).await?;
                        return outcome;
                    }
                    self.shopify.clock().sleep(POLL).await;
                }
            }
        }
        Err(TokenError::Busy)
    }

    /// Forgets a shop's offline token (Shopify rejected it), so the next request exchanges.
    pub async fn forget(&self, shop: &str) -> Result<(), StoreError> {
        self.repository.delete(&TokenKey::offline(shop)).await
    }

    fn plan(&self, stored: Option<AccessToken>) -> Plan {
        let Some(token) = stored else {
            return Plan::Exchange;
        };
        if self.shopify.needs_refresh(&token) {
            Plan::Refresh(token)
        } else if token.expires.is_some_and(|at| at <= self.shopify.clock().now()) {
            Plan::Exchange
        } else {
            Plan::Use(token)
        }
    }

    /// Refreshes under the lease; falls back to token exchange when the refresh token is dead.
    async fn refresh(
        &self,
        key: &TokenKey,
        id_token: &IdTokenDetails,
        invalid_token_response: Option<&Res>,
    ) -> Result<AccessToken, TokenError> {
        // Another process may have finished between our read and our lease.
        let stale = match self.plan(self.repository.load(key).await?) {
            Plan::Use(token) => return Ok(token),
            Plan::Exchange => return self.exchange(id_token, invalid_token_response).await,
            Plan::Refresh(token) => token,
        };
        let result = self.shopify.refresh_token_exchanged_access_token(&stale).await;
        match &result.access_token {
            Some(fresh) if result.ok => {
                let previous = stale.refresh_token.as_deref().unwrap_or_default();
                if self.repository.save_refreshed(previous, fresh).await? {
                    Ok(fresh.clone())
                } else {
                    // Someone else swapped first; theirs is as good as ours.
                    self.repository.load(key).await?.ok_or_else(|| rejected(&result))
                }
            }
            _ if matches!(&*result.log.code, "refresh_token_expired" | "invalid_grant") => {
                self.exchange(id_token, invalid_token_response).await
            }
            _ if result.ok => Ok(stale),
            _ => Err(rejected(&result)),
        }
    }

    async fn exchange(
        &self,
        id_token: &IdTokenDetails,
        invalid_token_response: Option<&Res>,
    ) -> Result<AccessToken, TokenError> {
        let result = self
            .shopify
            .exchange_using_token_exchange(AccessMode::Offline, id_token, invalid_token_response.cloned(), true)
            .await;
        match result.access_token {
            Some(token) if result.ok => {
                self.repository.save(&token).await?;
                Ok(token)
            }
            _ => Err(rejected(&result)),
        }
    }
}

fn rejected(result: &TokenExchangeResult) -> TokenError {
    TokenError::Rejected { code: result.log.code.to_string(), response: result.response.clone() }
}
