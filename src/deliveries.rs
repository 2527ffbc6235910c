//! Webhook deduplication. Shopify delivers at least once, so each delivery id is claimed
//! before its work runs and marked done after it: a repeat of a done delivery is skipped, a
//! repeat that arrives while the work runs is told to come back later, and a claim whose work
//! was cut off (crash, dropped connection) is taken over once it is stale.

use std::time::Duration;

use sqlx::SqlitePool;
use time::OffsetDateTime;

use crate::tokens::StoreError;

/// How long a delivery id is remembered. Shopify retries a failed delivery for 48 hours.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a claim protects work in progress before another delivery may take it over.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// What a delivery id's claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the work now: run it, then [`WebhookDeliveries::finish`] or
    /// [`WebhookDeliveries::release`].
    Claimed,
    /// The work was done already: answer 200 and do nothing.
    Done,
    /// Another delivery of the same id is being handled right now.
    InProgress,
}

/// The table of deliveries seen.
#[derive(Debug, Clone)]
pub struct WebhookDeliveries {
    pool: SqlitePool,
}

impl WebhookDeliveries {
    /// The deliveries table in `pool`'s database.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Claims `webhook_id` at `now`. Forgets ids older than [`RETENTION`] on the way.
    pub async fn claim(
        &self,
        webhook_id: &str,
        topic: &str,
        shop: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let now = now.unix_timestamp();
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?")
            .bind(now - RETENTION.as_secs() as i64)
            .execute(&self.pool)
            .await?;
        // Insert a claim, or take over a stale one: one atomic statement.
        let claimed = sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, done) VALUES (?, ?, ?, ?, 0)
             ON CONFLICT (webhook_id) DO UPDATE SET received_at = excluded.received_at
             WHERE webhook_deliveries.done = 0 AND webhook_deliveries.received_at <= ?",
        )
        .bind(webhook_id)
        .bind(topic)
        .bind(shop)
        .bind(now)
        .bind(now - CLAIM_TIMEOUT.as_secs() as i64)
        .execute(&self.pool)
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let done: Option<bool> = sqlx::query_scalar("SELECT done FROM webhook_deliveries WHERE webhook_id = ?")
            .bind(webhook_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if done == Some(false) { Claim::InProgress } else { Claim::Done })
    }

    /// Marks a claimed delivery's work done.
    pub async fn finish(&self, webhook_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_deliveries SET done = 1 WHERE webhook_id = ?")
            .bind(webhook_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Releases a claim whose work failed, so that Shopify's retry runs it.
    pub async fn release(&self, webhook_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?").bind(webhook_id).execute(&self.pool).await?;
        Ok(())
    }
}
