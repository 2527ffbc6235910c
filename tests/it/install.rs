//! The authorization-code install flow over HTTP (`/auth/login`, `/auth/callback`) with its
//! signed install cookie, against a fake Shopify on 127.0.0.1; and the client-credentials
//! helper driven by a manual clock.

use std::time::Duration;

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use shopify_app_rust::shopify::model::{AccessMode, AccessToken};
use shopify_app_rust::tokens::TokenKey;
use shopify_app_rust::tokens::client_credentials::{RENEW_BEFORE, RETRY_AFTER_FAILURE};
use time::OffsetDateTime;

const APP_IN_ADMIN: &str = "https://admin.shopify.com/store/s1/apps/test-api-key";

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// Starts an install: the install cookie and the state sent to Shopify.
async fn login(app: &TestApp, query: &str) -> (String, String) {
    let response = app.send(get(&format!("/auth/login?{query}"))).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    let state = response.location_params().remove("state").expect("a state");
    (response.session_cookie().expect("an install cookie"), state)
}

/// Whether a response clears the install cookie.
fn clears_the_install_cookie(response: &TestResponse) -> bool {
    response.set_cookie().is_some_and(|cookie| {
        cookie.starts_with("shopify_install=;") && cookie.split("; ").any(|part| part == "Max-Age=0")
    })
}

/// An install cookie made outside the app: `payload` (JSON) signed with `key`, in the app's
/// format (`base64(payload).base64(HMAC-SHA256)`).
fn forged_cookie(key: &str, payload: &str) -> String {
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD.encode(payload);
    format!("shopify_install={payload}.{}", body_hmac(key, payload.as_bytes()))
}

/// Shopify's redirect back, signed with `secret`.
fn callback(secret: &str, shop: &str, state: Option<&str>, timestamp: i64) -> String {
    let timestamp = timestamp.to_string();
    let mut params = vec![("code", "c0de"), ("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvczE"), ("shop", shop)];
    params.extend(state.map(|state| ("state", state)));
    params.push(("timestamp", &timestamp));
    format!("/auth/callback?{}", signed_callback_query(secret, &params))
}

async fn stored_tokens(app: &TestApp) -> i64 {
    count_rows(&app.state, "access_tokens").await
}

fn code_exchanges(app: &TestApp) -> usize {
    app.shopify.requests().iter().filter(|r| r.body.get("code").is_some()).count()
}

#[tokio::test]
async fn login_redirects_to_the_consent_screen_with_a_fresh_state_in_a_signed_cookie() {
    let app = TestApp::start().await;
    let response = app.send(get(&format!("/auth/login?shop={SHOP_DOMAIN}"))).await;
    assert_eq!(response.status, StatusCode::FOUND);
    let location = response.header("location").unwrap();
    assert!(location.starts_with("https://s1.myshopify.com/admin/oauth/authorize?"), "{location}");
    let params = response.location_params();
    assert_eq!(params["client_id"], API_KEY);
    assert_eq!(params["scope"], "write_products");
    assert_eq!(params["redirect_uri"], "https://app.example.com/auth/callback");
    assert!(!params.contains_key("grant_options[]"));
    let state = &params["state"];
    assert!(state.len() >= 43 && state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    let cookie = response.set_cookie().unwrap();
    assert!(cookie.starts_with("shopify_install="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/auth", "Max-Age=600"] {
        assert!(cookie.split("; ").any(|part| part == attribute), "{attribute} missing in {cookie}");
    }
    assert_eq!(count_rows(&app.state, sessions_table()).await, 0);

    let again = app.send(get(&format!("/auth/login?shop={SHOP}"))).await;
    assert_ne!(&again.location_params()["state"], state);

    let online = app.send(get(&format!("/auth/login?shop={SHOP_DOMAIN}&mode=online"))).await;
    assert_eq!(online.location_params()["grant_options[]"], "per-user");
    assert!(app.shopify.requests().is_empty());
}

#[tokio::test]
async fn login_refuses_a_bad_shop_or_mode_and_sets_no_cookie() {
    let app = TestApp::start().await;
    for query in ["", "shop=evil.com", "shop=s1.myshopify.com.evil.com", "shop=-s1", "shop=s1&mode=forever"] {
        let response = app.send(get(&format!("/auth/login?{query}"))).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(response.body.starts_with("Bad Request: "), "{}", response.body);
        assert!(response.set_cookie().is_none());
    }
    assert_eq!(count_rows(&app.state, sessions_table()).await, 0);
}

#[tokio::test]
async fn a_thousand_logins_store_nothing() {
    let app = TestApp::start().await;
    for n in 0..1000 {
        let (_, state) = login(&app, &format!("shop=s{n}")).await;
        assert!(state.len() >= 43);
    }
    assert_eq!(count_rows(&app.state, sessions_table()).await, 0);
}

#[tokio::test]
async fn embedded_requests_stay_cookie_free() {
    let app = TestApp::start().await;
    let (cookie, _) = login(&app, "shop=s1").await;
    let home = app.send(get_with_cookie(&format!("/?{}", document_query(&session_token(app.now()))), &cookie)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.set_cookie().is_none());
    let health = app.send(get("/healthz")).await;
    assert!(health.set_cookie().is_none());
}

#[tokio::test]
async fn a_valid_callback_stores_an_expiring_offline_token_and_lands_in_the_app() {
    let app = TestApp::start().await;
    let (cookie, state) = login(&app, &format!("shop={SHOP_DOMAIN}")).await;
    let response = app.send(get_with_cookie(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), NOW), &cookie)).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert_eq!(response.header("location"), Some(APP_IN_ADMIN));

    let requests = app.shopify.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/s1.myshopify.com/admin/oauth/access_token");
    assert_eq!(
        requests[0].body,
        json!({"client_id": API_KEY, "client_secret": API_SECRET, "code": "c0de", "expiring": 1})
    );
    let token = app.state.tokens.repository().load(&TokenKey::offline(SHOP)).await.unwrap().expect("token stored");
    assert_eq!(token.token, "shpat_fake_1");
    assert_eq!(token.access_mode, AccessMode::Offline);
    assert_eq!(token.refresh_token.as_ref().map(Secret::expose), Some("shprt_fake_1"));
    assert_eq!(token.expires, Some(at(NOW + 3600)));
    assert_eq!(token.refresh_token_expires, Some(at(NOW + 7_776_000)));
}

