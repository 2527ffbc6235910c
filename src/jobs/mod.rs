//! Durable background jobs, on the app's own database (SQLite or PostgreSQL: the `jobs` table).
//!
//! A job is a row: a kind (`products/update`, `housekeeping`...), an optional shop and a JSON
//! payload. Workers in the app process ([`run_workers`]) claim due rows, run the kind's handler
//! from the [`JobRegistry`], and delete the row when it succeeds. A failed attempt is retried
//! after an exponential backoff with jitter; after the last attempt the row stays, marked
//! failed with its last error (the dead-letter list, [`Jobs::failed`]). A claimed row holds a
//! lease (`JOB_LEASE_SECS`, the visibility timeout) that its worker renews while the attempt
//! runs: the job of a worker that died (`kill -9`, a lost machine) runs again once the lease
//! ran out. So a job runs at least once, and may run again after a crash: handlers must be
//! idempotent.
//!
//! Webhook deliveries become jobs in the same transaction as their claim
//! ([`Jobs::enqueue_delivery`]), so a delivery answered 200 is never lost; periodic jobs
//! ([`JobRegistry::every`]) are enqueued once per period across every instance.

mod worker;

pub use worker::{Outcome, run_due, run_workers};

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::config::JobSettings;
use crate::db::{Db, on_pool};
use crate::deliveries::{Delivery, Once, WebhookDeliveries};
use crate::error::AppError;
use crate::shopify::clock::Clock;
use crate::shopify::http::BoxFuture;
use crate::state::AppState;
use crate::tokens::{StoreError, TokenError};

/// What a job handler is: an async function of the app's state and the job.
pub type JobHandler = Arc<dyn Fn(AppState, Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// How long a failed job is kept in the dead-letter list before housekeeping forgets it.
pub const FAILED_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Why an attempt failed, as its handler says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a network failure, Shopify throttling, a busy database).
    #[error("{0}")]
    Retry(String),
    /// Another attempt would fail the same way (a payload that does not parse, a shop without
    /// a token): the job is kept as failed at once.
    #[error("{0}")]
    Fail(String),
}

impl JobError {
    /// A failure worth another attempt.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        Self::Retry(reason.to_string())
    }

    /// A failure another attempt would repeat.
    pub fn fail(reason: impl std::fmt::Display) -> Self {
        Self::Fail(reason.to_string())
    }
}

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        Self::retry(error)
    }
}

impl From<AppError> for JobError {
    /// A shop without a usable offline token cannot be helped by retrying (the merchant must
    /// open the app); everything else may pass.
    fn from(error: AppError) -> Self {
        match error {
            AppError::Token(error @ TokenError::NoOfflineToken) => Self::fail(error),
            error => Self::retry(error),
        }
    }
}

impl From<crate::web::admin_api::GraphqlError> for JobError {
    /// A failed call may pass; refused input or an answer of another shape would repeat.
    fn from(error: crate::web::admin_api::GraphqlError) -> Self {
        use crate::web::admin_api::GraphqlError;
        match error {
            GraphqlError::App(error) => error.into(),
            GraphqlError::Failed(_) | GraphqlError::Download(_) => Self::retry(error),
            GraphqlError::UserErrors(_) | GraphqlError::Shape(_) => Self::fail(error),
        }
    }
}

impl From<EnqueueError> for JobError {
    fn from(error: EnqueueError) -> Self {
        match error {
            EnqueueError::UnknownKind(_) | EnqueueError::Payload(_) => Self::fail(error),
            EnqueueError::Store(error) => error.into(),
        }
    }
}

