//! Webhook deduplication. Shopify delivers at least once, so each delivery id is claimed
//! before its work runs and marked done after it: a repeat of a done delivery is skipped, a
//! repeat that arrives while the work runs is told to come back later, and a claim whose work
//! was cut off (crash, dropped connection) is taken over once it is stale.
//!
//! Work that only writes to the database runs with [`WebhookDeliveries::once_on_writer`]: the
//! claim, the work and the mark commit together in one writer job, so nothing is left
//! half-done and a delivery costs one trip to the writer. Other work (an Admin API call, say)
//! runs with [`WebhookDeliveries::once`] between a claim and its mark.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, params};
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

/// A delivery to handle once: its id (`X-Shopify-Webhook-Id`, the same on every retry of one
/// event), topic and shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The delivery id.
    pub webhook_id: String,
    /// The topic (`app/uninstalled`...).
    pub topic: String,
    /// The shop's name.
    pub shop: String,
}

/// What handling a delivery once came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The work ran now (and is committed, with the delivery marked done): its result.
    Ran(T),
    /// The work was done already: answer 200 and do nothing.
    Done,
    /// Another copy of the delivery is being handled right now: answer 409 so that Shopify
    /// retries later.
    InProgress,
}

impl<T> Once<T> {
    /// The result of the work, when it ran now, mapped by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Once<U> {
        match self {
            Once::Ran(value) => Once::Ran(f(value)),
            Once::Done => Once::Done,
            Once::InProgress => Once::InProgress,
        }
    }
}

/// What a claim found: the caller holds the delivery now (`Ran(())`), or not.
type Claim = Once<()>;

/// The proof of holding a delivery's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimId {
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

/// Inserts a claim on `delivery` held by `claim_id`, takes over a stale one, or leaves the row
/// as it is, in one statement, so that there is no moment in which another copy's release can
/// make a claim look done. A claim made with `done` is marked done at once (its work commits
/// in the same transaction).
fn claim_in(
    db: &Connection,
    delivery: &Delivery,
    claim_id: &str,
    now: i64,
    stale_before: i64,
    done: bool,
) -> rusqlite::Result<Claim> {
    let (was_done, holder) = db
        .prepare_cached(
            "INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, done, claim_id)
             VALUES (?1, ?2, ?3, ?4, ?7, ?5)
             ON CONFLICT (webhook_id) DO UPDATE SET
               received_at = CASE WHEN done = 0 AND received_at <= ?6 THEN excluded.received_at ELSE received_at END,
               claim_id = CASE WHEN done = 0 AND received_at <= ?6 THEN excluded.claim_id ELSE claim_id END,
               done = CASE WHEN done = 0 AND received_at <= ?6 THEN excluded.done ELSE done END
             RETURNING done, claim_id",
        )?
        .query_row(
            params![delivery.webhook_id, delivery.topic, delivery.shop, now, claim_id, stale_before, done],
            |row| Ok((row.get::<_, bool>(0)?, row.get::<_, Option<String>>(1)?)),
        )?;
    Ok(match (holder, was_done) {
        (Some(holder), _) if holder == claim_id => Once::Ran(()),
        (_, true) => Once::Done,
        (_, false) => Once::InProgress,
    })
}

impl WebhookDeliveries {
    /// The deliveries table in `pool`'s database, for requests cut off after `request_timeout`:
    /// a claim is taken over once it is [`CLAIM_MARGIN`] older than that.
    pub fn new(pool: SqlitePool, writer: Writer, request_timeout: Duration) -> Self {
        Self { pool, writer, claim_timeout: request_timeout + CLAIM_MARGIN }
    }

    /// The claim's times at `now`: `now` and the moment before which a claim is stale.
    fn times(&self, now: OffsetDateTime) -> (i64, i64) {
        let now = now.unix_timestamp();
        (now, now - self.claim_timeout.as_secs() as i64)
    }

