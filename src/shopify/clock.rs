//! Time, injected: the core reads the clock and waits only through [`Clock`], so tests and the
//! conformance runner never wait for real.

use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use super::http::BoxFuture;

/// A source of the current time and of waiting.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>;
}

/// The real clock and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that stands still until told, and whose sleeps return at once, advancing it and
/// recording each wait. For tests and the conformance runner.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
    sleeps: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// A clock frozen at `unix_seconds`.
    pub fn at(unix_seconds: i64) -> Self {
        let now = OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self { now: Mutex::new(now), sleeps: Mutex::new(Vec::new()) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poison| poison.into_inner());
        *now += by;
    }

    /// The waits asked for so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap_or_else(|poison| poison.into_inner()).clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.sleeps.lock().unwrap_or_else(|poison| poison.into_inner()).push(duration);
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}
