//! [`CachedTokenRepository`]: tokens read once from the database serve the next requests from
//! memory, so an App Home load does not wait on SQLite.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::{StoreError, TokenKey, TokenRepository};
use crate::shopify::clock::Clock;
use crate::shopify::http::BoxFuture;
use crate::shopify::model::AccessToken;

/// How long a token read from the database is served from memory. Another process's change
/// (a refresh, an uninstall) is seen after at most this long; until then this process may use
/// a token that was replaced or revoked, which Shopify answers with 401, and that forgets it.
pub const TTL: Duration = Duration::from_secs(30);
/// Most tokens kept in memory; past it, expired entries go, then everything.
pub const CAPACITY: usize = 10_000;

/// A [`TokenRepository`] that keeps the tokens it reads in memory for [`TTL`]. Every write
/// through it drops the key's entry (or the shop's entries) before it starts and once it is
/// over, and a read that raced a write does not fill the cache with what it read, so within the
/// process the cache never serves a token older than the last write.
pub struct CachedTokenRepository {
    inner: Arc<dyn TokenRepository>,
    clock: Arc<dyn Clock>,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<TokenKey, (AccessToken, OffsetDateTime)>,
    /// Bumped by every write: a read fills the cache only if no write finished meanwhile.
    writes: u64,
}

impl CachedTokenRepository {
    /// `inner` behind a cache, timed by `clock`.
    pub fn new(inner: Arc<dyn TokenRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { inner, clock, state: Mutex::new(CacheState::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// The cached token of `key` when `from_cache` and it is fresh, else the stored one, which
    /// then fills the cache.
    async fn read(&self, key: &TokenKey, from_cache: bool) -> Result<Option<AccessToken>, StoreError> {
        let now = self.clock.now();
        let writes = {
            let state = self.state();
            let fresh = |loaded_at: OffsetDateTime| loaded_at <= now && now - loaded_at < TTL;
            if let Some((token, _)) = state.entries.get(key).filter(|(_, at)| from_cache && fresh(*at)) {
                return Ok(Some(token.clone()));
            }
            state.writes
        };
        let loaded = self.inner.load(key).await?;
        let mut state = self.state();
        match &loaded {
            // A write finished meanwhile: what was read may be older than it.
            _ if state.writes != writes => {}
            None => {
                state.entries.remove(key);
            }
            Some(token) => {
                if state.entries.len() >= CAPACITY {
                    state.entries.retain(|_, (_, loaded_at)| now - *loaded_at < TTL);
                    if state.entries.len() >= CAPACITY {
                        state.entries.clear();
                    }
                }
                state.entries.insert(key.clone(), (token.clone(), now));
            }
        }
        Ok(loaded)
    }

    /// Drops what a write may change, and makes reads in flight not fill the cache.
    fn written(&self, changed: &dyn Fn(&TokenKey) -> bool) {
        let mut state = self.state();
        state.writes += 1;
        state.entries.retain(|key, _| !changed(key));
    }

    /// Runs a write, dropping what it may change before it starts and again once it is over,
    /// also when the caller stops waiting for it (a cut-off request): a write that still
    /// commits then leaves no entry cached before it.
    async fn write<F: Future>(&self, write: F, changed: impl Fn(&TokenKey) -> bool + Sync) -> F::Output {
        self.written(&changed);
        let _after = Invalidate { cache: self, changed: &changed };
        write.await
    }

    /// Runs `write`, a write to `shop`'s tokens that does not go through this repository
    /// (one job on the database writer that also deletes other data), as if it did: `shop`'s
    /// entries are dropped before it starts and once it is over.
    pub async fn writing_shop<F: Future>(&self, shop: &str, write: F) -> F::Output {
        self.write(write, |cached| cached.shop == shop).await
    }
}

/// Drops a write's entries when the write ends, however it ends.
struct Invalidate<'a> {
    cache: &'a CachedTokenRepository,
    changed: &'a (dyn Fn(&TokenKey) -> bool + Sync),
}

impl Drop for Invalidate<'_> {
    fn drop(&mut self) {
        self.cache.written(self.changed);
    }
}

impl TokenRepository for CachedTokenRepository {
    fn load(&self, key: &TokenKey) -> BoxFuture<'_, Result<Option<AccessToken>, StoreError>> {
        let key = key.clone();
        Box::pin(async move { self.read(&key, true).await })
    }

