//! Webhooks and Flow actions: requests signed with an HMAC of their raw body.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::{DeserializeOwned, IgnoredAny};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::deliveries::Delivery;
use crate::shopify::ShopifyApp;
use crate::shopify::model::{Req, Res, ResultForReq};
use crate::state::AppState;
use crate::web::core_request;

/// A verified webhook delivery. The raw body is checked before anything parses it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The shop's name (`s1`), from the shop-domain header (validated).
    pub shop: String,
    /// The topic (`app/uninstalled`...), from `X-Shopify-Topic`.
    pub topic: String,
    /// The delivery id (`X-Shopify-Webhook-Id`), the same on every retry of one event.
    pub webhook_id: Option<String>,
    /// When the event happened (`X-Shopify-Triggered-At`, RFC 3339); `None` when the header
    /// is absent or unreadable.
    pub triggered_at: Option<OffsetDateTime>,
    /// The payload: a JSON object, checked but not parsed; read it with [`Webhook::payload`].
    pub body: Bytes,
}

impl Webhook {
    /// The payload as `T`: a struct of the fields the handler reads, or `serde_json::Value`.
    pub fn payload<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// The delivery to handle once, when it has an id.
    pub fn delivery(&self) -> Option<Delivery> {
        let webhook_id = self.webhook_id.clone()?;
        Some(Delivery { webhook_id, topic: self.topic.clone(), shop: self.shop.clone() })
    }
}

/// A verified Flow action request.
#[derive(Debug, Clone)]
pub struct FlowAction {
    /// The shop's name, from the shop-domain header.
    pub shop: String,
    /// The action's payload (`shop_id`, `action_run_id`, `handle`, `properties`...): a JSON
    /// object, checked but not parsed; read it with [`FlowAction::payload`].
    pub body: Bytes,
}

impl FlowAction {
    /// The payload as `T`: a struct of the fields the handler reads, or `serde_json::Value`.
    pub fn payload<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

/// A core check that needs no body: the failure, or `None` when only the body can decide.
type Precheck = fn(&ShopifyApp, &Req) -> Option<ResultForReq>;

/// Middleware for the routes whose handler takes a [`Webhook`]: a request its headers alone
/// condemn (wrong method, no or an oversized HMAC header) is answered at once, before anything
/// waits for its body. Layer it outside [`limit_requests`](crate::server::limit_requests),
/// which reads the body first.
pub async fn precheck_webhook(State(state): State<AppState>, request: Request, next: Next) -> Response {
    answer_early(&state, request, next, ShopifyApp::precheck_webhook_req).await
}

/// [`precheck_webhook`] for the routes whose handler takes a [`FlowAction`].
pub async fn precheck_flow_action(State(state): State<AppState>, request: Request, next: Next) -> Response {
    answer_early(&state, request, next, ShopifyApp::precheck_flow_action_req).await
}

async fn answer_early(state: &AppState, request: Request, next: Next, precheck: Precheck) -> Response {
    let (mut parts, body) = request.into_parts();
    let core = core_request(&parts, &state.config.app_url, Vec::new());
    if let Some(refused) = refused(state, &core, precheck) {
        return refused;
    }
    parts.extensions.insert(Prechecked(core));
    next.run(Request::from_parts(parts, body)).await
}

/// The core's view of a request whose headers passed the pre-check, handed from the middleware
/// to the extractor so that neither is done twice.
#[derive(Clone)]
struct Prechecked(Req);

/// The answer for a request `precheck` refuses on its headers.
fn refused(state: &AppState, core: &Req, precheck: Precheck) -> Option<Response> {
    let refused = precheck(&state.shopify, core)?;
    tracing::debug!(code = %refused.log.code, "signed request refused before its body");
    Some(refused.response.into_response())
}

/// Runs `precheck` on the headers (unless [`precheck_webhook`] did, before the body was read);
/// then reads the body (413 past the app's body limit, announced or not), verifies it with
/// `verify`, and checks that it is JSON.
///
/// The HMAC covers the body only, and the app's secret also signs query strings elsewhere in
/// the protocol (OAuth callback, App Home URL). So beyond the signature, the body must be a
/// JSON object starting with `{`, which a signed query string is not (400 otherwise). The
/// payload's own shop fields are not compared with the header: the Shopify CLI's test
/// deliveries carry sample payloads for another shop.
async fn verified(
    request: Request,
    state: &AppState,
    precheck: Precheck,
    verify: fn(&ShopifyApp, &Req) -> ResultForReq,
) -> Result<(Req, String, Bytes), Response> {
    let (mut parts, body) = request.into_parts();
    let mut core = match parts.extensions.remove::<Prechecked>() {
        Some(Prechecked(core)) => core,
        None => {
            let core = core_request(&parts, &state.config.app_url, Vec::new());
            if let Some(refused) = refused(state, &core, precheck) {
                return Err(refused);
            }
            core
        }
    };
    let body =
        Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
    core.body = body.to_vec();
    let result = verify(&state.shopify, &core);
    tracing::debug!(code = %result.log.code, shop = ?result.shop, "signed request");
    let (true, Some(shop)) = (result.ok, result.shop) else {
        return Err(result.response.into_response());
    };
    if !is_json_object(&body) {
        return Err(bad_request("the signed body is not a JSON object starting with `{`"));
    }
    Ok((core, shop, body))
}

/// Whether `body` is UTF-8 JSON whose first byte is `{` (an object), checked without building
/// it: a handler parses only what it reads. The check is syntactic: a number out of `f64`'s
/// range, a lone surrogate escape or deep nesting pass it (serde_json's `Value` would refuse
/// them when a handler parses): the check only tells a JSON object from the app's other signed
/// text, such as a query string, which is never JSON. `{` first, not just any JSON object: a sorted query
/// string whose first key starts with a space and `{` would otherwise be a JSON object after
/// its leading whitespace.
fn is_json_object(body: &[u8]) -> bool {
    body.first() == Some(&b'{')
        && std::str::from_utf8(body).is_ok_and(|text| serde_json::from_str::<IgnoredAny>(text).is_ok())
}

fn bad_request(reason: &str) -> Response {
    tracing::warn!(reason, "signed request refused");
    Res::new(400, "Bad Request").into_response()
}

fn header(req: &Req, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| req.header(name)).map(str::to_owned)
}

impl FromRequest<AppState> for Webhook {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (core, shop, body) =
            verified(request, state, ShopifyApp::precheck_webhook_req, ShopifyApp::verify_webhook_req).await?;
        Ok(Self {
            shop,
            topic: header(&core, &["x-shopify-topic", "shopify-topic"]).unwrap_or_default(),
            webhook_id: header(&core, &["x-shopify-webhook-id", "shopify-webhook-id"]).filter(|id| !id.is_empty()),
            triggered_at: header(&core, &["x-shopify-triggered-at", "shopify-triggered-at"])
                .and_then(|at| OffsetDateTime::parse(at.trim(), &Rfc3339).ok()),
            body,
        })
    }
}

impl FromRequest<AppState> for FlowAction {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (_, shop, body) =
            verified(request, state, ShopifyApp::precheck_flow_action_req, ShopifyApp::verify_flow_action_req).await?;
        Ok(Self { shop, body })
    }
}
