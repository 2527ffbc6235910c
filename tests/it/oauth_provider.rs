//! Connecting a third-party OAuth2 provider over HTTP: the PKCE authorization-code flow with
//! its session state, the embedded app's confirmation of the pending connection, token storage
//! per shop and provider, refresh on expiry (single-flight across processes) and API calls,
//! against a fake provider on 127.0.0.1.

use std::time::Duration;

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use shopify_app_rust::AppState;
use shopify_app_rust::oauth::{OAuthError, PENDING_LIFETIME, ProviderToken, REFRESH_LEASE};
use time::OffsetDateTime;

const APP_IN_ADMIN: &str = "https://admin.shopify.com/store/s1/apps/test-api-key";
const CONFIRM: &str = "/api/connections/example/confirm";

async fn start() -> (TestApp, FakeProvider) {
    start_with(&[]).await
}

/// The app with the fake provider configured, plus `extra` settings.
async fn start_with(extra: &[(&str, &str)]) -> (TestApp, FakeProvider) {
    let provider = FakeProvider::start().await;
    let env = provider.env();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.extend_from_slice(extra);
    (TestApp::start_with(&vars).await, provider)
}

/// Opens `/connect/example` from the embedded app: the session cookie and the query the
/// browser carries to the provider.
async fn begin(app: &TestApp) -> (String, std::collections::HashMap<String, String>) {
    begin_with(app, &session_token(app.now())).await
}

/// Opens `/connect/example?id_token={id_token}`.
async fn begin_with(app: &TestApp, id_token: &str) -> (String, std::collections::HashMap<String, String>) {
    let response = app.send(get(&format!("/connect/example?id_token={id_token}"))).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.body);
    assert!(response.header("location").unwrap().starts_with("https://provider.example/oauth/authorize?"));
    (response.session_cookie().expect("a session cookie"), response.location_params())
}

/// The whole browser side with the session token `id_token` at the start: start, consent at
/// the provider, callback. Returns the callback's response.
async fn authorize_with(app: &TestApp, provider: &FakeProvider, id_token: &str) -> TestResponse {
    let (cookie, params) = begin_with(app, id_token).await;
    let code = provider.issue_code(&params["code_challenge"]);
    app.send(get_with_cookie(&format!("/connect/example/callback?code={code}&state={}", params["state"]), &cookie))
        .await
}

/// The pending id of a callback that redirected into the app in `shop`'s admin.
fn pending_id(callback: &TestResponse, shop: &str) -> String {
    assert_eq!(callback.status, StatusCode::FOUND, "{}", callback.body);
    let location = callback.header("location").unwrap();
    let app_in_admin = format!("https://admin.shopify.com/store/{shop}/apps/{API_KEY}?");
    assert!(location.starts_with(&app_in_admin), "{location}");
    let params = callback.location_params();
    assert_eq!(params["connect"], "example");
    assert!(params["pending"].len() >= 43);
    params["pending"].clone()
}

/// The embedded page's confirmation of `pending`, with the session token `id_token`.
async fn confirm(app: &TestApp, id_token: &str, pending: &str) -> TestResponse {
    app.send(fetch_json("POST", CONFIRM, id_token, &json!({ "pending": pending }))).await
}

#[tokio::test]
async fn expired_sessions_are_deleted_by_housekeeping_and_live_ones_kept() {
    let (app, _provider) = start().await;
    begin(&app).await;
    begin(&app).await;
    let table = sessions_table();
    let expire = if on_postgres() {
        "UPDATE tower_sessions.session SET expiry_date = '2000-01-01' WHERE id = (SELECT MIN(id) FROM tower_sessions.session)"
    } else {
        "UPDATE tower_sessions SET expiry_date = '2000' || substr(expiry_date, 5) WHERE rowid = (SELECT MIN(rowid) FROM tower_sessions)"
    };
    assert_eq!(execute(&app.state, expire).await, 1);
    // The housekeeping job is due at the first run of the jobs.
    let outcomes = shopify_app_rust::jobs::run_due(&app.state).await.unwrap();
    assert_eq!(outcomes, [("housekeeping".to_owned(), shopify_app_rust::jobs::Outcome::Done)]);
    assert_eq!(count_rows(&app.state, table).await, 1);
}

