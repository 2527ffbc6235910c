//! Test support: a fake Shopify (a real HTTP server on 127.0.0.1), session-token signing,
//! and the app wired to both over a temporary SQLite file.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod browser;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, Response, StatusCode};
use axum::routing::post;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shopify_app_rust::config::Config;
use shopify_app_rust::db::Db;
use shopify_app_rust::on_pool;
use shopify_app_rust::shopify::clock::{Clock, ManualClock};
use shopify_app_rust::shopify::http::BoxFuture;
use shopify_app_rust::shopify::model::{AccessMode, AccessToken};
#[allow(unused_imports)] // not every test binary compares secrets
pub use shopify_app_rust::shopify::secret::Secret;
use shopify_app_rust::{AppState, app, db, server};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub const API_KEY: &str = "test-api-key";
pub const API_SECRET: &str = "test-api-secret";
pub const OLD_API_SECRET: &str = "test-old-secret";
pub const APP_URL: &str = "https://app.example.com";
pub const SHOP: &str = "s1";
pub const SHOP_DOMAIN: &str = "s1.myshopify.com";
/// The frozen "now" of the tests' clock (2025-06-15T15:06:40Z).
pub const NOW: i64 = 1_750_000_000;
/// `TOKEN_ENCRYPTION_KEYS` entries: key `a` (32 bytes of 0x01) and key `b` (32 bytes of 0x02).
pub const KEY_A: &str = "a:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const KEY_B: &str = "b:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// Which fake endpoint a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/admin/oauth/access_token`.
    Token,
    /// `/admin/api/{version}/graphql.json`.
    Graphql,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub endpoint: Endpoint,
    pub shop: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn grant_type(&self) -> &str {
        self.body["grant_type"].as_str().unwrap_or_default()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Scripted {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: vec![("content-type".into(), "application/json".into())], body: body.to_string() }
    }

    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: String::new() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<Recorded>>,
    scripts: Mutex<HashMap<Endpoint, VecDeque<Scripted>>>,
    issued: Mutex<u32>,
    /// Real delay before answering a refresh, to widen the window for racing requests.
    refresh_delay: Mutex<Duration>,
    /// When set, a refresh is held until the test releases it.
    refresh_gate: Mutex<Option<RefreshGate>>,
    /// When set, a GraphQL request is held until the test releases it.
    graphql_gate: Mutex<Option<RefreshGate>>,
}

/// Holds refresh answers: the test learns when a refresh arrived and says when to answer.
#[derive(Clone, Default)]
pub struct RefreshGate {
    arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl RefreshGate {
    /// Waits until a refresh request reached the fake.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Lets the held refresh answer.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// A fake Shopify: OAuth token endpoint and Admin GraphQL, with scripted answers.
#[derive(Clone)]
pub struct FakeShopify {
    /// `http://127.0.0.1:PORT/{shop}`, for `SHOPIFY_SHOP_ORIGIN`.
    pub origin: String,
    state: Arc<FakeState>,
}

impl FakeShopify {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let router = Router::new()
            .route("/{shop}/admin/oauth/access_token", post(token_endpoint))
            .route("/{shop}/admin/api/{version}/graphql.json", post(graphql_endpoint))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { origin: format!("http://{address}/{{shop}}"), state }
    }

    /// Queues answers for an endpoint; once they run out, the default behaviour resumes.
    pub fn script(&self, endpoint: Endpoint, answers: impl IntoIterator<Item = Scripted>) {
        self.state.scripts.lock().unwrap().entry(endpoint).or_default().extend(answers);
    }

    /// Holds every refresh until released through the returned gate.
    pub fn hold_refreshes(&self) -> RefreshGate {
        let gate = RefreshGate::default();
        *self.state.refresh_gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// Holds every GraphQL request until released through the returned gate.
    pub fn hold_graphql(&self) -> RefreshGate {
        let gate = RefreshGate::default();
        *self.state.graphql_gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// GraphQL requests answer at once again.
    pub fn stop_holding_graphql(&self) {
        *self.state.graphql_gate.lock().unwrap() = None;
    }

    pub fn set_refresh_delay(&self, delay: Duration) {
        *self.state.refresh_delay.lock().unwrap() = delay;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self, grant_type: &str) -> usize {
        self.requests().iter().filter(|r| r.endpoint == Endpoint::Token && r.grant_type() == grant_type).count()
    }

    pub fn exchanges(&self) -> usize {
        self.count("urn:ietf:params:oauth:grant-type:token-exchange")
    }

    pub fn refreshes(&self) -> usize {
        self.count("refresh_token")
    }

    pub fn graphql_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.endpoint == Endpoint::Graphql).collect()
    }
}

fn record(
    state: &FakeState,
    endpoint: Endpoint,
    shop: String,
    path: String,
    headers: HeaderMap,
    body: &Bytes,
) -> Option<Scripted> {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded { endpoint, shop, path, headers, body });
    state.scripts.lock().unwrap().get_mut(&endpoint).and_then(VecDeque::pop_front)
}

