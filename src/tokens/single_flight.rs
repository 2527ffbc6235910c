//! [`SingleFlight`]: one refresh of a token at a time, within the process and across the
//! processes that share the database, for Shopify's offline tokens and the providers' tokens.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::StoreError;
use crate::shopify::clock::Clock;

/// One async lock per key (a shop, or a shop and a provider), created on first use: makes a
/// refresh single-flight within the process.
#[derive(Debug)]
struct KeyedLocks<K>(Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>);

impl<K: Eq + Hash> KeyedLocks<K> {
    /// No locks yet.
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    /// The lock of `key`.
    fn get(&self, key: K) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        locks.entry(key).or_default().clone()
    }
}

/// What a look at the stored token found.
pub enum Look<T> {
    /// A token to hand out (still valid, or obtained another way, say by token exchange).
    Ready(T),
    /// The token must be refreshed.
    Refresh,
}

/// Runs refreshes one at a time per key: within the process behind a lock per key, across
/// processes behind a lease (a row naming its holder, until a time) that a crashed holder
/// loses when it runs out. A caller that finds the lease taken looks at the stored token again
/// every `poll` until the holder's refresh lands. The refresh itself runs in a task of its
/// own: it finishes, and gives its lease back, even if the caller goes away, so a rotated
/// refresh token is never lost.
pub struct SingleFlight<K> {
    locks: KeyedLocks<K>,
    holder: String,
    lease: Duration,
    poll: Duration,
}

impl<K: Hash + Eq + Clone + Send + 'static> SingleFlight<K> {
    /// Leases of `lease` (longer than the slowest refresh), looked at every `poll`.
    pub fn new(lease: Duration, poll: Duration) -> Self {
        let holder = format!("{}-{}", std::process::id(), crate::sessions::random_token());
        Self { locks: KeyedLocks::new(), holder, lease, poll }
    }

    /// This process's name on leases.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Hands out what `look` finds ready; else refreshes under `key`'s lock and lease, then
    /// looks again.
    ///
    /// - `look` reads the stored token (never from a cache) and says whether it will do;
    /// - `try_lease(now, until)` takes the lease for [`SingleFlight::holder`] unless another
    ///   holder's is still live;
    /// - `refresh()` refreshes under the lease: `Some` token, or `None` when the stored token
    ///   was replaced meanwhile (look again);
    /// - `release()` gives the lease back (a failure is logged: the lease runs out by itself).
    ///
    /// `Ok(None)` when another process held the lease for longer than a lease lasts, or the
    /// refresh task died.
    pub async fn run<T, E, LookFuture, LeaseFuture, RefreshFuture, ReleaseFuture>(
        &self,
        key: K,
        clock: &dyn Clock,
        mut look: impl FnMut() -> LookFuture,
        mut try_lease: impl FnMut(OffsetDateTime, OffsetDateTime) -> LeaseFuture,
        refresh: impl Fn() -> RefreshFuture,
        release: impl Fn() -> ReleaseFuture,
    ) -> Result<Option<T>, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        LookFuture: Future<Output = Result<Look<T>, E>>,
        LeaseFuture: Future<Output = Result<bool, StoreError>>,
        RefreshFuture: Future<Output = Result<Option<T>, E>> + Send + 'static,
        ReleaseFuture: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let lease = time::Duration::try_from(self.lease).unwrap_or(time::Duration::MAX);
        let mut in_process = Some(self.locks.get(key.clone()).lock_owned().await);
        // One more round than a lease lasts: a dead holder's lease is then taken over.
        for _ in 0..=(self.lease.as_millis() / self.poll.as_millis().max(1)) + 1 {
            // Look again: whoever held the lock or the lease may have refreshed it.
            if let Look::Ready(token) = look().await? {
                return Ok(Some(token));
            }
            let now = clock.now();
            if !try_lease(now, now.checked_add(lease).unwrap_or(now)).await? {
                clock.sleep(self.poll).await;
                continue;
            }
            let (lock, refreshing, releasing) = (in_process.take(), refresh(), release());
            let task = tokio::spawn(async move {
                let _in_process = lock;
                let outcome = refreshing.await;
                if let Err(error) = releasing.await {
                    tracing::warn!(%error, "could not give a refresh lease back; it runs out by itself");
                }
                outcome
            });
            match task.await {
                Ok(outcome) => {
                    if let Some(token) = outcome? {
                        return Ok(Some(token));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "a refresh task failed");
                    return Ok(None);
                }
            }
            // The token was replaced meanwhile: take the lock again and look.
            in_process = Some(self.locks.get(key.clone()).lock_owned().await);
        }
        Ok(None)
    }
}
