//! App Home end to end: the document load, token exchange, refresh (single-flight), the
//! patch-id-token page and the GraphQL demo, against a fake Shopify on 127.0.0.1.

use std::time::Duration;

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use shopify_app_rust::shop_data::Forget;
use shopify_app_rust::shopify::model::{AccessMode, AccessToken};
use shopify_app_rust::tokens::TokenKey;
use time::OffsetDateTime;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

async fn store_token(app: &TestApp, expires: i64, refresh_expires: i64) {
    let token = AccessToken {
        shop: SHOP.into(),
        token: "shpat_stored".into(),
        expires: Some(at(expires)),
        scope: "write_products".into(),
        access_mode: AccessMode::Offline,
        refresh_token: Some("shprt_stored".into()),
        refresh_token_expires: Some(at(refresh_expires)),
        user: None,
    };
    app.state.tokens.repository().save(&token).await.unwrap();
}

async fn stored(app: &TestApp) -> Option<AccessToken> {
    app.state.tokens.repository().load(&TokenKey::offline(SHOP)).await.unwrap()
}

#[tokio::test]
async fn a_document_load_without_a_session_token_bounces_to_the_patch_page() {
    let app = TestApp::start().await;
    let response = app.send(get(&format!("/?embedded=1&host=YWRtaW4&shop={SHOP_DOMAIN}"))).await;
    assert_eq!(response.status, StatusCode::FOUND);
    assert_eq!(
        response.header("location"),
        Some(
            "https://app.example.com/auth/patch-id-token?embedded=1&host=YWRtaW4&shop=s1.myshopify.com&shopify-reload=%2F%3Fembedded%3D1%26host%3DYWRtaW4%26shop%3Ds1.myshopify.com"
        )
    );
    assert_eq!(app.shopify.requests().len(), 0);
}