fn respond(answer: Scripted) -> Response<Body> {
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(answer.body)).unwrap()
}

async fn token_endpoint(
    State(state): State<Arc<FakeState>>,
    Path(shop): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = format!("/{shop}/admin/oauth/access_token");
    if let Some(answer) = record(&state, Endpoint::Token, shop, path, headers, &body) {
        return respond(answer);
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["grant_type"] == "refresh_token" {
        let gate = state.refresh_gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.arrived.notify_one();
            gate.release.notified().await;
        }
        let delay = *state.refresh_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
    }
    let serial = {
        let mut issued = state.issued.lock().unwrap();
        *issued += 1;
        *issued
    };
    respond(Scripted::json(
        200,
        json!({
            "access_token": format!("shpat_fake_{serial}"),
            "scope": "write_products",
            "expires_in": 3600,
            "refresh_token": format!("shprt_fake_{serial}"),
            "refresh_token_expires_in": 7_776_000,
        }),
    ))
}

async fn graphql_endpoint(
    State(state): State<Arc<FakeState>>,
    Path((shop, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = format!("/{shop}/admin/api/{version}/graphql.json");
    if let Some(answer) = record(&state, Endpoint::Graphql, shop, path, headers, &body) {
        return respond(answer);
    }
    let gate = state.graphql_gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.arrived.notify_one();
        gate.release.notified().await;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cost = json!({"cost": {"requestedQueryCost": 10, "actualQueryCost": 10,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}});
    // The products/update job's query: the product the variables name, with a title that
    // needs escaping in HTML.
    if request["query"].as_str().is_some_and(|query| query.contains("product(id:")) {
        let id = request["variables"]["id"].as_str().unwrap_or_default().to_owned();
        let number = id.rsplit('/').next().unwrap_or_default().to_owned();
        return respond(Scripted::json(
            200,
            json!({
                "data": {"product": {"id": id, "title": format!("Snowboard <b>{number}</b>"), "status": "ACTIVE",
                    "updatedAt": "2025-06-15T15:00:00Z"}},
                "extensions": cost
            }),
        ));
    }
    let title = request["variables"]["product"]["title"].clone();
    respond(Scripted::json(
        200,
        json!({
            "data": {"productCreate": {
                "product": {"id": "gid://shopify/Product/1", "title": title, "handle": "fake", "status": "ACTIVE"},
                "userErrors": []
            }},
            "extensions": cost
        }),
    ))
}

/// A manual clock whose sleeps also yield for a real millisecond, so that tasks polling a
/// lease let the holder finish, while the suite never waits for the time it pretends.
pub struct TestClock(pub ManualClock);

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.0.sleep(duration).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        })
    }
}

