//! [`Writer`]: one SQLite connection on its own thread runs the writes of the hot paths
//! (webhook deliveries and what they delete). Every job waiting when a transaction starts goes
//! into it (group commit), and each job is answered only once that transaction is committed:
//! what the app answered 200 to is in the write-ahead log and survives `kill -9`.
//!
//! Why a thread and not the pool: each statement through the async pool is a round trip to
//! that connection's thread, and concurrent writers on several connections wait for SQLite's
//! single write lock by sleeping. Here a job runs its statements in place, one after the other,
//! and a batch of them shares one commit.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::tokens::StoreError;

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 256;
/// Most jobs waiting for the writer; past it a job is refused at once ([`StoreError::Busy`])
/// instead of queueing while, say, another process holds SQLite's write lock.
pub const QUEUE: usize = 4096;

/// How a job's outcome reaches its caller once its transaction's fate is known.
type Delivery = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A job waiting for the writer, with the channel its caller waits on.
trait WriteJob: Send {
    /// Whether the caller stopped waiting (its request was cut off): the job is not run.
    fn caller_gone(&self) -> bool;
    /// Runs the job; says whether it succeeded, and how to deliver its outcome.
    fn run(self: Box<Self>, db: &Connection) -> (bool, Delivery);
    /// Answers the caller without running the job.
    fn fail(self: Box<Self>, error: StoreError);
}

struct Pending<F, T> {
    job: F,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> WriteJob for Pending<F, T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn caller_gone(&self) -> bool {
        self.answer.is_closed()
    }

    fn run(self: Box<Self>, db: &Connection) -> (bool, Delivery) {
        let Pending { job, answer } = *self;
        match job(db) {
            Ok(value) => (true, Box::new(move |committed| drop(answer.send(committed.map(|()| value))))),
            Err(error) => (false, Box::new(move |_| drop(answer.send(Err(error.into()))))),
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.answer.send(Err(error));
    }
}

/// The handle to the writer thread. Cheap to clone; the thread stops when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::SyncSender<Box<dyn WriteJob>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens the (migrated) database file at `path` on a new thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // Room for every statement the jobs prepare (the default keeps 16).
        connection.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = mpsc::sync_channel::<Box<dyn WriteJob>>(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run(connection, &queue))
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(Self { jobs })
    }

    /// Runs `job` in the next transaction and returns its result once that transaction is
    /// committed. A job that fails is rolled back alone (a savepoint of its own); the others
    /// of its batch commit. A job whose caller stopped waiting before it ran is not run. Keep
    /// jobs short: they run one after the other.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.jobs.try_send(Box::new(Pending { job, answer })).map_err(|error| match error {
            mpsc::TrySendError::Full(_) => StoreError::Busy,
            mpsc::TrySendError::Disconnected(_) => StoreError::WriterStopped,
        })?;
        answered.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The writer thread: waits for a job, takes every other job already waiting (up to
/// [`MAX_BATCH`]), runs them in one transaction, commits, then answers them all.
fn run(mut connection: Connection, queue: &mpsc::Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            batch.push(job);
        }
        batch.retain(|job| !job.caller_gone());
        if !batch.is_empty() {
            run_batch(&mut connection, batch);
        }
    }
}

/// Runs `batch` in one transaction, each job under its own savepoint, and answers every job
/// once the transaction's fate is known.
fn run_batch(connection: &mut Connection, batch: Vec<Box<dyn WriteJob>>) {
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(error) => return fail_all(batch, &error),
    };
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        // One name for every job's savepoint: each is released before the next one starts.
        // Prepared once, not parsed per job.
        if let Err(error) = transaction.prepare_cached("SAVEPOINT job").and_then(|mut savepoint| savepoint.execute([]))
        {
            job.fail(error.into());
            continue;
        }
        // A job that panics is rolled back like one that failed; its caller sees the writer's
        // error, and the thread goes on.
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&transaction)));
        let ended = match finished {
            Ok((true, _)) => transaction.prepare_cached("RELEASE job").and_then(|mut release| release.execute([])),
            _ => transaction.execute_batch("ROLLBACK TO job; RELEASE job").map(|()| 0),
        };
        if let Ok((_, deliver)) = finished {
            deliveries.push(deliver);
        }
        // Some errors (I/O, a full disk) roll the whole transaction back: every job of the
        // batch is lost, and none may be told otherwise.
        if ended.is_err() || transaction.is_autocommit() {
            let error = ended.err().unwrap_or(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back".to_owned()),
            ));
            for deliver in deliveries {
                deliver(Err(StoreError::Writer(clone_error(&error))));
            }
            return fail_all(jobs.collect(), &error);
        }
    }
    let committed = transaction.commit();
    for deliver in deliveries {
        deliver(committed.as_ref().copied().map_err(|error| StoreError::Writer(clone_error(error))));
    }
}

