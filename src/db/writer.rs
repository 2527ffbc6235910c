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

/// What a job hands back to the writer: whether it succeeded (its savepoint is kept), and how
/// to deliver its outcome once the transaction's fate is known.
type Finished = (bool, Box<dyn FnOnce(Result<(), StoreError>) + Send>);
type Job = Box<dyn FnOnce(&Connection) -> Finished + Send>;

/// The handle to the writer thread. Cheap to clone; the thread stops when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
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
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run(connection, &queue))
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(Self { jobs })
    }

    /// Runs `job` in the next transaction and returns its result once that transaction is
    /// committed. A job that fails is rolled back alone (a savepoint of its own); the others
    /// of its batch commit. Keep jobs short: they run one after the other.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection| match job(connection) {
            Ok(value) => (
                true,
                Box::new(move |committed: Result<(), StoreError>| {
                    let _ = answer.send(committed.map(|()| value));
                }),
            ),
            Err(error) => (
                false,
                Box::new(move |_| {
                    let _ = answer.send(Err(error.into()));
                }),
            ),
        });
        self.jobs.send(job).map_err(|_| StoreError::WriterStopped)?;
        answered.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The writer thread: waits for a job, takes every other job already waiting (up to
/// [`MAX_BATCH`]), runs them in one transaction, commits, then answers them all.
fn run(mut connection: Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            batch.push(job);
        }
        let (deliveries, committed) = run_batch(&mut connection, batch);
        for deliver in deliveries {
            deliver(committed.as_ref().copied().map_err(|error| StoreError::Writer(clone_error(error))));
        }
    }
}

type Delivery = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Runs `batch` in one transaction, each job under its own savepoint.
fn run_batch(connection: &mut Connection, batch: Vec<Job>) -> (Vec<Delivery>, rusqlite::Result<()>) {
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(error) => {
            let deliveries = batch.into_iter().map(|_| Box::new(|_| {}) as Delivery).collect();
            return (deliveries, Err(error));
        }
    };
    let mut deliveries = Vec::with_capacity(batch.len());
    for (index, job) in batch.into_iter().enumerate() {
        let savepoint = format!("job{index}");
        if let Err(error) = transaction.execute_batch(&format!("SAVEPOINT {savepoint}")) {
            deliveries.push(Box::new(move |_| drop(error)) as Delivery);
            continue;
        }
        // A job that panics is rolled back like one that failed; its caller sees the writer's
        // error, and the thread goes on.
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&transaction)));
        let succeeded = matches!(finished, Ok((true, _)));
        let end = if succeeded {
            format!("RELEASE {savepoint}")
        } else {
            format!("ROLLBACK TO {savepoint}; RELEASE {savepoint}")
        };
        let _ = transaction.execute_batch(&end);
        if let Ok((_, deliver)) = finished {
            deliveries.push(deliver);
        }
    }
    let committed = transaction.commit();
    (deliveries, committed)
}

/// rusqlite errors are not `Clone`; every job of a failed commit gets its own copy.
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
}
