//! The workers: claim due jobs, run their handlers, settle the outcome, one log line per
//! attempt.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::{Job, JobError, Jobs};
use crate::state::AppState;

/// How often idle workers look for jobs that other instances enqueued, retries that came due
/// and leases that ran out (this process's own enqueues wake them at once).
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded: the job is deleted.
    Done,
    /// The handler failed; the job runs again later.
    Retry,
    /// Out of attempts, or a failure another attempt would repeat: the job is kept as failed.
    Failed,
    /// The worker lost the job's lease (taken over, or not renewed in time): the attempt was
    /// stopped and settles nothing; the lease's new holder does.
    Stopped,
}

/// Runs one attempt of `job` and settles it, unless the lease ends first (`held_until`, moved
/// on by each renewal); logs one line with its kind, shop, attempt and outcome (never the
/// payload: it may hold personal data).
async fn attempt(state: AppState, job: Job, held_until: watch::Receiver<Instant>) -> Outcome {
    let jobs = &state.jobs;
    let result = if job.attempt > job.max_attempts {
        Err(JobError::fail("the worker running its last attempt stopped (a crash or a lost machine)"))
    } else {
        match jobs.registry.handler(&job.kind).cloned() {
            // A kind this instance does not know (an older instance during a rolling deploy, or
            // a kind removed from the registry): retried with backoff, so a newer instance can
            // take it, and kept as failed in the end.
            None => Err(JobError::retry(format!("no handler for job kind {:?} in this instance", job.kind))),
            Some(handler) => match run_handler(&state, handler, job.clone(), held_until).await {
                Some(result) => result,
                None => {
                    tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempt, outcome = "stopped",
                        "job attempt: lease lost, stopped; its new holder settles the job");
                    return Outcome::Stopped;
                }
            },
        }
    };
    let (outcome, settled) = match &result {
        Ok(()) => (Outcome::Done, jobs.complete(&job).await),
        Err(JobError::Retry(error)) if job.attempt < job.max_attempts => {
            (Outcome::Retry, jobs.put_back(&job, jobs.backoff(job.attempt), Some(error)).await)
        }
        Err(JobError::Retry(error) | JobError::Fail(error)) => (Outcome::Failed, jobs.fail(&job, error).await),
    };
    let error = result.err().map(|error| error.to_string());
    let shop = job.shop.as_deref().unwrap_or("");
    match outcome {
        Outcome::Done => {
            tracing::info!(job = job.id, kind = %job.kind, shop, attempt = job.attempt, outcome = "done", "job attempt")
        }
        _ => {
            tracing::warn!(job = job.id, kind = %job.kind, shop, attempt = job.attempt, max_attempts = job.max_attempts,
            outcome = ?outcome, error = error.as_deref().unwrap_or(""), "job attempt")
        }
    }
    match settled {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = job.id, "the job's lease was taken over before its outcome was recorded"),
        // The lease runs out and the job runs again: at least once.
        Err(error) => tracing::warn!(job = job.id, %error, "could not record the job's outcome"),
    }
    outcome
}

/// Runs `handler` in a task of its own, so that a panic or the attempt's timeout ends the
/// attempt (as a failure worth retrying) and not the worker; `None` when the lease ended first
/// (the handler is stopped).
async fn run_handler(
    state: &AppState,
    handler: super::JobHandler,
    job: Job,
    held_until: watch::Receiver<Instant>,
) -> Option<Result<(), JobError>> {
    let timeout = state.jobs.settings.timeout;
    let mut task = tokio::spawn(handler(state.clone(), job));
    // However the attempt ends, its handler ends with it.
    let _abort = AbortOnDrop(task.abort_handle());
    tokio::select! {
        joined = &mut task => Some(match joined {
            Ok(result) => result,
            Err(error) if error.is_panic() => Err(JobError::retry("the handler panicked")),
            Err(_) => Err(JobError::retry("the handler was cancelled")),
        }),
        () = tokio::time::sleep(timeout) => Some(Err(JobError::retry(format!("timed out after {} s", timeout.as_secs())))),
        () = lease_ends(held_until) => None,
    }
}

