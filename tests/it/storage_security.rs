//! Tokens at rest: encrypted under `TOKEN_ENCRYPTION_KEYS` (checked in the SQLite file's bytes),
//! read across a key rotation and re-encrypted at start, plaintext rows from before the key
//! kept working, and ciphertexts moved to another row or column read as no token.

use std::time::Duration;

use crate::support::*;
use axum::http::StatusCode;
use shopify_app_rust::AppState;
use shopify_app_rust::oauth::{PendingConnection, ProviderToken};
use shopify_app_rust::on_pool;
use shopify_app_rust::shopify::clock::Clock;
use shopify_app_rust::shopify::model::{AccessMode, AccessToken};
use shopify_app_rust::tokens::TokenKey;
use time::OffsetDateTime;

fn keys(entries: &[&str]) -> [(&'static str, String); 1] {
    [("TOKEN_ENCRYPTION_KEYS", entries.join(","))]
}

async fn start_with_keys(entries: &[&str]) -> TestApp {
    let [(name, value)] = keys(entries);
    TestApp::start_with(&[(name, &value)]).await
}

/// Another process on the same database and fake Shopify, as after a restart with new settings.
async fn restart_with_keys(app: &TestApp, entries: &[&str]) -> AppState {
    let [(name, value)] = keys(entries);
    app.second_process_with(&[(name, &value)]).await
}

async fn stored(state: &AppState, shop: &str) -> Option<AccessToken> {
    state.tokens.repository().load_latest(&TokenKey::offline(shop)).await.unwrap()
}

async fn key_ids(state: &AppState, table: &str) -> Vec<Option<String>> {
    let sql = format!("SELECT key_id FROM {table} ORDER BY shop");
    on_pool!(&state.db, pool => sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap())
}

/// An App Home document load on `state` with a fresh session token.
async fn load_home(state: &AppState, app: &TestApp) -> TestResponse {
    send(state, get(&format!("/?{}", document_query(&session_token(app.now()))))).await
}

/// Copies `table`'s rows of `s1`, every column as stored, to `shop`.
async fn copy_rows_to_shop(state: &AppState, table: &str, shop: &str) {
    // One connection: the temporary table lives in it.
    let statements = [
        format!("CREATE TEMP TABLE copied AS SELECT * FROM {table} WHERE shop = 's1'"),
        format!("UPDATE copied SET shop = '{shop}'"),
        format!("INSERT INTO {table} SELECT * FROM copied"),
        "DROP TABLE copied".to_owned(),
    ];
    on_pool!(&state.db, pool => {
        let mut connection = pool.acquire().await.unwrap();
        for sql in &statements {
            sqlx::query(sql).execute(&mut *connection).await.unwrap();
        }
    });
}

fn provider_token(shop: &str, access_token: &str) -> ProviderToken {
    ProviderToken {
        shop: shop.into(),
        provider: "example".into(),
        access_token: access_token.into(),
        refresh_token: Some(format!("{access_token}_refresh").into()),
        scope: "read".into(),
        expires: None,
    }
}

#[tokio::test]
async fn with_a_key_the_database_file_never_holds_a_token_in_plaintext() {
    let app = start_with_keys(&[KEY_A]).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1);
    assert!(!app.database_contains("shpat_fake_1").await && !app.database_contains("shprt_fake_1").await);
    assert_eq!(key_ids(&app.state, "access_tokens").await, [Some("a".to_owned())]);

    // The next load is served from the stored token, which decrypts to the one Shopify issued.
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let product = app.send(fetch("POST", "/api/products", &session_token(app.now()))).await;
    assert_eq!(product.status, StatusCode::OK, "{}", product.body);
    assert_eq!(app.shopify.exchanges(), 1);
    assert_eq!(app.shopify.graphql_requests()[0].headers["x-shopify-access-token"], "shpat_fake_1");

    // A refresh swaps the encrypted token for another one, encrypted too.
    app.clock.0.advance(Duration::from_secs(3600 - 30));
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!((app.shopify.refreshes(), app.shopify.exchanges()), (1, 1));
    assert_eq!(app.shopify.requests()[2].body["refresh_token"], "shprt_fake_1");
    assert_eq!(stored(&app.state, SHOP).await.unwrap().token, "shpat_fake_2");
    assert!(!app.database_contains("shpat_fake_2").await && !app.database_contains("shprt_fake_2").await);
}

#[tokio::test]
async fn without_a_key_tokens_are_stored_in_plaintext_as_before() {
    let app = TestApp::start().await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert!(app.database_contains("shpat_fake_1").await && app.database_contains("shprt_fake_1").await);
    assert_eq!(key_ids(&app.state, "access_tokens").await, [None]);
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1);
}

