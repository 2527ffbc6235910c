//! Shared fixtures for the core's unit tests.

use std::sync::Arc;

use super::clock::ManualClock;
use super::http::{BoxFuture, Transport, TransportError, UpstreamRequest};
use super::model::Res;
use super::secret::Secret;
use super::{AppConfig, ShopifyApp};

/// The frozen time of unit tests (2025-06-15T15:06:40Z).
pub(crate) const NOW: i64 = 1_750_000_000;

/// A transport for code that must not reach the network: every request fails to connect.
pub(crate) struct NoNetwork;

impl Transport for NoNetwork {
    fn send(&self, _: UpstreamRequest) -> BoxFuture<'_, Result<Res, TransportError>> {
        Box::pin(std::future::ready(Err(TransportError::Connect)))
    }
}

/// A core with secret `hush`, the given client id and old secret, no network, clock at [`NOW`].
pub(crate) fn app_with(client_id: &str, old_secret: Option<&str>) -> ShopifyApp {
    let config = AppConfig {
        client_id: client_id.to_owned(),
        client_secret: "hush".into(),
        old_client_secret: old_secret.map(Secret::new),
    };
    ShopifyApp::new(config, Arc::new(NoNetwork))
        .unwrap_or_else(|error| panic!("test config refused: {error}"))
        .with_clock(Arc::new(ManualClock::at(NOW)))
}