/// Why a job could not be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// No handler is registered for the kind (a typo, or a missing line in
    /// `app_jobs::registry`).
    #[error("no handler is registered for job kind {0:?}")]
    UnknownKind(String),
    /// The payload could not be written as JSON.
    #[error("the job's payload cannot be written as JSON: {0}")]
    Payload(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A claimed job, as its handler gets it. `Debug` shows the payload's length only (it may
/// hold personal data).
#[derive(Clone)]
pub struct Job {
    id: i64,
    kind: String,
    shop: Option<String>,
    /// Shared: the worker and the handler's task each hold the job.
    payload: Arc<str>,
    attempt: u32,
    max_attempts: u32,
    created_at: i64,
    /// This attempt's lease: one per job, so that a takeover of one job of a claimed batch is
    /// seen by its renewal.
    lease_id: String,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("shop", &self.shop)
            .field("payload_bytes", &self.payload.len())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// The row's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The kind: a webhook topic or a name the app chose.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The shop the job is for; a job enqueued without one fails for good.
    pub fn shop(&self) -> Result<&str, JobError> {
        self.shop.as_deref().ok_or_else(|| JobError::fail("the job has no shop"))
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the job was enqueued (for a webhook, when the delivery was received).
    pub fn created_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The payload read as `T` (a webhook's body, or what [`NewJob::payload`] stored); one that
    /// does not fit fails the job for good.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_str(&self.payload).map_err(|error| JobError::fail(format!("payload: {}", shape_error(&error))))
    }
}

/// What is wrong with a JSON text, without quoting it: serde's messages quote the values they
/// met, and a payload may hold personal data that must not reach a log or the dead-letter list.
pub fn shape_error(error: &serde_json::Error) -> String {
    let category = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "not of the expected shape",
        serde_json::error::Category::Eof => "cut short",
    };
    // A missing field is named (a field name is no personal data); any other message may quote a value.
    let text = error.to_string();
    let missing = text.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    let detail = missing.map(|field| format!(": missing field `{field}`")).unwrap_or_default();
    match error.line() {
        // From a `Value` rather than text: no position to give.
        0 => format!("{category}{detail}"),
        line => format!("{category}{detail} (line {line}, column {})", error.column()),
    }
}

/// A job to enqueue: `NewJob::new("sync_orders").shop(shop).payload(json!({...}))?`.
#[derive(Clone)]
pub struct NewJob {
    kind: String,
    shop: Option<String>,
    payload: String,
    delay: Duration,
}

impl NewJob {
    /// A job of `kind` (registered in the [`JobRegistry`]), for no shop, with payload `{}`,
    /// due now.
    pub fn new(kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), shop: None, payload: "{}".to_owned(), delay: Duration::ZERO }
    }

    /// For `shop`.
    pub fn shop(mut self, shop: impl Into<String>) -> Self {
        self.shop = Some(shop.into());
        self
    }

    /// With `payload`, read back with [`Job::payload`]; a value serde cannot write as JSON (a
    /// map with non-text keys) is refused.
    pub fn payload(mut self, payload: impl Serialize) -> Result<Self, EnqueueError> {
        self.payload = serde_json::to_string(&payload).map_err(|error| EnqueueError::Payload(shape_error(&error)))?;
        Ok(self)
    }

    /// With a payload that is JSON text already (a webhook's body).
    pub fn raw_payload(mut self, json: String) -> Self {
        self.payload = json;
        self
    }

    /// Due `delay` from now.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl std::fmt::Debug for NewJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewJob")
            .field("kind", &self.kind)
            .field("shop", &self.shop)
            .field("payload_bytes", &self.payload.len())
            .field("delay", &self.delay)
            .finish()
    }
}

/// Which shops a periodic job runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once per period, for no shop.
    Global,
    /// Once per period for every shop holding an offline token.
    PerShop,
}

/// A job enqueued every `every`.
#[derive(Debug, Clone)]
struct Periodic {
    kind: &'static str,
    every: Duration,
    scope: Scope,
}

/// The job kinds the app knows, with their handlers, which of them are webhook topics, and
/// which run periodically. The template's is `crate::app_jobs::registry`.
#[derive(Clone, Default)]
pub struct JobRegistry {
    handlers: HashMap<&'static str, JobHandler>,
    webhook_topics: Vec<&'static str>,
    periodic: Vec<Periodic>,
}