#[tokio::test]
async fn a_valid_document_load_renders_the_page_and_exchanges_once() {
    let app = TestApp::start().await;
    let token = session_token(app.now());
    let response = app.send(get(&format!("/?{}", document_query(&token)))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(
        response.header("content-security-policy"),
        Some("frame-ancestors https://s1.myshopify.com https://admin.shopify.com;")
    );
    assert!(response.header("link").unwrap().contains("app-bridge.js>; rel=\"preload\""));
    assert!(response.body.contains(&format!(
        r#"<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js" data-api-key="{API_KEY}"></script>"#
    )));
    assert!(response.body.contains(r#"<script src="https://cdn.shopify.com/shopifycloud/polaris.js"></script>"#));
    assert!(
        response.body.contains("<s-app-nav>")
            && response.body.contains("<s-page")
            && response.body.contains("<s-button")
    );

    let requests = app.shopify.requests();
    assert_eq!(requests.len(), 1);
    let exchange = &requests[0];
    assert_eq!(exchange.path, "/s1.myshopify.com/admin/oauth/access_token");
    assert_eq!(
        exchange.body,
        json!({
            "client_id": API_KEY,
            "client_secret": API_SECRET,
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
            "expiring": 1,
        })
    );

    let saved = stored(&app).await.expect("token stored");
    assert_eq!(saved.token, "shpat_fake_1");
    assert_eq!(saved.refresh_token.as_ref().map(Secret::expose), Some("shprt_fake_1"));
    assert_eq!(saved.expires, Some(at(NOW + 3600)));
    assert_eq!(saved.refresh_token_expires, Some(at(NOW + 7_776_000)));
    assert_eq!(saved.scope, "write_products");

    let again = app.send(get(&format!("/?{}", document_query(&token)))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(app.shopify.requests().len(), 1, "a second load must reuse the stored token");
}

#[tokio::test]
async fn concurrent_first_loads_exchange_the_session_token_once() {
    let app = TestApp::start().await;
    let uri = format!("/?{}", document_query(&session_token(app.now())));
    let requests = (0..10).map(|_| {
        let (state, uri) = (app.state.clone(), uri.clone());
        async move { send(&state, get(&uri)).await }
    });
    let responses = futures_join_all(requests).await;
    assert!(responses.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(app.shopify.exchanges(), 1);
}

#[tokio::test]
async fn the_page_escapes_what_it_renders() {
    let app = TestApp::start_with(&[("SHOPIFY_API_KEY", "key\"><script>x</script>")]).await;
    let mut claims = claims(app.now());
    claims["aud"] = json!("key\"><script>x</script>");
    let token = sign(&claims, API_SECRET);
    let response = app.send(get(&format!("/?{}", document_query(&token)))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert!(!response.body.contains("<script>x</script>"));
    assert!(
        response.body.contains("key&#34;&#62;&#60;script&#62;")
            || response.body.contains("key&quot;&gt;&lt;script&gt;")
    );
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_exactly_once_under_20_concurrent_requests() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 30, NOW + 86_400).await;
    app.shopify.set_refresh_delay(Duration::from_millis(20));
    let token = session_token(app.now());

    let uri = format!("/?{}", document_query(&token));
    let requests = (0..20).map(|_| {
        let (state, uri) = (app.state.clone(), uri.clone());
        async move { send(&state, get(&uri)).await }
    });
    let responses = futures_join_all(requests).await;
    assert!(responses.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(app.shopify.refreshes(), 1);
    assert_eq!(app.shopify.exchanges(), 0);
    let refresh = &app.shopify.requests()[0];
    assert_eq!(
        refresh.body,
        json!({"client_id": API_KEY, "client_secret": API_SECRET, "grant_type": "refresh_token", "refresh_token": "shprt_stored"})
    );
    let saved = stored(&app).await.unwrap();
    assert_eq!(saved.token, "shpat_fake_1");
    assert_eq!(saved.refresh_token.as_ref().map(Secret::expose), Some("shprt_fake_1"));
}

#[tokio::test]
async fn refresh_is_single_flight_across_two_processes_sharing_the_database() {
    let app = TestApp::start().await;
    let other = app.second_process().await;
    store_token(&app, NOW - 10, NOW + 86_400).await;
    app.shopify.set_refresh_delay(Duration::from_millis(30));
    let token = session_token(app.now());
    let uri = format!("/?{}", document_query(&token));

    let requests = (0..20).map(|i| {
        let state = if i % 2 == 0 { app.state.clone() } else { other.clone() };
        let uri = uri.clone();
        async move { send(&state, get(&uri)).await }
    });
    let responses = futures_join_all(requests).await;
    assert!(
        responses.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(app.shopify.refreshes(), 1);
    assert_eq!(stored(&app).await.unwrap().token, "shpat_fake_1");
}

#[tokio::test]
async fn a_token_with_a_dead_refresh_token_is_exchanged_again() {
    let app = TestApp::start().await;
    store_token(&app, NOW - 100, NOW - 1).await;
    let response = app.load_home().await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!((app.shopify.refreshes(), app.shopify.exchanges()), (0, 1));
    assert_eq!(stored(&app).await.unwrap().token, "shpat_fake_1");
}

#[tokio::test]
async fn a_refused_refresh_grant_falls_back_to_token_exchange() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 10, NOW + 86_400).await;
    app.shopify.script(Endpoint::Token, [Scripted::json(400, json!({"error": "invalid_grant"}))]);
    let response = app.load_home().await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!((app.shopify.refreshes(), app.shopify.exchanges()), (1, 1));
    assert_eq!(stored(&app).await.unwrap().token, "shpat_fake_1");
}

#[tokio::test]
async fn a_session_token_shopify_refuses_sends_the_document_to_the_patch_page_and_the_fetch_to_retry() {
    let app = TestApp::start().await;
    let token = session_token(app.now());
    app.shopify.script(Endpoint::Token, [Scripted::json(400, json!({"error": "invalid_subject_token"}))]);
    let document = app.send(get(&format!("/?{}", document_query(&token)))).await;
    assert_eq!(document.status, StatusCode::FOUND);
    assert!(document.header("location").unwrap().starts_with("https://app.example.com/auth/patch-id-token?embedded=1"));

    app.shopify.script(Endpoint::Token, [Scripted::json(400, json!({"error": "invalid_subject_token"}))]);
    let fetch = app.send(fetch("POST", "/api/products", &token)).await;
    assert_eq!(fetch.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fetch.header("x-shopify-retry-invalid-session-request"), Some("1"));
    assert!(stored(&app).await.is_none());
}

#[tokio::test]
async fn a_broken_token_endpoint_is_a_clear_error_not_a_crash() {
    let app = TestApp::start().await;
    app.shopify.script(Endpoint::Token, [Scripted { status: 200, headers: vec![], body: "<html>".into() }]);
    let response = app.load_home().await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.body, "");
    assert!(stored(&app).await.is_none());
}

#[tokio::test]
async fn bad_session_tokens_get_the_protocols_answers() {
    let app = TestApp::start().await;
    let now = app.now();
    let expired = sign(&json!({"dest": "https://s1.myshopify.com", "aud": API_KEY, "exp": now - 10}), API_SECRET);
    let wrong_secret = sign(&claims(now), "another-secret");
    let wrong_aud = sign(&json!({"dest": "https://s1.myshopify.com", "aud": "other-app", "exp": now + 60}), API_SECRET);
    let bad_shop = sign(
        &json!({"iss": "https://evil.com/admin", "dest": "https://evil.com", "aud": API_KEY, "exp": now + 60}),
        API_SECRET,
    );

    let cases: [(&str, StatusCode, Option<&str>); 6] = [
        ("Bearer not.a.jwt", StatusCode::UNAUTHORIZED, Some("1")),
        ("Basic abc", StatusCode::UNAUTHORIZED, Some("1")),
        ("Bearer ", StatusCode::UNAUTHORIZED, None),
        (&format!("Bearer {expired}"), StatusCode::UNAUTHORIZED, Some("1")),
        (&format!("Bearer {wrong_secret}"), StatusCode::UNAUTHORIZED, Some("1")),
        (&format!("Bearer {wrong_aud}"), StatusCode::UNAUTHORIZED, Some("1")),
    ];
    for (authorization, status, retry) in cases {
        let request = axum::http::Request::post("/api/products")
            .header("authorization", authorization)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(response.status, status, "{authorization}");
        assert_eq!(response.header("x-shopify-retry-invalid-session-request"), retry, "{authorization}");
        assert_eq!(response.body, "Unauthorized");
    }
    let response = app.send(fetch("POST", "/api/products", &bad_shop)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);

    // Document loads: a bad token bounces, a token for another app is refused outright.
    let response = app.send(get(&format!("/?{}", document_query(&expired)))).await;
    assert_eq!(response.status, StatusCode::FOUND);
    assert!(!response.header("location").unwrap().contains("id_token"));
    let response = app.send(get(&format!("/?{}", document_query(&wrong_aud)))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers.len(), 1, "only content-length: {:?}", response.headers);
    assert_eq!(app.shopify.requests().len(), 0);
}

#[tokio::test]
async fn a_token_signed_with_the_old_secret_is_accepted_during_rotation() {
    let app = TestApp::start_with(&[("SHOPIFY_OLD_API_SECRET", OLD_API_SECRET)]).await;
    let token = sign(&claims(app.now()), OLD_API_SECRET);
    let response = app.send(get(&format!("/?{}", document_query(&token)))).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn the_patch_page_loads_app_bridge_for_a_valid_shop_only() {
    let app = TestApp::start().await;
    let response = app.send(get("/auth/patch-id-token?shop=s1.myshopify.com&shopify-reload=%2F")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body,
        format!(
            r#"<script data-api-key="{API_KEY}" src="https://cdn.shopify.com/shopifycloud/app-bridge.js"></script>"#
        )
    );
    assert_eq!(response.header("content-type"), Some("text/html"));
    assert_eq!(
        response.header("content-security-policy"),
        Some("frame-ancestors https://s1.myshopify.com https://admin.shopify.com;")
    );

    for (query, _code) in [
        ("shopify-reload=%2F", "missing_shop"),
        ("shop=s1.myshopify.com", "missing_shopify_reload"),
        ("shop=evil.com%3B%20script-src%20*&shopify-reload=%2F", "invalid_shop"),
        ("shop=s1.myshopify.com%0D%0AX-Evil:%201&shopify-reload=%2F", "invalid_shop"),
        // App Bridge sends the fresh session token to shopify-reload: it must stay in the app.
        ("shop=s1.myshopify.com&shopify-reload=https%3A%2F%2Fevil.com%2F", "invalid_shopify_reload"),
        ("shop=s1.myshopify.com&shopify-reload=%2F%2Fevil.com", "invalid_shopify_reload"),
        ("shop=s1.myshopify.com&shopify-reload=%2F%5Cevil.com", "invalid_shopify_reload"),
        ("shop=s1.myshopify.com&shopify-reload=", "invalid_shopify_reload"),
    ] {
        let response = app.send(get(&format!("/auth/patch-id-token?{query}"))).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.body, "Bad Request");
        assert!(response.header("content-security-policy").is_none());
    }
}

#[tokio::test]
async fn the_product_button_creates_a_product_with_the_stored_token() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    let response = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let product = &response.json()["product"];
    assert_eq!(product["id"], "gid://shopify/Product/1");
    assert!(product["title"].as_str().unwrap().ends_with(" snowboard"));

    let graphql = app.shopify.graphql_requests();
    assert_eq!(graphql.len(), 1);
    assert_eq!(graphql[0].path, "/s1.myshopify.com/admin/api/2026-10/graphql.json");
    assert_eq!(graphql[0].headers["x-shopify-access-token"], "shpat_stored");
    assert!(graphql[0].body["query"].as_str().unwrap().contains("productCreate"));
    assert_eq!(graphql[0].body["variables"]["product"]["title"], product["title"]);
}

#[tokio::test]
async fn a_token_shopify_rejects_is_forgotten_and_the_client_asked_to_retry() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    app.shopify.script(Endpoint::Graphql, [Scripted::status(401)]);
    let response = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("x-shopify-retry-invalid-session-request"), Some("1"));
    assert!(stored(&app).await.is_none());

    // The retry exchanges a new token and succeeds.
    let retry = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1);
    assert_eq!(app.shopify.graphql_requests()[1].headers["x-shopify-access-token"], "shpat_fake_1");
}

