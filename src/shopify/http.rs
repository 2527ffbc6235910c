//! The upstream side: one shared HTTP client for every call to Shopify, behind a small
//! transport trait so that the core stays framework-agnostic and testable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::model::Res;
use super::secret::Secret;

/// A boxed future, for object-safe async traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The User-Agent of every request the core sends.
pub const USER_AGENT: &str = concat!("shopify-app-rust v", env!("CARGO_PKG_VERSION"));

/// A request to Shopify or an OAuth provider. Header values and the body may carry tokens and
/// the client secret, so `Debug` shows neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// `POST` for Shopify; any common method for OAuth providers' APIs.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// Headers in the order sent.
    pub headers: Vec<(String, Secret)>,
    /// The body text.
    pub body: Secret,
}

impl UpstreamRequest {
    /// A header pair, its value kept secret (it may be a token).
    pub fn header(name: &str, value: impl Into<String>) -> (String, Secret) {
        (name.to_owned(), Secret::new(value))
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The connection could not be made.
    #[error("could not connect")]
    Connect,
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection failed while sending or reading.
    #[error("connection failed")]
    Io,
}

/// Sends requests to Shopify. The response's header names are lowercase.
pub trait Transport: Send + Sync {
    /// Sends one request and returns the answer, whatever its status.
    fn send(&self, request: UpstreamRequest) -> BoxFuture<'_, Result<Res, TransportError>>;
}

/// How long the production transport waits for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the production transport waits for a whole request, from connecting to the end of
/// the response body: no single request outlasts it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A `reqwest` client builder, TLS on ring: reqwest is built without a crypto provider (see
/// Cargo.toml), so this installs ring's as the process's default first, unless one already is.
/// Verification is unchanged: the system's root certificates, through rustls-platform-verifier.
/// Build every `reqwest` client from here: one built otherwise panics for want of a provider.
pub fn client_builder() -> reqwest::ClientBuilder {
    // An error means a provider is already installed (an earlier call, or the app's own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// The production transport: one `reqwest` client with connection reuse, timeouts and no
/// redirect following (a redirect would carry tokens to another host).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Builds the shared client.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = client_builder()
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        Ok(Self { client })
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, request: UpstreamRequest) -> BoxFuture<'_, Result<Res, TransportError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| TransportError::Io)?;
            let mut builder = self.client.request(method, &request.url).body(request.body.expose().to_owned());
            for (name, value) in &request.headers {
                builder = builder.header(name, value.expose());
            }
            let response = builder.send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            let body = response.text().await.map_err(classify)?;
            Ok(Res { status, body, headers })
        })
    }
}

fn classify(error: reqwest::Error) -> TransportError {
    if error.is_timeout() {
        TransportError::Timeout
    } else if error.is_connect() {
        TransportError::Connect
    } else {
        TransportError::Io
    }
}

/// Where a shop's Admin API lives: `https://{shop}` in production, a local fake in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopOrigin(Arc<str>);

impl ShopOrigin {
    /// The placeholder replaced by the shop's domain.
    pub const PLACEHOLDER: &'static str = "{shop}";

    /// An origin template such as `http://127.0.0.1:9999` or `https://{shop}`.
    pub fn new(template: impl Into<String>) -> Self {
        Self(template.into().trim_end_matches('/').into())
    }

    /// The URL of `path` on the shop whose (already validated) domain is `shop_domain`.
    pub fn url(&self, shop_domain: &str, path: &str) -> String {
        format!("{}{path}", self.0.replace(Self::PLACEHOLDER, shop_domain))
    }
}

impl Default for ShopOrigin {
    fn default() -> Self {
        Self::new("https://{shop}")
    }
}