impl JobRegistry {
    /// No kinds yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `handler` for jobs of `kind`.
    pub fn on<F, Fut>(mut self, kind: &'static str, handler: F) -> Self
    where
        F: Fn(AppState, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.handlers.insert(kind, Arc::new(move |state, job| Box::pin(handler(state, job))));
        self
    }

    /// Runs `handler` for each delivery of the webhook `topic` (`products/update`), received at
    /// `POST /webhooks/{topic}` (the compliance topics at `POST /webhooks/compliance`); the
    /// payload is the webhook's body. Subscribe to the topic in `shopify.app.toml`.
    pub fn webhook<F, Fut>(mut self, topic: &'static str, handler: F) -> Self
    where
        F: Fn(AppState, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.webhook_topics.push(topic);
        self.on(topic, handler)
    }

    /// Enqueues a job of `kind` once every `every` (periods counted from the Unix epoch), for
    /// no shop or for each shop, whatever the number of instances.
    pub fn every<F, Fut>(mut self, kind: &'static str, every: Duration, scope: Scope, handler: F) -> Self
    where
        F: Fn(AppState, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.periodic.push(Periodic { kind, every: every.max(Duration::from_secs(1)), scope });
        self.on(kind, handler)
    }

    /// The webhook topics that have a handler.
    pub fn webhook_topics(&self) -> &[&'static str] {
        &self.webhook_topics
    }

    /// Whether `kind` has a handler.
    pub fn knows(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    fn handler(&self, kind: &str) -> Option<&JobHandler> {
        self.handlers.get(kind)
    }
}

crate::db::from_row! {
    /// How many jobs are waiting, running and failed: `GET /ops/jobs`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    pub struct JobCounts {
        /// Waiting for their time or for a worker.
        pub pending: i64,
        /// Claimed by a worker (or by one that died, until its lease runs out).
        pub running: i64,
        /// Out of attempts: the dead-letter list.
        pub failed: i64,
    }
}

crate::db::from_row! {
    /// A job that ran out of attempts.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct FailedJob {
        /// The row's id (for `POST /ops/jobs/{id}/retry`).
        pub id: i64,
        /// The kind.
        pub kind: String,
        /// The shop, if any.
        pub shop: Option<String>,
        /// Attempts made.
        pub attempts: i64,
        /// The last attempt's error.
        pub last_error: Option<String>,
        /// When it failed (Unix seconds).
        pub failed_at: i64,
    }
}

/// Inserts a job (`$1` kind, `$2` shop, `$3` payload, `$4` attempts allowed, `$5` due at,
/// `$6` now); parameters first appear in order, for the SQLite writer.
const INSERT: &str = "INSERT INTO jobs (kind, shop, payload, max_attempts, run_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";

/// Extends the lease of running job `$2` (lease `$3`) to `$1`.
const RENEW: &str = "UPDATE jobs SET run_at = $1 WHERE id = $2 AND lease_id = $3";

/// Claims the `$4` jobs due first (`$3` now), leasing each until `$2` under a lease id of its
/// own (`$1`, a random prefix, and its id). On SQLite the writer runs it alone; on PostgreSQL
/// the due rows are picked once (`MATERIALIZED`: a re-scanned `IN (... SKIP LOCKED)` could
/// pick more than `$4`) and locked without waiting, so that instances claim different rows.
const CLAIM_SQLITE: &str = "UPDATE jobs SET lease_id = CAST($1 AS TEXT) || '-' || CAST(id AS TEXT), run_at = $2,
       attempts = attempts + 1, updated_at = $3
     WHERE id IN (SELECT id FROM jobs WHERE failed = FALSE AND run_at <= $3 ORDER BY run_at, id LIMIT $4)
     RETURNING id, kind, shop, payload, attempts, max_attempts, created_at, lease_id";
const CLAIM_POSTGRES: &str = "WITH due AS MATERIALIZED (
       SELECT id FROM jobs WHERE failed = FALSE AND run_at <= $3 ORDER BY run_at, id LIMIT $4
       FOR UPDATE SKIP LOCKED)
     UPDATE jobs SET lease_id = CAST($1 AS TEXT) || '-' || CAST(jobs.id AS TEXT), run_at = $2,
       attempts = attempts + 1, updated_at = $3
     FROM due WHERE jobs.id = due.id
     RETURNING jobs.id, jobs.kind, jobs.shop, jobs.payload, jobs.attempts, jobs.max_attempts, jobs.created_at,
       jobs.lease_id";

/// Deletes a job that succeeded, while its lease (`$2`) is still the worker's.
const COMPLETE: &str = "DELETE FROM jobs WHERE id = $1 AND lease_id = $2";
/// Puts leased job `$5` (lease `$6`) back, due at `$1`, with `$2` as its last error when not
/// NULL, and `$3` attempts given back (1 when the attempt did not count: a shutdown).
/// Parameters first appear in order in each statement the writer runs (it binds by position).
const PUT_BACK: &str = "UPDATE jobs SET lease_id = NULL, run_at = $1, last_error = COALESCE($2, last_error),
       attempts = attempts - $3, updated_at = $4
     WHERE id = $5 AND lease_id = $6";
/// Keeps leased job `$3` (lease `$4`) as failed, with its last error.
const FAIL: &str = "UPDATE jobs SET lease_id = NULL, failed = TRUE, last_error = $1, updated_at = $2
     WHERE id = $3 AND lease_id = $4";
const COUNTS: &str = "SELECT COUNT(*) FILTER (WHERE NOT failed AND lease_id IS NULL) AS pending,
       COUNT(*) FILTER (WHERE NOT failed AND lease_id IS NOT NULL) AS running,
       COUNT(*) FILTER (WHERE failed) AS failed
     FROM jobs";
const FAILED: &str = "SELECT id, kind, shop, attempts, last_error, updated_at AS failed_at FROM jobs
     WHERE failed ORDER BY updated_at DESC, id DESC LIMIT $1";
/// Gives failed job `$2` a new set of attempts, due at `$1`.
const RETRY_FAILED: &str =
    "UPDATE jobs SET failed = FALSE, attempts = 0, run_at = $1, updated_at = $1 WHERE id = $2 AND failed";
/// Deletes the jobs of shop `$1` that no worker runs (`shop/redact`, see `shop_data`).
pub const DELETE_SHOP_WAITING: &str = "DELETE FROM jobs WHERE shop = $1 AND lease_id IS NULL";
const FORGET_FAILED: &str = "DELETE FROM jobs WHERE failed AND updated_at < $1";
/// Takes period `$2` of periodic job `$1`: a row comes back only for the first instance. A
/// stored period more than `$3` periods (an hour) ahead, written by a clock that was wrong, is
/// taken over too, or the job would stop until time caught up.
const TAKE_PERIOD: &str = "INSERT INTO job_periods (name, period) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET period = excluded.period
       WHERE job_periods.period < excluded.period OR job_periods.period > excluded.period + $3
     RETURNING period";
/// One job of kind `$1` with payload `$2` per shop holding an offline token (`$3` attempts
/// allowed, `$4` now).
const INSERT_PER_SHOP: &str = "INSERT INTO jobs (kind, shop, payload, max_attempts, run_at, created_at, updated_at)
     SELECT DISTINCT CAST($1 AS TEXT), shop, CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS BIGINT),
       CAST($4 AS BIGINT), CAST($4 AS BIGINT)
     FROM access_tokens WHERE access_mode = 'offline'";

