//! Webhook deduplication: Shopify delivers at least once, so each delivery id is claimed
//! before its work is done, and released if the work fails (so Shopify's retry runs it).

use std::time::Duration;

use sqlx::SqlitePool;
use time::OffsetDateTime;

use crate::tokens::StoreError;

/// How long a delivery id is remembered. Shopify retries a failed delivery for 48 hours.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The table of deliveries already seen.
#[derive(Debug, Clone)]
pub struct WebhookDeliveries {
    pool: SqlitePool,
}

impl WebhookDeliveries {
    /// The deliveries table in `pool`'s database.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Claims `webhook_id`. Returns `false` when it was already claimed (a repeat delivery).
    /// Forgets ids older than [`RETENTION`] on the way.
    pub async fn claim(
        &self,
        webhook_id: &str,
        topic: &str,
        shop: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let now = now.unix_timestamp();
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?")
            .bind(now - RETENTION.as_secs() as i64)
            .execute(&self.pool)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(webhook_id)
        .bind(topic)
        .bind(shop)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Releases a claim whose work failed, so that Shopify's retry is not skipped.
    pub async fn release(&self, webhook_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?").bind(webhook_id).execute(&self.pool).await?;
        Ok(())
    }
}
