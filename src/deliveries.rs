//! Webhook deduplication. Shopify delivers at least once, so each delivery id is claimed
//! before its work runs and marked done after it: a repeat of a done delivery is skipped, a
//! repeat that arrives while the work runs is told to come back later, and a claim whose work
//! was cut off (crash, dropped connection) is taken over once it is stale.
//!
//! Work that only writes to the database runs with [`WebhookDeliveries::once_with_writes`]:
//! the claim, the work and the mark commit together in one transaction (on SQLite, one job of
//! the writer thread), so nothing is left half-done and a delivery costs one trip. Other work (an Admin API call, say)
//! runs with [`WebhookDeliveries::once`] between a claim and its mark.

use std::future::Future;
use std::time::Duration;

use rusqlite::{Connection, params};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::db::{Db, on_pool};
use crate::shopify::http::BoxFuture;
use crate::tokens::StoreError;

/// How long a delivery id is remembered. Shopify retries a failed delivery for 48 hours.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
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
    db: Db,
    claim_timeout: Duration,
}

/// Inserts a claim on a delivery (`$1` id, `$2` topic, `$3` shop, `$4` now) held by `$5`,
/// takes over one older than `$7`, or leaves the row as it is, in one statement, so that
/// there is no moment in which another copy's release can make a claim look done. A claim
/// made with `$6` true is marked done at once (its work commits in the same transaction).
/// Parameters first appear in order: the SQLite writer binds them by position.
const CLAIM: &str = "INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, claim_id, done)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (webhook_id) DO UPDATE SET
       received_at = CASE WHEN NOT webhook_deliveries.done AND webhook_deliveries.received_at <= $7
         THEN excluded.received_at ELSE webhook_deliveries.received_at END,
       claim_id = CASE WHEN NOT webhook_deliveries.done AND webhook_deliveries.received_at <= $7
         THEN excluded.claim_id ELSE webhook_deliveries.claim_id END,
       done = CASE WHEN NOT webhook_deliveries.done AND webhook_deliveries.received_at <= $7
         THEN excluded.done ELSE webhook_deliveries.done END
     RETURNING done, claim_id";
const FINISH: &str = "UPDATE webhook_deliveries SET done = TRUE WHERE webhook_id = $1 AND claim_id = $2";
const RELEASE: &str = "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND claim_id = $2";

/// A claim about to be made: who makes it, when, and whether its work commits with it.
struct NewClaim<'a> {
    delivery: &'a Delivery,
    claim_id: &'a str,
    now: i64,
    stale_before: i64,
    done: bool,
}

impl NewClaim<'_> {
    /// What the claim found, from the row [`CLAIM`] returned.
    fn found(&self, was_done: bool, holder: Option<String>) -> Claim {
        match (holder, was_done) {
            (Some(holder), _) if holder == self.claim_id => Once::Ran(()),
            (_, true) => Once::Done,
            (_, false) => Once::InProgress,
        }
    }

    /// Makes the claim in the SQLite writer's transaction.
    fn on_sqlite(&self, db: &Connection) -> rusqlite::Result<Claim> {
        let Delivery { webhook_id, topic, shop } = self.delivery;
        let (was_done, holder) = db.prepare_cached(CLAIM)?.query_row(
            params![webhook_id, topic, shop, self.now, self.claim_id, self.done, self.stale_before],
            |row| Ok((row.get::<_, bool>(0)?, row.get::<_, Option<String>>(1)?)),
        )?;
        Ok(self.found(was_done, holder))
    }

    /// Makes the claim on PostgreSQL.
    async fn on_postgres<'c>(&self, db: impl sqlx::PgExecutor<'c>) -> Result<Claim, sqlx::Error> {
        let Delivery { webhook_id, topic, shop } = self.delivery;
        let (was_done, holder): (bool, Option<String>) = sqlx::query_as(CLAIM)
            .bind(webhook_id)
            .bind(topic)
            .bind(shop)
            .bind(self.now)
            .bind(self.claim_id)
            .bind(self.done)
            .bind(self.stale_before)
            .fetch_one(db)
            .await?;
        Ok(self.found(was_done, holder))
    }
}

/// Work that only writes to the database, as the SQLite writer runs it.
pub type SqliteWork<T> = Box<dyn FnOnce(&Connection) -> rusqlite::Result<T> + Send>;
/// The same work in a PostgreSQL transaction; it may run more than once (a transaction that
/// could not serialize is tried again), each time in a new transaction.
pub type PostgresWork<T> =
    Box<dyn for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + Sync>;

