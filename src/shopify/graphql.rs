//! `admin_graphql_request`: the Admin GraphQL API with Shopify's retry policy, plus waiting
//! out the cost-based `THROTTLED` error that arrives inside a `200`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::ShopifyApp;
use super::exchange::{MAX_RETRY_AFTER, retry_after};
use super::http::{USER_AGENT, UpstreamRequest};
use super::model::{GQLResult, HttpLog, Log, Res, json_truthy};
use super::protocol;
use super::secret::Secret;
use super::shop::shop_domain;

/// One Admin GraphQL call: the query and its optional parts.
#[derive(Debug, Clone)]
pub struct GraphqlRequest {
    /// The GraphQL document.
    pub query: String,
    /// Its variables (left out when empty).
    pub variables: Option<Value>,
    /// Extra headers, replacing defaults of the same name.
    pub headers: Vec<(String, String)>,
    /// What to answer the client when Shopify rejects the access token.
    pub invalid_token_response: Option<Res>,
    /// Retries after the first attempt (429, 502-504 and `THROTTLED`).
    pub max_retries: u32,
}

impl GraphqlRequest {
    /// A request for `query` with the default two retries.
    pub fn new(query: impl Into<String>) -> Self {
        Self { query: query.into(), variables: None, headers: Vec::new(), invalid_token_response: None, max_retries: 2 }
    }

    /// Sets the variables.
    pub fn variables(mut self, variables: Value) -> Self {
        self.variables = Some(variables);
        self
    }

    /// Sets the answer for a rejected access token.
    pub fn invalid_token_response(mut self, response: Option<Res>) -> Self {
        self.invalid_token_response = response;
        self
    }
}

impl ShopifyApp {
    /// Sends a query to the shop's Admin GraphQL API with `access_token`.
    ///
    /// Retries `429` (honouring `Retry-After`), `502`/`503`/`504` (exponential backoff with
    /// jitter) and `THROTTLED` (waiting for the cost bucket to refill), `max_retries` times.
    pub async fn admin_graphql_request(
        &self,
        shop: &str,
        access_token: &str,
        api_version: &str,
        request: &GraphqlRequest,
    ) -> GQLResult {
        let invalid = |code: &'static str, detail: &str| failure(code, detail, Res::new(400, ""), Vec::new());
        if shop.is_empty() {
            return invalid("missing_shop", "the shop is required");
        }
        if access_token.is_empty() {
            return invalid("missing_access_token", "the access token is required");
        }
        if api_version.is_empty() {
            return invalid("missing_api_version", "the API version is required");
        }
        if request.query.is_empty() {
            return invalid("missing_query", "the query is required");
        }
        let Some(domain) = shop_domain(shop) else {
            return invalid("invalid_shop", "the shop is not a valid shop name");
        };
        if !api_version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return invalid("invalid_api_version", "the API version is not a version name");
        }

