//! The `oauth2` crate's HTTP client, over the app's shared [`Transport`]: token requests to a
//! provider use the same reqwest client (timeouts, no redirects) as every call to Shopify, and
//! no second HTTP stack is compiled in.

use std::sync::Arc;

use oauth2::http::{self, Method};
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::shopify::http::{BoxFuture, Transport, TransportError, UpstreamRequest};

/// Sends the `oauth2` crate's requests through a [`Transport`].
#[derive(Clone)]
pub struct ProviderHttp(pub Arc<dyn Transport>);

impl ProviderHttp {
    /// Sends one request; a method other than the common ones, or a body that is not UTF-8,
    /// is refused without being sent.
    pub fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let method = method_name(request.method()).ok_or(TransportError::Io)?;
            let url = request.uri().to_string();
            let headers = request
                .headers()
                .iter()
                .map(|(name, value)| UpstreamRequest::header(name.as_str(), String::from_utf8_lossy(value.as_bytes())))
                .collect();
            let body = String::from_utf8(request.into_body()).map_err(|_| TransportError::Io)?.into();
            let response = self.0.send(UpstreamRequest { method, url, headers, body }).await?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in &response.headers {
                builder = builder.header(name, value);
            }
            builder.body(response.body.into_bytes()).map_err(|_| TransportError::Io)
        })
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = TransportError;
    type Future = BoxFuture<'c, Result<HttpResponse, TransportError>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        self.send(request)
    }
}

/// The name of a common HTTP method, as the transport takes it.
pub fn method_name(method: &Method) -> Option<&'static str> {
    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].into_iter().find(|name| *name == method.as_str())
}