/// How many times a PostgreSQL transaction that could not serialize is tried.
const SERIALIZATION_ATTEMPTS: u32 = 5;

/// Whether PostgreSQL refused a transaction because a concurrent one changed what it read
/// (SQLSTATE 40001): trying again is safe.
fn is_serialization_failure(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(error) if error.code().as_deref() == Some("40001"))
}

/// One attempt of [`WebhookDeliveries::once_with_writes`] on PostgreSQL: the claim (when there
/// is a delivery), the work and the mark in one REPEATABLE READ transaction. One snapshot for
/// the whole work: a token a reinstall saves while an uninstall runs is not deleted (the
/// transaction fails to serialize, and its next attempt sees the newer token).
async fn once_on_postgres<T>(
    pool: &sqlx::PgPool,
    claim: Option<&NewClaim<'_>>,
    work: &PostgresWork<T>,
) -> Result<Once<T>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    let claimed = match claim {
        Some(claim) => claim.on_postgres(&mut *tx).await?,
        None => Once::Ran(()),
    };
    let once = match claimed {
        Once::Ran(()) => Once::Ran(work(&mut tx).await?),
        Once::Done => Once::Done,
        Once::InProgress => Once::InProgress,
    };
    tx.commit().await?;
    Ok(once)
}

impl WebhookDeliveries {
    /// The deliveries table in `db`, for requests cut off after `request_timeout`: a claim is
    /// taken over once it is [`CLAIM_MARGIN`] older than that.
    pub fn new(db: Db, request_timeout: Duration) -> Self {
        Self { db, claim_timeout: request_timeout + CLAIM_MARGIN }
    }

    /// The claim's times at `now`: `now` and the moment before which a claim is stale.
    fn times(&self, now: OffsetDateTime) -> (i64, i64) {
        let now = now.unix_timestamp();
        (now, now - self.claim_timeout.as_secs() as i64)
    }

