//! Connecting a third-party OAuth2 provider over HTTP: the PKCE authorization-code flow with
//! its session state, token storage per shop and provider, refresh on expiry and API calls,
//! against a fake provider on 127.0.0.1.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use shopify_app_rust::oauth::{OAuthError, ProviderToken};
use support::*;
use time::OffsetDateTime;

const APP_IN_ADMIN: &str = "https://admin.shopify.com/store/s1/apps/test-api-key";

async fn start() -> (TestApp, FakeProvider) {
    let provider = FakeProvider::start().await;
    let env = provider.env();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (TestApp::start_with(&extra).await, provider)
}

/// Opens `/connect/example` from the embedded app: the session cookie and the query the
/// browser carries to the provider.
async fn begin(app: &TestApp) -> (String, std::collections::HashMap<String, String>) {
    let response = app.send(get(&format!("/connect/example?id_token={}", session_token(app.now())))).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert!(response.header("location").unwrap().starts_with("https://provider.example/oauth/authorize?"));
    (response.session_cookie().expect("a session cookie"), response.location_params())
}

async fn stored(app: &TestApp) -> Option<ProviderToken> {
    app.state.oauth.store().load(SHOP, "example").await.unwrap()
}

#[tokio::test]
async fn the_pkce_flow_connects_then_the_token_is_refreshed_and_used() {
    let (app, provider) = start().await;
    let (cookie, params) = begin(&app).await;
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], PROVIDER_CLIENT_ID);
    assert_eq!(params["redirect_uri"], "https://app.example.com/connect/example/callback");
    assert_eq!(params["scope"], "read write");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);
    assert!(params["state"].len() >= 43);

    let code = provider.issue_code(&params["code_challenge"]);
    let callback = format!("/connect/example/callback?code={code}&state={}", params["state"]);
    let response = app.send(get_with_cookie(&callback, &cookie)).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert_eq!(response.header("location"), Some(APP_IN_ADMIN));

    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["grant_type"], "authorization_code");
    assert_eq!(requests[0]["code"], code);
    assert_eq!(requests[0]["redirect_uri"], "https://app.example.com/connect/example/callback");
    assert!(requests[0]["code_verifier"].len() >= 43);
    assert!(requests[0]["authorization"].starts_with("Basic "));
    assert!(!requests[0].contains_key("client_secret"));

    let token = stored(&app).await.expect("token stored");
    assert_eq!((token.access_token.as_str(), token.refresh_token.as_deref()), ("prov_at_1", Some("prov_rt_1")));
    assert_eq!(token.expires, Some(OffsetDateTime::from_unix_timestamp(NOW + 3600).unwrap()));
    assert_eq!(token.scope, "read write");
    assert!(!format!("{token:?}").contains("prov_at_1"));

    let me = app.state.oauth.request(SHOP, "example", "GET", "/me", &[("revision", "2026-01-15")], None).await.unwrap();
    assert_eq!(me.status, 200);
    assert!(me.body.contains("\"token\":\"prov_at_1\""), "{}", me.body);
    assert!(me.body.contains("\"revision\":\"2026-01-15\""), "{}", me.body);

    // An hour later the token has expired: the embedded page's status request refreshes it.
    app.clock.0.advance(Duration::from_secs(3600));
    provider.expire_access_tokens();
    let status = app.send(fetch("GET", "/api/connections/example", &session_token(app.now()))).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.json()["connected"], true);
    assert!(status.set_cookie().is_none());
    let requests = provider.token_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[1]["grant_type"].as_str(), requests[1]["refresh_token"].as_str()),
        ("refresh_token", "prov_rt_1")
    );
    let token = stored(&app).await.unwrap();
    assert_eq!((token.access_token.as_str(), token.refresh_token.as_deref()), ("prov_at_2", Some("prov_rt_2")));

    let me = app.state.oauth.request(SHOP, "example", "GET", "/me", &[("revision", "2026-01-15")], None).await.unwrap();
    assert_eq!(me.status, 200);
    assert!(me.body.contains("prov_at_2"));
    assert_eq!(provider.token_requests().len(), 2, "a fresh token is not refreshed again");
}

#[tokio::test]
async fn concurrent_callers_refresh_once() {
    let (app, provider) = start().await;
    provider.accept_refresh_token("rt_stored");
    let expired = ProviderToken {
        shop: SHOP.into(),
        provider: "example".into(),
        access_token: "at_stored".into(),
        refresh_token: Some("rt_stored".into()),
        scope: "read".into(),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW - 1).unwrap()),
    };
    app.state.oauth.store().save(&expired).await.unwrap();
    let calls = (0..10).map(|_| {
        let state = app.state.clone();
        tokio::spawn(async move { state.oauth.token(SHOP, "example").await.unwrap().access_token })
    });
    for call in calls {
        assert_eq!(call.await.unwrap(), "prov_at_1");
    }
    assert_eq!(provider.token_requests().len(), 1);
}

