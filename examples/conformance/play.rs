//! Plays one conformance case (`shared/reference/CONFORMANCE.md`) through the auth core and
//! returns its outcome: `{result, result_type, sleeps, http_requests}`.
//!
//! Shared by the runner (`examples/conformance.rs`) and the conformance test
//! (`tests/conformance.rs`). Nothing here touches the network or sleeps: the clock is
//! [`Frozen`] at the case's `now` and Shopify is a [`Scripted`] transport serving the case's
//! answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use shopify_app_rust::shopify::clock::Clock;
use shopify_app_rust::shopify::graphql::GraphqlRequest;
use shopify_app_rust::shopify::http::{BoxFuture, Transport, TransportError, UpstreamRequest};
use shopify_app_rust::shopify::model::{
    AccessMode, AccessToken, ClientCredentialsExchangeResult, GQLResult, IdTokenDetails, Log, Req, Res, ResultForReq,
    ResultWithExchangeableIdToken, ResultWithLoggedInCustomerId, ResultWithNonExchangeableIdToken, TokenExchangeResult,
    User, iso_seconds, json_truthy,
};
use shopify_app_rust::shopify::secret::Secret;
use shopify_app_rust::shopify::{AppConfig, ShopifyApp};
use time::OffsetDateTime;

/// Plays `case` and returns its outcome.
///
/// A case the Rust API cannot express gets the result the reference gives a caller error:
/// `ok: false`, log code `configuration_error`, an empty `500`. That covers an empty
/// `client_id` or `client_secret` (which [`ShopifyApp::new`] refuses by design), an unknown
/// `access_mode`, an `id_token` or `access_token` that is not an object, request headers that
/// are not an object of strings, and other arguments of the wrong JSON type.
pub async fn play(case: &Value) -> Value {
    let function = case["fn"].as_str().unwrap_or_default();
    let clock = Arc::new(Frozen::at(&case["now"]));
    let transport = Arc::new(Scripted::new(&case["http"]));
    let result = match app(case, clock.clone(), transport.clone()) {
        Ok(app) => call(&app, function, case).await.unwrap_or_else(|detail| configuration_error(function, &detail)),
        Err(detail) => configuration_error(function, &detail),
    };
    json!({
        "result": result,
        "result_type": result_type(function),
        "sleeps": lock(&clock.sleeps).iter().copied().map(seconds).collect::<Vec<_>>(),
        "http_requests": transport.requests(),
    })
}

/// Why a case cannot be expressed with the Rust API.
type Unexpressible = String;

/// The core for this case: its config, its frozen clock, its jitter, its scripted Shopify.
fn app(case: &Value, clock: Arc<Frozen>, transport: Arc<Scripted>) -> Result<ShopifyApp, Unexpressible> {
    let config = &case["config"];
    let text = |key: &str| string_or_empty(&config[key]).ok_or_else(|| format!("config.{key} is not a string"));
    let config = AppConfig {
        client_id: text("client_id")?,
        client_secret: text("client_secret")?.into(),
        old_client_secret: config["old_client_secret"].as_str().map(Secret::new),
    };
    let jitter = case["jitter"].as_u64().unwrap_or(0);
    let app =
        ShopifyApp::new(config, transport).map_err(|error| format!("ShopifyApp::new refuses this config: {error}"))?;
    Ok(app.with_clock(clock).with_jitter(Arc::new(move || jitter)))
}