#[tokio::test]
async fn graphql_errors_reach_the_page_as_json() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    app.shopify
        .script(Endpoint::Graphql, [Scripted::json(200, json!({"errors": [{"message": "Field 'x' doesn't exist"}]}))]);
    let response = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.json()["errors"][0]["message"], "Field 'x' doesn't exist");

    app.shopify.script(Endpoint::Graphql, [Scripted::json(200, json!({"data": {"productCreate": {"product": null, "userErrors": [{"field": ["title"], "message": "Title can't be blank"}]}}}))]);
    let response = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json()["errors"][0]["message"], "Title can't be blank");
}

#[tokio::test]
async fn the_page_script_is_served_from_static() {
    let app = TestApp::start().await;
    let response = app.send(get("/static/app_home.js")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.body.contains("fetch(\"/api/products\""));
}

#[tokio::test]
async fn healthz_answers_once_the_database_does() {
    let app = TestApp::start().await;
    let response = app.send(get("/healthz")).await;
    assert_eq!((response.status, response.body.as_str()), (StatusCode::OK, "ok"));
}

async fn futures_join_all<F: std::future::Future<Output = TestResponse> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<TestResponse> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap());
    }
    responses
}

#[tokio::test]
async fn an_expiring_token_without_a_refresh_token_is_used_then_exchanged() {
    let app = TestApp::start().await;
    let mut token = AccessToken {
        shop: SHOP.into(),
        token: "shpat_no_refresh".into(),
        expires: Some(at(NOW + 30)),
        scope: String::new(),
        access_mode: AccessMode::Offline,
        refresh_token: None,
        refresh_token_expires: None,
        user: None,
    };
    app.state.tokens.repository().save(&token).await.unwrap();
    let response = app.load_home().await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(app.shopify.requests().is_empty(), "still valid for 30 s: used as it is");

    token.expires = Some(at(NOW - 1));
    app.state.tokens.repository().save(&token).await.unwrap();
    let response = app.load_home().await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!((app.shopify.refreshes(), app.shopify.exchanges()), (0, 1));
}