/// Inserts a [`JobRow`] through a sqlx executor of either backend (one source, type-checked
/// against each); answers its id.
macro_rules! insert_row {
    ($row:expr, $db:expr) => {
        sqlx::query_scalar::<_, i64>(INSERT)
            .bind(&$row.kind)
            .bind(&$row.shop)
            .bind(&$row.payload)
            .bind($row.max_attempts)
            .bind($row.run_at)
            .bind($row.now)
            .fetch_one($db)
    };
}

/// A value bound to a statement run by [`Jobs::execute`], on either backend.
#[derive(Debug, Clone)]
enum Arg {
    Int(i64),
    Text(Option<String>),
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Int(value) => value.to_sql(),
            Arg::Text(value) => value.to_sql(),
        }
    }
}

/// A job row about to be inserted.
#[derive(Debug, Clone)]
struct JobRow {
    kind: String,
    shop: Option<String>,
    payload: String,
    max_attempts: i64,
    run_at: i64,
    now: i64,
}

impl JobRow {
    fn insert_on_sqlite(&self, db: &Connection) -> rusqlite::Result<i64> {
        db.prepare_cached(INSERT)?
            .query_row(params![self.kind, self.shop, self.payload, self.max_attempts, self.run_at, self.now], |row| {
                row.get(0)
            })
    }
}