    fn load_latest(&self, key: &TokenKey) -> BoxFuture<'_, Result<Option<AccessToken>, StoreError>> {
        let key = key.clone();
        Box::pin(async move { self.read(&key, false).await })
    }

    fn save(&self, token: &AccessToken) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = TokenKey::of(token);
        let write = self.inner.save(token);
        Box::pin(self.write(write, move |cached| *cached == key))
    }

    fn save_refreshed(
        &self,
        previous_refresh_token: &str,
        token: &AccessToken,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let key = TokenKey::of(token);
        let write = self.inner.save_refreshed(previous_refresh_token, token);
        Box::pin(self.write(write, move |cached| *cached == key))
    }

    fn delete_if_token(&self, key: &TokenKey, token: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let key = key.clone();
        let write = self.inner.delete_if_token(&key, token);
        Box::pin(self.write(write, move |cached| *cached == key))
    }

    fn update_scopes(&self, shop: &str, scopes: &str) -> BoxFuture<'_, Result<u64, StoreError>> {
        let shop = shop.to_owned();
        let write = self.inner.update_scopes(&shop, scopes);
        Box::pin(self.write(write, move |cached| cached.shop == shop))
    }

    fn try_lease(
        &self,
        key: &TokenKey,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.inner.try_lease(key, holder, now, until)
    }

    fn release_lease(&self, key: &TokenKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.release_lease(key, holder)
    }

    fn reencrypt(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        // Rewrites change no token's value.
        self.inner.reencrypt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::clock::ManualClock;
    use crate::shopify::model::AccessMode;
    use crate::tokens::{SqlTokenRepository, TokenCipher};

    /// A delete cut off while it waits for the write lock still commits; the token it deleted
    /// must not be served from memory afterwards.
    #[tokio::test]
    async fn a_write_whose_caller_gave_up_leaves_nothing_stale_in_the_cache() {
        let folder = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = folder.path().join("app.db");
        let url = format!("sqlite:{}", path.display());
        let db = crate::db::connect(&url, 1).await.unwrap_or_else(|error| panic!("{error}"));
        let crate::db::Db::Sqlite { pool, writer } = db.clone() else { panic!("a SQLite file") };
        let clock = Arc::new(ManualClock::at(1_750_000_000));
        let stored = SqlTokenRepository::new(db, TokenCipher::new(None), clock.clone());
        let cache = CachedTokenRepository::new(Arc::new(stored), clock);
        let token = AccessToken {
            shop: "s1".to_owned(),
            token: "shpat_old".into(),
            expires: None,
            scope: String::new(),
            access_mode: AccessMode::Offline,
            refresh_token: None,
            refresh_token_expires: None,
            user: None,
        };
        cache.save(&token).await.unwrap_or_else(|error| panic!("{error}"));
        let key = TokenKey::offline("s1");
        assert!(cache.load(&key).await.ok().flatten().is_some(), "cached");

        // Another connection holds the write lock while the delete is cut off.
        let holder = rusqlite::Connection::open(&path).unwrap_or_else(|error| panic!("{error}"));
        holder.execute_batch("BEGIN IMMEDIATE").unwrap_or_else(|error| panic!("{error}"));
        let delete = writer.run(|db| crate::tokens::delete_shop_in(db, "s1", None));
        let cut_off = tokio::time::timeout(Duration::from_millis(200), cache.writing_shop("s1", delete)).await;
        assert!(cut_off.is_err(), "the caller gave up");
        holder.execute_batch("COMMIT").unwrap_or_else(|error| panic!("{error}"));
        let mut left = 1;
        for _ in 0..100 {
            left = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM access_tokens")
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(left, 0, "the delete committed after its caller gave up");
        assert!(cache.load(&key).await.ok().flatten().is_none(), "the deleted token is not served from memory");
    }
}
