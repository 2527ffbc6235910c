//! The HTTP server: accepts connections, up to a number open at once, and serves each in its
//! own task with hyper, with a deadline for request headers and for each write to make
//! progress, until a shutdown signal; then lets the requests in flight finish. And the
//! per-request limits [`app`](crate::app) applies: a body deadline, then requests in flight
//! and an answer deadline.
//!
//! HTTP/1.1 only: hyper's header-read timeout exists for HTTP/1 alone, and the automatic
//! HTTP/1-or-2 detection waits for a client's first bytes without any deadline. In production
//! a proxy terminates TLS (and HTTP/2) in front of the app.

mod send_timeout;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use send_timeout::SendTimeout;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::error::ErrorAnswer;

/// Serves `router` on `listener` until `shutdown` resolves. A client gets
/// [`Limits::header_read_timeout`] to send each request's headers (an idle keep-alive
/// connection is closed after as long), and a connection whose answer makes no progress for
/// [`Limits::send_timeout`] is closed. At [`Limits::max_connections`] open, nothing more is
/// accepted until one closes: new connections wait in the kernel's queue. On shutdown the
/// listener is closed at once, and the connections get as long as a request may take (header,
/// body and request timeouts) to finish theirs; whatever is left after that is dropped.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let connections = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, permit) = tokio::select! {
            accepted = accept(&listener, &open) => accepted,
            () = &mut shutdown => break,
        };
        // Answers go out in one or two writes: do not hold the second one back.
        let _ = stream.set_nodelay(true);
        let stream = SendTimeout::new(stream, limits.send_timeout);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let drain = limits.header_read_timeout + limits.body_read_timeout + limits.request_timeout;
    if tokio::time::timeout(drain, connections.shutdown()).await.is_err() {
        tracing::warn!(
            seconds = drain.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
}

/// Waits for one of the `open` connection permits, then accepts a connection, which holds the
/// permit until it closes.
async fn accept(listener: &TcpListener, open: &Arc<Semaphore>) -> (TcpStream, OwnedSemaphorePermit) {
    let permit = open.clone().acquire_owned().await.expect("the connection semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return (stream, permit),
            Err(error) => pause_after(&error).await,
        }
    }
}

/// After a failed accept: nothing when only that connection failed; a pause when the process
/// is out of something (file descriptors, memory), so the loop does not spin.
async fn pause_after(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::error!(%error, "accept failed; pausing for a second");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The per-request part of [`Limits`], shared by every request of one router.
#[derive(Clone)]
pub struct RequestLimits {
    in_flight: Arc<Semaphore>,
    body_read_timeout: Duration,
    request_timeout: Duration,
}

impl RequestLimits {
    /// One pool of [`Limits::max_concurrent_requests`] slots and the two deadlines.
    pub fn new(limits: &Limits) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            body_read_timeout: limits.body_read_timeout,
            request_timeout: limits.request_timeout,
        }
    }
}

/// Middleware enforcing [`RequestLimits`], in two steps. First the whole body is read, within
/// the body timeout and without a slot, so clients that send slowly (or never) cannot keep
/// others out: `408` (and the connection closed) past the deadline, `413` past the length limit
/// of a [`RequestBodyLimitLayer`](tower_http::limit::RequestBodyLimitLayer) outside this one,
/// `400` when the client breaks off. Then the handler runs in a slot, on the read body: a
/// request that finds every slot taken is shed at once (`503` with `Retry-After: 1`, never
/// queued). An answer not ready within the request timeout is `503` rather than `408`: browsers
/// may silently send a request answered `408` again, and this one's work may already have had
/// effects.
pub async fn limit_requests(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(limits.body_read_timeout, body.collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) if is_length_limit(&error) => {
            tracing::info!("the request body is over the length limit");
            return (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large").into_response();
        }
        Ok(Err(error)) => {
            tracing::info!(%error, "the request body was cut off");
            return (StatusCode::BAD_REQUEST, "Bad Request").into_response();
        }
        Err(_) => {
            tracing::info!("the request body did not arrive in time (BODY_READ_TIMEOUT_SECS)");
            return (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], "Request Timeout").into_response();
        }
    };
    let Ok(_slot) = limits.in_flight.try_acquire() else {
        tracing::warn!("request shed: every slot is taken (MAX_CONCURRENT_REQUESTS)");
        return ErrorAnswer::retry_soon();
    };
    let request = Request::from_parts(parts, Body::from(body));
    tokio::time::timeout(limits.request_timeout, next.run(request)).await.unwrap_or_else(|_| {
        tracing::warn!("no answer in time, the request was cut off (REQUEST_TIMEOUT_SECS)");
        ErrorAnswer::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: no answer in time").into_response()
    })
}

/// Whether a body failed by going over its length limit.
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source()).any(|error| error.is::<LengthLimitError>())
}