#[tokio::test]
async fn a_refresh_that_meets_a_shopify_outage_keeps_the_still_valid_token() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 50, NOW + 86_400).await;
    app.shopify.script(Endpoint::Token, [Scripted::status(503), Scripted::status(503), Scripted::status(503)]);
    let response = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(app.shopify.refreshes(), 3);
    assert_eq!(app.shopify.graphql_requests()[0].headers["x-shopify-access-token"], "shpat_stored");
}

#[tokio::test]
async fn forgetting_a_rejected_token_keeps_a_newer_one() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    let mut newer = stored(&app).await.unwrap();
    newer.token = "shpat_newer".into();
    app.state.tokens.repository().save(&newer).await.unwrap();
    app.state.tokens.forget(SHOP, "shpat_stored").await.unwrap();
    assert_eq!(stored(&app).await.unwrap().token, "shpat_newer");
    app.state.tokens.forget(SHOP, "shpat_newer").await.unwrap();
    assert!(stored(&app).await.is_none());
}

#[tokio::test]
async fn a_refresh_finishes_and_is_saved_even_if_its_request_goes_away() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 10, NOW + 86_400).await;
    let gate = app.shopify.hold_refreshes();
    let (state, uri) = (app.state.clone(), format!("/?{}", document_query(&session_token(app.now()))));
    let request = tokio::spawn(async move { send(&state, get(&uri)).await });
    gate.arrived().await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    gate.release();

    let mut saved = None;
    for _ in 0..1000 {
        saved = stored(&app).await.filter(|token| token.token == "shpat_fake_1");
        let leases: i64 = count_rows(&app.state, "refresh_leases").await;
        if saved.is_some() && leases == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let saved = saved.expect("the rotated token was saved");
    assert_eq!(saved.refresh_token.as_ref().map(Secret::expose), Some("shprt_fake_1"));
    let leases: i64 = count_rows(&app.state, "refresh_leases").await;
    assert_eq!(leases, 0, "the lease was given back");
}

