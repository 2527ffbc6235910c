//! The workers: claim due jobs, run their handlers, settle the outcome, one log line per
//! attempt.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Job, JobError};
use crate::state::AppState;

/// How often idle workers look for jobs that other instances enqueued, retries that came due
/// and leases that ran out (this process's own enqueues wake them at once).
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a job of a kind this instance does not know waits before it is offered again
/// (during a rolling deploy, a newer instance knows it).
const UNKNOWN_KIND_DELAY: Duration = Duration::from_secs(60);

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded: the job is deleted.
    Done,
    /// The handler failed; the job runs again later.
    Retry,
    /// Out of attempts, or a failure another attempt would repeat: the job is kept as failed.
    Failed,
    /// Nobody here runs this kind: put back for another instance.
    Unknown,
}

/// Runs one attempt of `job` and settles it; logs one line with its kind, shop, attempt and
/// outcome (never the payload: it may hold personal data).
async fn attempt(state: AppState, job: Job) -> Outcome {
    let jobs = &state.jobs;
    let result = if job.attempt > job.max_attempts {
        Err(JobError::fail("the worker running its last attempt stopped (a crash or a lost machine)"))
    } else {
        match jobs.registry.handler(&job.kind).cloned() {
            None => {
                tracing::warn!(job = job.id, kind = %job.kind, "no handler for this job kind here: put back");
                if let Err(error) = jobs.put_back(&job, UNKNOWN_KIND_DELAY, None).await {
                    tracing::warn!(job = job.id, %error, "could not put the job back");
                }
                return Outcome::Unknown;
            }
            Some(handler) => run_handler(&state, handler, job.clone()).await,
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
    if let Err(error) = settled {
        // The lease runs out and the job runs again: at least once.
        tracing::warn!(job = job.id, %error, "could not record the job's outcome");
    }
    outcome
}

/// Runs `handler` in a task of its own, so that a panic or the attempt's timeout ends the
/// attempt (as a failure worth retrying) and not the worker.
async fn run_handler(state: &AppState, handler: super::JobHandler, job: Job) -> Result<(), JobError> {
    let timeout = state.jobs.settings.timeout;
    let mut task = tokio::spawn(handler(state.clone(), job));
    // A stopped worker (shutdown) stops its handler too.
    let _abort = AbortOnDrop(task.abort_handle());
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) if error.is_panic() => Err(JobError::retry("the handler panicked")),
        Ok(Err(_)) => Err(JobError::retry("the handler was cancelled")),
        Err(_) => {
            task.abort();
            Err(JobError::retry(format!("timed out after {} s", timeout.as_secs())))
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

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
        outcomes.push((kind, attempt(state.clone(), job).await));
        if outcomes.len() >= 10_000 {
            break;
        }
    }
    Ok(outcomes)
}

/// The workers of this instance: up to `JOB_WORKERS` jobs at once, until `stop` turns true
/// (or its sender is dropped). Then no job is claimed any more, running ones get
/// `JOB_SHUTDOWN_GRACE_SECS` to finish, and the rest are stopped and put back, due at once,
/// for another instance (their attempt does not count). Spawn it once at start.
pub async fn run_workers(state: AppState, mut stop: watch::Receiver<bool>) {
    let jobs = state.jobs.clone();
    let workers = jobs.settings.workers;
    let mut running = JoinSet::new();
    let mut leased: HashMap<tokio::task::Id, Job> = HashMap::new();
    let stopping = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let mut stopping = std::pin::pin!(stopping);
    let mut renew = tokio::time::interval(jobs.settings.lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Err(error) = jobs.schedule_due().await {
            tracing::warn!(%error, "could not enqueue periodic jobs");
        }
        if running.len() < workers {
            match jobs.claim(workers - running.len()).await {
                Ok(claimed) => {
                    for job in claimed {
                        let task = running.spawn(attempt(state.clone(), job.clone()));
                        leased.insert(task.id(), job);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim jobs"),
            }
        }
        tokio::select! {
            () = &mut stopping => break,
            () = jobs.wake.notified() => {}
            Some(finished) = running.join_next_with_id(), if !running.is_empty() => {
                forget_lease(&mut leased, finished);
            }
            () = tokio::time::sleep(POLL_EVERY) => {}
            _ = renew.tick() => renew_leases(&jobs, &leased).await,
        }
    }
    if !running.is_empty() {
        tracing::info!(running = running.len(), "stopping: letting running jobs finish");
    }
    let grace = tokio::time::sleep(jobs.settings.shutdown_grace);
    let mut grace = std::pin::pin!(grace);
    loop {
        tokio::select! {
            finished = running.join_next_with_id() => match finished {
                Some(finished) => forget_lease(&mut leased, finished),
                None => break,
            },
            _ = renew.tick() => renew_leases(&jobs, &leased).await,
            () = &mut grace => {
                running.abort_all();
                while let Some(finished) = running.join_next_with_id().await {
                    forget_lease(&mut leased, finished);
                }
                break;
            }
        }
    }
    for job in leased.into_values() {
        tracing::warn!(job = job.id, kind = %job.kind, "stopped before the job finished: put back");
        if let Err(error) = jobs.put_back(&job, Duration::ZERO, None).await {
            tracing::warn!(job = job.id, %error, "could not put the job back; it runs again once its lease runs out");
        }
    }
}

/// Renews the leases of the running jobs, so that no other worker takes them over.
async fn renew_leases(jobs: &super::Jobs, leased: &HashMap<tokio::task::Id, Job>) {
    if let Err(error) = jobs.renew(leased.values()).await {
        tracing::warn!(%error, "could not renew the running jobs' leases");
    }
}

/// Drops the lease of a task that ended by itself (its attempt settled the job). A task that
/// was stopped keeps its lease in `leased`, to be put back.
fn forget_lease(
    leased: &mut HashMap<tokio::task::Id, Job>,
    finished: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
) {
    match finished {
        Ok((id, _)) => {
            leased.remove(&id);
        }
        Err(error) if error.is_panic() => {
            leased.remove(&error.id());
        }
        Err(_) => {}
    }
}
