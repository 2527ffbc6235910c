//! Throughput of the hot paths: `cargo bench`. No extra crates: each case runs for about a
//! second and prints the time per call. Targets (on a 2-core machine, release build):
//! session-token check under 20 µs, webhook HMAC of a 4 KiB body under 20 µs, the core's view
//! of a browser's request under 5 µs, an offline token from the cache under 2 µs, a whole App
//! Home document request through the router under 100 µs, a webhook delivery through the
//! router (verified, claimed, its uninstall work and done, committed) under 500 µs, the same
//! for a topic run as a job (claimed and stored as a job, committed) under 500 µs, an App
//! Proxy request with 16,000 unsigned parameters under 20 ms. The load harness beside the
//! peers (README, Performance) is where throughput is compared.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde_json::json;
use shopify_app_rust::shopify::clock::SystemClock;
use shopify_app_rust::shopify::http::ReqwestTransport;
use shopify_app_rust::shopify::model::{AccessMode, AccessToken, Req};
use shopify_app_rust::shopify::{AppConfig, ShopifyApp};
use tower::ServiceExt;

const SECRET: &str = "bench-secret";

fn measure(name: &str, target: Duration, mut run: impl FnMut()) {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_secs(1) {
        run();
        calls += 1;
    }
    let per_call = start.elapsed() / calls;
    let verdict = if per_call <= target { "ok" } else { "SLOWER THAN TARGET" };
    println!("{name:<45} {per_call:>12?} per call ({calls} calls; target {target:?}: {verdict})");
}

fn session_token(now: i64) -> String {
    let claims = json!({"iss": "https://s1.myshopify.com/admin", "dest": "https://s1.myshopify.com", "aud": "api-key",
        "sub": "42", "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j", "sid": "s"});
    // An HS256 JWT, as Shopify signs it (the bytes `jsonwebtoken::encode` makes).
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn main() {
    // `cargo test --all-targets` runs this file too (debug build, no `--bench`): timings belong
    // to `cargo bench` alone.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmarks run with `cargo bench`");
        return;
    }
    let config = AppConfig { client_id: "api-key".into(), client_secret: SECRET.into(), old_client_secret: None };
    let shopify = ShopifyApp::new(config, Arc::new(ReqwestTransport::new().unwrap())).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = session_token(now);

    let document = Req {
        method: "GET".into(),
        headers: vec![],
        url: format!("https://app.example.com/?embedded=1&host=YWRtaW4&id_token={token}&shop=s1.myshopify.com"),
        body: vec![],
    };
    measure("verify_app_home_req (document)", Duration::from_micros(20), || {
        black_box(shopify.verify_app_home_req(black_box(&document), "/auth/patch-id-token"));
    });

    let body = vec![b'x'; 4096];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let webhook = Req {
        method: "POST".into(),
        headers: vec![
            ("X-Shopify-Hmac-SHA256".into(), signature),
            ("X-Shopify-Shop-Domain".into(), "s1.myshopify.com".into()),
        ],
        url: "https://app.example.com/webhooks/app/uninstalled".into(),
        body,
    };
    measure("verify_webhook_req (4 KiB body)", Duration::from_micros(20), || {
        black_box(shopify.verify_webhook_req(black_box(&webhook)));
    });

    // Anyone can send this: the work before the signature check must stay linear.
    let mut query = format!("timestamp={now}&signature=00");
    for key in 0..16_000 {
        query.push_str(&format!("&k{key}"));
    }
    let proxy = Req {
        method: "GET".into(),
        headers: vec![],
        url: format!("https://app.example.com/proxy?{query}"),
        body: vec![],
    };
    measure("verify_app_proxy_req (16,000 unsigned params)", Duration::from_millis(20), || {
        black_box(shopify.verify_app_proxy_req(black_box(&proxy)));
    });

    let (parts, ()) = axum::http::Request::get(format!("/?embedded=1&id_token={token}&shop=s1.myshopify.com"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0")
        .header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .header("accept-language", "en-US,en;q=0.9")
        .header("accept-encoding", "gzip, deflate, br")
        .header("sec-fetch-dest", "iframe")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "cross-site")
        .header("referer", "https://admin.shopify.com/")
        .body(())
        .unwrap()
        .into_parts();
    measure("core_request (a browser's document request)", Duration::from_micros(5), || {
        black_box(shopify_app_rust::web::core_request(black_box(&parts), "https://app.example.com", Vec::new()));
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = runtime.block_on(async {
        let database_url = format!("sqlite:{}", dir.path().join("bench.db").display());
        let vars =
            [("SHOPIFY_API_KEY", "api-key"), ("SHOPIFY_API_SECRET", SECRET), ("DATABASE_URL", database_url.as_str())];
        let config = shopify_app_rust::config::Config::from_vars(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        )
        .unwrap();
        let db = shopify_app_rust::db::connect(&database_url, 1).await.unwrap();
        let state = shopify_app_rust::AppState::new(config, db, Arc::new(SystemClock)).unwrap();
        let stored = AccessToken {
            shop: "s1".into(),
            token: "shpat_bench".into(),
            expires: None,
            scope: String::new(),
            access_mode: AccessMode::Offline,
            refresh_token: None,
            refresh_token_expires: None,
            user: None,
        };
        state.tokens.repository().save(&stored).await.unwrap();
        state
    });
    let key = shopify_app_rust::tokens::TokenKey::offline("s1");
    measure("offline token from the cache", Duration::from_micros(2), || {
        black_box(runtime.block_on(state.tokens.repository().load(black_box(&key))).unwrap());
    });
    let router = shopify_app_rust::app(state);
    let uri = format!("/?embedded=1&host=YWRtaW4&id_token={token}&shop=s1.myshopify.com");
    measure("GET / through the router (token cached)", Duration::from_micros(100), || {
        let request = axum::http::Request::get(&uri).body(axum::body::Body::empty()).unwrap();
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), 200);
    });

    let payload = r#"{"id":1,"name":"Bench shop","myshopify_domain":"wh1.myshopify.com"}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut delivery = 0u64;
    let mut signed = |path: &str, topic: &str| {
        delivery += 1;
        axum::http::Request::post(path)
            .header("x-shopify-topic", topic)
            .header("x-shopify-shop-domain", "wh1.myshopify.com")
            .header("x-shopify-hmac-sha256", &signature)
            .header("x-shopify-webhook-id", format!("bench-{delivery}"))
            .body(axum::body::Body::from(payload))
            .unwrap()
    };
    measure("webhook delivery through the router (one at a time)", Duration::from_micros(500), || {
        let request = signed("/webhooks/app/uninstalled", "app/uninstalled");
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), 200);
    });
    measure("job-topic delivery through the router, stored as a job", Duration::from_micros(500), || {
        let request = signed("/webhooks/compliance", "customers/data_request");
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), 200);
    });
}
