//! Everything the app stores about a shop, forgotten in one write when the shop uninstalls the
//! app (`app/uninstalled`) or has its data erased (`shop/redact`): Shopify's tokens and their
//! refresh leases, third-party provider tokens, pending connections and leases, and the
//! recorded products of the `products/update` example.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::deliveries::{Delivery, Once, WebhookDeliveries};
use crate::tokens::{CachedTokenRepository, StoreError};

/// What forgetting a shop deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// Shopify access tokens.
    pub tokens: u64,
    /// Third-party provider tokens.
    pub connections: u64,
}

/// Why a shop is forgotten, and the time of the event that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// `app/uninstalled`, triggered at `X-Shopify-Triggered-At` (when Shopify sent it).
    Uninstall {
        /// The trigger time, when the delivery had one.
        triggered_at: Option<OffsetDateTime>,
    },
    /// `shop/redact`, received at `requested_at` (its job may run much later).
    Redact {
        /// When the delivery was received.
        requested_at: OffsetDateTime,
    },
}

/// Forgets shops, once per webhook delivery.
#[derive(Clone)]
pub struct ShopData {
    deliveries: WebhookDeliveries,
    tokens: Arc<CachedTokenRepository>,
}

impl std::fmt::Debug for ShopData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopData").finish_non_exhaustive()
    }
}

impl ShopData {
    /// Forgets through `deliveries`' writer, dropping what `tokens` cached.
    pub fn new(deliveries: WebhookDeliveries, tokens: Arc<CachedTokenRepository>) -> Self {
        Self { deliveries, tokens }
    }

    /// Deletes everything stored about `shop`, in one transaction with `delivery`'s claim, at
    /// `now`, unless the shop installed the app again since the event (`Ran(None)`: it holds a
    /// token obtained at or after the event's time, so the event was about an earlier
    /// install). A redaction also deletes the shop's jobs that are not running (waiting or
    /// failed: their payloads may hold personal data).
    pub async fn forget(
        &self,
        delivery: Option<Delivery>,
        now: OffsetDateTime,
        shop: &str,
        reason: Forget,
    ) -> Result<Once<Option<Forgotten>>, StoreError> {
        let (installed_since, redact) = match reason {
            Forget::Uninstall { triggered_at } => (triggered_at, false),
            Forget::Redact { requested_at } => (Some(requested_at), true),
        };
        let (on_sqlite, on_postgres) = (shop.to_owned(), shop.to_owned());
        let forget = self.deliveries.once_with_writes(
            delivery,
            now,
            Box::new(move |db| {
                let Some(tokens) = crate::tokens::delete_shop_in(db, &on_sqlite, installed_since)? else {
                    return Ok(None);
                };
                let connections = crate::oauth::delete_shop_in(db, &on_sqlite)?;
                db.prepare_cached(crate::products::DELETE_SHOP)?.execute([&on_sqlite])?;
                if redact {
                    db.prepare_cached(crate::jobs::DELETE_SHOP_WAITING)?.execute([&on_sqlite])?;
                }
                Ok(Some(Forgotten { tokens, connections }))
            }),
            Box::new(move |tx| {
                let shop = on_postgres.clone();
                Box::pin(async move {
                    let shop = shop.as_str();
                    let Some(tokens) = crate::tokens::delete_shop_in_postgres(tx, shop, installed_since).await? else {
                        return Ok(None);
                    };
                    let connections = crate::oauth::delete_shop_in_postgres(tx, shop).await?;
                    sqlx::query(crate::products::DELETE_SHOP).bind(shop).execute(&mut *tx).await?;
                    if redact {
                        sqlx::query(crate::jobs::DELETE_SHOP_WAITING).bind(shop).execute(&mut *tx).await?;
                    }
                    Ok(Some(Forgotten { tokens, connections }))
                })
            }),
        );
        self.tokens.writing_shop(shop, forget).await
    }
}