fn expiring_token(access_token: &str, refresh_token: &str) -> ProviderToken {
    ProviderToken {
        shop: SHOP.into(),
        provider: "example".into(),
        access_token: access_token.into(),
        refresh_token: Some(refresh_token.into()),
        scope: "read".into(),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW - 1).unwrap()),
    }
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
    let pending = pending_id(&response, SHOP);
    assert!(response.header("location").unwrap().starts_with(&format!("{APP_IN_ADMIN}?connect=example&pending=")));

    // The callback alone links nothing: the embedded app must confirm.
    assert!(stored(&app).await.is_none());
    let status = app.send(fetch("GET", "/api/connections/example", &session_token(app.now()))).await;
    assert_eq!(status.json()["connected"], false);
    let confirmed = confirm(&app, &session_token(app.now()), &pending).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.json()["connected"], true);
    assert_eq!(confirmed.json()["scope"], "read write");
    assert!(confirmed.set_cookie().is_none());
    assert_eq!(count_rows(&app.state, "provider_pending_connections").await, 0);
    let again = confirm(&app, &session_token(app.now()), &pending).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "a pending connection is confirmed once");

    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["grant_type"], "authorization_code");
    assert_eq!(requests[0]["code"], code);
    assert_eq!(requests[0]["redirect_uri"], "https://app.example.com/connect/example/callback");
    assert!(requests[0]["code_verifier"].len() >= 43);
    assert!(requests[0]["authorization"].starts_with("Basic "));
    assert!(!requests[0].contains_key("client_secret"));

    let token = stored(&app).await.expect("token stored");
    assert_eq!(
        (token.access_token.expose(), token.refresh_token.as_ref().map(Secret::expose)),
        ("prov_at_1", Some("prov_rt_1"))
    );
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
    assert_eq!(
        (token.access_token.expose(), token.refresh_token.as_ref().map(Secret::expose)),
        ("prov_at_2", Some("prov_rt_2"))
    );

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
async fn a_refresh_finishes_and_is_saved_even_if_its_caller_goes_away() {
    let (app, provider) = start().await;
    provider.accept_refresh_token("rt_stored");
    provider.set_refresh_delay(Duration::from_millis(50));
    let expired = ProviderToken {
        shop: SHOP.into(),
        provider: "example".into(),
        access_token: "at_stored".into(),
        refresh_token: Some("rt_stored".into()),
        scope: "read".into(),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW - 1).unwrap()),
    };
    app.state.oauth.store().save(&expired).await.unwrap();
    let state = app.state.clone();
    let call = tokio::spawn(async move { state.oauth.token(SHOP, "example").await });
    // The provider has used the refresh token up when its request arrives; then the caller goes.
    while provider.token_requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());

    let mut saved = None;
    for _ in 0..2000 {
        let leases: i64 = count_rows(&app.state, "provider_refresh_leases").await;
        saved = stored(&app).await.filter(|token| token.access_token == "prov_at_1");
        if saved.is_some() && leases == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let saved = saved.expect("the rotated token was saved");
    assert_ne!(saved.refresh_token.as_ref().map(Secret::expose), Some("rt_stored"), "the new refresh token is kept");
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
    assert!(stored(&app).await.is_none(), "a callback alone never links");
}

