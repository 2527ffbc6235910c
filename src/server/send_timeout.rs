//! A stream whose writes give up when the client stops reading.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps a connection so that a write (or flush or shutdown) that has made no progress for
/// `timeout` fails with [`io::ErrorKind::TimedOut`], and hyper closes the connection. Each
/// write that goes through starts the count again: a slow client that keeps reading is never
/// cut off, one that reads nothing is, `timeout` after its buffers fill. Reads pass through.
pub struct SendTimeout<T> {
    io: T,
    timeout: Duration,
    /// Fires `timeout` after the current wait began.
    deadline: Pin<Box<Sleep>>,
    /// Whether the last attempt found no room (so `deadline` counts).
    waiting: bool,
}

impl<T> SendTimeout<T> {
    /// `io`, whose writes may wait for room at most `timeout` at a time.
    pub fn new(io: T, timeout: Duration) -> Self {
        Self { io, timeout, deadline: Box::pin(tokio::time::sleep(timeout)), waiting: false }
    }

    /// `attempt` as it is, unless it has been pending for `timeout` since the last progress.
    fn watch<R>(&mut self, cx: &mut Context<'_>, attempt: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if attempt.is_ready() {
            self.waiting = false;
            return attempt;
        }
        if !self.waiting {
            self.waiting = true;
            self.deadline.as_mut().reset(Instant::now() + self.timeout);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s (SEND_TIMEOUT_SECS)", self.timeout.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let attempt = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, attempt)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let attempt = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, attempt)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let attempt = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, attempt)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let attempt = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch(cx, attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Far above any timeout set here: only a broken timeout gets near it.
    const GENEROUS: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_write_the_peer_never_makes_room_for_times_out() {
        let (near, _far) = tokio::io::duplex(16);
        let mut stream = SendTimeout::new(near, Duration::from_millis(200));
        let started = Instant::now();
        let written = tokio::time::timeout(GENEROUS, stream.write_all(&[0; 64])).await.expect("gave up in time");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200), "not before the timeout: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn every_write_that_goes_through_restarts_the_count() {
        let (near, mut far) = tokio::io::duplex(1);
        let timeout = Duration::from_secs(1);
        let mut stream = SendTimeout::new(near, timeout);
        // Room for one byte every 10 ms: the whole takes twice the timeout, no single wait
        // comes near it.
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            let mut byte = [0];
            while far.read(&mut byte).await.unwrap() == 1 {
                received.push(byte[0]);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            received
        });
        let started = Instant::now();
        stream.write_all(&[7; 200]).await.unwrap();
        assert!(started.elapsed() > timeout, "longer than one timeout in all: {:?}", started.elapsed());
        stream.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), vec![7; 200]);
    }
}