/// Resolves when the instant in `held_until` has passed, following the renewals that move it.
async fn lease_ends(mut held_until: watch::Receiver<Instant>) {
    loop {
        let until = tokio::time::Instant::from_std(*held_until.borrow_and_update());
        tokio::select! {
            () = tokio::time::sleep_until(until) => {
                if *held_until.borrow() <= Instant::now() {
                    return;
                }
            }
            changed = held_until.changed() => {
                if changed.is_err() {
                    // No more renewals: the lease ends at the last instant.
                    tokio::time::sleep_until(until).await;
                    return;
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Enqueues the periodic jobs that are due, then runs every due job here, one after the
/// other, until none is left: for tests and one-off commands (workers do this continuously).
/// Returns each attempt's job kind and outcome, in order.
pub async fn run_due(state: &AppState) -> Result<Vec<(String, Outcome)>, crate::tokens::StoreError> {
    state.jobs.schedule_due().await?;
    let mut outcomes = Vec::new();
    while let Some(job) = state.jobs.claim(1).await?.pop() {
        let kind = job.kind.clone();
        // Each attempt ends before its lease: nothing renews it here.
        let (_renewals, held_until) = watch::channel(Instant::now() + state.jobs.settings.lease * 2 / 3);
        outcomes.push((kind, attempt(state.clone(), job, held_until).await));
        if outcomes.len() >= 10_000 {
            break;
        }
    }
    Ok(outcomes)
}

/// How long after a lease was taken or renewed (measured from before the statement) the
/// worker may still rely on it: two thirds of `JOB_LEASE_SECS`, so that an attempt stops
/// before anyone else may take its job, whatever the database's delay or the rounding of its
/// times to the second.
fn held_for(jobs: &Jobs) -> Duration {
    jobs.settings.lease * 2 / 3
}

/// A running attempt: its job, and where its renewals go.
struct Running {
    job: Job,
    held_until: watch::Sender<Instant>,
}

/// The attempts this instance runs, by task.
#[derive(Default)]
struct Attempts {
    running: HashMap<tokio::task::Id, Running>,
}

impl Attempts {
    fn start(&mut self, tasks: &mut JoinSet<Outcome>, state: &AppState, job: Job, held_until: Instant) {
        let (sender, receiver) = watch::channel(held_until);
        let task = tasks.spawn(attempt(state.clone(), job.clone(), receiver));
        self.running.insert(task.id(), Running { job, held_until: sender });
    }

    /// Forgets an attempt that ended by itself (it settled its job, or stopped when its lease
    /// ended). One that was aborted (shutdown) stays, to be put back.
    fn finished(&mut self, finished: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        let id = match finished {
            Ok((id, _)) => id,
            Err(error) if error.is_panic() => error.id(),
            Err(_) => return,
        };
        self.running.remove(&id);
    }

    /// Renews every running attempt's lease. When the row no longer holds it (taken over),
    /// the attempt is told at once; when the database fails, its deadline stays, and the
    /// attempt stops when it passes.
    async fn renew(&self, jobs: &Jobs) {
        for Running { job, held_until } in self.running.values() {
            let asked_at = Instant::now();
            match jobs.renew(job).await {
                Ok(true) => {
                    held_until.send_replace(asked_at + held_for(jobs));
                }
                Ok(false) => {
                    held_until.send_replace(Instant::now());
                }
                Err(error) => tracing::warn!(job = job.id, %error, "could not renew a running job's lease"),
            }
        }
    }
}

/// The workers of this instance: up to `JOB_WORKERS` jobs at once, until `stop` turns true
/// (or its sender is dropped). Then no job is claimed any more, running ones get
/// `JOB_SHUTDOWN_GRACE_SECS` to finish, and the rest are stopped and put back, due at once,
/// for another instance (their attempt does not count). Spawn it once at start.
pub async fn run_workers(state: AppState, mut stop: watch::Receiver<bool>) {
    let jobs = state.jobs.clone();
    let workers = jobs.settings.workers;
    let mut tasks = JoinSet::new();
    let mut attempts = Attempts::default();
    let stopping = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let mut stopping = std::pin::pin!(stopping);
    let mut renew = tokio::time::interval((jobs.settings.lease / 3).max(Duration::from_millis(100)));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Err(error) = jobs.schedule_due().await {
            tracing::warn!(%error, "could not enqueue periodic jobs");
        }
        if attempts.running.len() < workers {
            let asked_at = Instant::now();
            match jobs.claim(workers - attempts.running.len()).await {
                Ok(claimed) => {
                    for job in claimed {
                        attempts.start(&mut tasks, &state, job, asked_at + held_for(&jobs));
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim jobs"),
            }
        }
        tokio::select! {
            () = &mut stopping => break,
            () = jobs.wake.notified() => {}
            Some(finished) = tasks.join_next_with_id(), if !tasks.is_empty() => attempts.finished(finished),
            () = tokio::time::sleep(POLL_EVERY) => {}
            _ = renew.tick() => attempts.renew(&jobs).await,
        }
    }
    if !tasks.is_empty() {
        tracing::info!(running = tasks.len(), "stopping: letting running jobs finish");
    }
    let grace = tokio::time::sleep(jobs.settings.shutdown_grace);
    let mut grace = std::pin::pin!(grace);
    loop {
        tokio::select! {
            finished = tasks.join_next_with_id() => match finished {
                Some(finished) => attempts.finished(finished),
                None => break,
            },
            _ = renew.tick() => attempts.renew(&jobs).await,
            () = &mut grace => {
                tasks.abort_all();
                while let Some(finished) = tasks.join_next_with_id().await {
                    attempts.finished(finished);
                }
                break;
            }
        }
    }
    for Running { job, .. } in attempts.running.into_values() {
        tracing::warn!(job = job.id, kind = %job.kind, "stopped before the job finished: put back");
        if let Err(error) = jobs.put_back(&job, Duration::ZERO, None).await {
            tracing::warn!(job = job.id, %error, "could not put the job back; it runs again once its lease runs out");
        }
    }
}
