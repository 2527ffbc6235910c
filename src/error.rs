//! The app's error type: every failure a handler can meet, and the response it becomes.

use std::borrow::Cow;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::jobs::EnqueueError;
use crate::oauth::OAuthError;
use crate::sessions::SessionError;
use crate::shopify::model::Res;
use crate::tokens::{StoreError, TokenError};

/// A handler failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The Shopify protocol prescribes this answer (a 401 with the retry header, a 302 to the
    /// patch-id-token page...).
    #[error("protocol answer {}", .0.status)]
    Protocol(Res),
    /// No offline token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A page failed to render.
    #[error("template failed: {0}")]
    Template(#[from] askama::Error),
    /// The server-side session could not be read or written.
    #[error("session store failed: {0}")]
    Session(#[from] SessionError),
    /// A third-party OAuth provider operation failed.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// A job could not be enqueued for another reason than the database (its kind has no
    /// handler: a bug, see `app_jobs::registry`).
    #[error(transparent)]
    Enqueue(EnqueueError),
}

impl From<EnqueueError> for AppError {
    fn from(error: EnqueueError) -> Self {
        match error {
            EnqueueError::Store(error) => Self::Store(error),
            error => Self::Enqueue(error),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Protocol(response) | Self::Token(TokenError::Rejected { response, .. }) => response.into_response(),
            Self::Token(TokenError::Busy | TokenError::Store(StoreError::Busy)) | Self::Store(StoreError::Busy) => {
                ErrorAnswer::retry_soon()
            }
            Self::OAuth(error @ (OAuthError::UnknownProvider(_) | OAuthError::NotConnected(_))) => {
                ErrorAnswer::new(StatusCode::NOT_FOUND, error.to_string()).into_response()
            }
            Self::OAuth(error @ OAuthError::Reconnect(_)) => (StatusCode::CONFLICT, error.to_string()).into_response(),
            Self::Token(error @ TokenError::NoOfflineToken) => {
                tracing::warn!(%error, "Admin API call outside a page load");
                (StatusCode::CONFLICT, error.to_string()).into_response()
            }
            Self::OAuth(error @ OAuthError::Rejected(_)) => {
                (StatusCode::BAD_REQUEST, error.to_string()).into_response()
            }
            Self::OAuth(error @ OAuthError::Forbidden(_)) => (StatusCode::FORBIDDEN, error.to_string()).into_response(),
            Self::OAuth(error @ OAuthError::Upstream(_)) => {
                tracing::warn!(%error, "OAuth provider failed");
                ErrorAnswer::new(StatusCode::BAD_GATEWAY, "the provider could not be reached").into_response()
            }
            error @ (Self::Token(TokenError::Store(_))
            | Self::Store(_)
            | Self::Template(_)
            | Self::Session(_)
            | Self::Enqueue(_)
            | Self::OAuth(OAuthError::Config { .. } | OAuthError::Store(_))) => {
                tracing::error!(%error, "request failed");
                ErrorAnswer::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
        }
    }
}

/// An error answer for people and for fetches alike: its status and a short message that is
/// safe to show. As a response it is plain text carrying itself as an extension, which
/// [`routes::pages::error_pages`](crate::routes::pages::error_pages) turns into an HTML page
/// for a browser or JSON for a fetch.
#[derive(Debug, Clone)]
pub struct ErrorAnswer {
    /// The status.
    pub status: StatusCode,
    /// What went wrong, in words a merchant may read (never a detail of the server).
    pub message: Cow<'static, str>,
}

impl ErrorAnswer {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, message: message.into() }
    }

    /// `404 not found`: a path the app does not serve (or will not admit to serving).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    /// `503` with `Retry-After: 1`: busy for a moment (the database, every request slot).
    pub fn retry_soon() -> Response {
        let mut response = Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        response
    }
}

impl IntoResponse for ErrorAnswer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message.to_string()).into_response();
        response.extensions_mut().insert(self);
        response
    }
}