/// Calls the case's function with the case's arguments, and serialises its result.
async fn call(app: &ShopifyApp, function: &str, case: &Value) -> Result<Value, Unexpressible> {
    let args = &case["args"];
    let string = |key: &str| -> Result<String, Unexpressible> {
        string_or_empty(&args[key]).ok_or_else(|| format!("{key} is not a string"))
    };
    let req = || request(function, &case["req"]);
    Ok(match function {
        "verify_webhook_req" => to_json(app.verify_webhook_req(&req()?)),
        "verify_flow_action_req" => to_json(app.verify_flow_action_req(&req()?)),
        "verify_app_proxy_req" => to_json(app.verify_app_proxy_req(&req()?)),
        "verify_checkout_ui_ext_req" => to_json(app.verify_checkout_ui_ext_req(&req()?)),
        "verify_customer_account_ui_ext_req" => to_json(app.verify_customer_account_ui_ext_req(&req()?)),
        "verify_admin_ui_ext_req" => to_json(app.verify_admin_ui_ext_req(&req()?)),
        "verify_pos_ui_ext_req" => to_json(app.verify_pos_ui_ext_req(&req()?)),
        "verify_app_home_req" => to_json(app.verify_app_home_req(&req()?, &string("app_home_patch_id_token_path")?)),
        "app_home_patch_id_token" => to_json(app.app_home_patch_id_token(&req()?)),
        "app_home_parent_redirect" => {
            let target = match &args["target"] {
                Value::Null => None,
                Value::String(target) => Some(target.as_str()),
                _ => return Err("target is not a string".to_owned()),
            };
            to_json(app.app_home_parent_redirect(&req()?, &string("redirect_url")?, &string("shop")?, target))
        }
        "app_home_redirect" => to_json(app.app_home_redirect(&req()?, &string("redirect_url")?, &string("shop")?)),
        "exchange_using_token_exchange" => {
            let access_mode = access_mode(&args["access_mode"])?;
            let id_token = id_token(&args["id_token"])?;
            let expiring = args.get("expiring").is_none_or(json_truthy);
            let invalid = response(&args["invalid_token_response"]);
            to_json(app.exchange_using_token_exchange(access_mode, &id_token, invalid, expiring).await)
        }
        "refresh_token_exchanged_access_token" => {
            let token = access_token(&args["access_token"])?;
            to_json(app.refresh_token_exchanged_access_token(&token).await)
        }
        "exchange_using_client_credentials" => {
            // The reference answers a non-string shop like an empty one.
            let shop = args["shop"].as_str().unwrap_or_default();
            to_json(app.exchange_using_client_credentials(shop).await)
        }
        "admin_graphql_request" => {
            let mut request =
                GraphqlRequest::new(string("query")?).invalid_token_response(response(&args["invalid_token_response"]));
            request.variables = Some(args["variables"].clone()).filter(|v| !v.is_null());
            request.headers = string_pairs(&args["headers"]).unwrap_or_default();
            if let Some(max_retries) = args["max_retries"].as_i64() {
                // A negative count (which makes the reference raise) means no retry.
                request.max_retries = u32::try_from(max_retries.max(0)).unwrap_or(u32::MAX);
            }
            to_json(
                app.admin_graphql_request(
                    &string("shop")?,
                    &string("access_token")?,
                    &string("api_version")?,
                    &request,
                )
                .await,
            )
        }
        other => return Err(format!("unknown function {other:?}")),
    })
}

/// The case's request. Fields the function does not read may have any type, as in the
/// reference; fields it reads must be expressible.
fn request(function: &str, req: &Value) -> Result<Req, Unexpressible> {
    let reads_headers = !matches!(function, "verify_app_proxy_req" | "app_home_patch_id_token");
    let reads_body = matches!(function, "verify_webhook_req" | "verify_flow_action_req");
    let headers = match string_pairs(&req["headers"]) {
        Some(headers) => headers,
        None if reads_headers => return Err("request headers are not an object".to_owned()),
        None => Vec::new(),
    };
    let body = match &req["body"] {
        Value::String(body) => body.clone().into_bytes(),
        _ if reads_body => return Err("the request body is not a string".to_owned()),
        _ => Vec::new(),
    };
    Ok(Req {
        // A method or URL of another type is as unusable as an empty one.
        method: req["method"].as_str().unwrap_or_default().to_owned(),
        headers,
        url: req["url"].as_str().unwrap_or_default().to_owned(),
        body,
    })
}

fn access_mode(value: &Value) -> Result<AccessMode, Unexpressible> {
    match value.as_str() {
        Some("online") => Ok(AccessMode::Online),
        Some("offline") => Ok(AccessMode::Offline),
        _ => Err(format!("access_mode {value} is not online or offline")),
    }
}

fn id_token(value: &Value) -> Result<IdTokenDetails, Unexpressible> {
    let Value::Object(id_token) = value else {
        return Err("id_token is not an object".to_owned());
    };
    Ok(IdTokenDetails {
        exchangeable: id_token.get("exchangeable").is_some_and(json_truthy),
        token: id_token.get("token").and_then(Value::as_str).unwrap_or_default().into(),
        claims: id_token.get("claims").and_then(Value::as_object).cloned().unwrap_or_default(),
    })
}

