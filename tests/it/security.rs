//! The attacks of the security review, over HTTP against the whole router and the fake
//! Shopify: each must be refused, answer a 4xx (never a 500), and reach no Shopify API.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use shopify_app_rust::tokens::TokenKey;

/// A token a checkout or customer-account extension sends: signed with the app's secret, for
/// this app, naming the shop bare, with no issuer. Any buyer can copy it.
fn buyer_token(now: i64) -> String {
    sign(&json!({"dest": SHOP_DOMAIN, "aud": API_KEY, "sub": "buyer-7", "exp": now + 60}), API_SECRET)
}

/// The claims of a valid staff token for `s1`, changed by `edit`.
fn staff_token_with(now: i64, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = claims(now);
    if let Some(object) = claims.as_object_mut() {
        edit(object);
    }
    sign(&claims, API_SECRET)
}

/// The app with a provider configured (for `/connect/{provider}`) and a stored offline token
/// for `s1`, the prize an attacker is after.
async fn app_with_an_installed_shop() -> (TestApp, FakeProvider) {
    let provider = FakeProvider::start().await;
    let env = provider.env();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::start_with(&extra).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK, "a staff member opened the app");
    assert_eq!(app.shopify.exchanges(), 1);
    (app, provider)
}

fn extension(surface: &str, token: &str) -> Request<Body> {
    Request::post(format!("/api/extensions/{surface}"))
        .header("authorization", format!("Bearer {token}"))
        .header("origin", "https://extensions.shopifycdn.com")
        .body(Body::empty())
        .unwrap()
}

/// Sends `token` to every route that acts with the shop's Admin API or the merchant's data,
/// and checks each refuses it with the surface's 401.
async fn refused_everywhere(app: &TestApp, token: &str, what: &str) {
    let retry = Some("1");
    let cases: Vec<(&str, Request<Body>, Option<&str>)> = vec![
        ("POST /api/products", fetch("POST", "/api/products", token), retry),
        ("GET /api/connections/example", fetch("GET", "/api/connections/example", token), retry),
        (
            "POST /api/connections/example/confirm",
            fetch_json("POST", "/api/connections/example/confirm", token, &json!({"pending": "x"})),
            retry,
        ),
        ("POST /api/extensions/admin", extension("admin", token), retry),
        ("POST /api/extensions/pos", extension("pos", token), None),
        ("GET /", get(&format!("/?{}", document_query(token))), None),
        ("GET /settings", get(&format!("/settings?{}", document_query(token))), None),
        ("GET /connect/example", get(&format!("/connect/example?id_token={token}")), None),
    ];
    for (route, request, retry) in cases {
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what} at {route}: {}", response.body);
        assert_eq!(response.header("x-shopify-retry-invalid-session-request"), retry, "{what} at {route}");
    }
}

#[tokio::test]
async fn a_buyers_token_cannot_act_as_the_merchants_admin() {
    let (app, _provider) = app_with_an_installed_shop().await;
    let now = app.now();
    refused_everywhere(&app, &buyer_token(now), "a buyer's token").await;
    let no_issuer = staff_token_with(now, |claims| {
        claims.remove("iss");
    });
    refused_everywhere(&app, &no_issuer, "an admin-shaped token without iss").await;
    let other_shop = staff_token_with(now, |claims| {
        claims.insert("iss".into(), json!("https://s2.myshopify.com/admin"));
    });
    refused_everywhere(&app, &other_shop, "a token issued by another shop's admin").await;
    let no_expiry = staff_token_with(now, |claims| {
        claims.remove("exp");
    });
    refused_everywhere(&app, &no_expiry, "a token that never expires").await;
    let bare_dest = staff_token_with(now, |claims| {
        claims.insert("dest".into(), json!(SHOP_DOMAIN));
    });
    refused_everywhere(&app, &bare_dest, "an admin-shaped token with a buyer's bare dest").await;

    assert!(app.shopify.graphql_requests().is_empty(), "the merchant's token was never used");
    assert_eq!(app.shopify.exchanges(), 1, "no token was exchanged for an attacker");
    assert_eq!(count_rows(&app.state, sessions_table()).await, 0, "no connection was started");

    // The buyer's token keeps working where it belongs.
    for surface in ["checkout", "customer-account"] {
        let response = app.send(extension(surface, &buyer_token(now))).await;
        assert_eq!(response.status, StatusCode::OK, "{surface}");
        assert_eq!(response.json()["shop"], "s1");
    }
}

#[tokio::test]
async fn a_dest_with_a_port_or_a_path_is_a_4xx_never_a_500() {
    let (app, _provider) = app_with_an_installed_shop().await;
    let now = app.now();
    for dest in ["https://s1.myshopify.com:443", "https://s1.myshopify.com/../../x", "https://u@s1.myshopify.com"] {
        for iss in [format!("{dest}/admin"), format!("https://{SHOP_DOMAIN}/admin")] {
            let token = staff_token_with(now, |claims| {
                claims.insert("dest".into(), json!(dest));
                claims.insert("iss".into(), json!(iss));
            });
            for request in [
                get(&format!("/?{}", document_query(&token))),
                fetch("POST", "/api/products", &token),
                extension("admin", &token),
            ] {
                let response = app.send(request).await;
                assert!(response.status.is_client_error(), "{dest} / {iss}: {}", response.status);
            }
        }
    }
    assert_eq!(app.shopify.exchanges(), 1);
    assert!(app.shopify.graphql_requests().is_empty());
}

#[tokio::test]
async fn a_signed_query_string_led_by_whitespace_is_not_a_webhook() {
    // The app's secret signs query strings too. A sorted query whose first key starts with
    // ` {"a":"` and whose last value ends with `"}` is a JSON object after its leading space;
    // its signature (hex turned base64) is a valid body HMAC for that text.
    let (app, _provider) = app_with_an_installed_shop().await;
    let query = r#" {"a":"=1&shop=attacker.myshopify.com&timestamp=1750000000&z=x"}"#;
    assert!(serde_json::from_str::<Value>(query).is_ok_and(|value| value.is_object()));
    for (path, topic) in [("/webhooks/app/uninstalled", "app/uninstalled"), ("/webhooks/compliance", "shop/redact")] {
        // `webhook` signs the body with the app's secret, as the borrowed signature would be.
        let response = app.send(webhook(path, topic, "replayed-1", query)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}");
    }
    let stored = app.state.tokens.repository().load(&TokenKey::offline(SHOP)).await.unwrap();
    assert!(stored.is_some(), "the shop's tokens are still there");
    assert_eq!(count_rows(&app.state, "webhook_deliveries").await, 0, "no delivery was recorded");
}