    /// Runs work once per delivery, in one transaction with the delivery's claim and its mark:
    /// all three commit together, or (when the work fails) none does, and Shopify's retry runs
    /// it again. The work comes in the database's two forms ([`SqliteWork`] on the writer
    /// thread, [`PostgresWork`]); the one of the app's database runs. Without a delivery (no
    /// id header), the work just runs.
    pub async fn once_with_writes<T: Send + 'static>(
        &self,
        delivery: Option<Delivery>,
        now: OffsetDateTime,
        on_sqlite: SqliteWork<T>,
        on_postgres: PostgresWork<T>,
    ) -> Result<Once<T>, StoreError> {
        let (now, stale_before) = self.times(now);
        let claim_id = crate::sessions::random_token();
        match &self.db {
            Db::Sqlite { writer, .. } => {
                writer
                    .run(move |db| {
                        let claim = match &delivery {
                            Some(delivery) => NewClaim { delivery, claim_id: &claim_id, now, stale_before, done: true }
                                .on_sqlite(db)?,
                            None => Once::Ran(()),
                        };
                        match claim {
                            Once::Ran(()) => on_sqlite(db).map(Once::Ran),
                            Once::Done => Ok(Once::Done),
                            Once::InProgress => Ok(Once::InProgress),
                        }
                    })
                    .await
            }
            Db::Postgres(pool) => {
                let claim = delivery.as_ref().map(|delivery| NewClaim {
                    delivery,
                    claim_id: &claim_id,
                    now,
                    stale_before,
                    done: true,
                });
                // A transaction that could not serialize (another instance wrote the same rows
                // meanwhile) runs again and then sees what the other committed.
                let mut attempts = 1;
                loop {
                    match once_on_postgres(pool, claim.as_ref(), &on_postgres).await {
                        Err(error) if is_serialization_failure(&error) && attempts < SERIALIZATION_ATTEMPTS => {
                            attempts += 1;
                        }
                        outcome => return Ok(outcome?),
                    }
                }
            }
        }
    }

    /// Marks a delivery whose work writes nothing (it logs, say) done: `Ran(())` the first
    /// time, [`Once::Done`] after.
    pub async fn mark_once(&self, delivery: Option<Delivery>, now: OffsetDateTime) -> Result<Once<()>, StoreError> {
        self.once_with_writes(delivery, now, Box::new(|_| Ok(())), Box::new(|_| Box::pin(async { Ok(()) }))).await
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
                self.on_claim(&claim, FINISH).await?;
                Ok(Once::Ran(value))
            }
            Err(error) => {
                self.on_claim(&claim, RELEASE).await?;
                Err(error)
            }
        }
    }

    /// Claims `delivery` at `now` for [`WebhookDeliveries::once`]; the claim when it is the
    /// caller's.
    async fn claim(&self, delivery: Delivery, now: OffsetDateTime) -> Result<Once<ClaimId>, StoreError> {
        let (now, stale_before) = self.times(now);
        let claim_id = crate::sessions::random_token();
        let claim = match &self.db {
            Db::Sqlite { writer, .. } => {
                let mine = claim_id.clone();
                let delivery = delivery.clone();
                writer
                    .run(move |db| {
                        NewClaim { delivery: &delivery, claim_id: &mine, now, stale_before, done: false }.on_sqlite(db)
                    })
                    .await?
            }
            Db::Postgres(pool) => {
                NewClaim { delivery: &delivery, claim_id: &claim_id, now, stale_before, done: false }
                    .on_postgres(pool)
                    .await?
            }
        };
        Ok(claim.map(|()| ClaimId { webhook_id: delivery.webhook_id, claim_id }))
    }

    /// Runs `sql` ([`FINISH`] or [`RELEASE`]) on the row of `claim`, bound to its delivery and
    /// claim ids: nothing happens when the claim was taken over meanwhile.
    async fn on_claim(&self, claim: &ClaimId, sql: &'static str) -> Result<(), StoreError> {
        let ClaimId { webhook_id, claim_id } = claim.clone();
        match &self.db {
            Db::Sqlite { writer, .. } => {
                writer.run(move |db| db.prepare_cached(sql)?.execute(params![webhook_id, claim_id])).await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(sql).bind(webhook_id).bind(claim_id).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Forgets the delivery ids received more than [`RETENTION`] before `now`. Returns how many.
    pub async fn forget_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let before = now.unix_timestamp() - RETENTION.as_secs() as i64;
        let deleted = on_pool!(&self.db, pool => sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn deliveries() -> (WebhookDeliveries, tempfile::TempDir) {
        let folder = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
        let url = format!("sqlite:{}", folder.path().join("app.db").display());
        let db = crate::db::connect(&url, 1).await.unwrap_or_else(|error| panic!("database: {error}"));
        (WebhookDeliveries::new(db, Duration::from_secs(50)), folder)
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000 + seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn delivery(id: &str) -> Delivery {
        Delivery { webhook_id: id.to_owned(), topic: "app/uninstalled".to_owned(), shop: "s1".to_owned() }
    }

    async fn mark(deliveries: &WebhookDeliveries, id: &str, at: OffsetDateTime) -> Option<Once<()>> {
        deliveries.mark_once(Some(delivery(id)), at).await.ok()
    }

    /// `write` on SQLite (these tests' database); never runs on PostgreSQL.
    async fn with_writes<T: Send + 'static>(
        deliveries: &WebhookDeliveries,
        id: Option<&str>,
        at: OffsetDateTime,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Once<T>, StoreError> {
        let unused: PostgresWork<T> = Box::new(|_| Box::pin(async { Err(sqlx::Error::PoolClosed) }));
        deliveries.once_with_writes(id.map(delivery), at, Box::new(write), unused).await
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
        deliveries.on_claim(&first, RELEASE).await.unwrap_or_else(|error| panic!("{error}"));
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
        assert!(with_writes(&deliveries, Some("d1"), at(0), write(true)).await.is_err());
        assert_eq!(
            with_writes(&deliveries, Some("d1"), at(1), write(false)).await.ok(),
            Some(Once::Ran(1)),
            "the failed job left neither its claim nor its row"
        );
        assert_eq!(with_writes(&deliveries, Some("d1"), at(2), write(false)).await.ok(), Some(Once::Done));
        assert_eq!(with_writes(&deliveries, None, at(3), write(false)).await.ok(), Some(Once::Ran(2)));
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
        deliveries.on_claim(&stale, RELEASE).await.unwrap_or_else(|error| panic!("{error}"));
        deliveries.on_claim(&stale, FINISH).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(mark(&deliveries, "d1", later).await, Some(Once::InProgress));
        deliveries.on_claim(&current, FINISH).await.unwrap_or_else(|error| panic!("{error}"));
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