#[tokio::test]
async fn an_online_install_stores_the_token_with_its_user() {
    let app = TestApp::start().await;
    let (cookie, state) = login(&app, "shop=s1&mode=online").await;
    app.shopify.script(
        Endpoint::Token,
        [Scripted::json(
            200,
            json!({
                "access_token": "shpua_online", "scope": "write_products", "expires_in": 86399,
                "associated_user_scope": "write_products",
                "associated_user": {"id": 902541635, "first_name": "Ada", "email": "ada@example.com", "account_owner": true}
            }),
        )],
    );
    let response = app.send(get_with_cookie(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), NOW), &cookie)).await;
    assert_eq!(response.status, StatusCode::FOUND);
    let key = TokenKey { shop: SHOP.into(), access_mode: AccessMode::Online, user_id: 902541635 };
    let token: AccessToken = app.state.tokens.repository().load(&key).await.unwrap().expect("online token");
    assert_eq!(token.token, "shpua_online");
    assert_eq!(token.expires, Some(at(NOW + 86399)));
    let user = token.user.unwrap();
    assert_eq!((user.first_name.as_str(), user.scope.as_str(), user.account_owner), ("Ada", "write_products", true));
    assert!(app.state.tokens.repository().load(&TokenKey::offline(SHOP)).await.unwrap().is_none());
}

#[tokio::test]
async fn the_previous_secret_still_signs_during_a_rotation() {
    let app = TestApp::start_with(&[("SHOPIFY_OLD_API_SECRET", OLD_API_SECRET)]).await;
    let (cookie, state) = login(&app, "shop=s1").await;
    let response = app.send(get_with_cookie(&callback(OLD_API_SECRET, SHOP_DOMAIN, Some(&state), NOW), &cookie)).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert_eq!(stored_tokens(&app).await, 1);
}

#[tokio::test]
async fn a_callback_that_fails_a_check_is_refused_stores_nothing_and_ends_the_install() {
    type Case = (&'static str, fn(&str) -> String, StatusCode);
    let cases: [Case; 6] = [
        ("bad hmac", |state| callback("not-the-secret", SHOP_DOMAIN, Some(state), NOW), StatusCode::UNAUTHORIZED),
        ("bad shop", |state| callback(API_SECRET, "evil.com", Some(state), NOW), StatusCode::BAD_REQUEST),
        ("stale timestamp", |state| callback(API_SECRET, SHOP_DOMAIN, Some(state), NOW - 91), StatusCode::UNAUTHORIZED),
        ("missing state", |_| callback(API_SECRET, SHOP_DOMAIN, None, NOW), StatusCode::FORBIDDEN),
        ("wrong state", |_| callback(API_SECRET, SHOP_DOMAIN, Some("forged-state"), NOW), StatusCode::FORBIDDEN),
        ("another shop", |state| callback(API_SECRET, "s2.myshopify.com", Some(state), NOW), StatusCode::FORBIDDEN),
    ];
    for (name, bad_callback, status) in cases {
        let app = TestApp::start().await;
        let (cookie, state) = login(&app, "shop=s1").await;
        let response = app.send(get_with_cookie(&bad_callback(&state), &cookie)).await;
        assert_eq!(response.status, status, "{name}: {}", response.body);
        assert!(response.body.contains(": "), "{name}: a clear message, got {:?}", response.body);
        assert!(clears_the_install_cookie(&response), "{name}: {:?}", response.set_cookie());

        // The browser dropped the cookie: even the valid callback is now refused.
        let retry = app.send(get(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), NOW))).await;
        assert_eq!(retry.status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(stored_tokens(&app).await, 0, "{name}");
        assert_eq!(code_exchanges(&app), 0, "{name}");
    }
}

