//! Webhook deduplication. Shopify delivers at least once, so each delivery id is claimed
//! before its work runs and marked done after it: a repeat of a done delivery is skipped, a
//! repeat that arrives while the work runs is told to come back later, and a claim whose work
//! was cut off (crash, dropped connection) is taken over once it is stale.

use std::time::Duration;

use std::sync::Arc;

use rusqlite::params;
use sqlx::SqlitePool;
use time::OffsetDateTime;

use crate::db::Writer;
use crate::shopify::clock::Clock;
use crate::tokens::StoreError;

/// How long a delivery id is remembered. Shopify retries a failed delivery for 48 hours.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often ids older than [`RETENTION`] are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(10 * 60);
/// How much longer than a request may take a claim protects its work before another delivery
/// may take it over: the work ends with its request (`REQUEST_TIMEOUT_SECS` cuts it off), so
/// a claim outlives any work still running under it.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// What a delivery id's claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the work now: run it, then [`WebhookDeliveries::finish`] or
    /// [`WebhookDeliveries::release`] with this claim.
    Claimed(ClaimId),
    /// The work was done already: answer 200 and do nothing.
    Done,
    /// Another delivery of the same id is being handled right now.
    InProgress,
}

/// The proof of holding a delivery's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimId {
    webhook_id: String,
    claim_id: String,
}

/// The table of deliveries seen.
#[derive(Debug, Clone)]
pub struct WebhookDeliveries {
    pool: SqlitePool,
    writer: Writer,
    claim_timeout: Duration,
}

impl WebhookDeliveries {
    /// The deliveries table in `pool`'s database, for requests cut off after `request_timeout`:
    /// a claim is taken over once it is [`CLAIM_MARGIN`] older than that.
    pub fn new(pool: SqlitePool, writer: Writer, request_timeout: Duration) -> Self {
        Self { pool, writer, claim_timeout: request_timeout + CLAIM_MARGIN }
    }

    /// Claims `webhook_id` at `now`.
    ///
    /// One statement inserts a claim, takes over a stale one, or leaves the row as it is, and
    /// returns the row: there is no moment in which another copy's release can make a claim
    /// look done.
    pub async fn claim(
        &self,
        webhook_id: &str,
        topic: &str,
        shop: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let now = now.unix_timestamp();
        let stale_before = now - self.claim_timeout.as_secs() as i64;
        let claim_id = crate::sessions::random_token();
        let (id, topic, shop, mine) = (webhook_id.to_owned(), topic.to_owned(), shop.to_owned(), claim_id.clone());
        let (done, holder) = self
            .writer
            .run(move |db| {
                db.prepare_cached(
                    "INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, done, claim_id)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)
                     ON CONFLICT (webhook_id) DO UPDATE SET
                       received_at = CASE WHEN done = 0 AND received_at <= ?6 THEN excluded.received_at ELSE received_at END,
                       claim_id = CASE WHEN done = 0 AND received_at <= ?6 THEN excluded.claim_id ELSE claim_id END
                     RETURNING done, claim_id",
                )?
                .query_row(params![id, topic, shop, now, mine, stale_before], |row| {
                    Ok((row.get::<_, bool>(0)?, row.get::<_, Option<String>>(1)?))
                })
            })
            .await?;
        Ok(match (done, holder) {
            (true, _) => Claim::Done,
            (false, Some(holder)) if holder == claim_id => {
                Claim::Claimed(ClaimId { webhook_id: webhook_id.to_owned(), claim_id })
            }
            (false, _) => Claim::InProgress,
        })
    }

    /// Forgets the delivery ids received more than [`RETENTION`] before `now`. Returns how many.
    pub async fn forget_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?")
            .bind(now.unix_timestamp() - RETENTION.as_secs() as i64)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// Runs [`WebhookDeliveries::forget_expired`] now and then every [`FORGET_EVERY`], forever
    /// (off the request path: a delivery costs no clean-up): spawn it once at start.
    pub async fn forget_expired_periodically(self, clock: Arc<dyn Clock>) {
        loop {
            if let Err(error) = self.forget_expired(clock.now()).await {
                tracing::warn!(%error, "could not forget old webhook delivery ids");
            }
            clock.sleep(FORGET_EVERY).await;
        }
    }

