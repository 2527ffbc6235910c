//! The core's calls to Shopify (§9 token exchange and refresh, §10 Admin GraphQL) over real
//! HTTP against the fake Shopify, with a manual clock that records every wait.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use serde_json::{Map, Value, json};
use shopify_app_rust::shopify::clock::{Clock, ManualClock};
use shopify_app_rust::shopify::graphql::GraphqlRequest;
use shopify_app_rust::shopify::http::{ReqwestTransport, ShopOrigin};
use shopify_app_rust::shopify::model::{AccessMode, AccessToken, IdTokenDetails, Res};
use shopify_app_rust::shopify::{AppConfig, ShopifyApp};
use time::OffsetDateTime;

struct Harness {
    shopify: ShopifyApp,
    fake: FakeShopify,
    clock: Arc<ManualClock>,
}

async fn harness() -> Harness {
    harness_on(FakeShopify::start().await).await
}

async fn harness_on(fake: FakeShopify) -> Harness {
    let clock = Arc::new(ManualClock::at(NOW));
    let config = AppConfig { client_id: API_KEY.into(), client_secret: API_SECRET.into(), old_client_secret: None };
    let shopify = ShopifyApp::new(config, Arc::new(ReqwestTransport::new().unwrap()))
        .unwrap()
        .with_origin(ShopOrigin::new(fake.origin.clone()))
        .with_clock(clock.clone())
        .with_jitter(Arc::new(|| 40));
    Harness { shopify, fake, clock }
}

impl Harness {
    async fn graphql(&self, max_retries: u32) -> shopify_app_rust::shopify::model::GQLResult {
        let mut request = GraphqlRequest::new("{ shop { id } }");
        request.max_retries = max_retries;
        self.shopify.admin_graphql_request(SHOP, "shpat_x", "2026-10", &request).await
    }

    fn sleeps(&self) -> Vec<Duration> {
        self.clock.sleeps()
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn ok_body() -> Scripted {
    Scripted::json(
        200,
        json!({"data": {"shop": {"id": "gid://shopify/Shop/1"}}, "extensions": {"cost": {"requestedQueryCost": 1}}}),
    )
}

fn codes(result: &shopify_app_rust::shopify::model::GQLResult) -> Vec<String> {
    result.http_logs.iter().map(|log| log.code.to_string()).collect()
}

#[tokio::test]
async fn graphql_success_returns_data_extensions_and_sends_the_token() {
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [ok_body()]);
    let result = h.graphql(2).await;
    assert!(result.ok);
    assert_eq!((result.log.code.as_ref(), result.shop.as_deref()), ("success", Some(SHOP)));
    assert_eq!(result.data, Some(json!({"shop": {"id": "gid://shopify/Shop/1"}})));
    assert_eq!(result.extensions, Some(json!({"cost": {"requestedQueryCost": 1}})));
    let sent = &h.fake.graphql_requests()[0];
    assert_eq!(sent.path, "/s1.myshopify.com/admin/api/2026-10/graphql.json");
    assert_eq!(sent.headers["x-shopify-access-token"], "shpat_x");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(sent.body, json!({"query": "{ shop { id } }"}));
}

#[tokio::test]
async fn graphql_honours_retry_after_on_429_capped_at_ten_seconds() {
    let h = harness().await;
    h.fake.script(
        Endpoint::Graphql,
        [Scripted::status(429).header("Retry-After", "2.5"), Scripted::status(429), ok_body()],
    );
    let result = h.graphql(2).await;
    assert!(result.ok);
    assert_eq!(h.sleeps(), [ms(2500), ms(1000)]);
    assert_eq!(codes(&result), ["rate_limited_retry", "rate_limited_retry", "success"]);

    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [Scripted::status(429).header("Retry-After", "120"), ok_body()]);
    assert!(h.graphql(2).await.ok);
    assert_eq!(h.sleeps(), [Duration::from_secs(10)]);
}

#[tokio::test]
async fn graphql_gives_up_on_429_after_max_retries_with_a_synthetic_429() {
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [Scripted::status(429), Scripted::status(429), Scripted::status(429)]);
    let result = h.graphql(2).await;
    assert!(!result.ok);
    assert_eq!(result.log.code, "rate_limited");
    assert_eq!(
        result.response,
        Res::new(429, "{\"error\":\"Too many requests\"}").with_header("Content-Type", "application/json")
    );
    assert_eq!(h.fake.graphql_requests().len(), 3);
    assert_eq!(h.sleeps().len(), 2);
}