#[tokio::test]
async fn the_callback_refuses_a_missing_wrong_or_replayed_state() {
    let (app, provider) = start().await;
    let (cookie, params) = begin(&app).await;
    let code = provider.issue_code(&params["code_challenge"]);

    let without_session =
        app.send(get(&format!("/connect/example/callback?code={code}&state={}", params["state"]))).await;
    assert_eq!(without_session.status, StatusCode::FORBIDDEN);
    let wrong =
        app.send(get_with_cookie(&format!("/connect/example/callback?code={code}&state=forged"), &cookie)).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.body.starts_with("Forbidden: "));
    // The wrong attempt used the state up.
    let late = app
        .send(get_with_cookie(&format!("/connect/example/callback?code={code}&state={}", params["state"]), &cookie))
        .await;
    assert_eq!(late.status, StatusCode::FORBIDDEN);
    assert!(provider.token_requests().is_empty());
    assert!(stored(&app).await.is_none());

    let (cookie, params) = begin(&app).await;
    let code = provider.issue_code(&params["code_challenge"]);
    let missing = app.send(get_with_cookie(&format!("/connect/example/callback?code={code}"), &cookie)).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);

    let (cookie, params) = begin(&app).await;
    let code = provider.issue_code(&params["code_challenge"]);
    let callback = format!("/connect/example/callback?code={code}&state={}", params["state"]);
    assert_eq!(app.send(get_with_cookie(&callback, &cookie)).await.status, StatusCode::FOUND);
    let replayed = app.send(get_with_cookie(&callback, &cookie)).await;
    assert_eq!(replayed.status, StatusCode::FORBIDDEN);
    assert_eq!(provider.token_requests().len(), 1);
}

#[tokio::test]
async fn a_code_bound_to_another_pkce_challenge_or_a_refusal_stores_nothing() {
    let (app, provider) = start().await;
    let (cookie, params) = begin(&app).await;
    let code = provider.issue_code("a-challenge-from-another-browser");
    let response = app
        .send(get_with_cookie(&format!("/connect/example/callback?code={code}&state={}", params["state"]), &cookie))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.body.contains("refused the authorization code"));
    assert_eq!(provider.token_requests().len(), 1);
    assert!(stored(&app).await.is_none());

    let (cookie, params) = begin(&app).await;
    let declined = format!("/connect/example/callback?error=access_denied&state={}", params["state"]);
    let response = app.send(get_with_cookie(&declined, &cookie)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(provider.token_requests().len(), 1);
}

#[tokio::test]
async fn the_start_needs_a_valid_session_token() {
    let (app, _provider) = start().await;
    for uri in [
        "/connect/example".to_owned(),
        format!("/connect/example?id_token={}", session_token(app.now() - 3600)),
        format!("/connect/example?id_token={}", sign(&claims(app.now()), "another-secret")),
    ] {
        let response = app.send(get(&uri)).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(response.set_cookie().is_none());
    }
    assert_eq!(app.send(get("/connect/unknown")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refused_refresh_token_asks_the_merchant_to_connect_again() {
    let (app, provider) = start().await;
    let status = app.send(fetch("GET", "/api/connections/example", &session_token(app.now()))).await;
    assert_eq!(status.json(), serde_json::json!({"provider": "example", "connected": false}));

    let revoked = ProviderToken {
        shop: SHOP.into(),
        provider: "example".into(),
        access_token: "at_old".into(),
        refresh_token: Some("rt_revoked".into()),
        scope: String::new(),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW + 30).unwrap()),
    };
    app.state.oauth.store().save(&revoked).await.unwrap();
    let status = app.send(fetch("GET", "/api/connections/example", &session_token(app.now()))).await;
    assert_eq!(status.json()["connected"], false);
    assert_eq!(provider.token_requests().len(), 1);
    assert!(stored(&app).await.is_none());
    assert!(matches!(app.state.oauth.token(SHOP, "example").await, Err(OAuthError::NotConnected(_))));

    let unknown = app.send(fetch("GET", "/api/connections/unknown", &session_token(app.now()))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unsigned = app.send(get("/api/connections/example")).await;
    assert_ne!(unsigned.status, StatusCode::OK);
}

#[tokio::test]
async fn api_calls_stay_below_the_configured_base_url() {
    let (app, _provider) = start().await;
    for path in ["me", "//evil.example/x", "/me\n"] {
        let result = app.state.oauth.request(SHOP, "example", "GET", path, &[], None).await;
        assert!(matches!(result, Err(OAuthError::Forbidden(_))), "{path:?}");
    }
    let result = app.state.oauth.request(SHOP, "example", "GET", "/me", &[("revision", "2026-01-15")], None).await;
    assert!(matches!(result, Err(OAuthError::NotConnected(_))));
}

#[tokio::test]
async fn uninstalling_forgets_the_shops_provider_tokens() {
    let (app, _provider) = start().await;
    let token = ProviderToken {
        shop: SHOP.into(),
        provider: "example".into(),
        access_token: "at".into(),
        refresh_token: None,
        scope: String::new(),
        expires: None,
    };
    app.state.oauth.store().save(&token).await.unwrap();
    assert_eq!(app.state.oauth.token(SHOP, "example").await.unwrap(), token);
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "wh-1", "{}")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(stored(&app).await.is_none());
}