/// Rows written under `a`, read after a restart with `b,a`, rewritten under `b` by the
/// start-up re-encryption, then read with `b` alone. With `a` alone they read as absent.
#[tokio::test]
async fn a_rotation_reads_the_old_key_and_the_start_up_rewrites_every_row_under_the_new_one() {
    let app = start_with_keys(&[KEY_A]).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let store = app.state.oauth.store();
    store.save(&provider_token(SHOP, "prov_linked")).await.unwrap();
    let now = app.clock.now();
    let pending = PendingConnection {
        id: "pending-1".into(),
        shop: SHOP.into(),
        provider: "example".into(),
        user_id: Some("42".into()),
        expires: now + Duration::from_secs(600),
    };
    store.save_pending(&pending, &provider_token(SHOP, "prov_pending"), now).await.unwrap();

    let rotated = restart_with_keys(&app, &[KEY_B, KEY_A]).await;
    assert_eq!(load_home(&rotated, &app).await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1, "the token under the old key is read");
    assert_eq!(rotated.reencrypt_tokens().await.unwrap(), 3);
    for table in ["access_tokens", "provider_tokens", "provider_pending_connections"] {
        assert_eq!(key_ids(&rotated, table).await, [Some("b".to_owned())], "{table}");
    }
    assert_eq!(rotated.reencrypt_tokens().await.unwrap(), 0, "nothing left to rewrite");

    let only_b = restart_with_keys(&app, &[KEY_B]).await;
    assert_eq!(load_home(&only_b, &app).await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1);
    assert_eq!(stored(&only_b, SHOP).await.unwrap().token, "shpat_fake_1");
    assert_eq!(only_b.oauth.store().load(SHOP, "example").await.unwrap().unwrap().access_token, "prov_linked");
    let (_, taken) = only_b.oauth.store().take_pending("example", "pending-1", now).await.unwrap().unwrap();
    assert_eq!(taken.access_token, "prov_pending");
    assert_eq!(taken.refresh_token.as_ref().map(Secret::expose), Some("prov_pending_refresh"));

    // The old key alone cannot read them: no token, no error; App Home exchanges a new one.
    let only_a = restart_with_keys(&app, &[KEY_A]).await;
    assert!(stored(&only_a, SHOP).await.is_none());
    assert!(only_a.oauth.store().load(SHOP, "example").await.unwrap().is_none());
    assert_eq!(only_a.reencrypt_tokens().await.unwrap(), 0, "unreadable rows are left alone");
    assert_eq!(load_home(&only_a, &app).await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 2);
    assert_eq!(stored(&only_a, SHOP).await.unwrap().token, "shpat_fake_2");
}

/// Two processes starting at once both re-encrypt: each row is rewritten once, by one of them.
#[tokio::test]
async fn two_processes_reencrypting_at_once_rewrite_each_row_once() {
    let app = TestApp::start().await;
    for shop in 0..40 {
        let token = AccessToken {
            shop: format!("shop-{shop}"),
            token: format!("shpat_plain_{shop}").into(),
            expires: None,
            scope: String::new(),
            access_mode: AccessMode::Offline,
            refresh_token: Some(format!("shprt_plain_{shop}").into()),
            refresh_token_expires: None,
            user: None,
        };
        app.state.tokens.repository().save(&token).await.unwrap();
    }
    let (first, second) = (restart_with_keys(&app, &[KEY_A]).await, restart_with_keys(&app, &[KEY_A]).await);
    let (a, b) = tokio::join!(first.reencrypt_tokens(), second.reencrypt_tokens());
    assert_eq!(a.unwrap() + b.unwrap(), 40);
    assert!(key_ids(&first, "access_tokens").await.iter().all(|id| id.as_deref() == Some("a")));
    for shop in 0..40 {
        let token = stored(&first, &format!("shop-{shop}")).await.unwrap();
        assert_eq!(token.token.expose(), format!("shpat_plain_{shop}"));
        assert_eq!(token.refresh_token.map(|t| t.expose().to_owned()), Some(format!("shprt_plain_{shop}")));
    }
}