#[tokio::test]
async fn a_callback_without_an_intact_install_cookie_is_refused() {
    let app = TestApp::start().await;
    let (cookie, state) = login(&app, "shop=s1").await;
    let valid = callback(API_SECRET, SHOP_DOMAIN, Some(&state), NOW);
    let payload = |shop: &str| json!({"shop": shop, "state": state, "expires": NOW + 600}).to_string();
    let key = hex_hmac(API_SECRET, "install-cookie");
    let (value, signature) = cookie.split_once('.').unwrap();
    let flipped = format!("{value}.{}{}", if signature.starts_with('A') { "B" } else { "A" }, &signature[1..]);

    for (name, cookie) in [
        ("no cookie", None),
        ("a session cookie", Some("shopify_app_session=AAAAAAAAAAAAAAAAAAAAAA".to_owned())),
        ("another signature", Some(flipped)),
        ("no signature", Some(value.to_owned())),
        (
            "signed with another secret",
            Some(forged_cookie(&hex_hmac("not-the-secret", "install-cookie"), &payload("s1"))),
        ),
        ("signed with the secret itself", Some(forged_cookie(API_SECRET, &payload("s1")))),
    ] {
        let request = match &cookie {
            Some(cookie) => get_with_cookie(&valid, cookie),
            None => get(&valid),
        };
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{name}: {}", response.body);
        assert!(response.body.starts_with("Forbidden: "), "{name}: {}", response.body);
    }
    assert_eq!(code_exchanges(&app), 0);

    // The forgeries above fail for their key alone: the same payload signed with the derived
    // key (which only the secret gives) finishes the install.
    let response = app.send(get_with_cookie(&valid, &forged_cookie(&key, &payload("s1")))).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert!(clears_the_install_cookie(&response));
    assert_eq!((code_exchanges(&app), stored_tokens(&app).await), (1, 1));
}

#[tokio::test]
async fn an_install_cookie_expires_after_ten_minutes_on_the_apps_clock() {
    let app = TestApp::start().await;
    let (cookie, state) = login(&app, "shop=s1").await;
    app.clock.0.advance(Duration::from_secs(600));
    let late = app.send(get_with_cookie(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), app.now()), &cookie)).await;
    assert_eq!(late.status, StatusCode::FORBIDDEN, "{}", late.body);
    assert!(clears_the_install_cookie(&late));
    assert_eq!(code_exchanges(&app), 0);

    let (cookie, state) = login(&app, "shop=s1").await;
    app.clock.0.advance(Duration::from_secs(599));
    let in_time = app.send(get_with_cookie(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), app.now()), &cookie)).await;
    assert_eq!(in_time.status, StatusCode::FOUND, "{}", in_time.body);
    assert_eq!(stored_tokens(&app).await, 1);
}