/// Answers every job of `jobs` with `error`, running none.
fn fail_all(jobs: Vec<Box<dyn WriteJob>>, error: &rusqlite::Error) {
    for job in jobs {
        job.fail(StoreError::Writer(clone_error(error)));
    }
}

/// rusqlite errors are not `Clone`; every job of a failed batch gets its own copy.
fn clone_error(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let folder = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = folder.path().join("w.db");
        let setup = Connection::open(&path).unwrap_or_else(|error| panic!("{error}"));
        setup.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)").unwrap_or_else(|error| panic!("{error}"));
        (Writer::open(&path).unwrap_or_else(|error| panic!("{error}")), folder)
    }

    fn count(folder: &tempfile::TempDir) -> i64 {
        let reader = Connection::open(folder.path().join("w.db")).unwrap_or_else(|error| panic!("{error}"));
        reader.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0)).unwrap_or_else(|error| panic!("{error}"))
    }

    #[tokio::test]
    async fn concurrent_jobs_commit_and_a_failing_one_rolls_back_alone() {
        let (writer, folder) = writer();
        let jobs = (0..50).map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |db| {
                        db.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        // Every tenth job inserts a second row, then fails: both are undone.
                        if n % 10 == 0 {
                            db.execute("INSERT INTO t (n) VALUES (?1)", [n + 1000])?;
                            db.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        }
                        Ok(n)
                    })
                    .await
            })
        });
        let mut failed = 0;
        for job in jobs {
            match job.await.unwrap_or_else(|error| panic!("{error}")) {
                Ok(_) => {}
                Err(StoreError::Writer(_)) => failed += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(failed, 5);
        assert_eq!(count(&folder), 45, "each answered job is committed, each failed one left nothing");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_writer() {
        let (writer, folder) = writer();
        let panicked = writer.run(|_| -> rusqlite::Result<()> { panic!("a bug in a job") }).await;
        assert!(matches!(panicked, Err(StoreError::WriterStopped)));
        writer.run(|db| db.execute("INSERT INTO t (n) VALUES (1)", [])).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(count(&folder), 1);
    }

    /// An error that rolls the whole transaction back (here an interrupt; in production a full
    /// disk or an I/O error) fails every job of the batch: none is committed behind its
    /// caller's back, none is told it succeeded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_transaction_fails_every_job_of_its_batch() {
        let folder = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = folder.path().join("w.db");
        let setup = Connection::open(&path).unwrap_or_else(|error| panic!("{error}"));
        setup.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)").unwrap_or_else(|error| panic!("{error}"));
        let writer = Writer::open(&path).unwrap_or_else(|error| panic!("{error}"));
        // Holds the writer so that the next three jobs land in one batch.
        let first = writer.clone();
        let gate = tokio::spawn(async move {
            first
                .run(|_| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let spawn_insert = |sql: &'static str, interrupt: bool| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |db| {
                        if interrupt {
                            let handle = db.get_interrupt_handle();
                            std::thread::spawn(move || {
                                std::thread::sleep(Duration::from_millis(30));
                                handle.interrupt();
                            });
                        }
                        db.execute(sql, [])
                    })
                    .await
            })
        };
        let before = spawn_insert("INSERT INTO t VALUES (1)", false);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let interrupted = spawn_insert(
            "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1000 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
            true,
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        let after = spawn_insert("INSERT INTO t VALUES (3)", false);
        let _ = gate.await;
        let outcomes = [before.await, interrupted.await, after.await].map(|joined| joined.ok().map(|r| r.is_ok()));
        let reader = Connection::open(&path).unwrap_or_else(|error| panic!("{error}"));
        let rows: i64 = reader.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0)).unwrap_or(-1);
        assert_eq!(outcomes, [Some(false); 3], "every job of the rolled-back batch fails");
        assert_eq!(rows, 0, "and none of them is committed");
    }
}