#[tokio::test]
async fn graphql_backs_off_exponentially_with_jitter_on_502_503_504() {
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [Scripted::status(503), Scripted::status(502), ok_body()]);
    let result = h.graphql(2).await;
    assert!(result.ok);
    assert_eq!(h.sleeps(), [ms(1040), ms(2040)]);
    assert_eq!(codes(&result), ["http_error_503_retry", "http_error_502_retry", "success"]);

    let h = harness().await;
    h.fake.script(
        Endpoint::Graphql,
        [Scripted::status(504), Scripted::status(504), Scripted::status(504), Scripted::status(504)],
    );
    let result = h.graphql(3).await;
    assert_eq!(result.log.code, "http_error_504");
    assert_eq!(result.response, Res::new(504, ""));
    assert_eq!(h.sleeps(), [ms(1040), ms(2040), ms(4040)]);
}

#[tokio::test]
async fn graphql_waits_for_the_cost_bucket_on_throttled() {
    let throttled = Scripted::json(
        200,
        json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {"requestedQueryCost": 752, "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 452, "restoreRate": 100.0}}}
        }),
    );
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [throttled.clone(), ok_body()]);
    let result = h.graphql(2).await;
    assert!(result.ok);
    assert_eq!(h.sleeps(), [Duration::from_secs(3)]);
    assert_eq!(codes(&result), ["throttled_retry", "success"]);

    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [throttled.clone(), throttled]);
    let result = h.graphql(1).await;
    assert_eq!(result.log.code, "graphql_errors");
    assert_eq!(result.response.status, 200);
}

#[tokio::test]
async fn graphql_does_not_retry_what_a_retry_cannot_fix() {
    for (status, code) in
        [(400, "http_error_400"), (403, "http_error_403"), (500, "http_error_500"), (404, "http_error_404")]
    {
        let h = harness().await;
        h.fake.script(Endpoint::Graphql, [Scripted::json(status, json!({"errors": "nope"}))]);
        let result = h.graphql(2).await;
        assert_eq!(result.log.code, code);
        assert_eq!(result.response.status, status);
        assert_eq!(h.fake.graphql_requests().len(), 1);
        assert!(h.sleeps().is_empty());
    }
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [Scripted::json(200, json!({"errors": [{"message": "bad field"}]}))]);
    let result = h.graphql(2).await;
    assert_eq!((result.ok, result.log.code.as_ref()), (false, "graphql_errors"));
}

#[tokio::test]
async fn graphql_401_answers_with_the_callers_invalid_token_response() {
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [Scripted::status(401)]);
    let retry = Res::new(401, "").with_header("X-Shopify-Retry-Invalid-Session-Request", "1");
    let request = GraphqlRequest::new("{ shop { id } }").invalid_token_response(Some(retry.clone()));
    let result = h.shopify.admin_graphql_request(SHOP, "shpat_x", "2026-10", &request).await;
    assert_eq!((result.log.code.as_ref(), result.response), ("unauthorized", retry));
}

#[tokio::test]
async fn graphql_validates_its_input_before_any_request() {
    let h = harness().await;
    let request = GraphqlRequest::new("{ shop { id } }");
    for (shop, token, version, code) in [
        ("", "t", "2026-10", "missing_shop"),
        ("s1", "", "2026-10", "missing_access_token"),
        ("s1", "t", "", "missing_api_version"),
        ("evil.com/x#", "t", "2026-10", "invalid_shop"),
        ("s1", "t", "../../x", "invalid_api_version"),
    ] {
        let result = h.shopify.admin_graphql_request(shop, token, version, &request).await;
        assert_eq!((result.log.code.as_ref(), result.response.status), (code, 400));
    }
    let result = h.shopify.admin_graphql_request("s1", "t", "2026-10", &GraphqlRequest::new("")).await;
    assert_eq!(result.log.code, "missing_query");
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn a_network_failure_is_a_result_not_a_crash() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut fake = FakeShopify::start().await;
    fake.origin = format!("http://{closed}/{{shop}}");
    let h = harness_on(fake).await;
    let result = h.graphql(2).await;
    assert_eq!((result.log.code.as_ref(), result.response.status), ("network_error", 0));

    let exchanged = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &id_token(), None, true).await;
    assert_eq!((exchanged.log.code.as_ref(), exchanged.response.status), ("network_error", 500));
    assert_eq!(exchanged.shop.as_deref(), Some(SHOP));
}

fn id_token() -> IdTokenDetails {
    let claims: Map<String, Value> =
        serde_json::from_value(json!({"dest": "https://s1.myshopify.com", "aud": API_KEY, "sub": "42"})).unwrap();
    IdTokenDetails { exchangeable: true, token: "ID.TOKEN.VALUE".into(), claims }
}