/// Account-linking CSRF: the attacker (staff of `s2`) sends a victim (staff `42` of `s1`,
/// logged in at the provider) `/connect/example?id_token=<the attacker's session token>`. The
/// victim consents, but the callback only redirects into `s2`'s admin, and a confirmation with
/// any session token but the attacker's own is refused: the victim's account is linked nowhere.
#[tokio::test]
async fn a_connection_is_linked_only_for_the_shop_and_staff_member_that_started_it() {
    let (app, provider) = start().await;
    let attacker = session_token_of("s2", "7", app.now());
    let callback = authorize_with(&app, &provider, &attacker).await;
    let pending = pending_id(&callback, "s2");
    assert_eq!(count_rows(&app.state, "provider_tokens").await, 0, "a callback alone never links");

    let victim = confirm(&app, &session_token(app.now()), &pending).await;
    assert_eq!(victim.status, StatusCode::FORBIDDEN, "{}", victim.body);
    assert_eq!(victim.json()["connected"], false);
    assert_eq!(count_rows(&app.state, "provider_tokens").await, 0);
    // The refused attempt used the pending connection up.
    assert_eq!(confirm(&app, &attacker, &pending).await.status, StatusCode::NOT_FOUND);
    assert_eq!(count_rows(&app.state, "provider_tokens").await, 0);

    // Another staff member of the same shop cannot confirm either.
    let callback = authorize_with(&app, &provider, &session_token(app.now())).await;
    let pending = pending_id(&callback, SHOP);
    let colleague = confirm(&app, &session_token_of(SHOP, "43", app.now()), &pending).await;
    assert_eq!(colleague.status, StatusCode::FORBIDDEN, "{}", colleague.body);
    assert!(stored(&app).await.is_none());

    // Nor can a request without a session token, or one for another provider's name.
    let callback = authorize_with(&app, &provider, &session_token(app.now())).await;
    let pending = pending_id(&callback, SHOP);
    let unsigned = app.send(
        axum::http::Request::post(CONFIRM)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(json!({ "pending": pending }).to_string()))
            .unwrap(),
    );
    assert_ne!(unsigned.await.status, StatusCode::OK);
    let other = app
        .send(fetch_json(
            "POST",
            "/api/connections/other/confirm",
            &session_token(app.now()),
            &json!({"pending": pending}),
        ))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(stored(&app).await.is_none());
    // The right staff member still can.
    let confirmed = confirm(&app, &session_token(app.now()), &pending).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(stored(&app).await.unwrap().access_token, "prov_at_3");
}

#[tokio::test]
async fn an_expired_pending_connection_cannot_be_confirmed() {
    let (app, provider) = start().await;
    let callback = authorize_with(&app, &provider, &session_token(app.now())).await;
    let pending = pending_id(&callback, SHOP);
    assert_eq!(count_rows(&app.state, "provider_pending_connections").await, 1);

    app.clock.0.advance(PENDING_LIFETIME);
    let late = confirm(&app, &session_token(app.now()), &pending).await;
    assert_eq!(late.status, StatusCode::NOT_FOUND, "{}", late.body);
    assert!(stored(&app).await.is_none());
    assert_eq!(count_rows(&app.state, "provider_pending_connections").await, 0, "expired entries are deleted");

    // Expired entries are also deleted when another connection is granted.
    let first = authorize_with(&app, &provider, &session_token(app.now())).await;
    pending_id(&first, SHOP);
    app.clock.0.advance(PENDING_LIFETIME + Duration::from_secs(1));
    let second = authorize_with(&app, &provider, &session_token(app.now())).await;
    let pending = pending_id(&second, SHOP);
    assert_eq!(count_rows(&app.state, "provider_pending_connections").await, 1);
    assert_eq!(confirm(&app, &session_token(app.now()), &pending).await.status, StatusCode::OK);
    assert_eq!(stored(&app).await.unwrap().access_token, "prov_at_3");
}

/// Two processes find the same token expiring at once. Only one refresh reaches the provider
/// (which rotates the refresh token), and the other process waits for its result instead of
/// refreshing with the old refresh token, being refused, and deleting the fresh token.
#[tokio::test]
async fn two_processes_refresh_once_and_keep_the_connection() {
    let (app, provider) = start().await;
    let env = provider.env();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let second = app.second_process_with(&extra).await;
    provider.accept_refresh_token("rt_stored");
    provider.set_refresh_delay(Duration::from_millis(100));
    app.state.oauth.store().save(&expiring_token("at_stored", "rt_stored")).await.unwrap();

    let refresh = |state: AppState| tokio::spawn(async move { state.oauth.token(SHOP, "example").await });
    let (first, other) = (refresh(app.state.clone()), refresh(second.clone()));
    let (first, other) = (first.await.unwrap(), other.await.unwrap());
    assert_eq!(first.unwrap().access_token, "prov_at_1");
    assert_eq!(other.unwrap().access_token, "prov_at_1");
    assert_eq!(provider.token_requests().len(), 1, "one refresh across both processes");
    let token = stored(&app).await.expect("the connection survives");
    assert_eq!(
        (token.access_token.expose(), token.refresh_token.as_ref().map(Secret::expose)),
        ("prov_at_1", Some("prov_rt_1"))
    );
    assert_eq!(count_rows(&app.state, "provider_refresh_leases").await, 0, "the lease is given back");
    assert_eq!(second.oauth.token(SHOP, "example").await.unwrap().access_token, "prov_at_1");
}