    /// Marks a claimed delivery's work done (unless its claim was taken over meanwhile).
    pub async fn finish(&self, claim: &ClaimId) -> Result<(), StoreError> {
        self.on_claim(claim, "UPDATE webhook_deliveries SET done = 1 WHERE webhook_id = ?1 AND claim_id = ?2").await
    }

    /// Releases a claim whose work failed, so that Shopify's retry runs it (unless its claim
    /// was taken over meanwhile: the new holder's claim stays).
    pub async fn release(&self, claim: &ClaimId) -> Result<(), StoreError> {
        self.on_claim(claim, "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND claim_id = ?2").await
    }

    /// Runs `sql` on the row of `claim`, bound to its delivery and claim ids.
    async fn on_claim(&self, claim: &ClaimId, sql: &'static str) -> Result<(), StoreError> {
        let ClaimId { webhook_id, claim_id } = claim.clone();
        self.writer.run(move |db| db.prepare_cached(sql)?.execute(params![webhook_id, claim_id])).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn deliveries() -> (WebhookDeliveries, tempfile::TempDir) {
        let folder = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
        let url = format!("sqlite:{}", folder.path().join("app.db").display());
        let pool = crate::db::connect(&url).await.unwrap_or_else(|error| panic!("database: {error}"));
        let writer = crate::db::open_writer(&url).unwrap_or_else(|error| panic!("writer: {error}"));
        (WebhookDeliveries::new(pool, writer, Duration::from_secs(50)), folder)
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000 + seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[tokio::test]
    async fn a_released_claim_is_claimed_again_never_reported_done() {
        let (deliveries, _folder) = deliveries().await;
        let Ok(Claim::Claimed(first)) = deliveries.claim("d1", "app/uninstalled", "s1", at(0)).await else {
            panic!("the first copy claims");
        };
        assert_eq!(deliveries.claim("d1", "app/uninstalled", "s1", at(1)).await.ok(), Some(Claim::InProgress));
        deliveries.release(&first).await.unwrap_or_else(|error| panic!("{error}"));
        let Ok(Claim::Claimed(second)) = deliveries.claim("d1", "app/uninstalled", "s1", at(2)).await else {
            panic!("after a release the next copy runs the work");
        };
        deliveries.finish(&second).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(deliveries.claim("d1", "app/uninstalled", "s1", at(3)).await.ok(), Some(Claim::Done));
    }

    #[tokio::test]
    async fn old_ids_are_forgotten_off_the_request_path() {
        let (deliveries, _folder) = deliveries().await;
        for (id, at_seconds) in [("old", 0), ("recent", 3600)] {
            let Ok(Claim::Claimed(claim)) = deliveries.claim(id, "app/uninstalled", "s1", at(at_seconds)).await else {
                panic!("claimed");
            };
            deliveries.finish(&claim).await.unwrap_or_else(|error| panic!("{error}"));
        }
        let week = RETENTION.as_secs() as i64;
        assert_eq!(deliveries.forget_expired(at(week)).await.ok(), Some(0), "kept for the whole retention");
        assert_eq!(deliveries.forget_expired(at(week + 1)).await.ok(), Some(1));
        assert!(matches!(deliveries.claim("old", "app/uninstalled", "s1", at(week + 1)).await, Ok(Claim::Claimed(_))));
        assert_eq!(deliveries.claim("recent", "app/uninstalled", "s1", at(week + 1)).await.ok(), Some(Claim::Done));
    }

    #[tokio::test]
    async fn a_taken_over_claim_cannot_finish_or_release_the_new_holders() {
        let (deliveries, _folder) = deliveries().await;
        let Ok(Claim::Claimed(stale)) = deliveries.claim("d1", "shop/redact", "s1", at(0)).await else {
            panic!("claimed");
        };
        let later = at(60);
        let Ok(Claim::Claimed(current)) = deliveries.claim("d1", "shop/redact", "s1", later).await else {
            panic!("a stale claim is taken over");
        };
        deliveries.release(&stale).await.unwrap_or_else(|error| panic!("{error}"));
        deliveries.finish(&stale).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(deliveries.claim("d1", "shop/redact", "s1", later).await.ok(), Some(Claim::InProgress));
        deliveries.finish(&current).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(deliveries.claim("d1", "shop/redact", "s1", later).await.ok(), Some(Claim::Done));
    }
}
