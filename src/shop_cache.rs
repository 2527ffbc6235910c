//! [`ShopCache`]: an answer per shop, reused while fresh, on the injected clock. Holds at most
//! [`MAX_SHOPS`] shops: past it the stale entries go, and all of them if none is stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;

use crate::shopify::clock::Clock;

/// Shops kept at most.
pub const MAX_SHOPS: usize = 10_000;

/// Per shop: when the answer was read, and the answer.
pub struct ShopCache<T> {
    fresh_for: Duration,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, (OffsetDateTime, Arc<T>)>>,
}

impl<T> ShopCache<T> {
    /// Answers kept for `fresh_for` by `clock`.
    pub fn new(fresh_for: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { fresh_for, clock, entries: Mutex::default() }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, (OffsetDateTime, Arc<T>)>> {
        self.entries.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// `shop`'s answer, when read less than `fresh_for` ago.
    pub fn fresh(&self, shop: &str) -> Option<Arc<T>> {
        let now = self.clock.now();
        self.entries().get(shop).filter(|(read_at, _)| now - *read_at < self.fresh_for).map(|(_, value)| value.clone())
    }

    /// Keeps `value` as `shop`'s answer, read now; returns it shared.
    pub fn insert(&self, shop: &str, value: T) -> Arc<T> {
        let (now, value) = (self.clock.now(), Arc::new(value));
        let mut entries = self.entries();
        if entries.len() >= MAX_SHOPS {
            entries.retain(|_, (read_at, _)| now - *read_at < self.fresh_for);
            if entries.len() >= MAX_SHOPS {
                entries.clear();
            }
        }
        entries.insert(shop.to_owned(), (now, value.clone()));
        value
    }

    /// Drops `shop`'s answer.
    pub fn forget(&self, shop: &str) {
        self.entries().remove(shop);
    }
}