        let upstream = self.graphql_upstream_request(&domain, access_token, api_version, request);
        let mut http_logs = Vec::new();
        let mut attempt = 0;
        loop {
            let retries_left = attempt < request.max_retries;
            let attempt_text = format!("attempt {} of {}", attempt + 1, request.max_retries + 1);
            let response = match self.transport.send(upstream.clone()).await {
                Ok(response) => response,
                Err(error) => {
                    let detail = format!("network error talking to Shopify: {error}");
                    http_logs.push(HttpLog::new("network_error", detail.clone(), Res::default()));
                    return failure("network_error", &detail, Res::default(), http_logs);
                }
            };
            let wait = match response.status {
                200 => {
                    let json: Option<Map<String, Value>> = serde_json::from_str(&response.body).ok();
                    let errors = json.as_ref().and_then(|body| body.get("errors")).filter(|errors| json_truthy(errors));
                    match (errors, json.as_ref()) {
                        (Some(errors), Some(body)) => match throttle_wait(errors, body) {
                            Some(wait) if retries_left => {
                                let detail = format!(
                                    "throttled; waiting {}s for the cost bucket ({attempt_text})",
                                    wait.as_secs_f64()
                                );
                                http_logs.push(HttpLog::new("throttled_retry", detail, response));
                                wait
                            }
                            _ => {
                                http_logs.push(HttpLog::new(
                                    "graphql_errors",
                                    "the query returned errors",
                                    response.clone(),
                                ));
                                return failure("graphql_errors", "the query returned errors", response, http_logs);
                            }
                        },
                        _ => {
                            let member = |key: &str| json.as_ref().and_then(|body| body.get(key)).cloned();
                            let (data, extensions) = (member("data"), member("extensions"));
                            http_logs.push(HttpLog::new("success", "query succeeded", response.clone()));
                            return GQLResult {
                                ok: true,
                                shop: Some(shop.to_owned()),
                                log: Log::new("success", "query succeeded"),
                                response,
                                data,
                                extensions,
                                http_logs,
                            };
                        }
                    }
                }
                401 => {
                    let detail = "Shopify rejected the access token";
                    http_logs.push(HttpLog::new("unauthorized", detail, response));
                    let answer = request.invalid_token_response.clone().unwrap_or_else(|| Res::new(401, ""));
                    return failure("unauthorized", detail, answer, http_logs);
                }
                429 if retries_left => {
                    let wait = retry_after(&response);
                    let detail = format!("rate limited; retrying in {}s ({attempt_text})", wait.as_secs_f64());
                    http_logs.push(HttpLog::new("rate_limited_retry", detail, response));
                    wait
                }
                429 => {
                    http_logs.push(HttpLog::new("rate_limited", "still rate limited after every retry", response));
                    return failure(
                        "rate_limited",
                        "still rate limited after every retry",
                        protocol::too_many_requests(),
                        http_logs,
                    );
                }
                status @ 502..=504 if retries_left => {
                    let wait = Duration::from_millis((1000 << attempt.min(10)) + (self.jitter)());
                    let code = format!("http_error_{status}_retry");
                    let detail =
                        format!("HTTP {status} from Shopify; retrying in {}s ({attempt_text})", wait.as_secs_f64());
                    http_logs.push(HttpLog::new(code, detail, response));
                    wait
                }
                status @ 502..=504 => {
                    let code = format!("http_error_{status}");
                    let detail = format!("HTTP {status} from Shopify after every retry");
                    http_logs.push(HttpLog::new(code.clone(), detail.clone(), response));
                    return failure(code, &detail, Res::new(status, ""), http_logs);
                }
                status => {
                    let detail = match status {
                        400 => "HTTP 400: the request is malformed; do not retry".to_owned(),
                        403 => "HTTP 403: the app lacks a permission for this query; do not retry".to_owned(),
                        _ => format!("HTTP error {status}"),
                    };
                    let code = format!("http_error_{status}");
                    http_logs.push(HttpLog::new(code.clone(), detail.clone(), response.clone()));
                    return failure(code, &detail, response, http_logs);
                }
            };
            self.clock.sleep(wait).await;
            attempt += 1;
        }
    }

    fn graphql_upstream_request(
        &self,
        domain: &str,
        access_token: &str,
        api_version: &str,
        request: &GraphqlRequest,
    ) -> UpstreamRequest {
        let mut headers = vec![
            UpstreamRequest::header("Content-Type", "application/json"),
            UpstreamRequest::header("X-Shopify-Access-Token", access_token),
            UpstreamRequest::header("User-Agent", USER_AGENT),
        ];
        for (name, value) in &request.headers {
            match headers.iter_mut().find(|(existing, _)| existing == name) {
                Some(existing) => existing.1 = Secret::new(value.clone()),
                None => headers.push(UpstreamRequest::header(name, value.clone())),
            }
        }
        let mut body = Map::new();
        body.insert("query".to_owned(), Value::String(request.query.clone()));
        if let Some(variables) = request.variables.as_ref().filter(|variables| json_truthy(variables)) {
            body.insert("variables".to_owned(), variables.clone());
        }
        UpstreamRequest {
            method: "POST",
            url: self.origin.url(domain, &format!("/admin/api/{api_version}/graphql.json")),
            headers,
            body: Value::Object(body).to_string().into(),
        }
    }
}

/// How long to wait when `errors` holds a `THROTTLED` error: until the bucket holds the
/// query's cost again, from `extensions.cost` (1 s when the numbers are missing), capped.
fn throttle_wait(errors: &Value, body: &Map<String, Value>) -> Option<Duration> {
    let throttled = errors
        .as_array()?
        .iter()
        .any(|error| error.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED"));
    if !throttled {
        return None;
    }
    let cost = body.get("extensions").and_then(|extensions| extensions.get("cost"));
    let number = |pointer: &str| cost.and_then(|cost| cost.pointer(pointer)).and_then(Value::as_f64);
    let seconds = match (
        number("/requestedQueryCost"),
        number("/throttleStatus/currentlyAvailable"),
        number("/throttleStatus/restoreRate"),
    ) {
        (Some(requested), Some(available), Some(rate)) if rate > 0.0 => {
            ((requested - available) / rate).ceil().max(1.0)
        }
        _ => 1.0,
    };
    Some(Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

fn failure(
    code: impl Into<std::borrow::Cow<'static, str>>,
    detail: &str,
    response: Res,
    http_logs: Vec<HttpLog>,
) -> GQLResult {
    GQLResult { ok: false, shop: None, log: Log::new(code, detail), response, data: None, extensions: None, http_logs }
}