#[tokio::test]
async fn token_exchange_builds_online_tokens_with_their_user() {
    let h = harness().await;
    h.fake.script(
        Endpoint::Token,
        [Scripted::json(
            200,
            json!({
                "access_token": "shpua_1", "scope": "write_products", "expires_in": 86399,
                "associated_user_scope": "write_products",
                "associated_user": {"id": 42, "first_name": "Ada", "last_name": "L", "email": "ada@example.com",
                    "account_owner": true, "locale": "en", "collaborator": false, "email_verified": true}
            }),
        )],
    );
    let result = h.shopify.exchange_using_token_exchange(AccessMode::Online, &id_token(), None, true).await;
    assert!(result.ok, "{:?}", result.log);
    let token = result.access_token.unwrap();
    assert_eq!(token.access_mode, AccessMode::Online);
    let user = token.user.unwrap();
    assert_eq!(
        (user.id, user.email.as_str(), user.scope.as_str(), user.account_owner),
        (42, "ada@example.com", "write_products", true)
    );
    assert_eq!(token.expires, Some(OffsetDateTime::from_unix_timestamp(NOW + 86399).unwrap()));
    assert_eq!(token.refresh_token, None);
    assert_eq!(
        h.fake.requests()[0].body["requested_token_type"],
        "urn:shopify:params:oauth:token-type:online-access-token"
    );
    let logged = &result.http_logs[0].res.body;
    assert!(logged.contains(r#""access_token":"[REDACTED]""#) && !logged.contains("shpua_1"), "{logged}");
}

#[tokio::test]
async fn token_exchange_retries_429_then_gives_up_with_a_synthetic_429() {
    let h = harness().await;
    h.fake.script(
        Endpoint::Token,
        [Scripted::status(429).header("Retry-After", "3"), Scripted::status(429), Scripted::status(429)],
    );
    let result = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &id_token(), None, true).await;
    assert_eq!((result.log.code.as_ref(), result.response.status), ("rate_limit_exceeded", 429));
    assert_eq!(h.sleeps(), [Duration::from_secs(3), Duration::from_secs(1)]);
    assert_eq!(h.fake.exchanges(), 3);
}

#[tokio::test]
async fn token_exchange_maps_shopify_errors() {
    for (error, code, status) in [
        ("invalid_subject_token", "invalid_subject_token", 401),
        ("invalid_client", "invalid_client", 500),
        ("other", "exchange_error", 500),
    ] {
        let h = harness().await;
        h.fake.script(Endpoint::Token, [Scripted::json(400, json!({"error": error}))]);
        let result = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &id_token(), None, true).await;
        assert_eq!((result.log.code.as_ref(), result.response.status), (code, status), "{error}");
        assert!(!result.ok);
    }
    let h = harness().await;
    let mut bad = id_token();
    bad.claims.insert("dest".into(), json!("https://evil.com"));
    let result = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &bad, None, true).await;
    assert_eq!(result.log.code, "configuration_error");
    assert!(h.fake.requests().is_empty(), "no secret is sent to a host that is not a shop");
}

fn stored(expires_in: i64) -> AccessToken {
    AccessToken {
        shop: SHOP.into(),
        token: "shpat_old".into(),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW + expires_in).unwrap()),
        scope: "s".into(),
        access_mode: AccessMode::Offline,
        refresh_token: Some("shprt_old".into()),
        refresh_token_expires: Some(OffsetDateTime::from_unix_timestamp(NOW + 86_400).unwrap()),
        user: None,
    }
}

#[tokio::test]
async fn refresh_retries_5xx_immediately_and_maps_errors() {
    let h = harness().await;
    h.fake.script(Endpoint::Token, [Scripted::status(503), Scripted::status(500)]);
    let result = h.shopify.refresh_token_exchanged_access_token(&stored(30)).await;
    assert!(result.ok);
    let fresh = result.access_token.unwrap();
    assert_eq!(
        (fresh.token.expose(), fresh.refresh_token.as_ref().map(Secret::expose)),
        ("shpat_fake_1", Some("shprt_fake_1"))
    );
    assert_eq!(h.fake.refreshes(), 3);
    assert!(h.sleeps().is_empty());
    assert!(result.http_logs.iter().all(|log| log.res.body.is_empty()), "refresh answers are never logged");

    let h = harness().await;
    h.fake.script(Endpoint::Token, [Scripted::status(502), Scripted::status(502), Scripted::status(502)]);
    let result = h.shopify.refresh_token_exchanged_access_token(&stored(30)).await;
    assert_eq!((result.log.code.as_ref(), result.response.status), ("server_error", 500));

    for (error, code, status) in [
        ("invalid_grant", "invalid_grant", 401),
        ("invalid_client", "invalid_client", 500),
        ("x", "refresh_error", 500),
    ] {
        let h = harness().await;
        h.fake.script(Endpoint::Token, [Scripted::json(400, json!({"error": error}))]);
        let result = h.shopify.refresh_token_exchanged_access_token(&stored(30)).await;
        assert_eq!((result.log.code.as_ref(), result.response.status), (code, status));
    }
}

