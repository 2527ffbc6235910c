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
}

/// Runs one attempt of `job` and settles it; logs one line with its kind, shop, attempt and
/// outcome (never the payload: it may hold personal data).
async fn attempt(state: AppState, job: Job) -> Outcome {
    let jobs = &state.jobs;
    let result = if job.attempt > job.max_attempts {
        Err(JobError::fail("the worker running its last attempt stopped (a crash or a lost machine)"))
    } else {
        match jobs.registry.handler(&job.kind).cloned() {
            // A kind this instance does not know (an older instance during a rolling deploy, or
            // a kind removed from the registry): retried with backoff, so a newer instance can
            // take it, and kept as failed in the end.
            None => Err(JobError::retry(format!("no handler for job kind {:?} in this instance", job.kind))),
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
    // A stopped worker (shutdown, a lost lease) stops its handler too.
    let _abort = AbortOnDrop(task.abort_handle());
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) if error.is_panic() => Err(JobError::retry("the handler panicked")),
        Ok(Err(_)) => Err(JobError::retry("the handler was cancelled")),
        Err(_) => Err(JobError::retry(format!("timed out after {} s", timeout.as_secs()))),
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
        outcomes.push((kind, attempt(state.clone(), job).await));
        if outcomes.len() >= 10_000 {
            break;
        }
    }
    Ok(outcomes)
}

/// A running attempt, as its worker tracks it.
struct Running {
    job: Job,
    task: AbortHandle,
}

/// The attempts this instance runs, and when each lease was last known to be held.
#[derive(Default)]
struct Leases {
    running: HashMap<tokio::task::Id, Running>,
    renewed: HashMap<String, Instant>,
}

impl Leases {
    fn start(&mut self, tasks: &mut JoinSet<Outcome>, state: &AppState, job: Job) {
        self.renewed.entry(job.lease_id.clone()).or_insert_with(Instant::now);
        let task = tasks.spawn(attempt(state.clone(), job.clone()));
        self.running.insert(task.id(), Running { job, task });
    }

    /// Forgets an attempt that ended by itself (it settled its job). One that was stopped
    /// stays, to be put back.
    fn finished(&mut self, finished: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        let id = match finished {
            Ok((id, _)) => id,
            Err(error) if error.is_panic() => error.id(),
            Err(_) => return,
        };
        if let Some(Running { job, .. }) = self.running.remove(&id) {
            self.forget_lease_if_unused(&job.lease_id);
        }
    }

    fn forget_lease_if_unused(&mut self, lease: &str) {
        if !self.running.values().any(|running| running.job.lease_id == lease) {
            self.renewed.remove(lease);
        }
    }

    /// Renews every lease held. An attempt whose lease was taken over (the row is leased to
    /// another worker now), or could not be renewed for two thirds of its length (it may run
    /// out before the next try), is stopped: another worker may run the job, never two at
    /// once. The job is not settled by the stopped attempt; its new holder settles it.
    async fn renew(&mut self, jobs: &Jobs) {
        let leases: Vec<String> = self.renewed.keys().cloned().collect();
        for lease in leases {
            let lost = match jobs.renew(&lease).await {
                Ok(true) => {
                    self.renewed.insert(lease, Instant::now());
                    continue;
                }
                Ok(false) => true,
                Err(error) => {
                    tracing::warn!(%error, "could not renew a running job's lease");
                    self.renewed.get(&lease).is_some_and(|at| at.elapsed() > jobs.settings.lease * 2 / 3)
                }
            };
            if lost {
                self.running.retain(|_, running| {
                    if running.job.lease_id != lease {
                        return true;
                    }
                    tracing::warn!(job = running.job.id, kind = %running.job.kind, "lease lost: attempt stopped");
                    running.task.abort();
                    false
                });
                self.renewed.remove(&lease);
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
    let mut leases = Leases::default();
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
        if leases.running.len() < workers {
            match jobs.claim(workers - leases.running.len()).await {
                Ok(claimed) => claimed.into_iter().for_each(|job| leases.start(&mut tasks, &state, job)),
                Err(error) => tracing::warn!(%error, "could not claim jobs"),
            }
        }
        tokio::select! {
            () = &mut stopping => break,
            () = jobs.wake.notified() => {}
            Some(finished) = tasks.join_next_with_id(), if !tasks.is_empty() => leases.finished(finished),
            () = tokio::time::sleep(POLL_EVERY) => {}
            _ = renew.tick() => leases.renew(&jobs).await,
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
                Some(finished) => leases.finished(finished),
                None => break,
            },
            _ = renew.tick() => leases.renew(&jobs).await,
            () = &mut grace => {
                tasks.abort_all();
                while let Some(finished) = tasks.join_next_with_id().await {
                    leases.finished(finished);
                }
                break;
            }
        }
    }
    for Running { job, .. } in leases.running.into_values() {
        tracing::warn!(job = job.id, kind = %job.kind, "stopped before the job finished: put back");
        if let Err(error) = jobs.put_back(&job, Duration::ZERO, None).await {
            tracing::warn!(job = job.id, %error, "could not put the job back; it runs again once its lease runs out");
        }
    }
}