#[tokio::test]
async fn an_uninstall_during_a_refresh_sends_the_client_to_start_over() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 10, NOW + 86_400).await;
    let gate = app.shopify.hold_refreshes();
    let (state, uri) = (app.state.clone(), format!("/?{}", document_query(&session_token(app.now()))));
    let request = tokio::spawn(async move { send(&state, get(&uri)).await });
    gate.arrived().await;
    app.state
        .shop_data
        .forget(None, app.state.shopify.clock().now(), SHOP, Forget::Uninstall { triggered_at: None })
        .await
        .unwrap();
    gate.release();
    let response = request.await.unwrap();
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert!(response.header("location").unwrap().contains("/auth/patch-id-token?"));
    assert!(stored(&app).await.is_none(), "the refreshed token of an uninstalled shop is not stored");
}

#[tokio::test]
async fn the_offline_token_is_read_from_memory_and_read_again_after_the_cache_ttl() {
    use shopify_app_rust::tokens::cache::TTL;
    let app = TestApp::start().await;
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    // Another process (here: a statement behind the app's back) deletes the token.
    execute(&app.state, "DELETE FROM access_tokens").await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 0, "served from memory");
    // The copy in memory is stale after the TTL: the next load reads the database again.
    app.clock.0.advance(TTL);
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1, "the deletion is seen once the copy is stale");
}

