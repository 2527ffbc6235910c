//! Token storage: a [`TokenRepository`] trait with a SQL implementation (SQLite or
//! PostgreSQL), and [`OfflineTokens`], which hands out a valid offline token per shop, exchanging or
//! refreshing it as needed, one refresh at a time. [`ClientCredentialsTokens`] keeps the
//! client-credentials tokens of server-to-server apps renewed. [`encryption`] keeps the stored
//! tokens encrypted at rest.

pub mod cache;
pub mod client_credentials;
pub mod encryption;
mod offline;
mod single_flight;
mod sql;

pub use cache::CachedTokenRepository;
pub use client_credentials::ClientCredentialsTokens;
pub use encryption::{EncryptionKeys, TokenCipher};
pub use offline::{OfflineTokens, TokenError};
pub use single_flight::{Look, SingleFlight};
pub use sql::{SqlTokenRepository, delete_shop_in, delete_shop_in_postgres};

use std::hash::Hash;

use time::OffsetDateTime;

use crate::shopify::http::BoxFuture;
use crate::shopify::model::{AccessMode, AccessToken};

/// What identifies a stored token: the shop, the mode, and the staff member for online tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// The shop's name (`s1`).
    pub shop: String,
    /// Offline or online.
    pub access_mode: AccessMode,
    /// The staff member's id (0 for offline tokens).
    pub user_id: i64,
}

impl TokenKey {
    /// The key of a shop's offline token.
    pub fn offline(shop: &str) -> Self {
        Self { shop: shop.to_owned(), access_mode: AccessMode::Offline, user_id: 0 }
    }

    /// The key a token is stored under.
    pub fn of(token: &AccessToken) -> Self {
        Self {
            shop: token.shop.clone(),
            access_mode: token.access_mode,
            user_id: token.user.as_ref().map_or(0, |user| user.id),
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query through the pool failed.
    #[error("storage failed: {0}")]
    Database(sqlx::Error),
    /// A job of the [`Writer`](crate::db::Writer) failed, or its transaction did not commit.
    #[error("storage failed: {0}")]
    Writer(#[from] rusqlite::Error),
    /// The writer could not run the job (its thread is gone, or the job was dropped).
    #[error("storage failed: the database writer could not run the job")]
    WriterStopped,
    /// Too many jobs are waiting for the writer, or no pool connection came free in time: try
    /// again later (503).
    #[error("storage busy: too many writes are waiting")]
    Busy,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => Self::Busy,
            error => Self::Database(error),
        }
    }
}

/// Where access tokens live. Implementations must make [`save_refreshed`] and the lease
/// operations atomic, so that refresh stays single-flight across processes.
///
/// [`save_refreshed`]: TokenRepository::save_refreshed
pub trait TokenRepository: Send + Sync {
    /// The token stored under `key` (from a cache, if the repository keeps one).
    fn load(&self, key: &TokenKey) -> BoxFuture<'_, Result<Option<AccessToken>, StoreError>>;
    /// The token stored under `key` as the database holds it now, never from a cache: for
    /// decisions that must see other processes' writes (is a refresh still needed?).
    fn load_latest(&self, key: &TokenKey) -> BoxFuture<'_, Result<Option<AccessToken>, StoreError>> {
        self.load(key)
    }
    /// Stores `token`, replacing any token under the same key.
    fn save(&self, token: &AccessToken) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Replaces the token under `token`'s key only if its refresh token is still
    /// `previous_refresh_token`. Returns whether it was replaced.
    fn save_refreshed(
        &self,
        previous_refresh_token: &str,
        token: &AccessToken,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Deletes the token under `key` if it is still `token` (a newer one is kept). Returns
    /// whether it was deleted.
    fn delete_if_token(&self, key: &TokenKey, token: &str) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Records new granted scopes on every token of `shop`.
    fn update_scopes(&self, shop: &str, scopes: &str) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Takes the refresh lease of `key` for `holder` until `until`, if nobody else holds a
    /// live one. Returns whether it was taken.
    fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Gives the lease back.
    fn release_lease(&self, key: &TokenKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Rewrites every stored token that is not under the current encryption key (plaintext,
    /// or an older key) under it. Returns how many were rewritten.
    fn reencrypt(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}
