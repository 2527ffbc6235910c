//! The app's error type: every failure a handler can meet, and the response it becomes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Protocol(response) | Self::Token(TokenError::Rejected { response, .. }) => response.into_response(),
            Self::Token(TokenError::Busy) => {
                (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "1")], "Service Unavailable").into_response()
            }
            error @ (Self::Token(TokenError::Store(_)) | Self::Store(_) | Self::Template(_)) => {
                tracing::error!(%error, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
        }
    }
}
