//! The Admin GraphQL API bound to one shop and its offline token, for handlers and jobs:
//! typed queries and mutations, connections page by page ([`pages`]), bulk operations
//! ([`bulk`]).

pub mod bulk;
pub mod pages;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::AppError;
use crate::shopify::ShopifyApp;
use crate::shopify::graphql::GraphqlRequest;
use crate::shopify::model::{AccessToken, GQLResult, IdTokenDetails, Res};
use crate::state::AppState;
use crate::tokens::OfflineTokens;

/// A shop's Admin API, with an offline token valid for at least a minute.
pub struct AdminApi {
    /// The shop's name (`s1`).
    pub shop: String,
    /// The offline token in use.
    pub access_token: AccessToken,
    invalid_token_response: Option<Arc<Res>>,
    shopify: ShopifyApp,
    tokens: Arc<OfflineTokens>,
    config: Arc<Config>,
}

impl AdminApi {
    /// The API of the shop a verified session token belongs to: its stored offline token,
    /// refreshed or exchanged as needed.
    pub async fn connect(
        state: &AppState,
        shop: &str,
        id_token: &IdTokenDetails,
        invalid_token_response: Option<Arc<Res>>,
    ) -> Result<Self, AppError> {
        let access_token = state.tokens.get(shop, id_token, invalid_token_response.as_deref()).await?;
        Ok(Self::with_token(state, shop, access_token, invalid_token_response))
    }

    /// The API of `shop` outside a page load (a webhook handler, a job), like
    /// `unauthenticated.admin(shop)` in Shopify's JavaScript library: the stored offline token,
    /// refreshed as needed (one refresh at a time, across instances). Without a usable one,
    /// [`TokenError::NoOfflineToken`](crate::tokens::TokenError::NoOfflineToken): a new token
    /// takes a session token, so the merchant must open the app again. When Shopify rejects
    /// the token, the token is forgotten and the call answers 401.
    pub async fn for_shop(state: &AppState, shop: &str) -> Result<Self, AppError> {
        let access_token = state.tokens.get_stored(shop).await?;
        Ok(Self::with_token(state, shop, access_token, None))
    }

    fn with_token(
        state: &AppState,
        shop: &str,
        access_token: AccessToken,
        invalid_token_response: Option<Arc<Res>>,
    ) -> Self {
        Self {
            shop: shop.to_owned(),
            access_token,
            invalid_token_response,
            shopify: state.shopify.clone(),
            tokens: state.tokens.clone(),
            config: Arc::clone(&state.config),
        }
    }

    /// Runs a query. When Shopify rejects the token it is forgotten and the error carries
    /// the session's invalid-token response, so the client retries with a fresh session
    /// token and the next request exchanges a new access token.
    pub async fn graphql(&self, request: GraphqlRequest) -> Result<GQLResult, AppError> {
        let request = request.invalid_token_response(self.invalid_token_response.as_deref().cloned());
        let result = self
            .shopify
            .admin_graphql_request(&self.shop, self.access_token.token.expose(), &self.config.api_version, &request)
            .await;
        log_usage(&self.shop, &self.config.api_version, &result);
        if result.log.code == "unauthorized" {
            tracing::warn!(shop = %self.shop, "Shopify rejected the stored offline token; forgetting it");
            self.tokens.forget(&self.shop, self.access_token.token.expose()).await?;
            return Err(AppError::Protocol(result.response));
        }
        Ok(result)
    }
}

impl AdminApi {
    /// Runs a query and reads its `data` as `T`. A failed call, or `data` of another shape, is
    /// a [`GraphqlError`] that `?` turns into the right answer: handlers check no `ok` flag.
    pub async fn query<T: DeserializeOwned>(&self, request: GraphqlRequest) -> Result<T, GraphqlError> {
        let data = self.data(request).await?;
        serde_json::from_value(data).map_err(|error| GraphqlError::shape(&error))
    }

    /// Runs a mutation and reads its payload `data.{field}` as `T`, once its `userErrors` are
    /// empty (otherwise [`GraphqlError::UserErrors`], answered 422).
    pub async fn mutate<T: DeserializeOwned>(&self, request: GraphqlRequest, field: &str) -> Result<T, GraphqlError> {
        let mut data = self.data(request).await?;
        let payload = data.get_mut(field).map(Value::take).unwrap_or(Value::Null);
        let errors: Vec<UserError> = payload
            .get("userErrors")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| GraphqlError::shape(&error))?
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(GraphqlError::UserErrors(errors));
        }
        serde_json::from_value(payload).map_err(|error| GraphqlError::shape(&error))
    }

    async fn data(&self, request: GraphqlRequest) -> Result<Value, GraphqlError> {
        let result = self.graphql(request).await?;
        if !result.ok {
            tracing::warn!(shop = %self.shop, code = %result.log.code, "Admin API call failed");
            return Err(GraphqlError::Failed(Box::new(result)));
        }
        Ok(result.data.unwrap_or(Value::Null))
    }
}

