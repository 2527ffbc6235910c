//! The request surfaces besides App Home: webhooks (with delivery dedupe and body limits),
//! the App Proxy, Flow actions, UI-extension endpoints and the redirect helpers' routes.

use std::time::Duration;

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use shopify_app_rust::oauth::ProviderToken;
use shopify_app_rust::shopify::model::{AccessMode, AccessToken};
use shopify_app_rust::tokens::TokenKey;
use time::OffsetDateTime;

async fn store_token(app: &TestApp) {
    let token = AccessToken {
        shop: SHOP.into(),
        token: "shpat_stored".into(),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW + 3600).unwrap()),
        scope: "read_products".into(),
        access_mode: AccessMode::Offline,
        refresh_token: Some("shprt_stored".into()),
        refresh_token_expires: None,
        user: None,
    };
    app.state.tokens.repository().save(&token).await.unwrap();
}

async fn stored(app: &TestApp) -> Option<AccessToken> {
    app.state.tokens.repository().load(&TokenKey::offline(SHOP)).await.unwrap()
}

#[tokio::test]
async fn app_uninstalled_deletes_the_shops_tokens_once_per_delivery() {
    let app = TestApp::start().await;
    store_token(&app).await;
    let body = r#"{"id":1,"name":"Shop 1","domain":"s1.myshopify.com"}"#;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none());

    // A repeated delivery answers 200 and does nothing: the token saved since stays.
    store_token(&app).await;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_some());

    // A new delivery id runs again.
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-2", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none());
}