/// A refresh that outlasts its lease (the provider answers late) loses the lease to another
/// process, which refreshes and saves. The late answer is then not saved over that token (the
/// provider keeps refresh tokens, so comparing them cannot tell), and the late caller gets
/// the token the other process saved.
#[tokio::test]
async fn a_refresh_that_outlasts_its_lease_does_not_overwrite_the_token_of_the_process_that_took_over() {
    let (app, provider) = start().await;
    let env = provider.env();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let second = app.second_process_with(&extra).await;
    provider.keep_refresh_tokens();
    provider.accept_refresh_token("rt_stored");
    app.state.oauth.store().save(&expiring_token("at_stored", "rt_stored")).await.unwrap();

    let gate = provider.hold_next_refresh();
    let state = app.state.clone();
    let slow = tokio::spawn(async move { state.oauth.token(SHOP, "example").await });
    gate.arrived().await;
    app.clock.0.advance(REFRESH_LEASE + Duration::from_secs(1));
    let taken_over = second.oauth.token(SHOP, "example").await.unwrap();
    assert_eq!(taken_over.access_token, "prov_at_1");
    gate.release();

    let late = slow.await.unwrap().unwrap();
    assert_eq!(provider.token_requests().len(), 2, "both refreshes reached the provider");
    assert_eq!(late.access_token, "prov_at_1", "the late caller reloads the token saved by the new holder");
    let token = stored(&app).await.unwrap();
    assert_eq!(
        (token.access_token.expose(), token.refresh_token.as_ref().map(Secret::expose)),
        ("prov_at_1", Some("rt_stored"))
    );
    assert_eq!(token.scope, "read", "an answer without a scope keeps the stored one");
    assert_eq!(count_rows(&app.state, "provider_refresh_leases").await, 0);
}

/// With a key, a provider's tokens never reach the database file in plaintext, whether
/// pending, linked or refreshed, and what is read back is what the provider issued.
#[tokio::test]
async fn with_a_key_provider_tokens_are_encrypted_at_rest() {
    let (app, provider) = start_with(&[("TOKEN_ENCRYPTION_KEYS", KEY_A)]).await;
    let callback = authorize_with(&app, &provider, &session_token(app.now())).await;
    let pending = pending_id(&callback, SHOP);
    assert!(!app.database_contains("prov_at_1").await && !app.database_contains("prov_rt_1").await, "pending");
    assert_eq!(confirm(&app, &session_token(app.now()), &pending).await.status, StatusCode::OK);
    assert!(!app.database_contains("prov_at_1").await && !app.database_contains("prov_rt_1").await, "linked");
    let key_id: Option<String> = shopify_app_rust::on_pool!(&app.state.db, pool => sqlx::query_scalar("SELECT key_id FROM provider_tokens").fetch_one(pool).await.unwrap());
    assert_eq!(key_id.as_deref(), Some("a"));
    let me = app.state.oauth.request(SHOP, "example", "GET", "/me", &[], None).await.unwrap();
    assert!(me.body.contains("\"token\":\"prov_at_1\""), "{}", me.body);
    assert_eq!(provider.token_requests().len(), 1, "served from the stored token");

    app.clock.0.advance(Duration::from_secs(3600));
    assert_eq!(app.state.oauth.token(SHOP, "example").await.unwrap().access_token, "prov_at_2");
    assert_eq!(provider.token_requests()[1]["refresh_token"], "prov_rt_1");
    assert!(!app.database_contains("prov_at_2").await && !app.database_contains("prov_rt_2").await, "refreshed");
    assert_eq!(stored(&app).await.unwrap().refresh_token.as_ref().map(Secret::expose), Some("prov_rt_2"));
}

