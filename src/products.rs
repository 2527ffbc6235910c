//! The `products/update` example's table: the latest state of each updated product, written by
//! the webhook's job (`app_jobs::products`) and shown on App Home.
//!
//! App Home reads it through a short per-shop cache ([`CACHE_FOR`]): a page load costs no query
//! while the list is fresh. A product recorded by this instance shows at once; one recorded
//! by another instance within [`CACHE_FOR`].

use std::sync::Arc;
use std::time::Duration;

use crate::db::{Db, on_pool};
use crate::shop_cache::ShopCache;
use crate::shopify::clock::Clock;
use crate::tokens::StoreError;

/// How long App Home shows a shop's list before reading it again.
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// How many products App Home shows.
pub const SHOWN: i64 = 5;

crate::db::from_row! {
    /// A product as the job recorded it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RecordedProduct {
        /// The product's GID (`gid://shopify/Product/1`).
        pub product_id: String,
        /// Its title.
        pub title: String,
        /// `ACTIVE`, `DRAFT` or `ARCHIVED`.
        pub status: String,
        /// When Shopify last updated it (ISO 8601, as Shopify gives it).
        pub updated_at: String,
    }
}

const UPSERT: &str = "INSERT INTO products (shop, product_id, title, status, updated_at, recorded_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (shop, product_id) DO UPDATE SET title = excluded.title, status = excluded.status,
       updated_at = excluded.updated_at, recorded_at = excluded.recorded_at";
const LATEST: &str = "SELECT product_id, title, status, updated_at FROM products WHERE shop = $1
     ORDER BY recorded_at DESC, product_id LIMIT $2";
/// Run when a shop is forgotten (`shop_data`).
pub const DELETE_SHOP: &str = "DELETE FROM products WHERE shop = $1";

/// The recorded products, with App Home's cache.
#[derive(Clone)]
pub struct Products {
    db: Db,
    clock: Arc<dyn Clock>,
    cache: Arc<ShopCache<Vec<RecordedProduct>>>,
}

impl std::fmt::Debug for Products {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Products").finish_non_exhaustive()
    }
}

impl Products {
    /// The table in `db`.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, cache: Arc::new(ShopCache::new(CACHE_FOR, clock.clone())), clock }
    }

    /// Records `product` of `shop` (replacing what was recorded of it).
    pub async fn record(&self, shop: &str, product: &RecordedProduct) -> Result<(), StoreError> {
        let now = self.clock.now().unix_timestamp();
        on_pool!(&self.db, pool => sqlx::query(UPSERT)
            .bind(shop)
            .bind(&product.product_id)
            .bind(&product.title)
            .bind(&product.status)
            .bind(&product.updated_at)
            .bind(now)
            .execute(pool)
            .await
            .map(drop))?;
        self.cache.forget(shop);
        Ok(())
    }

    /// The [`SHOWN`] products of `shop` recorded last, newest first.
    pub async fn latest(&self, shop: &str) -> Result<Arc<Vec<RecordedProduct>>, StoreError> {
        if let Some(products) = self.cache.fresh(shop) {
            return Ok(products);
        }
        let products: Vec<RecordedProduct> =
            on_pool!(&self.db, pool => sqlx::query_as(LATEST).bind(shop).bind(SHOWN).fetch_all(pool).await)?;
        Ok(self.cache.insert(shop, products))
    }
}