/// A signed `app/uninstalled` delivery `id` carrying `X-Shopify-Triggered-At: at`.
fn uninstall_triggered_at(id: &str, at: &str) -> Request<Body> {
    let mut request = webhook("/webhooks/app/uninstalled", "app/uninstalled", id, r#"{"id":1}"#);
    request.headers_mut().insert("x-shopify-triggered-at", at.parse().unwrap());
    request
}

/// The merchant uninstalls, reinstalls, and the app gets a new token before the uninstall's
/// delivery arrives (or while Shopify retries it): the delivery deletes nothing. One triggered
/// after the token was obtained deletes everything, as does one whose time cannot be read.
#[tokio::test]
async fn a_late_uninstall_keeps_the_tokens_of_the_install_that_followed_it() {
    let app = TestApp::start().await;
    store_token(&app).await; // obtained at NOW, 2025-06-15T15:06:40Z
    let connection = ProviderToken {
        shop: SHOP.into(),
        provider: "example".into(),
        access_token: "prov_at".into(),
        refresh_token: None,
        scope: String::new(),
        expires: None,
    };
    app.state.oauth.store().save(&connection).await.unwrap();

    for (id, triggered_at) in [
        ("w-1", "2025-06-15T15:06:35.877041743Z"),
        // A tie keeps the token, to the millisecond.
        ("w-2", "2025-06-15T15:06:40Z"),
        ("w-3", "2025-06-15T17:06:40.000999+02:00"),
    ] {
        let response = app.send(uninstall_triggered_at(id, triggered_at)).await;
        assert_eq!(response.status, StatusCode::OK, "{triggered_at}");
        assert_eq!(
            stored(&app).await.map(|token| token.token.expose().to_owned()).as_deref(),
            Some("shpat_stored"),
            "{triggered_at}"
        );
        assert_eq!(app.state.oauth.store().load(SHOP, "example").await.unwrap().as_ref(), Some(&connection));
    }

    let response = app.send(uninstall_triggered_at("w-4", "2025-06-15T15:06:40.001Z")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none());
    assert!(app.state.oauth.store().load(SHOP, "example").await.unwrap().is_none());

    store_token(&app).await;
    let response = app.send(uninstall_triggered_at("w-5", "yesterday")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none(), "an unreadable time deletes as if it were absent");
}

/// A refresh counts as obtaining the token; recording new scopes does not.
#[tokio::test]
async fn a_refresh_dates_the_token_anew_and_a_scopes_update_does_not() {
    let app = TestApp::start().await;
    assert_eq!(app.load_home().await.status, StatusCode::OK); // exchanged at 15:06:40
    app.clock.0.advance(std::time::Duration::from_secs(60));
    let scopes = r#"{"id":1,"previous":[],"current":["write_products"]}"#;
    let response = app.send(webhook("/webhooks/app/scopes_update", "app/scopes_update", "s-1", scopes)).await;
    assert_eq!(response.status, StatusCode::OK);
    let response = app.send(uninstall_triggered_at("w-1", "2025-06-15T15:07:10Z")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none(), "triggered after the exchange: deleted despite the scopes update");

    // Installed again: exchanged at 15:07:40, refreshed an hour later.
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    app.clock.0.advance(std::time::Duration::from_secs(3600 - 30));
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!((app.shopify.exchanges(), app.shopify.refreshes()), (2, 1));
    let response = app.send(uninstall_triggered_at("w-2", "2025-06-15T15:07:50Z")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(stored(&app).await.unwrap().token, "shpat_fake_3", "refreshed after the trigger: kept");
}

#[tokio::test]
async fn webhooks_are_verified_before_anything_is_read_or_changed() {
    let app = TestApp::start_with(&[("SHOPIFY_OLD_API_SECRET", OLD_API_SECRET)]).await;
    store_token(&app).await;
    let body = r#"{"id":1}"#;

    let mut forged = webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body);
    forged.headers_mut().insert("x-shopify-hmac-sha256", body_hmac("wrong", body.as_bytes()).parse().unwrap());
    let response = app.send(forged).await;
    assert_eq!((response.status, response.body.as_str()), (StatusCode::UNAUTHORIZED, "Unauthorized"));

    let mut unsigned = webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body);
    unsigned.headers_mut().remove("x-shopify-hmac-sha256");
    let response = app.send(unsigned).await;
    assert_eq!((response.status, response.body.as_str()), (StatusCode::BAD_REQUEST, "Bad Request"));

    let mut non_ascii = webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body);
    non_ascii
        .headers_mut()
        .insert("x-shopify-hmac-sha256", axum::http::HeaderValue::from_bytes("é".as_bytes()).unwrap());
    assert_eq!(app.send(non_ascii).await.status, StatusCode::UNAUTHORIZED);

    let mut bad_shop = webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body);
    bad_shop.headers_mut().insert("x-shopify-shop-domain", "evil.com/x.myshopify.com".parse().unwrap());
    assert_eq!(app.send(bad_shop).await.status, StatusCode::BAD_REQUEST);

    let get = Request::get("/webhooks/app/uninstalled").body(Body::empty()).unwrap();
    let response = app.send(get).await;
    assert_eq!((response.status, response.body.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"));
    assert!(stored(&app).await.is_some(), "no failed delivery changed stored data");

    // The newer header names, signed with the old secret during a rotation.
    let request = Request::post("/webhooks/app/uninstalled")
        .header("shopify-topic", "app/uninstalled")
        .header("shopify-shop-domain", SHOP_DOMAIN)
        .header("shopify-webhook-id", "w-9")
        .header("shopify-hmac-sha256", body_hmac(OLD_API_SECRET, body.as_bytes()))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::OK);
    assert!(stored(&app).await.is_none());
}