/// The stored token a refresh starts from, with the reference's defaults for absent members.
fn access_token(value: &Value) -> Result<AccessToken, Unexpressible> {
    let Value::Object(token) = value else {
        return Err("access_token is not an object".to_owned());
    };
    let text = |key: &str| token.get(key).and_then(Value::as_str).unwrap_or_default();
    let time = |key: &str| token.get(key).and_then(Value::as_str).and_then(iso_seconds::parse);
    let user = match token.get("user") {
        None | Some(Value::Null) => None,
        Some(user) => {
            Some(serde_json::from_value::<User>(user.clone()).map_err(|error| format!("access_token.user: {error}"))?)
        }
    };
    Ok(AccessToken {
        shop: text("shop").to_owned(),
        token: text("token").into(),
        expires: time("expires"),
        scope: text("scope").to_owned(),
        access_mode: match token.get("access_mode") {
            None => AccessMode::Offline,
            Some(mode) => access_mode(mode)?,
        },
        refresh_token: token.get("refresh_token").and_then(Value::as_str).map(Secret::new),
        refresh_token_expires: time("refresh_token_expires"),
        user,
    })
}

/// A `{status, body, headers}` object as a response (missing members: `0`, `""`, none).
fn response(value: &Value) -> Option<Res> {
    let value = value.as_object()?;
    Some(Res {
        status: value.get("status").and_then(Value::as_u64).and_then(|status| u16::try_from(status).ok()).unwrap_or(0),
        body: value.get("body").and_then(Value::as_str).unwrap_or_default().to_owned(),
        headers: value.get("headers").and_then(string_pairs).unwrap_or_default(),
    })
}

/// An object of strings as ordered pairs; `None` for anything else.
fn string_pairs(value: &Value) -> Option<Vec<(String, String)>> {
    value.as_object()?.iter().map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned()))).collect()
}

/// A string argument, with an absent or null one read as `""` (the reference's default).
fn string_or_empty(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

fn to_json(result: impl Serialize) -> Value {
    serde_json::to_value(result).unwrap_or_else(|error| json!({ "serialize_error": error.to_string() }))
}

/// The reference's result type for each function.
fn result_type(function: &str) -> &'static str {
    match function {
        "verify_checkout_ui_ext_req" | "verify_customer_account_ui_ext_req" => "ResultWithNonExchangeableIdToken",
        "verify_admin_ui_ext_req" | "verify_pos_ui_ext_req" | "verify_app_home_req" => "ResultWithExchangeableIdToken",
        "verify_app_proxy_req" => "ResultWithLoggedInCustomerId",
        "exchange_using_token_exchange" | "refresh_token_exchanged_access_token" => "TokenExchangeResult",
        "exchange_using_client_credentials" => "ClientCredentialsExchangeResult",
        "admin_graphql_request" => "GQLResult",
        _ => "ResultForReq",
    }
}

/// A `configuration_error` result of the function's result type.
fn configuration_error(function: &str, detail: &str) -> Value {
    let (ok, shop, response) = (false, None, Res::new(500, ""));
    let log = Log::new("configuration_error", detail);
    match result_type(function) {
        "ResultWithNonExchangeableIdToken" => {
            to_json(ResultWithNonExchangeableIdToken { ok, shop, log, response, id_token: None })
        }
        "ResultWithExchangeableIdToken" => to_json(ResultWithExchangeableIdToken {
            ok,
            shop,
            log,
            response,
            user_id: None,
            id_token: None,
            invalid_token_response: None,
        }),
        "ResultWithLoggedInCustomerId" => {
            to_json(ResultWithLoggedInCustomerId { ok, shop, log, response, logged_in_customer_id: None })
        }
        "TokenExchangeResult" => {
            to_json(TokenExchangeResult { ok, shop, log, response, access_token: None, http_logs: Vec::new() })
        }
        "ClientCredentialsExchangeResult" => to_json(ClientCredentialsExchangeResult {
            ok,
            shop,
            log,
            response,
            access_token: None,
            http_logs: Vec::new(),
        }),
        "GQLResult" => {
            to_json(GQLResult { ok, shop, log, response, data: None, extensions: None, http_logs: Vec::new() })
        }
        _ => to_json(ResultForReq { ok, shop, log, response }),
    }
}