/// The app under test: the real router over a temporary SQLite file and a fake Shopify.
pub struct TestApp {
    pub state: AppState,
    pub shopify: FakeShopify,
    pub clock: Arc<TestClock>,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub fn test_config(shopify: &FakeShopify, database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("SHOPIFY_API_KEY", API_KEY),
        ("SHOPIFY_API_SECRET", API_SECRET),
        ("SHOPIFY_APP_URL", APP_URL),
        ("SHOPIFY_SHOP_ORIGIN", shopify.origin.as_str()),
        ("DATABASE_URL", database_url),
        ("SCOPES", "write_products"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_vars(vars).unwrap()
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let shopify = FakeShopify::start().await;
        let dir = tempfile::tempdir().unwrap();
        let database_url = database_url(dir.path()).await;
        Self::on_database(shopify, dir, database_url, extra).await
    }

    async fn on_database(
        shopify: FakeShopify,
        dir: tempfile::TempDir,
        database_url: String,
        extra: &[(&str, &str)],
    ) -> Self {
        let clock = Arc::new(TestClock(ManualClock::at(NOW)));
        let db = db::connect(&database_url, 8).await.unwrap();
        let state = AppState::new(test_config(&shopify, &database_url, extra), db, clock.clone()).unwrap();
        Self { state, shopify, clock, database_url, _dir: dir }
    }

    /// A second app process (own pool, own in-process locks) on the same database and fake.
    pub async fn second_process(&self) -> AppState {
        self.second_process_with(&[]).await
    }

    /// A second app process with `extra` settings (the same ones as this app's, say).
    pub async fn second_process_with(&self, extra: &[(&str, &str)]) -> AppState {
        let db = db::connect(&self.database_url, 8).await.unwrap();
        AppState::new(test_config(&self.shopify, &self.database_url, extra), db, self.clock.clone()).unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send(&self.state, request).await
    }

    /// An App Home document load with a fresh, valid session token.
    pub async fn load_home(&self) -> TestResponse {
        self.send(get(&format!("/?{}", document_query(&session_token(self.now()))))).await
    }

    /// A document load of `path` (which may hold a query of its own) with a fresh session
    /// token, the admin in `locale` (`None`: no `locale` parameter).
    pub async fn load_in(&self, path: &str, locale: Option<&str>) -> TestResponse {
        let separator = if path.contains('?') { '&' } else { '?' };
        let query = document_query_in(&session_token(self.now()), locale);
        self.send(get(&format!("{path}{separator}{query}"))).await
    }

    pub fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Everything the database holds: on SQLite, the file and its write-ahead log, read
    /// directly; on PostgreSQL, every row of the app's tables as text.
    pub async fn database_bytes(&self) -> Vec<u8> {
        match &self.state.db {
            Db::Sqlite { .. } => {
                let path = self.database_url.trim_start_matches("sqlite:");
                let mut bytes = std::fs::read(path).unwrap();
                bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
                bytes
            }
            Db::Postgres(pool) => {
                let mut text = String::new();
                for table in APP_TABLES {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT t::text FROM {table} AS t")).fetch_all(pool).await.unwrap();
                    text.extend(rows);
                }
                text.into_bytes()
            }
        }
    }

    /// Whether `text` appears anywhere in [`TestApp::database_bytes`].
    pub async fn database_contains(&self, text: &str) -> bool {
        self.database_bytes().await.windows(text.len()).any(|window| window == text.as_bytes())
    }
}

/// The app served over HTTP on a free port of 127.0.0.1 by `server::serve`, as `main` serves
/// it, with that address as its public URL (`SHOPIFY_APP_URL`), so its redirects come back to
/// it. Serves until `stop` is sent (or the test ends).
pub struct Served {
    pub app: TestApp,
    pub address: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub server: JoinHandle<()>,
}

impl Served {
    /// Serves a new [`TestApp`] with `settings` (which may name another `SHOPIFY_APP_URL`).
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let own_url = format!("http://{address}");
        let settings: Vec<_> =
            [("SHOPIFY_APP_URL", own_url.as_str())].into_iter().chain(settings.iter().copied()).collect();
        let test_app = TestApp::start_with(&settings).await;
        let (stop, stopped) = oneshot::channel::<()>();
        let (router, limits) = (app(test_app.state.clone()), test_app.state.config.limits);
        let server = tokio::spawn(server::serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        Self { app: test_app, address, stop: Some(stop), server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Runs one request through the whole router.
pub async fn send(state: &AppState, request: Request<Body>) -> TestResponse {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    TestResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Claims of a valid App Home session token for `s1`, issued at `now`.
pub fn claims(now: i64) -> Value {
    json!({
        "iss": format!("https://{SHOP_DOMAIN}/admin"),
        "dest": format!("https://{SHOP_DOMAIN}"),
        "aud": API_KEY,
        "sub": "42",
        "exp": now + 60,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": "jti-1",
        "sid": "sid-1",
    })
}

/// Signs claims as Shopify does: an HS256 JWT with the app's secret (the bytes
/// `jsonwebtoken::encode` makes; the app builds it without a crypto backend).
pub fn sign(claims: &Value, secret: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::Mac;
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// A valid session token for `s1` at `now`.
pub fn session_token(now: i64) -> String {
    sign(&claims(now), API_SECRET)
}

/// A valid session token of staff member `sub` in `shop` (`s2`).
pub fn session_token_of(shop: &str, sub: &str, now: i64) -> String {
    let mut claims = claims(now);
    claims["iss"] = json!(format!("https://{shop}.myshopify.com/admin"));
    claims["dest"] = json!(format!("https://{shop}.myshopify.com"));
    claims["sub"] = json!(sub);
    sign(&claims, API_SECRET)
}

/// The query Shopify adds to an App Home document load.
pub fn document_query(id_token: &str) -> String {
    document_query_in(id_token, Some("en"))
}

/// [`document_query`] with the admin in `locale` (`fr`, `fr-CA`), or without the parameter.
pub fn document_query_in(id_token: &str, locale: Option<&str>) -> String {
    let locale = locale.map(|locale| format!("&locale={locale}")).unwrap_or_default();
    format!("embedded=1&host=YWRtaW4&id_token={id_token}{locale}&shop={SHOP_DOMAIN}&timestamp={NOW}")
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn fetch(method: &str, uri: &str, id_token: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {id_token}"))
        .body(Body::empty())
        .unwrap()
}

/// A fetch from the embedded page with a JSON body.
pub fn fetch_json(method: &str, uri: &str, id_token: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {id_token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `X-Shopify-Hmac-SHA256` for a body: base64 HMAC-SHA256 with `secret`.
pub fn body_hmac(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// An App Proxy query: `params` plus `timestamp` and a `signature` over the sorted pairs.
pub fn signed_proxy_query(secret: &str, params: &[(&str, &str)]) -> String {
    use hmac::Mac;
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    let message: String = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let mut query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    query.push(format!("signature={signature}"));
    query.join("&")
}

/// A signed webhook delivery.
pub fn webhook(path: &str, topic: &str, webhook_id: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .header("x-shopify-topic", topic)
        .header("x-shopify-shop-domain", SHOP_DOMAIN)
        .header("x-shopify-webhook-id", webhook_id)
        .header("x-shopify-hmac-sha256", body_hmac(API_SECRET, body.as_bytes()))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Stores an offline token for `shop` (`shpat_{shop}`) that never expires.
pub async fn store_offline_token(app: &TestApp, shop: &str) {
    let token = AccessToken {
        shop: shop.into(),
        token: format!("shpat_{shop}").into(),
        expires: None,
        scope: "write_products".into(),
        access_mode: AccessMode::Offline,
        refresh_token: None,
        refresh_token_expires: None,
        user: None,
    };
    app.state.tokens.repository().save(&token).await.unwrap();
}

/// A `products/update` payload for product `number` (the part the job reads is its GID).
pub fn product_update(number: u32) -> String {
    json!({"id": number, "title": "ignored", "admin_graphql_api_id": format!("gid://shopify/Product/{number}")})
        .to_string()
}

/// Lowercase hex HMAC-SHA256, the OAuth callback's `hmac` format.
pub fn hex_hmac(secret: &str, message: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// An authorization-code callback query as Shopify sends it: `params` plus an `hmac` over the
/// sorted `key=value` pairs joined by `&`.
pub fn signed_callback_query(secret: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    let message = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let mut query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    query.push(format!("hmac={}", hex_hmac(secret, &message)));
    query.join("&")
}

/// A GET carrying a `Cookie` header (as a browser sends the session cookie back).
pub fn get_with_cookie(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri).header("cookie", cookie).body(Body::empty()).unwrap()
}

impl TestResponse {
    /// The `name=value` part of the session cookie this response sets, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookie().map(|cookie| cookie.split(';').next().unwrap_or_default().to_owned())
    }

    /// The full `Set-Cookie` header, if any.
    pub fn set_cookie(&self) -> Option<&str> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok())
    }

    /// The query pairs of the `Location` header.
    pub fn location_params(&self) -> HashMap<String, String> {
        let location = url::Url::parse(self.header("location").expect("a Location header")).unwrap();
        location.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }
}

/// Rows in a table of the app's database.
pub async fn count_rows(state: &AppState, table: &str) -> i64 {
    on_pool!(&state.db, pool => sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await.unwrap())
}

/// Runs `sql` (no parameters) on the app's database; returns the rows it changed.
pub async fn execute(state: &AppState, sql: &str) -> u64 {
    on_pool!(&state.db, pool => sqlx::query(sql).execute(pool).await.unwrap().rows_affected())
}

/// The app's tables that hold tokens.
const APP_TABLES: [&str; 4] = ["access_tokens", "provider_tokens", "provider_pending_connections", "refresh_leases"];

/// The database of one test app: a SQLite file in `dir`, or, when `TEST_POSTGRES_URL` names a
/// PostgreSQL server (`postgres://user@host/postgres`), a new database on it.
pub async fn database_url(dir: &std::path::Path) -> String {
    let Some(server) = std::env::var("TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty()) else {
        return format!("sqlite:{}", dir.join("data/app.db").display());
    };
    let name = format!("test_{}", shopify_app_rust::sessions::random_token().to_lowercase().replace(['-', '_'], ""));
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// The server-side sessions' table: its name differs per backend (see `sessions::Store`).
pub fn sessions_table() -> &'static str {
    if on_postgres() { "tower_sessions.session" } else { "tower_sessions" }
}

/// Whether the tests run on PostgreSQL (`TEST_POSTGRES_URL`).
pub fn on_postgres() -> bool {
    std::env::var("TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty())
}

pub const PROVIDER_CLIENT_ID: &str = "provider-client";
pub const PROVIDER_CLIENT_SECRET: &str = "provider-secret";

#[derive(Default)]
struct ProviderState {
    /// Authorization codes issued, with the PKCE challenge each was issued for.
    codes: Mutex<HashMap<String, String>>,
    /// Token-endpoint requests: the form fields plus `authorization` (the header).
    token_requests: Mutex<Vec<HashMap<String, String>>>,
    access_tokens: Mutex<Vec<String>>,
    refresh_tokens: Mutex<Vec<String>>,
    issued: Mutex<u32>,
    /// Real delay before answering a refresh (after using its refresh token up), to widen the
    /// window for racing requests.
    refresh_delay: Mutex<Duration>,
    /// The `expires_in` of the tokens issued (`3600` unless set).
    expires_in: Mutex<Option<Value>>,
    /// When set, the next refresh is held until the test releases it.
    refresh_gate: Mutex<Option<RefreshGate>>,
    /// Refresh tokens stay valid and refresh answers carry none (no rotation).
    keep_refresh_tokens: Mutex<bool>,
}

/// A fake third-party OAuth2 provider on 127.0.0.1: a token endpoint that checks the client's
/// Basic credentials and PKCE (S256), rotates refresh tokens, and an API that accepts only the
/// current access tokens.
#[derive(Clone)]
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<ProviderState>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let state = Arc::new(ProviderState::default());
        let router = Router::new()
            .route("/token", post(provider_token))
            .route("/api/me", axum::routing::get(provider_me))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { base: format!("http://{address}"), state }
    }

    /// The app's settings for this provider, named `example`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("OAUTH_PROVIDERS", "example".to_owned()),
            ("OAUTH_EXAMPLE_AUTHORIZATION_URL", "https://provider.example/oauth/authorize".to_owned()),
            ("OAUTH_EXAMPLE_TOKEN_URL", format!("{}/token", self.base)),
            ("OAUTH_EXAMPLE_CLIENT_ID", PROVIDER_CLIENT_ID.to_owned()),
            ("OAUTH_EXAMPLE_CLIENT_SECRET", PROVIDER_CLIENT_SECRET.to_owned()),
            ("OAUTH_EXAMPLE_SCOPES", "read write".to_owned()),
            ("OAUTH_EXAMPLE_API_BASE_URL", format!("{}/api", self.base)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// What the provider does when the merchant consents: a code bound to the PKCE challenge.
    pub fn issue_code(&self, code_challenge: &str) -> String {
        let mut codes = self.state.codes.lock().unwrap();
        let code = format!("code-{}", codes.len() + 1);
        codes.insert(code.clone(), code_challenge.to_owned());
        code
    }

    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.state.token_requests.lock().unwrap().clone()
    }

    /// Adds a refresh token the provider accepts (as if issued earlier).
    pub fn accept_refresh_token(&self, token: &str) {
        self.state.refresh_tokens.lock().unwrap().push(token.to_owned());
    }

    /// Forgets every access token, as if they had all expired.
    pub fn expire_access_tokens(&self) {
        self.state.access_tokens.lock().unwrap().clear();
    }

    /// Delays every answer to a refresh by `delay` (real time), after its refresh token is
    /// used up.
    pub fn set_refresh_delay(&self, delay: Duration) {
        *self.state.refresh_delay.lock().unwrap() = delay;
    }

    /// The `expires_in` sent with the tokens issued from now on.
    pub fn set_expires_in(&self, expires_in: Value) {
        *self.state.expires_in.lock().unwrap() = Some(expires_in);
    }

    /// Holds the next refresh (only that one) until released through the returned gate.
    pub fn hold_next_refresh(&self) -> RefreshGate {
        let gate = RefreshGate::default();
        *self.state.refresh_gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// From now on the provider does not rotate refresh tokens: a refresh leaves the refresh
    /// token valid, and its answer is the minimal one (RFC 6749, section 6): no new refresh
    /// token, no scope (unchanged).
    pub fn keep_refresh_tokens(&self) {
        *self.state.keep_refresh_tokens.lock().unwrap() = true;
    }
}

fn provider_json(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn provider_token(State(state): State<Arc<ProviderState>>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    use base64::Engine;
    let mut form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    form.insert("authorization".into(), authorization.clone());
    state.token_requests.lock().unwrap().push(form.clone());
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{PROVIDER_CLIENT_ID}:{PROVIDER_CLIENT_SECRET}"));
    if authorization != format!("Basic {basic}") {
        return provider_json(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let granted = match field("grant_type").as_str() {
        "authorization_code" => {
            let challenge = state.codes.lock().unwrap().remove(&field("code"));
            let verifier = field("code_verifier");
            let computed = {
                use sha2::Digest;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
            };
            challenge.is_some_and(|challenge| !verifier.is_empty() && challenge == computed)
        }
        "refresh_token" => {
            let mut refresh_tokens = state.refresh_tokens.lock().unwrap();
            let before = refresh_tokens.len();
            refresh_tokens.retain(|token| *token != field("refresh_token"));
            let known = refresh_tokens.len() < before;
            if known && *state.keep_refresh_tokens.lock().unwrap() {
                refresh_tokens.push(field("refresh_token"));
            }
            known
        }
        _ => false,
    };
    if field("grant_type") == "refresh_token" {
        let gate = state.refresh_gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.arrived.notify_one();
            gate.release.notified().await;
        }
        let delay = *state.refresh_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
    }
    if !granted {
        return provider_json(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    }
    let serial = {
        let mut issued = state.issued.lock().unwrap();
        *issued += 1;
        *issued
    };
    let access = format!("prov_at_{serial}");
    *state.access_tokens.lock().unwrap() = vec![access.clone()];
    let expires_in = state.expires_in.lock().unwrap().clone().unwrap_or(json!(3600));
    let mut answer = json!({"access_token": access, "token_type": "Bearer", "expires_in": expires_in});
    if field("grant_type") != "refresh_token" || !*state.keep_refresh_tokens.lock().unwrap() {
        let refresh = format!("prov_rt_{serial}");
        state.refresh_tokens.lock().unwrap().push(refresh.clone());
        answer["refresh_token"] = json!(refresh);
        answer["scope"] = json!("read write");
    }
    provider_json(StatusCode::OK, answer)
}

async fn provider_me(State(state): State<Arc<ProviderState>>, headers: HeaderMap) -> Response<Body> {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(token) if state.access_tokens.lock().unwrap().iter().any(|t| t == token) => {
            let revision = headers.get("revision").and_then(|v| v.to_str().ok());
            provider_json(
                StatusCode::OK,
                json!({"account": "merchant@example.com", "token": token, "revision": revision}),
            )
        }
        _ => provider_json(StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"})),
    }
}

/// The `data-*` attributes that `static/{script}` reads its texts from: `text("notCreated"`
/// reads `data-not-created` of its `<script>` element (see `static/texts.js`).
pub fn script_text_attributes(script: &str) -> Vec<String> {
    let source = std::fs::read_to_string(format!("static/{script}")).unwrap();
    source
        .split("text(\"")
        .skip(1)
        .map(|call| {
            let name = call.split('"').next().unwrap_or_default();
            let kebab: String = name
                .chars()
                .flat_map(|c| if c.is_ascii_uppercase() { vec!['-', c.to_ascii_lowercase()] } else { vec![c] })
                .collect();
            format!("data-{kebab}=")
        })
        .collect()
}

/// The opening tag of a page's `<script src="/static/{script}" ...>` element, attributes included.
pub fn script_element<'a>(body: &'a str, script: &str) -> &'a str {
    let start = body.find(&format!(r#"<script src="/static/{script}""#)).unwrap_or_else(|| panic!("no {script}"));
    let tag = &body[start..];
    &tag[..=tag.find('>').unwrap()]
}