#[tokio::test]
async fn a_write_through_the_repository_is_seen_at_once() {
    let app = TestApp::start().await;
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    assert_eq!(stored(&app).await.unwrap().token, "shpat_stored");
    let mut replaced = stored(&app).await.unwrap();
    replaced.token = "shpat_replaced".into();
    app.state.tokens.repository().save(&replaced).await.unwrap();
    assert_eq!(stored(&app).await.unwrap().token, "shpat_replaced");
    app.state.tokens.repository().update_scopes(SHOP, "read_orders").await.unwrap();
    assert_eq!(stored(&app).await.unwrap().scope, "read_orders");
    app.state
        .shop_data
        .forget(None, app.state.shopify.clock().now(), SHOP, Forget::Uninstall { triggered_at: None })
        .await
        .unwrap();
    assert!(stored(&app).await.is_none());

    // The uninstall webhook goes through the repository too: the next fetch exchanges anew.
    store_token(&app, NOW + 3600, NOW + 86_400).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let uninstall = webhook("/webhooks/app/uninstalled", "app/uninstalled", "u-1", "{}");
    assert_eq!(app.send(uninstall).await.status, StatusCode::OK);
    assert_eq!(app.send(fetch("POST", "/api/products", &session_token(app.now()))).await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1);
}

/// An instance killed mid-refresh (`kill -9`) leaves its lease row behind: the other instance
/// waits it out, then refreshes, and the app keeps serving.
#[tokio::test]
async fn a_refresh_lease_left_by_a_killed_instance_runs_out_and_another_takes_over() {
    let app = TestApp::start().await;
    let other = app.second_process().await;
    store_token(&app, NOW + 10, NOW + 86_400).await;
    let expires = NOW + 120;
    execute(
        &app.state,
        &format!(
            "INSERT INTO refresh_leases (shop, access_mode, user_id, holder, expires_at)
             VALUES ('{SHOP}', 'offline', 0, 'killed-instance', {expires})"
        ),
    )
    .await;
    let response = send(&other, get(&format!("/?{}", document_query(&session_token(app.now()))))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(app.shopify.refreshes(), 1, "refreshed once the dead holder's lease ran out");
    assert!(app.now() >= expires, "not before");
    assert_eq!(stored(&app).await.unwrap().token, "shpat_fake_1");
    assert_eq!(count_rows(&app.state, "refresh_leases").await, 0, "the new holder gave its lease back");
}

/// The Admin API outside a page load (a webhook, a job): the stored token, refreshed as needed;
/// without one that can be used, a typed error (the merchant must open the app again), never a
/// token exchange, which takes a session token.
#[tokio::test]
async fn the_admin_api_for_a_shop_needs_no_session_token() {
    use shopify_app_rust::error::AppError;
    use shopify_app_rust::shopify::graphql::GraphqlRequest;
    use shopify_app_rust::tokens::TokenError;
    use shopify_app_rust::web::admin_api::AdminApi;

    let app = TestApp::start().await;
    let missing = AdminApi::for_shop(&app.state, SHOP).await;
    assert!(matches!(missing, Err(AppError::Token(TokenError::NoOfflineToken))));

    store_token(&app, NOW + 3600, NOW + 86_400).await;
    let Ok(api) = AdminApi::for_shop(&app.state, SHOP).await else { panic!("a stored token") };
    let result = api.graphql(GraphqlRequest::new("{ shop { name } }")).await.unwrap();
    assert!(result.ok, "{:?}", result.log);
    assert_eq!(app.shopify.graphql_requests()[0].headers["x-shopify-access-token"], "shpat_stored");

    // Near its expiry: refreshed, with no session token.
    store_token(&app, NOW + 10, NOW + 86_400).await;
    let Ok(api) = AdminApi::for_shop(&app.state, SHOP).await else { panic!("refreshed") };
    assert_eq!(api.access_token.token.expose(), "shpat_fake_1");
    assert_eq!(app.shopify.refreshes(), 1);

    // Expired, with a dead refresh token: only a token exchange could help.
    store_token(&app, NOW - 100, NOW - 1).await;
    let dead = AdminApi::for_shop(&app.state, SHOP).await;
    assert!(matches!(dead, Err(AppError::Token(TokenError::NoOfflineToken))));
    assert_eq!(app.shopify.exchanges(), 0, "no exchange without a session token");
    let response = axum::response::IntoResponse::into_response(dead.err().unwrap());
    assert_eq!(response.status(), StatusCode::CONFLICT);
}