#[tokio::test]
async fn oversized_bodies_get_413_without_being_read_whole() {
    let app = TestApp::start().await;
    let huge = "x".repeat(shopify_app_rust::BODY_LIMIT + 1);
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", &huge)).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length: cut off at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        huge.as_bytes().chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let mut request = webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-2", "");
    *request.body_mut() = Body::from_stream(futures_util::stream::iter(chunks));
    request.headers_mut().remove("content-length");
    assert_eq!(app.send(request).await.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn scopes_update_records_the_granted_scopes() {
    let app = TestApp::start().await;
    store_token(&app).await;
    let body = r#"{"id":1,"previous":["read_products"],"current":["read_products","write_products"],"updated_at":"2025-06-15T15:06:40Z"}"#;
    let response = app.send(webhook("/webhooks/app/scopes_update", "app/scopes_update", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(stored(&app).await.unwrap().scope, "read_products,write_products");

    let response = app.send(webhook("/webhooks/app/scopes_update", "app/scopes_update", "w-2", r#"{"id":1}"#)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&app).await.unwrap().scope, "read_products,write_products");
}

#[tokio::test]
async fn compliance_topics_are_acknowledged_and_shop_redact_deletes_the_shop() {
    let app = TestApp::start().await;
    store_token(&app).await;
    let customer = r#"{"shop_id":1,"shop_domain":"s1.myshopify.com","customer":{"id":7,"email":"a@example.com"},"orders_requested":[1]}"#;
    for (id, topic) in [("c-1", "customers/data_request"), ("c-2", "customers/redact")] {
        let response = app.send(webhook("/webhooks/compliance", topic, id, customer)).await;
        assert_eq!(response.status, StatusCode::OK, "{topic}");
    }
    assert!(stored(&app).await.is_some());

    let response = app.send(webhook("/webhooks/compliance", "orders/create", "c-3", "{}")).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);

    app.clock.0.advance(Duration::from_secs(1)); // the redaction comes after the token was obtained
    let response = app
        .send(webhook(
            "/webhooks/compliance",
            "shop/redact",
            "c-4",
            r#"{"shop_id":1,"shop_domain":"s1.myshopify.com"}"#,
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_some(), "the privacy topics run as jobs, after the answer");
    let outcomes = shopify_app_rust::jobs::run_due(&app.state).await.unwrap();
    assert_eq!(outcomes.len(), 4, "the three privacy jobs and the first housekeeping");
    assert!(outcomes.iter().all(|(_, outcome)| *outcome == shopify_app_rust::jobs::Outcome::Done));
    assert!(stored(&app).await.is_none());
}

#[tokio::test]
async fn the_app_proxy_serves_a_verified_storefront_page() {
    let app = TestApp::start().await;
    let now = NOW.to_string();
    let query = signed_proxy_query(
        API_SECRET,
        &[
            ("shop", SHOP_DOMAIN),
            ("logged_in_customer_id", "77"),
            ("path_prefix", "/apps/rust-app"),
            ("timestamp", &now),
        ],
    );
    let response = app.send(get(&format!("/proxy/hello?{query}"))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert!(response.body.contains("logged in as customer 77 of s1.myshopify.com"));
    assert!(response.body.contains("/proxy/hello"));

    let guest =
        signed_proxy_query(API_SECRET, &[("shop", SHOP_DOMAIN), ("logged_in_customer_id", ""), ("timestamp", &now)]);
    let response = app.send(get(&format!("/proxy?{guest}"))).await;
    assert!(response.body.contains("as a guest"), "{}", response.body);

    let stale = (NOW - 91).to_string();
    for query in [
        signed_proxy_query("wrong", &[("shop", SHOP_DOMAIN), ("timestamp", &now)]),
        signed_proxy_query(API_SECRET, &[("shop", SHOP_DOMAIN), ("timestamp", &stale)]),
        format!("shop={SHOP_DOMAIN}&timestamp={now}"),
        signed_proxy_query(API_SECRET, &[("shop", "evil.com"), ("timestamp", &now)]),
    ] {
        let response = app.send(get(&format!("/proxy?{query}"))).await;
        assert!(response.status.is_client_error(), "{query}: {}", response.status);
        assert!(!response.body.contains("Hello"));
    }
}

#[tokio::test]
async fn the_proxy_page_escapes_what_it_echoes() {
    let app = TestApp::start().await;
    let now = NOW.to_string();
    let query = signed_proxy_query(
        API_SECRET,
        &[("shop", SHOP_DOMAIN), ("logged_in_customer_id", "<script>x</script>"), ("timestamp", &now)],
    );
    let response = app.send(get(&format!("/proxy?{query}"))).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(!response.body.contains("<script>x</script>"));
}

#[tokio::test]
async fn flow_actions_are_verified_and_acknowledged() {
    let app = TestApp::start().await;
    let body = r#"{"shop_id":1,"shopify_domain":"s1.myshopify.com","action_run_id":"run-1","handle":"tag-order","properties":{}}"#;
    let request = |hmac: String| {
        Request::post("/api/flow/action")
            .header("x-shopify-shop-domain", SHOP_DOMAIN)
            .header("x-shopify-hmac-sha256", hmac)
            .body(Body::from(body))
            .unwrap()
    };
    let response = app.send(request(body_hmac(API_SECRET, body.as_bytes()))).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({"ok": true}));
    let response = app.send(request(body_hmac("wrong", body.as_bytes()))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

fn extension_request(method: &str, surface: &str, authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/api/extensions/{surface}"))
        .header("origin", "https://extensions.shopifycdn.com");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn ui_extensions_get_their_preflight_and_cors_on_every_answer() {
    let app = TestApp::start().await;
    for (surface, exposed) in [
        ("admin", "X-Shopify-Retry-Invalid-Session-Request"),
        ("pos", "X-Shopify-API-Request-Failure-Reauthorize-Url"),
        ("checkout", "X-Shopify-API-Request-Failure-Reauthorize-Url"),
        ("customer-account", "X-Shopify-API-Request-Failure-Reauthorize-Url"),
    ] {
        let preflight = app.send(extension_request("OPTIONS", surface, None)).await;
        assert_eq!(preflight.status, StatusCode::NO_CONTENT, "{surface}");
        assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
        assert_eq!(preflight.header("access-control-allow-headers"), Some("Authorization, Content-Type"));
        assert_eq!(preflight.header("access-control-max-age"), Some("7200"));
        assert_eq!(preflight.header("access-control-expose-headers"), Some(exposed));

        let missing = app.send(extension_request("POST", surface, None)).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{surface}");
        assert_eq!(missing.header("access-control-allow-origin"), Some("*"));
    }
    let unknown = app.send(extension_request("POST", "nope", Some("Bearer x"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn checkout_and_customer_account_extensions_answer_with_the_shop() {
    let app = TestApp::start().await;
    let token = sign(&json!({"dest": "s1.myshopify.com", "aud": API_KEY, "exp": NOW + 60}), API_SECRET);
    for surface in ["checkout", "customer-account"] {
        let response = app.send(extension_request("POST", surface, Some(&format!("Bearer {token}")))).await;
        assert_eq!(response.status, StatusCode::OK, "{surface}: {}", response.body);
        assert_eq!(response.json()["shop"], SHOP);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    }
    let expired = sign(&json!({"dest": "s1.myshopify.com", "aud": API_KEY, "exp": NOW - 10}), API_SECRET);
    let response = app.send(extension_request("POST", "checkout", Some(&format!("Bearer {expired}")))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(app.shopify.requests().is_empty());
}

#[tokio::test]
async fn admin_and_pos_extensions_call_graphql_with_the_shops_offline_token() {
    let app = TestApp::start().await;
    let token = session_token(NOW);
    app.shopify.script(Endpoint::Graphql, [Scripted::json(200, json!({"data": {"shop": {"name": "Shop One"}}}))]);
    let response = app.send(extension_request("POST", "admin", Some(&format!("Bearer {token}")))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.json(), json!({"shop": "s1", "name": "Shop One"}));
    assert_eq!(app.shopify.exchanges(), 1, "no stored token: token exchange first");
    assert_eq!(app.shopify.graphql_requests()[0].headers["x-shopify-access-token"], "shpat_fake_1");

    app.shopify.script(Endpoint::Graphql, [Scripted::json(200, json!({"data": {"shop": {"name": "Shop One"}}}))]);
    let response = app.send(extension_request("POST", "pos", Some(&format!("Bearer {token}")))).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1, "the stored token is reused");

    app.shopify.script(Endpoint::Graphql, [Scripted::status(401)]);
    let response = app.send(extension_request("POST", "admin", Some(&format!("Bearer {token}")))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("x-shopify-retry-invalid-session-request"), Some("1"));
    assert!(stored(&app).await.is_none(), "a token Shopify rejects is forgotten");
}

#[tokio::test]
async fn the_settings_page_redirects_home_without_leaking_the_session_token() {
    let app = TestApp::start().await;
    let token = session_token(NOW);
    let page = app.send(get(&format!("/settings?{}", document_query(&token)))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-security-policy").is_some());
    assert!(page.body.contains("/settings/back-home"));

    let response = app.send(get(&format!("/settings/back-home?{}", document_query(&token)))).await;
    assert_eq!(response.status, StatusCode::FOUND);
    let location = response.header("location").unwrap();
    assert!(location.starts_with("/?saved=1&embedded=1&host=YWRtaW4"), "{location}");
    assert!(location.contains("shop=s1.myshopify.com"));
    for secret in ["id_token", "timestamp", &token] {
        assert!(!location.contains(secret), "{secret} leaked into {location}");
    }
}

#[tokio::test]
async fn the_products_link_leaves_the_iframe() {
    let app = TestApp::start().await;
    let token = session_token(NOW);
    let document = app.send(get(&format!("/settings/open-products?{}", document_query(&token)))).await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.header("content-type"), Some("text/html"));
    assert!(
        document
            .body
            .ends_with(r#"<script>window.open("https://admin.shopify.com/store/s1/products", "_top");</script>"#),
        "{}",
        document.body
    );

    let fetch = app.send(fetch("GET", "/settings/open-products", &token)).await;
    assert_eq!(fetch.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        fetch.header("x-shopify-api-request-failure-reauthorize-url"),
        Some("https://admin.shopify.com/store/s1/products")
    );
}

#[tokio::test]
async fn a_delivery_whose_work_failed_runs_again_on_shopifys_retry() {
    let app = TestApp::start().await;
    store_token(&app).await;
    let body = r#"{"id":1}"#;
    execute(&app.state, "ALTER TABLE access_tokens RENAME TO access_tokens_away").await;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.json()["errors"][0]["message"], "Internal Server Error", "no database detail leaks");

    execute(&app.state, "ALTER TABLE access_tokens_away RENAME TO access_tokens").await;
    assert!(stored(&app).await.is_some());
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none(), "the retry was not mistaken for a duplicate");
}

#[tokio::test]
async fn a_signed_query_string_replayed_as_a_webhook_body_is_refused() {
    // The app's secret also signs the OAuth callback's query (hex). An attacker who installs the
    // app on their own shop sees such a signature; as base64 it is a valid body HMAC for the
    // query string. It must not pass as a webhook for another shop.
    let app = TestApp::start().await;
    store_token(&app).await;
    let query = "code=abc&shop=attacker.myshopify.com&state=xyz&timestamp=1750000000";
    for (path, topic) in [("/webhooks/compliance", "shop/redact"), ("/webhooks/app/uninstalled", "app/uninstalled")] {
        let response = app.send(webhook(path, topic, "forged-1", query)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}");
    }
    // And a delivery whose topic header does not match its route.
    let response = app.send(webhook("/webhooks/app/uninstalled", "shop/redact", "forged-3", "{}")).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(stored(&app).await.is_some(), "nothing was deleted");
}

#[tokio::test]
async fn a_delivery_in_progress_is_retried_later_and_a_stale_claim_is_taken_over() {
    let app = TestApp::start().await;
    store_token(&app).await;
    // A copy of the delivery is being handled (or its handler was cut off) right now.
    execute(&app.state, &format!("INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, done) VALUES ('w-1', 'app/uninstalled', 's1', {NOW}, FALSE)")).await;
    let body = r#"{"id":1,"myshopify_domain":"s1.myshopify.com"}"#;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::CONFLICT, "Shopify retries a non-2xx later");
    assert!(stored(&app).await.is_some());

    // The claim outlives the longest request (its work is cut off with it), then is stale.
    let claim_timeout = app.state.config.limits.request_timeout + shopify_app_rust::deliveries::CLAIM_MARGIN;
    app.clock.0.advance(claim_timeout - std::time::Duration::from_secs(1));
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::CONFLICT, "still protected just before the claim times out");
    app.clock.0.advance(std::time::Duration::from_secs(1));
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none(), "the cut-off work ran on the retry");
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "w-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn the_clis_test_delivery_with_a_sample_payload_is_accepted() {
    // On the first `shopify app dev`, the CLI posts a signed app/uninstalled delivery whose body
    // is Shopify's sample payload (for a sample shop) with the dev store in the shop header.
    let app = TestApp::start().await;
    store_token(&app).await;
    let sample = r#"{"id":548380009,"name":"Super Toys","myshopify_domain":"shop.myshopify.com","domain":null}"#;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "cli-1", sample)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none(), "the dev store starts over, as the CLI intends");
}

/// Two instances on one database receive the same delivery at once: its work runs once.
#[tokio::test]
async fn one_delivery_sent_to_two_instances_at_once_is_handled_once() {
    let app = TestApp::start().await;
    let other = app.second_process().await;
    for round in 0..10 {
        store_token(&app).await;
        let id = format!("w-both-{round}");
        let body = r#"{"id":1}"#;
        let (first, second) = tokio::join!(
            send(&app.state, webhook("/webhooks/app/uninstalled", "app/uninstalled", &id, body)),
            send(&other, webhook("/webhooks/app/uninstalled", "app/uninstalled", &id, body)),
        );
        assert_eq!((first.status, second.status), (StatusCode::OK, StatusCode::OK), "round {round}");
        assert!(stored(&app).await.is_none(), "round {round}: the work ran");
        assert_eq!(count_rows(&app.state, "webhook_deliveries").await, round + 1, "one row per delivery");
    }
}