/// The job queue: enqueue, inspect, and (for the workers) claim and settle jobs. Cheap to
/// clone; `state.jobs`.
#[derive(Clone)]
pub struct Jobs {
    db: Db,
    registry: Arc<JobRegistry>,
    settings: JobSettings,
    clock: Arc<dyn Clock>,
    /// Wakes this process's workers when it enqueues a job.
    wake: Arc<Notify>,
    /// The last period each periodic job was seen taken, to ask the database only when a new
    /// one starts.
    periods_seen: Arc<Mutex<HashMap<&'static str, i64>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Jobs {
    /// The queue in `db`, running the handlers of `registry`.
    pub fn new(db: Db, registry: JobRegistry, settings: JobSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            registry: Arc::new(registry),
            settings,
            clock,
            wake: Arc::new(Notify::new()),
            periods_seen: Arc::default(),
        }
    }

    /// The kinds this app knows.
    pub fn registry(&self) -> &JobRegistry {
        &self.registry
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn row(&self, job: NewJob) -> Result<JobRow, EnqueueError> {
        if !self.registry.knows(&job.kind) {
            return Err(EnqueueError::UnknownKind(job.kind));
        }
        let now = self.now();
        Ok(JobRow {
            kind: job.kind,
            shop: job.shop,
            payload: job.payload,
            max_attempts: self.settings.max_attempts.into(),
            run_at: now.saturating_add(i64::try_from(job.delay.as_secs()).unwrap_or(i64::MAX)),
            now,
        })
    }

    /// Stores `job` (durably: it runs even if the app stops now) and wakes a worker. Returns
    /// the job's id. On SQLite the insert is a job of the writer thread.
    pub async fn enqueue(&self, job: NewJob) -> Result<i64, EnqueueError> {
        let row = self.row(job)?;
        let id = match &self.db {
            Db::Sqlite { writer, .. } => writer.run(move |db| row.insert_on_sqlite(db)).await?,
            Db::Postgres(pool) => insert_row!(row, pool).await.map_err(StoreError::from)?,
        };
        self.wake.notify_one();
        Ok(id)
    }

    /// Stores `job` once per webhook `delivery`, in one transaction with the delivery's claim
    /// and done mark: a repeat of the delivery enqueues nothing ([`Once::Done`]).
    pub async fn enqueue_delivery(
        &self,
        deliveries: &WebhookDeliveries,
        delivery: Option<Delivery>,
        job: NewJob,
    ) -> Result<Once<i64>, EnqueueError> {
        let row = Arc::new(self.row(job)?);
        let on_postgres = row.clone();
        let once = deliveries
            .once_with_writes(
                delivery,
                self.clock.now(),
                Box::new(move |db| row.insert_on_sqlite(db)),
                Box::new(move |tx| {
                    let row = on_postgres.clone();
                    Box::pin(async move { insert_row!(row, tx).await })
                }),
            )
            .await?;
        if let Once::Ran(_) = once {
            self.wake.notify_one();
        }
        Ok(once)
    }

    /// How many jobs wait, run and failed.
    pub async fn counts(&self) -> Result<JobCounts, StoreError> {
        Ok(on_pool!(&self.db, pool => sqlx::query_as(COUNTS).fetch_one(pool).await)?)
    }

    /// The most recent failed jobs, at most `limit`.
    pub async fn failed(&self, limit: i64) -> Result<Vec<FailedJob>, StoreError> {
        Ok(on_pool!(&self.db, pool => sqlx::query_as(FAILED).bind(limit).fetch_all(pool).await)?)
    }

    /// Gives failed job `id` a new set of attempts, due now; false when no failed job has
    /// that id.
    pub async fn retry_failed(&self, id: i64) -> Result<bool, StoreError> {
        let retried = self.execute(RETRY_FAILED, vec![Arg::Int(self.now()), Arg::Int(id)]).await? > 0;
        if retried {
            self.wake.notify_one();
        }
        Ok(retried)
    }

    /// Forgets failed jobs older than [`FAILED_RETENTION`]. Returns how many.
    pub async fn forget_old_failures(&self) -> Result<u64, StoreError> {
        let before = self.now() - FAILED_RETENTION.as_secs() as i64;
        self.execute(FORGET_FAILED, vec![Arg::Int(before)]).await
    }

    /// Enqueues the periodic jobs whose period started since they were last enqueued, unless
    /// another instance did. Returns how many jobs it enqueued.
    pub async fn schedule_due(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let mut enqueued = 0;
        for periodic in &self.registry.periodic {
            let period = now.div_euclid(periodic.every.as_secs() as i64);
            let seen =
                self.periods_seen.lock().unwrap_or_else(|poison| poison.into_inner()).get(periodic.kind).copied();
            if seen.is_some_and(|seen| seen >= period) {
                continue;
            }
            enqueued += self.take_period(periodic, period, now).await?;
            self.periods_seen.lock().unwrap_or_else(|poison| poison.into_inner()).insert(periodic.kind, period);
        }
        if enqueued > 0 {
            self.wake.notify_one();
        }
        Ok(enqueued)
    }

    /// Takes `period` of `periodic` and enqueues its jobs, in one transaction (on SQLite, one
    /// job of the writer); nothing when another instance took it.
    async fn take_period(&self, periodic: &Periodic, period: i64, now: i64) -> Result<u64, StoreError> {
        let every = periodic.every.as_secs() as i64;
        let payload = serde_json::json!({ "period_start": period * every }).to_string();
        let max_attempts = i64::from(self.settings.max_attempts);
        let ahead = (3600 / every).max(1);
        let (kind, scope) = (periodic.kind, periodic.scope);
        let row = JobRow { kind: kind.to_owned(), shop: None, payload, max_attempts, run_at: now, now };
        let enqueued = match &self.db {
            Db::Sqlite { writer, .. } => {
                writer
                    .run(move |db| {
                        let taken = db
                            .prepare_cached(TAKE_PERIOD)?
                            .query_row(params![kind, period, ahead], |row| row.get::<_, i64>(0))
                            .optional()?;
                        match (taken, scope) {
                            (None, _) => Ok(0),
                            (Some(_), Scope::Global) => row.insert_on_sqlite(db).map(|_| 1),
                            (Some(_), Scope::PerShop) => db
                                .prepare_cached(INSERT_PER_SHOP)?
                                .execute(params![kind, row.payload, max_attempts, now])
                                .map(|inserted| inserted as u64),
                        }
                    })
                    .await?
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let taken: Option<i64> = sqlx::query_scalar(TAKE_PERIOD)
                    .bind(kind)
                    .bind(period)
                    .bind(ahead)
                    .fetch_optional(&mut *tx)
                    .await?;
                let enqueued = match (taken, scope) {
                    (None, _) => 0,
                    (Some(_), Scope::Global) => insert_row!(row, &mut *tx).await.map(|_| 1)?,
                    (Some(_), Scope::PerShop) => sqlx::query(INSERT_PER_SHOP)
                        .bind(kind)
                        .bind(&row.payload)
                        .bind(max_attempts)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                };
                tx.commit().await?;
                enqueued
            }
        };
        if enqueued > 0 {
            tracing::info!(kind, period, jobs = enqueued, "periodic job enqueued");
        }
        Ok(enqueued)
    }

    /// When a lease taken or renewed now runs out.
    fn lease_until(&self) -> i64 {
        self.now() + self.settings.lease.as_secs() as i64
    }

    /// Claims up to `limit` due jobs, the ones due first, each leased for `JOB_LEASE_SECS`.
    /// On SQLite the claim is one job of the writer thread.
    async fn claim(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (now, lease_until, lease_prefix) = (self.now(), self.lease_until(), crate::sessions::random_token());
        let limit = limit as i64;
        type Claimed = (i64, String, Option<String>, String, i64, i64, i64, String);
        let claimed: Vec<Claimed> = match &self.db {
            Db::Sqlite { writer, .. } => {
                writer
                    .run(move |db| {
                        let mut claim = db.prepare_cached(CLAIM_SQLITE)?;
                        let rows = claim.query_map(params![lease_prefix, lease_until, now, limit], |row| {
                            Ok((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                                row.get(5)?,
                                row.get(6)?,
                                row.get(7)?,
                            ))
                        })?;
                        rows.collect::<rusqlite::Result<Vec<Claimed>>>()
                    })
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(CLAIM_POSTGRES)
                    .bind(&lease_prefix)
                    .bind(lease_until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(claimed
            .into_iter()
            .map(|(id, kind, shop, payload, attempts, max_attempts, created_at, lease_id)| Job {
                id,
                kind,
                shop,
                payload: payload.into(),
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                max_attempts: u32::try_from(max_attempts).unwrap_or(0),
                created_at,
                lease_id,
            })
            .collect())
    }

    /// Runs a statement that writes jobs: on SQLite as a job of the writer thread
    /// (group-committed with the webhook path's writes, never waiting on SQLite's write lock),
    /// on PostgreSQL on the pool. Returns the rows changed.
    async fn execute(&self, sql: &'static str, args: Vec<Arg>) -> Result<u64, StoreError> {
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let changed = writer
                    .run(move |db| db.prepare_cached(sql)?.execute(rusqlite::params_from_iter(args.iter())))
                    .await?;
                Ok(changed as u64)
            }
            Db::Postgres(pool) => {
                let mut query = sqlx::query(sql);
                for arg in args {
                    query = match arg {
                        Arg::Int(value) => query.bind(value),
                        Arg::Text(value) => query.bind(value),
                    };
                }
                Ok(query.execute(pool).await?.rows_affected())
            }
        }
    }

    /// Extends `job`'s lease by `JOB_LEASE_SECS` from now; false when the job no longer holds
    /// it (it was settled, or taken over after the lease ran out).
    async fn renew(&self, job: &Job) -> Result<bool, StoreError> {
        let mut args = vec![Arg::Int(self.lease_until())];
        args.extend(Self::leased(job));
        Ok(self.execute(RENEW, args).await? > 0)
    }

    /// The arguments that name a leased job: its id and lease.
    fn leased(job: &Job) -> [Arg; 2] {
        [Arg::Int(job.id), Arg::Text(Some(job.lease_id.clone()))]
    }

    /// Deletes `job`, done; false when its lease was taken over meanwhile.
    async fn complete(&self, job: &Job) -> Result<bool, StoreError> {
        Ok(self.execute(COMPLETE, Self::leased(job).into()).await? > 0)
    }

    /// Puts `job` back, due `after` from now; with `error`, the attempt counts. False when its
    /// lease was taken over meanwhile.
    async fn put_back(&self, job: &Job, after: Duration, error: Option<&str>) -> Result<bool, StoreError> {
        let now = self.now();
        let mut args = vec![
            Arg::Int(now.saturating_add(after.as_secs() as i64)),
            Arg::Text(error.map(str::to_owned)),
            Arg::Int(i64::from(error.is_none())),
            Arg::Int(now),
        ];
        args.extend(Self::leased(job));
        Ok(self.execute(PUT_BACK, args).await? > 0)
    }

    /// Keeps `job` as failed with `error`; false when its lease was taken over meanwhile.
    async fn fail(&self, job: &Job, error: &str) -> Result<bool, StoreError> {
        let mut args = vec![Arg::Text(Some(error.to_owned())), Arg::Int(self.now())];
        args.extend(Self::leased(job));
        Ok(self.execute(FAIL, args).await? > 0)
    }

    /// The wait before the attempt after `attempt`: [`JobSettings::retry_base`] doubled for
    /// each attempt made, at most [`MAX_BACKOFF`], of which a random part up to half is
    /// taken off (jitter: retries of jobs that failed together spread out).
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self.settings.retry_base.saturating_mul(1 << attempt.saturating_sub(1).min(20));
        let full = doubled.min(MAX_BACKOFF).as_secs();
        let jitter = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), attempt) % (full / 2 + 1);
        Duration::from_secs(full - jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_error_names_a_missing_field_and_quotes_no_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Order {
            id: u64,
            email: String,
        }
        let missing = serde_json::from_str::<Order>(r#"{"id": 1}"#).unwrap_err();
        assert_eq!(shape_error(&missing), "not of the expected shape: missing field `email` (line 1, column 9)");
        let quoted = serde_json::from_str::<Order>(r#"{"id": "jane@example.com", "email": "x"}"#).unwrap_err();
        assert_eq!(shape_error(&quoted), "not of the expected shape (line 1, column 25)");
        let from_value = serde_json::from_value::<Order>(serde_json::json!({"id": 1})).unwrap_err();
        assert_eq!(shape_error(&from_value), "not of the expected shape: missing field `email`");
    }

    /// The numbers of the `$N` parameters of `sql`, in order of appearance.
    fn parameters(sql: &str) -> Vec<u32> {
        sql.split('$')
            .skip(1)
            .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect()
    }

    #[test]
    fn statements_the_writer_runs_number_their_parameters_in_order_of_appearance() {
        for sql in [
            INSERT,
            CLAIM_SQLITE,
            RENEW,
            COMPLETE,
            PUT_BACK,
            FAIL,
            RETRY_FAILED,
            FORGET_FAILED,
            TAKE_PERIOD,
            INSERT_PER_SHOP,
            DELETE_SHOP_WAITING,
        ] {
            let mut seen = 0;
            for number in parameters(sql) {
                assert!(number <= seen + 1, "${number} appears before ${} in {sql}", seen + 1);
                seen = seen.max(number);
            }
        }
    }

    #[test]
    fn retries_wait_twice_as_long_each_time_less_up_to_half_at_random_up_to_an_hour() {
        let settings = JobSettings { retry_base: Duration::from_secs(10), ..JobSettings::default() };
        let clock = Arc::new(crate::shopify::clock::ManualClock::at(0));
        let folder = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = runtime.unwrap_or_else(|error| panic!("{error}"));
        let url = format!("sqlite:{}", folder.path().join("app.db").display());
        let db = runtime.block_on(crate::db::connect(&url, 1)).unwrap_or_else(|error| panic!("{error}"));
        let jobs = Jobs::new(db, JobRegistry::new(), settings, clock);
        for (attempt, full) in [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (40, 3600), (u32::MAX, 3600)] {
            for _ in 0..50 {
                let wait = jobs.backoff(attempt).as_secs();
                assert!(
                    (full - full / 2..=full).contains(&wait),
                    "attempt {attempt}: {wait} s, not in {}..={full}",
                    full / 2
                );
            }
        }
    }
}
