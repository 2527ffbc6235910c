//! Offline tokens on demand: load, refresh near expiry (single-flight), or exchange.

use std::sync::Arc;
use std::time::Duration;

use super::{Look, SingleFlight, StoreError, TokenKey, TokenRepository};
use crate::shopify::ShopifyApp;
use crate::shopify::model::{AccessMode, AccessToken, IdTokenDetails, Res, TokenExchangeResult};
use crate::shopify::secret::Secret;

/// How long a refresh lease protects a refresh in flight: longer than the worst refresh
/// (three attempts of at most 30 s each). A crashed holder's lease runs out.
const LEASE: Duration = Duration::from_secs(120);
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
    /// The shop has no usable offline token, and none can be had without a session token
    /// (outside a page load: a webhook, a job): the merchant must open the app again.
    #[error("no offline token for this shop: the merchant must open the app again")]
    NoOfflineToken,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The session token of a page load, which can be exchanged for a new offline token, and what
/// to answer when Shopify rejects it.
#[derive(Clone, Copy)]
struct Session<'a> {
    id_token: &'a IdTokenDetails,
    invalid_token_response: Option<&'a Res>,
}

/// A [`Session`] the refresh task owns.
struct OwnedSession {
    id_token: IdTokenDetails,
    invalid_token_response: Option<Res>,
}

impl OwnedSession {
    fn of(session: Session<'_>) -> Self {
        Self { id_token: session.id_token.clone(), invalid_token_response: session.invalid_token_response.cloned() }
    }

    fn borrow(&self) -> Session<'_> {
        Session { id_token: &self.id_token, invalid_token_response: self.invalid_token_response.as_ref() }
    }
}

/// What to do with a stored token.
enum Plan {
    Use(AccessToken),
    Refresh(AccessToken),
    Exchange,
}

/// Hands out a valid offline token per shop. Refresh is single-flight: within the process a
/// per-shop lock, across processes a lease row in the database. A refresh runs to its end
/// even if the request that started it goes away, so a rotated refresh token is never lost.
pub struct OfflineTokens {
    inner: Arc<Inner>,
}

struct Inner {
    repository: Arc<dyn TokenRepository>,
    shopify: ShopifyApp,
    /// Refreshes, one per shop at a time.
    flight: SingleFlight<String>,
}

impl OfflineTokens {
    /// Tokens from `repository`, obtained and refreshed through `shopify`.
    pub fn new(repository: Arc<dyn TokenRepository>, shopify: ShopifyApp) -> Self {
        Self { inner: Arc::new(Inner { repository, shopify, flight: SingleFlight::new(LEASE, POLL) }) }
    }

    /// The repository behind these tokens.
    pub fn repository(&self) -> &Arc<dyn TokenRepository> {
        &self.inner.repository
    }

    /// A valid offline token for the shop of a verified session token: the stored one,
    /// refreshed when it expires within a minute, or a new one by token exchange.
    pub async fn get(
        &self,
        shop: &str,
        id_token: &IdTokenDetails,
        invalid_token_response: Option<&Res>,
    ) -> Result<AccessToken, TokenError> {
        self.obtain(shop, Some(Session { id_token, invalid_token_response })).await
    }

    /// A valid offline token for `shop` outside a page load (a webhook, a job): the stored
    /// one, refreshed when it expires within a minute. [`TokenError::NoOfflineToken`] when there
    /// is none, or only one that needs a new token exchange (which takes a session token).
    pub async fn get_stored(&self, shop: &str) -> Result<AccessToken, TokenError> {
        self.obtain(shop, None).await
    }

    /// [`OfflineTokens::get`], with or without a session to exchange a token with.
    async fn obtain(&self, shop: &str, session: Option<Session<'_>>) -> Result<AccessToken, TokenError> {
        let inner = &self.inner;
        let key = TokenKey::offline(shop);
        if let Plan::Use(token) = inner.plan(inner.repository.load(&key).await?) {
            return Ok(token);
        }
        let key = &key;
        let refreshed = inner
            .flight
            .run(
                shop.to_owned(),
                inner.shopify.clock().as_ref(),
                || async move {
                    Ok(match inner.plan(inner.repository.load_latest(key).await?) {
                        Plan::Use(token) => Look::Ready(token),
                        Plan::Exchange => Look::Ready(inner.exchange(session).await?),
                        Plan::Refresh(_) => Look::Refresh,
                    })
                },
                |now, until| inner.repository.try_lease(key, inner.flight.holder(), now, until),
                || {
                    let (inner, key) = (self.inner.clone(), key.clone());
                    let session = session.map(OwnedSession::of);
                    async move { inner.refresh(&key, session.as_ref().map(OwnedSession::borrow)).await.map(Some) }
                },
                || {
                    let (inner, key) = (self.inner.clone(), key.clone());
                    async move { inner.repository.release_lease(&key, inner.flight.holder()).await }
                },
            )
            .await?;
        refreshed.ok_or(TokenError::Busy)
    }

    /// Forgets a shop's offline token that Shopify rejected, so the next request exchanges a
    /// new one. A token stored since (by a refresh or a reinstall) is kept.
    pub async fn forget(&self, shop: &str, rejected_token: &str) -> Result<(), StoreError> {
        self.inner.repository.delete_if_token(&TokenKey::offline(shop), rejected_token).await?;
        Ok(())
    }
}

impl Inner {
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

    /// Refreshes under the lease; falls back to token exchange when the refresh token is dead,
    /// and to the stored token while it is still valid when Shopify cannot be reached.
    async fn refresh(&self, key: &TokenKey, session: Option<Session<'_>>) -> Result<AccessToken, TokenError> {
        // Another process may have finished between our read and our lease.
        let stale = match self.plan(self.repository.load_latest(key).await?) {
            Plan::Use(token) => return Ok(token),
            Plan::Exchange => return self.exchange(session).await,
            Plan::Refresh(token) => token,
        };
        let result = self.shopify.refresh_token_exchanged_access_token(&stale).await;
        let still_valid = stale.expires.is_none_or(|at| at > self.shopify.clock().now());
        match &result.access_token {
            Some(fresh) if result.ok => {
                let previous = stale.refresh_token.as_ref().map_or("", Secret::expose);
                if self.repository.save_refreshed(previous, fresh).await? {
                    return Ok(fresh.clone());
                }
                // Someone else swapped first (theirs is as good as ours), or the shop
                // uninstalled meanwhile (the client must start over).
                self.repository.load_latest(key).await?.ok_or_else(|| TokenError::Rejected {
                    code: "token_revoked".to_owned(),
                    response: session
                        .and_then(|session| session.invalid_token_response.cloned())
                        .unwrap_or_else(|| Res::new(401, "")),
                })
            }
            _ if matches!(&*result.log.code, "refresh_token_expired" | "invalid_grant") => self.exchange(session).await,
            _ if result.ok || still_valid => {
                tracing::warn!(code = %result.log.code, shop = %key.shop, "refresh failed; the stored token is still valid");
                Ok(stale)
            }
            _ => Err(rejected(&result)),
        }
    }

    /// A new token by token exchange, which takes the session token of a page load.
    async fn exchange(&self, session: Option<Session<'_>>) -> Result<AccessToken, TokenError> {
        let Session { id_token, invalid_token_response } = session.ok_or(TokenError::NoOfflineToken)?;
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