/// A query's cost, from the answer's `extensions.cost`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryCost {
    requested_query_cost: Option<f64>,
    actual_query_cost: Option<f64>,
    throttle_status: Option<ThrottleStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThrottleStatus {
    maximum_available: f64,
    currently_available: f64,
    restore_rate: f64,
}

/// Logs what a call cost (one line per call; a warning when the shop's bucket is under a
/// tenth full, before Shopify starts throttling) and Shopify's deprecation notice
/// (`X-Shopify-API-Deprecated-Reason`: the deprecated fields the query used, a warning).
fn log_usage(shop: &str, api_version: &str, result: &GQLResult) {
    if let Some(reason) = result.response.header("x-shopify-api-deprecated-reason") {
        tracing::warn!(shop, api_version, reason, "the Admin API call used something deprecated");
    }
    let Some(cost) = result
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("cost"))
        .and_then(|cost| QueryCost::deserialize(cost).ok())
    else {
        return;
    };
    let (requested, actual) = (cost.requested_query_cost, cost.actual_query_cost);
    match cost.throttle_status {
        Some(bucket) if bucket.currently_available < bucket.maximum_available / 10.0 => tracing::warn!(
            shop,
            requested,
            actual,
            available = bucket.currently_available,
            restore_rate = bucket.restore_rate,
            "Admin API query cost: the shop's bucket is nearly empty"
        ),
        Some(bucket) => {
            tracing::info!(shop, requested, actual, available = bucket.currently_available, "Admin API query cost")
        }
        None => tracing::info!(shop, requested, actual, "Admin API query cost"),
    }
}

/// One of a mutation's `userErrors`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserError {
    /// The input field it is about, as a path.
    #[serde(default)]
    pub field: Option<Vec<String>>,
    /// What is wrong.
    pub message: String,
}

/// Why a typed Admin API call failed; answers as a route should.
#[derive(Debug, thiserror::Error)]
pub enum GraphqlError {
    /// Shopify answered an error, or could not be reached: its status and `errors` (502 when
    /// its status was 200).
    #[error("the Admin API call failed: {}", .0.log.code)]
    Failed(Box<GQLResult>),
    /// The mutation's `userErrors`: 422 with them.
    #[error("Shopify refused: {}", .0.iter().map(|error| error.message.as_str()).collect::<Vec<_>>().join("; "))]
    UserErrors(Vec<UserError>),
    /// `data` had another shape than the Rust type: 502.
    #[error("unexpected answer: {0}")]
    Shape(String),
    /// A bulk operation's result file could not be read: 502.
    #[error("the bulk operation's result could not be read: {0}")]
    Download(String),
    /// The app's own errors (no token, a token Shopify rejected, the database).
    #[error(transparent)]
    App(#[from] AppError),
}

impl GraphqlError {
    /// An answer of another shape than the Rust type, described without quoting its values.
    pub fn shape(error: &serde_json::Error) -> Self {
        Self::Shape(crate::jobs::shape_error(error))
    }
}

impl IntoResponse for GraphqlError {
    fn into_response(self) -> Response {
        match self {
            GraphqlError::Failed(result) => graphql_failure(&result),
            GraphqlError::UserErrors(errors) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "errors": errors }))).into_response()
            }
            GraphqlError::Shape(reason) => {
                tracing::warn!(%reason, "unexpected Admin API answer");
                (StatusCode::BAD_GATEWAY, Json(json!({ "errors": [{ "message": "unexpected answer from Shopify" }] })))
                    .into_response()
            }
            GraphqlError::Download(reason) => {
                tracing::warn!(%reason, "bulk operation result unreadable");
                (StatusCode::BAD_GATEWAY, Json(json!({ "errors": [{ "message": "the result could not be read" }] })))
                    .into_response()
            }
            GraphqlError::App(error) => error.into_response(),
        }
    }
}

/// A failed call's outcome code, with Shopify's error messages when it sent any (for the
/// merchant's page: they may quote the query's input, so they stay out of logs and jobs).
pub(crate) fn failure_reason(result: &GQLResult) -> String {
    let errors = shopify_errors(result);
    let messages: Vec<&str> = errors
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|error| error.get("message")?.as_str())
        .collect();
    match messages.is_empty() {
        true => result.log.code.to_string(),
        false => format!("{}: {}", result.log.code, messages.join("; ")),
    }
}

/// A JSON answer for a failed query: Shopify's `errors` (or the outcome code) with a 4xx/5xx
/// status (502 when Shopify's own status was 200).
fn graphql_failure(result: &GQLResult) -> Response {
    let status =
        StatusCode::from_u16(result.response.status).ok().filter(|s| s.is_client_error() || s.is_server_error());
    let errors = shopify_errors(result).unwrap_or_else(|| json!([{ "message": result.log.code }]));
    (status.unwrap_or(StatusCode::BAD_GATEWAY), Json(json!({ "errors": errors }))).into_response()
}

/// The `errors` member of Shopify's answer to a failed call, if it sent one.
fn shopify_errors(result: &GQLResult) -> Option<Value> {
    let mut body: Value = serde_json::from_str(&result.response.body).ok()?;
    body.get_mut("errors").map(Value::take)
}