#[tokio::test]
async fn one_shops_install_cookie_cannot_finish_another_shops_install() {
    let app = TestApp::start().await;
    let (s1_cookie, s1_state) = login(&app, "shop=s1").await;
    let (s2_cookie, s2_state) = login(&app, "shop=s2.myshopify.com").await;
    let s1_payload = s1_cookie.split_once('.').unwrap().0.trim_start_matches("shopify_install=").to_owned();
    let s2_signature = s2_cookie.split_once('.').unwrap().1;

    for (name, query, cookie) in [
        ("s1's cookie, s2's state", callback(API_SECRET, "s2.myshopify.com", Some(&s2_state), NOW), s1_cookie.clone()),
        ("s1's cookie and state", callback(API_SECRET, "s2.myshopify.com", Some(&s1_state), NOW), s1_cookie.clone()),
        ("s2's cookie, s1's state", callback(API_SECRET, "s2.myshopify.com", Some(&s1_state), NOW), s2_cookie.clone()),
        (
            "s1's payload with s2's signature",
            callback(API_SECRET, SHOP_DOMAIN, Some(&s1_state), NOW),
            format!("shopify_install={s1_payload}.{s2_signature}"),
        ),
    ] {
        let response = app.send(get_with_cookie(&query, &cookie)).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{name}: {}", response.body);
    }
    assert_eq!((code_exchanges(&app), stored_tokens(&app).await), (0, 0));

    let response =
        app.send(get_with_cookie(&callback(API_SECRET, "s2.myshopify.com", Some(&s2_state), NOW), &s2_cookie)).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert!(app.state.tokens.repository().load(&TokenKey::offline("s2")).await.unwrap().is_some());
    assert!(app.state.tokens.repository().load(&TokenKey::offline(SHOP)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_code_shopify_refuses_is_a_400_and_stores_nothing() {
    let app = TestApp::start().await;
    let (cookie, state) = login(&app, "shop=s1").await;
    app.shopify.script(
        Endpoint::Token,
        [Scripted::json(
            400,
            json!({"error": "invalid_request", "error_description": "The authorization code was not found or was already used"}),
        )],
    );
    let response = app.send(get_with_cookie(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), NOW), &cookie)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.body.contains("refused the authorization code"), "{}", response.body);
    assert_eq!(code_exchanges(&app), 1);
    assert_eq!(stored_tokens(&app).await, 0);

    let (cookie, state) = login(&app, "shop=s1").await;
    app.shopify.script(Endpoint::Token, [Scripted::status(503)]);
    let response = app.send(get_with_cookie(&callback(API_SECRET, SHOP_DOMAIN, Some(&state), NOW), &cookie)).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(stored_tokens(&app).await, 0);
}

fn client_credentials_answer(token: &str) -> Scripted {
    Scripted::json(200, json!({"access_token": token, "scope": "read_products", "expires_in": 86_399}))
}

#[tokio::test]
async fn client_credentials_tokens_are_renewed_before_their_24_hour_expiry() {
    let app = TestApp::start_with(&[("SHOPIFY_CLIENT_CREDENTIALS_SHOPS", "s1, s2.myshopify.com")]).await;
    let helper = app.state.client_credentials.clone().expect("configured");
    assert_eq!(helper.shops(), ["s1", "s2"]);
    app.shopify
        .script(Endpoint::Token, [client_credentials_answer("shpat_cc_1"), client_credentials_answer("shpat_cc_2")]);

    let wait = helper.renew_due().await;
    assert_eq!(app.shopify.count("client_credentials"), 2);
    assert_eq!(wait, Duration::from_secs(86_399) - RENEW_BEFORE);
    let paths: Vec<String> = app.shopify.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/s1.myshopify.com/admin/oauth/access_token", "/s2.myshopify.com/admin/oauth/access_token"]);
    assert_eq!(helper.token("s1").await.unwrap().token.expose(), "shpat_cc_1");

    // Not yet due: nothing is sent.
    app.clock.0.advance(wait - Duration::from_secs(1));
    assert_eq!(helper.renew_due().await, Duration::from_secs(1));
    assert_eq!(app.shopify.count("client_credentials"), 2);

    // Due, an hour before expiry: both renewed; a failed renewal keeps the old token and retries soon.
    app.clock.0.advance(Duration::from_secs(1));
    app.shopify.script(Endpoint::Token, [client_credentials_answer("shpat_cc_3"), Scripted::status(500)]);
    assert_eq!(helper.renew_due().await, RETRY_AFTER_FAILURE);
    assert_eq!(app.shopify.count("client_credentials"), 4);
    assert_eq!(helper.token("s1").await.unwrap().token.expose(), "shpat_cc_3");
    assert_eq!(helper.token("s2").await.unwrap().token.expose(), "shpat_cc_2");
    assert_eq!(app.shopify.count("client_credentials"), 4);
}

#[tokio::test]
async fn the_background_loop_renews_on_the_clock_without_real_waiting() {
    let app = TestApp::start_with(&[("SHOPIFY_CLIENT_CREDENTIALS_SHOPS", "s1")]).await;
    let helper = app.state.client_credentials.clone().unwrap();
    app.shopify.script(Endpoint::Token, (1..=3).map(|n| client_credentials_answer(&format!("shpat_cc_{n}"))));
    let started = std::time::Instant::now();
    let task = tokio::spawn(helper.clone().run());
    while app.shopify.count("client_credentials") < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    assert!(started.elapsed() < Duration::from_secs(5));
    let due = Duration::from_secs(86_399) - RENEW_BEFORE;
    assert_eq!(app.clock.0.sleeps()[..2], [due, due]);
    assert!(app.now() >= NOW + 2 * due.as_secs() as i64);
}