/// A token stored before the key was configured is encrypted by the next start (`main` runs
/// the re-encryption before serving) and keeps working. Once keys are configured, a plaintext
/// row can only have been written by someone without the key: it reads as no token.
#[tokio::test]
async fn a_plaintext_row_is_encrypted_at_start_and_a_planted_one_is_refused() {
    let app = TestApp::start().await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let keyed = restart_with_keys(&app, &[KEY_A]).await;
    assert_eq!(keyed.reencrypt_tokens().await.unwrap(), 1);
    assert_eq!(key_ids(&keyed, "access_tokens").await, [Some("a".to_owned())]);
    assert_eq!(load_home(&keyed, &app).await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 1, "the token stored before the key is used");
    assert_eq!(stored(&keyed, SHOP).await.unwrap().token, "shpat_fake_1");

    execute(&keyed, "UPDATE access_tokens SET token = 'shpat_planted', refresh_token = NULL, key_id = NULL").await;
    assert!(stored(&keyed, SHOP).await.is_none(), "a planted plaintext token is not read");
    app.clock.0.advance(shopify_app_rust::tokens::cache::TTL);
    assert_eq!(load_home(&keyed, &app).await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 2, "a new token replaces it");
    assert_eq!(stored(&keyed, SHOP).await.unwrap().token, "shpat_fake_2");
}

/// A ciphertext copied to another shop's row, or to another column, does not decrypt: the
/// token reads as absent, and App Home exchanges a new one instead of failing.
#[tokio::test]
async fn a_ciphertext_moved_to_another_row_or_column_reads_as_no_token() {
    let app = start_with_keys(&[KEY_A]).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    app.state.oauth.store().save(&provider_token(SHOP, "prov_linked")).await.unwrap();
    copy_rows_to_shop(&app.state, "access_tokens", "s2").await;
    copy_rows_to_shop(&app.state, "provider_tokens", "s2").await;
    assert!(stored(&app.state, "s2").await.is_none());
    assert!(app.state.oauth.store().load("s2", "example").await.unwrap().is_none());
    assert!(stored(&app.state, SHOP).await.is_some(), "the original row still reads");

    // The copy is not used for s2: a new token is exchanged and used.
    let product = app.send(fetch("POST", "/api/products", &session_token_of("s2", "42", app.now()))).await;
    assert_eq!(product.status, StatusCode::OK, "{}", product.body);
    assert_eq!(app.shopify.exchanges(), 2);
    assert_eq!(app.shopify.graphql_requests()[0].headers["x-shopify-access-token"], "shpat_fake_2");

    // The access token's ciphertext in the refresh token's column.
    execute(&app.state, "UPDATE access_tokens SET refresh_token = token WHERE shop = 's1'").await;
    assert!(stored(&app.state, SHOP).await.is_none());
    // Changed behind the app's back: the app sees it once its in-memory copy is stale.
    app.clock.0.advance(shopify_app_rust::tokens::cache::TTL);
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(app.shopify.exchanges(), 3);
    assert_eq!(stored(&app.state, SHOP).await.unwrap().token, "shpat_fake_3");
}

/// A stored value that was tampered with reads as no token.
#[tokio::test]
async fn a_tampered_ciphertext_reads_as_no_token() {
    let app = start_with_keys(&[KEY_A]).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let sealed: String = on_pool!(&app.state.db, pool => sqlx::query_scalar("SELECT token FROM access_tokens").fetch_one(pool).await.unwrap());
    // One character of the ciphertext (past the 16 characters of the nonce), changed.
    let flipped = if &sealed[30..31] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &sealed[..30], &sealed[31..]);
    execute(&app.state, &format!("UPDATE access_tokens SET token = '{tampered}'")).await;
    assert!(stored(&app.state, SHOP).await.is_none());
    let expires = OffsetDateTime::from_unix_timestamp(NOW + 3600).unwrap();
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let token = stored(&app.state, SHOP).await.unwrap();
    assert_eq!((token.token.expose(), token.expires), ("shpat_fake_2", Some(expires)));
}

/// A token being refreshed (a live lease) is left to the refresh: re-encrypting it meanwhile
/// would make the refresh's compare-and-swap fail and drop the rotated refresh token.
#[tokio::test]
async fn reencryption_leaves_a_token_that_is_being_refreshed() {
    let app = start_with_keys(&[KEY_A]).await;
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    let key = TokenKey::offline(SHOP);
    let now = app.clock.now();
    let repository = app.state.tokens.repository();
    assert!(repository.try_lease(&key, "refresher", now, now + Duration::from_secs(60)).await.unwrap());
    let rotated = restart_with_keys(&app, &[KEY_B, KEY_A]).await;
    assert_eq!(rotated.reencrypt_tokens().await.unwrap(), 0, "the leased row is left alone");
    assert_eq!(key_ids(&rotated, "access_tokens").await, [Some("a".to_owned())]);
    repository.release_lease(&key, "refresher").await.unwrap();
    assert_eq!(rotated.reencrypt_tokens().await.unwrap(), 1);
    assert_eq!(key_ids(&rotated, "access_tokens").await, [Some("b".to_owned())]);
}