    /// Runs `job` once per delivery, in one writer job with the delivery's claim and its mark:
    /// all three commit together, or (when `job` fails) none does, and Shopify's retry runs it
    /// again. Without a delivery (no id header), `job` just runs.
    pub async fn once_on_writer<T, F>(
        &self,
        delivery: Option<Delivery>,
        now: OffsetDateTime,
        job: F,
    ) -> Result<Once<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (now, stale_before) = self.times(now);
        self.writer
            .run(move |db| {
                let claim = match delivery {
                    Some(delivery) => {
                        claim_in(db, &delivery, &crate::sessions::random_token(), now, stale_before, true)?
                    }
                    None => Once::Ran(()),
                };
                match claim {
                    Once::Ran(()) => job(db).map(Once::Ran),
                    Once::Done => Ok(Once::Done),
                    Once::InProgress => Ok(Once::InProgress),
                }
            })
            .await
    }

    /// Runs `work` once per delivery: claims the delivery, runs `work`, then marks the delivery
    /// done, or releases the claim when `work` fails, so that Shopify's retry runs it again.
    /// Without a delivery (no id header), `work` just runs. `work` must be idempotent: one cut
    /// off before its mark runs again once its claim is stale.
    pub async fn once<T, E, W>(&self, delivery: Option<Delivery>, now: OffsetDateTime, work: W) -> Result<Once<T>, E>
    where
        W: Future<Output = Result<T, E>>,
        E: From<StoreError>,
    {
        let Some(delivery) = delivery else {
            return work.await.map(Once::Ran);
        };
        let claim = match self.claim(delivery, now).await? {
            Once::Ran(claim) => claim,
            Once::Done => return Ok(Once::Done),
            Once::InProgress => return Ok(Once::InProgress),
        };
        match work.await {
            Ok(value) => {
                self.finish(&claim).await?;
                Ok(Once::Ran(value))
            }
            Err(error) => {
                self.release(&claim).await?;
                Err(error)
            }
        }
    }

    /// Claims `delivery` at `now` for [`WebhookDeliveries::once`]; the claim when it is the
    /// caller's.
    async fn claim(&self, delivery: Delivery, now: OffsetDateTime) -> Result<Once<ClaimId>, StoreError> {
        let (now, stale_before) = self.times(now);
        let claim_id = crate::sessions::random_token();
        let mine = claim_id.clone();
        let webhook_id = delivery.webhook_id.clone();
        let claim = self.writer.run(move |db| claim_in(db, &delivery, &mine, now, stale_before, false)).await?;
        Ok(claim.map(|()| ClaimId { webhook_id, claim_id }))
    }

    /// Marks a claimed delivery's work done (unless its claim was taken over meanwhile).
    async fn finish(&self, claim: &ClaimId) -> Result<(), StoreError> {
        self.on_claim(claim, "UPDATE webhook_deliveries SET done = 1 WHERE webhook_id = ?1 AND claim_id = ?2").await
    }

    /// Releases a claim whose work failed, so that Shopify's retry runs it (unless its claim
    /// was taken over meanwhile: the new holder's claim stays).
    async fn release(&self, claim: &ClaimId) -> Result<(), StoreError> {
        self.on_claim(claim, "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND claim_id = ?2").await
    }

    /// Runs `sql` on the row of `claim`, bound to its delivery and claim ids.
    async fn on_claim(&self, claim: &ClaimId, sql: &'static str) -> Result<(), StoreError> {
        let ClaimId { webhook_id, claim_id } = claim.clone();
        self.writer.run(move |db| db.prepare_cached(sql)?.execute(params![webhook_id, claim_id])).await?;
        Ok(())
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

    fn delivery(id: &str) -> Delivery {
        Delivery { webhook_id: id.to_owned(), topic: "app/uninstalled".to_owned(), shop: "s1".to_owned() }
    }

    /// Runs a no-op `once_on_writer` for `id` at `at`.
    async fn mark(deliveries: &WebhookDeliveries, id: &str, at: OffsetDateTime) -> Option<Once<()>> {
        deliveries.once_on_writer(Some(delivery(id)), at, |_| Ok(())).await.ok()
    }

    #[tokio::test]
    async fn a_released_claim_is_claimed_again_never_reported_done() {
        let (deliveries, _folder) = deliveries().await;
        let Ok(Once::Ran(first)) = deliveries.claim(delivery("d1"), at(0)).await else {
            panic!("the first copy claims");
        };
        assert_eq!(mark(&deliveries, "d1", at(1)).await, Some(Once::InProgress));
        let failed: Result<Once<()>, StoreError> =
            deliveries.once(Some(delivery("d1")), at(1), async { Err(StoreError::Busy) }).await;
        assert_eq!(failed.ok(), Some(Once::InProgress), "a copy does not run while the claim is held");
        deliveries.release(&first).await.unwrap_or_else(|error| panic!("{error}"));
        let failed: Result<Once<()>, StoreError> =
            deliveries.once(Some(delivery("d1")), at(2), async { Err(StoreError::Busy) }).await;
        assert!(failed.is_err(), "after a release the next copy runs the work");
        let ran = deliveries.once(Some(delivery("d1")), at(3), async { Ok::<_, StoreError>(7) }).await;
        assert_eq!(ran.ok(), Some(Once::Ran(7)), "a failed work released its claim");
        assert_eq!(mark(&deliveries, "d1", at(4)).await, Some(Once::Done));
    }

    #[tokio::test]
    async fn work_on_the_writer_commits_with_its_claim_or_not_at_all() {
        let (deliveries, _folder) = deliveries().await;
        let write = |fail: bool| {
            move |db: &Connection| {
                db.execute("CREATE TABLE IF NOT EXISTS work (n INTEGER)", [])?;
                db.execute("INSERT INTO work (n) VALUES (1)", [])?;
                if fail {
                    return Err(rusqlite::Error::QueryReturnedNoRows);
                }
                db.query_row("SELECT count(*) FROM work", [], |row| row.get::<_, i64>(0))
            }
        };
        assert!(deliveries.once_on_writer(Some(delivery("d1")), at(0), write(true)).await.is_err());
        assert_eq!(
            deliveries.once_on_writer(Some(delivery("d1")), at(1), write(false)).await.ok(),
            Some(Once::Ran(1)),
            "the failed job left neither its claim nor its row"
        );
        assert_eq!(deliveries.once_on_writer(Some(delivery("d1")), at(2), write(false)).await.ok(), Some(Once::Done));
        assert_eq!(deliveries.once_on_writer(None, at(3), write(false)).await.ok(), Some(Once::Ran(2)));
    }

    #[tokio::test]
    async fn old_ids_are_forgotten_off_the_request_path() {
        let (deliveries, _folder) = deliveries().await;
        assert_eq!(mark(&deliveries, "old", at(0)).await, Some(Once::Ran(())));
        assert_eq!(mark(&deliveries, "recent", at(3600)).await, Some(Once::Ran(())));
        let week = RETENTION.as_secs() as i64;
        assert_eq!(deliveries.forget_expired(at(week)).await.ok(), Some(0), "kept for the whole retention");
        assert_eq!(deliveries.forget_expired(at(week + 1)).await.ok(), Some(1));
        assert_eq!(mark(&deliveries, "old", at(week + 1)).await, Some(Once::Ran(())));
        assert_eq!(mark(&deliveries, "recent", at(week + 1)).await, Some(Once::Done));
    }

    #[tokio::test]
    async fn a_taken_over_claim_cannot_finish_or_release_the_new_holders() {
        let (deliveries, _folder) = deliveries().await;
        let claim = |at| deliveries.claim(delivery("d1"), at);
        let Ok(Once::Ran(stale)) = claim(at(0)).await else {
            panic!("claimed");
        };
        let later = at(60);
        let Ok(Once::Ran(current)) = claim(later).await else {
            panic!("a stale claim is taken over");
        };
        deliveries.release(&stale).await.unwrap_or_else(|error| panic!("{error}"));
        deliveries.finish(&stale).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(mark(&deliveries, "d1", later).await, Some(Once::InProgress));
        deliveries.finish(&current).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(mark(&deliveries, "d1", later).await, Some(Once::Done));
    }

    #[tokio::test]
    async fn work_on_the_writer_takes_over_a_stale_claim_only() {
        let (deliveries, _folder) = deliveries().await;
        let Ok(Once::Ran(_cut_off)) = deliveries.claim(delivery("d1"), at(0)).await else {
            panic!("claimed");
        };
        assert_eq!(mark(&deliveries, "d1", at(59)).await, Some(Once::InProgress));
        assert_eq!(mark(&deliveries, "d1", at(60)).await, Some(Once::Ran(())));
        assert_eq!(mark(&deliveries, "d1", at(200)).await, Some(Once::Done));
    }
}