#[tokio::test]
async fn refresh_only_calls_shopify_when_it_must() {
    let h = harness().await;
    let result = h.shopify.refresh_token_exchanged_access_token(&stored(61)).await;
    assert_eq!((result.ok, result.log.code.as_ref()), (true, "token_still_valid"));
    let mut dead = stored(30);
    dead.refresh_token_expires = Some(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
    let result = h.shopify.refresh_token_exchanged_access_token(&dead).await;
    assert_eq!((result.log.code.as_ref(), result.response.status), ("refresh_token_expired", 401));
    let mut evil = stored(30);
    evil.shop = "evil.com/x?".into();
    let result = h.shopify.refresh_token_exchanged_access_token(&evil).await;
    assert_eq!(result.log.code, "configuration_error");
    assert!(h.fake.requests().is_empty());
    assert!(h.clock.now() == OffsetDateTime::from_unix_timestamp(NOW).unwrap());
}

/// Inputs on which Shopify's reference package raises an exception get defined results here.
#[tokio::test]
async fn inputs_the_reference_crashes_on_get_defined_results() {
    // A GraphQL 200 whose JSON body is an array.
    let h = harness().await;
    h.fake.script(Endpoint::Graphql, [Scripted::json(200, json!([1, 2]))]);
    let result = h.graphql(2).await;
    assert_eq!((result.ok, result.log.code.as_ref(), result.data), (true, "success", None));

    // Token endpoint 200s that are not a token object, and a non-numeric expires_in.
    for body in ["<html>", "[1]", r#"{"access_token":"t","expires_in":"soon"}"#] {
        let h = harness().await;
        h.fake.script(Endpoint::Token, [Scripted { status: 200, headers: vec![], body: body.into() }]);
        let result = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &id_token(), None, true).await;
        assert_eq!(
            (result.ok, result.log.code.as_ref(), result.response.status),
            (false, "exchange_error", 500),
            "{body}"
        );
    }
    // An error body that is a JSON array.
    let h = harness().await;
    h.fake.script(Endpoint::Token, [Scripted::json(400, json!(["invalid_client"]))]);
    let result = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &id_token(), None, true).await;
    assert_eq!(result.log.code, "exchange_error");

    // A stored expiry without a time zone is read as UTC.
    let naive: AccessToken = serde_json::from_value(json!({
        "shop": "s1", "token": "t", "expires": "2025-06-15T15:07:00", "scope": "", "access_mode": "offline",
        "refresh_token": "r", "refresh_token_expires": null, "user": null
    }))
    .unwrap();
    assert_eq!(naive.expires, Some(OffsetDateTime::from_unix_timestamp(NOW + 20).unwrap()));
    let h = harness().await;
    assert!(h.shopify.refresh_token_exchanged_access_token(&naive).await.ok);
    assert_eq!(h.fake.refreshes(), 1);

    // Client credentials for a shop with a trailing newline: refused before any request.
    let h = harness().await;
    let result = h.shopify.exchange_using_client_credentials("s1\n").await;
    assert_eq!((result.log.code.as_ref(), result.response.status), ("configuration_error", 500));
    assert!(h.fake.requests().is_empty());
}

/// Numbers in Shopify's answers are clamped before they meet a clock: no overflow panics.
#[tokio::test]
async fn huge_numbers_in_answers_are_clamped_not_panics() {
    let h = harness().await;
    let throttled = Scripted::json(
        200,
        json!({"errors": [{"extensions": {"code": "THROTTLED"}}],
               "extensions": {"cost": {"requestedQueryCost": 1e300, "throttleStatus": {"currentlyAvailable": 0, "restoreRate": 1e-300}}}}),
    );
    h.fake.script(Endpoint::Graphql, [Scripted::status(429).header("Retry-After", "1e20"), throttled, ok_body()]);
    assert!(h.graphql(2).await.ok);
    assert_eq!(h.sleeps(), [Duration::from_secs(10), Duration::from_secs(10)]);

    let h = harness().await;
    h.fake.script(
        Endpoint::Token,
        [Scripted::json(200, json!({"access_token": "t", "expires_in": 1e12, "refresh_token_expires_in": 1.8e19}))],
    );
    let result = h.shopify.exchange_using_token_exchange(AccessMode::Offline, &id_token(), None, true).await;
    let token = result.access_token.expect("a token with a far-future expiry");
    assert!(token.expires.unwrap() > OffsetDateTime::from_unix_timestamp(NOW + 50 * 365 * 86_400).unwrap());
}
