//! The axum adapter: turns axum requests into the core's [`Req`], the core's [`Res`] into
//! axum responses, and offers extractors that reject with the protocol's answer, so a handler
//! only ever sees verified requests.

pub mod admin_api;
pub mod error_pages;
pub mod extract;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::shopify::model::{Req, Res};

/// The core's view of a request. The URL is rebuilt on the app's configured public origin,
/// never on the `Host` header, so a forged host cannot steer a redirect. Only the headers the
/// protocol reads are copied (see [`is_protocol_header`]).
pub fn core_request(parts: &Parts, app_url: &str, body: Vec<u8>) -> Req {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    Req {
        method: parts.method.as_str().to_owned(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| is_protocol_header(name.as_str()))
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        url: [app_url, path_and_query].concat(),
        body,
    }
}

/// Whether the auth core reads a header (by its lowercase name, as axum gives it):
/// `Authorization`, `Origin` and Shopify's own `X-Shopify-*` and `Shopify-*` headers. A browser's
/// dozen others are not copied on every request.
pub fn is_protocol_header(name: &str) -> bool {
    matches!(name, "authorization" | "origin") || name.starts_with("x-shopify-") || name.starts_with("shopify-")
}

impl IntoResponse for Res {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = status;
        append_headers(&mut response, &self.headers);
        response
    }
}

/// Adds headers from the core to a response. The core only emits valid header text (shops
/// are validated before they reach a header); anything else is dropped, never sent.
pub fn append_headers(response: &mut Response, headers: &[(String, String)]) {
    for (name, value) in headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => tracing::warn!(header = %name, "dropped a response header that is not valid HTTP"),
        }
    }
}
