//! The workers: claim due jobs, run their handlers, settle the outcome, one log line per
//! attempt.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

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

/// Runs one attempt of `job` and settles it, keeping its lease meanwhile; logs one line with
/// its kind, shop, attempt and outcome (never the payload: it may hold personal data). Asked
/// to `stop` (shutdown), it stops the handler, waits for it, and puts the job back. `held_until`
/// is when the lease taken by the claim may no longer be relied on.
async fn attempt(state: AppState, job: Job, held_until: Instant, stop: watch::Receiver<bool>) -> Outcome {
    let jobs = &state.jobs;
    let result = if job.attempt > job.max_attempts {
        Err(JobError::fail("the worker running its last attempt stopped (a crash or a lost machine)"))
    } else {
        match jobs.registry.handler(&job.kind).cloned() {
            // A kind this instance does not know (an older instance during a rolling deploy, or
            // a kind removed from the registry): retried with backoff, so a newer instance can
            // take it, and kept as failed in the end.
            None => Err(JobError::retry(format!("no handler for job kind {:?} in this instance", job.kind))),
            Some(handler) => match run_handler(&state, handler, &job, held_until, stop).await {
                Ended::Ran(result) => result,
                Ended::LeaseLost => {
                    tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempt, outcome = "stopped",
                        "job attempt: lease lost, stopped; its new holder settles the job");
                    return Outcome::Stopped;
                }
                Ended::ShutDown => {
                    tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempt, outcome = "put back",
                        "job attempt: stopped by the shutdown, put back");
                    if let Err(error) = jobs.put_back(&job, Duration::ZERO, None).await {
                        tracing::warn!(job = job.id, %error, "could not put the job back; it runs again once its lease runs out");
                    }
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

/// How a handler's run ended.
enum Ended {
    /// It returned (or panicked, or timed out: a failure worth retrying).
    Ran(Result<(), JobError>),
    /// The lease ended first: the handler was stopped.
    LeaseLost,
    /// The worker is stopping: the handler was stopped.
    ShutDown,
}

/// Runs `handler` in a task of its own, so that a panic or the attempt's timeout ends the
/// attempt and not the worker, while renewing the job's lease every third of it. When the
/// lease ends (not renewed in time, or taken over), the timeout passes, or `stop` turns true,
/// the handler is aborted and waited for: when this returns, the handler has stopped (a
/// handler in blocking code stops at its next `.await`, and this waits until then).
async fn run_handler(
    state: &AppState,
    handler: super::JobHandler,
    job: &Job,
    held_until: Instant,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    if held_until <= Instant::now() {
        return Ended::LeaseLost;
    }
    let jobs = &state.jobs;
    let timeout = jobs.settings.timeout;
    let (renewed, lease) = watch::channel(held_until);
    let mut task = tokio::spawn(handler(state.clone(), job.clone()));
    let ended = tokio::select! {
        joined = &mut task => {
            return Ended::Ran(match joined {
                Ok(result) => result,
                Err(error) if error.is_panic() => Err(JobError::retry("the handler panicked")),
                Err(_) => Err(JobError::retry("the handler was cancelled")),
            });
        }
        () = tokio::time::sleep(timeout) => Ended::Ran(Err(JobError::retry(format!("timed out after {} s", timeout.as_secs())))),
        () = lease_ends(lease) => Ended::LeaseLost,
        () = keep_lease(jobs, job, &renewed) => Ended::LeaseLost,
        _ = stop.wait_for(|stop| *stop) => Ended::ShutDown,
    };
    task.abort();
    let _ = (&mut task).await;
    ended
}

/// Renews `job`'s lease every third of `JOB_LEASE_SECS`, moving `held_until` on; sets it to
/// now when the row no longer holds the lease. Never returns.
async fn keep_lease(jobs: &Jobs, job: &Job, held_until: &watch::Sender<Instant>) {
    loop {
        tokio::time::sleep(jobs.settings.lease / 3).await;
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

/// Resolves when the instant in `held_until` has passed, following the renewals that move it.
async fn lease_ends(mut held_until: watch::Receiver<Instant>) {
    loop {
        let until = *held_until.borrow_and_update();
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

/// How long after a lease was taken or renewed (measured from before the statement was sent)
/// the worker may still rely on it: two thirds of `JOB_LEASE_SECS`, less the second that the
/// database's whole-second times may cut off, so that an attempt stops before anyone else may
/// take its job.
fn held_for(jobs: &Jobs) -> Duration {
    (jobs.settings.lease * 2 / 3).saturating_sub(Duration::from_secs(1))
}

/// Enqueues the periodic jobs that are due, then runs every due job here, one after the
/// other, until none is left: for tests and one-off commands (workers do this continuously).
/// Returns each attempt's job kind and outcome, in order.
pub async fn run_due(state: &AppState) -> Result<Vec<(String, Outcome)>, crate::tokens::StoreError> {
    state.jobs.schedule_due().await?;
    let (_running, stop) = watch::channel(false);
    let mut outcomes = Vec::new();
    loop {
        let asked_at = Instant::now();
        let Some(job) = state.jobs.claim(1).await?.pop() else {
            break;
        };
        let kind = job.kind.clone();
        outcomes.push((kind, attempt(state.clone(), job, asked_at + held_for(&state.jobs), stop.clone()).await));
        if outcomes.len() >= 10_000 {
            break;
        }
    }
    Ok(outcomes)
}

/// How long, after the grace, stopped attempts have to put their jobs back before the workers
/// give up on them (their leases then run out).
const PUT_BACK_WAIT: Duration = Duration::from_secs(1);

/// The workers of this instance: up to `JOB_WORKERS` jobs at once, until `stop` turns true
/// (or its sender is dropped). Then no job is claimed any more, running ones get
/// `JOB_SHUTDOWN_GRACE_SECS` to finish, and the rest are stopped and put back, due at once,
/// for another instance (their attempt does not count). Spawn it once at start.
pub async fn run_workers(state: AppState, mut stop: watch::Receiver<bool>) {
    let jobs = state.jobs.clone();
    let workers = jobs.settings.workers;
    let (stop_attempts, attempts_stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let stopping = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let mut stopping = std::pin::pin!(stopping);
    loop {
        if let Err(error) = jobs.schedule_due().await {
            tracing::warn!(%error, "could not enqueue periodic jobs");
        }
        if tasks.len() < workers {
            let asked_at = Instant::now();
            match jobs.claim(workers - tasks.len()).await {
                Ok(claimed) => {
                    for job in claimed {
                        let held_until = asked_at + held_for(&jobs);
                        tasks.spawn(attempt(state.clone(), job, held_until, attempts_stop.clone()));
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim jobs"),
            }
        }
        tokio::select! {
            () = &mut stopping => break,
            () = jobs.wake.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
    if tasks.is_empty() {
        return;
    }
    tracing::info!(running = tasks.len(), "stopping: letting running jobs finish");
    let finished = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(jobs.settings.shutdown_grace, finished).await.is_ok() {
        return;
    }
    stop_attempts.send_replace(true);
    let put_back = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(PUT_BACK_WAIT, put_back).await.is_err() {
        tracing::warn!(
            running = tasks.len(),
            "job handlers still running after the shutdown grace: their jobs run again once their leases run out"
        );
    }
}