/// A refusal of the refresh token forgets the token only while it is still the stored one: a
/// token stored meanwhile (a new connection, another process's refresh) is kept and used.
#[tokio::test]
async fn a_refused_refresh_keeps_a_token_stored_meanwhile() {
    let (app, provider) = start().await;
    provider.set_refresh_delay(Duration::from_millis(200));
    app.state.oauth.store().save(&expiring_token("at_old", "rt_revoked")).await.unwrap();

    let state = app.state.clone();
    let refresh = tokio::spawn(async move { state.oauth.token(SHOP, "example").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let replacement = ProviderToken {
        access_token: "at_new".into(),
        refresh_token: Some("rt_new".into()),
        expires: Some(OffsetDateTime::from_unix_timestamp(NOW + 7200).unwrap()),
        ..expiring_token("", "")
    };
    app.state.oauth.store().save(&replacement).await.unwrap();

    let token = refresh.await.unwrap().expect("the token stored meanwhile");
    assert_eq!(token.access_token, "at_new");
    assert_eq!(provider.token_requests().len(), 1);
    assert_eq!(provider.token_requests()[0]["refresh_token"], "rt_revoked");
    assert_eq!(stored(&app).await, Some(replacement));
}

/// An `expires_in` past any calendar (u64::MAX, a huge float) is a far-future expiry: the
/// token is stored and used, and nothing panics, on connection and on refresh.
#[tokio::test]
async fn a_huge_expires_in_is_a_far_future_expiry() {
    for expires_in in [json!(1e20), json!(u64::MAX)] {
        let (app, provider) = start().await;
        provider.set_expires_in(expires_in.clone());
        let callback = authorize_with(&app, &provider, &session_token(app.now())).await;
        let pending = pending_id(&callback, SHOP);
        let confirmed = confirm(&app, &session_token(app.now()), &pending).await;
        assert_eq!(confirmed.status, StatusCode::OK, "{expires_in}: {}", confirmed.body);
        let token = stored(&app).await.expect("token stored");
        let far = OffsetDateTime::from_unix_timestamp(NOW + 50 * 365 * 86_400).unwrap();
        assert!(token.expires.is_some_and(|at| at > far), "{expires_in}: {:?}", token.expires);
        assert_eq!(app.state.oauth.token(SHOP, "example").await.unwrap(), token);

        // The same answer to a refresh.
        app.state.oauth.store().save(&expiring_token("at_stored", "prov_rt_1")).await.unwrap();
        let refreshed = app.state.oauth.token(SHOP, "example").await.unwrap();
        assert_eq!(refreshed.access_token, "prov_at_2", "{expires_in}");
        assert!(refreshed.expires.is_some_and(|at| at > far), "{expires_in}: {:?}", refreshed.expires);
        let status = app.send(fetch("GET", "/api/connections/example", &session_token(app.now()))).await;
        assert_eq!(status.json()["connected"], true, "{expires_in}");
        assert_eq!(provider.token_requests().len(), 2);
    }
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
async fn uninstalling_forgets_the_shops_provider_tokens_and_pending_connections() {
    let (app, provider) = start().await;
    let callback = authorize_with(&app, &provider, &session_token(app.now())).await;
    let pending = pending_id(&callback, SHOP);
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
    assert_eq!(count_rows(&app.state, "provider_pending_connections").await, 0);
    assert_eq!(confirm(&app, &session_token(app.now()), &pending).await.status, StatusCode::NOT_FOUND);
    assert!(stored(&app).await.is_none());
}

#[tokio::test]
async fn an_uninstall_cut_short_deletes_nothing_and_its_retry_deletes_everything() {
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
    let offline = shopify_app_rust::shopify::model::AccessToken {
        shop: SHOP.into(),
        token: "shpat_offline".into(),
        expires: None,
        scope: String::new(),
        access_mode: shopify_app_rust::shopify::model::AccessMode::Offline,
        refresh_token: None,
        refresh_token_expires: None,
        user: None,
    };
    app.state.tokens.repository().save(&offline).await.unwrap();
    let offline = count_rows(&app.state, "access_tokens").await;
    assert_eq!(offline, 1, "the shop holds a Shopify token too");
    // The provider half of the uninstall fails after the Shopify half ran.
    execute(&app.state, "ALTER TABLE provider_pending_connections RENAME TO pending_away").await;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "wh-cut", "{}")).await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(count_rows(&app.state, "access_tokens").await, offline, "the Shopify tokens' delete was rolled back");
    assert!(stored(&app).await.is_some(), "the provider token is kept");
    assert_eq!(count_rows(&app.state, "webhook_deliveries").await, 0, "no claim is left behind");

    execute(&app.state, "ALTER TABLE pending_away RENAME TO provider_pending_connections").await;
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "wh-cut", "{}")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(count_rows(&app.state, "access_tokens").await, 0);
    assert!(stored(&app).await.is_none());
    let response = app.send(webhook("/webhooks/app/uninstalled", "app/uninstalled", "wh-cut", "{}")).await;
    assert_eq!(response.status, StatusCode::OK, "a repeat is answered 200 and does nothing");
}