/// The case's clock: frozen at `now`, as in the reference corpus. Its sleeps return at once
/// and are recorded, without moving the time (unlike the core's `ManualClock`, which advances:
/// a token obtained after a retry would then expire a second later than the reference's).
struct Frozen {
    now: OffsetDateTime,
    sleeps: Mutex<Vec<Duration>>,
}

impl Frozen {
    /// Frozen at `now` (epoch seconds, fractions allowed), or at the real time when null.
    fn at(now: &Value) -> Self {
        let real = || OffsetDateTime::now_utc();
        let now = now.as_f64().map_or_else(real, |seconds| {
            let nanos = (seconds * 1e9).round() as i128;
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or_else(|_| real())
        });
        Self { now, sleeps: Mutex::new(Vec::new()) }
    }
}

impl Clock for Frozen {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        lock(&self.sleeps).push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// A wait in seconds, as an integer when whole (`1`, not `1.0`).
fn seconds(wait: Duration) -> Value {
    if wait.subsec_nanos() == 0 { json!(wait.as_secs()) } else { json!(wait.as_secs_f64()) }
}

/// Shopify, scripted: serves the case's `http` answers in order and records what was sent.
pub struct Scripted {
    answers: Mutex<std::vec::IntoIter<Value>>,
    sent: Mutex<Vec<UpstreamRequest>>,
}

impl Scripted {
    fn new(http: &Value) -> Self {
        let answers = http.as_array().cloned().unwrap_or_default();
        Self { answers: Mutex::new(answers.into_iter()), sent: Mutex::new(Vec::new()) }
    }

    /// The requests sent, as `{method, url, headers: [[name, value]], body}`.
    fn requests(&self) -> Vec<Value> {
        lock(&self.sent)
            .iter()
            .map(|request| {
                json!({
                    "method": request.method,
                    "url": request.url,
                    "headers": request.headers,
                    "body": request.body,
                })
            })
            .collect()
    }

    /// One scripted answer: `{raise}` fails, `{status, json}` is served as
    /// `application/json`, `{status, headers?, body?}` as given. Like a real HTTP client,
    /// the answer's header names come back lowercase, with `content-length` (and the JSON
    /// `content-type`) added when the script leaves them out.
    fn answer(answer: &Value) -> Result<Res, TransportError> {
        match answer["raise"].as_str() {
            Some("connect") => return Err(TransportError::Connect),
            Some("timeout") => return Err(TransportError::Timeout),
            Some(_) => return Err(TransportError::Io),
            None => {}
        }
        let status = answer["status"].as_u64().and_then(|status| u16::try_from(status).ok()).unwrap_or(599);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut set_header = |name: &str, value: String, replace: bool| {
            let name = name.to_ascii_lowercase();
            match headers.iter_mut().find(|(existing, _)| *existing == name) {
                Some(existing) if replace => existing.1 = value,
                Some(_) => {}
                None => headers.push((name, value)),
            }
        };
        for (name, value) in answer["headers"].as_object().into_iter().flatten() {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            set_header(name, value, true);
        }
        let (body, content_type) = match answer.get("json") {
            Some(json) => (json.to_string(), Some("application/json")),
            None => (answer["body"].as_str().unwrap_or_default().to_owned(), None),
        };
        if !body.is_empty() {
            set_header("content-length", body.len().to_string(), false);
        }
        if let Some(content_type) = content_type {
            set_header("content-type", content_type.to_owned(), false);
        }
        Ok(Res { status, body, headers })
    }
}

impl Transport for Scripted {
    fn send(&self, mut request: UpstreamRequest) -> BoxFuture<'_, Result<Res, TransportError>> {
        // The production transport (reqwest) sends `Accept: */*` when the request sets none.
        if !request.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("accept")) {
            request.headers.push(UpstreamRequest::header("Accept", "*/*"));
        }
        lock(&self.sent).push(request);
        let answer = match lock(&self.answers).next() {
            Some(answer) => Self::answer(&answer),
            None => Ok(Res::new(599, "")),
        };
        Box::pin(std::future::ready(answer))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
