//! The contract from the outside: the real binary, started as `cargo run` starts it, driven
//! over real HTTP against a fake Shopify, with its logs checked for secrets.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;
use shopify_app_rust::shopify::http::client_builder;

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopify-app-rust"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// Starts the binary in `dir` against `shopify`, with `extra` variables.
async fn start(dir: &std::path::Path, shopify: &FakeShopify, extra: &[(&str, &str)]) -> Server {
    let port = free_port();
    let child = binary()
        .current_dir(dir)
        .env("SHOPIFY_API_KEY", API_KEY)
        .env("SHOPIFY_API_SECRET", API_SECRET)
        .env("PORT", port.to_string())
        .env("SHOPIFY_SHOP_ORIGIN", &shopify.origin)
        .env("RUST_LOG", "debug")
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let client = client_builder().no_proxy().build().unwrap();
    for _ in 0..400 {
        if let Ok(response) = client.get(format!("{}/healthz", server.base)).send().await {
            assert_eq!(response.status(), 200);
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not start");
}

impl Drop for Server {
    /// A failed test must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Stops the server with SIGTERM and returns its exit status and everything it printed.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let mut output = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut output).unwrap();
        self.child.stderr.take().unwrap().read_to_string(&mut output).unwrap();
        (status, output)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_embedded_app_against_a_fake_shopify_and_never_logs_a_secret() {
    let shopify = FakeShopify::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &shopify, &[]).await;
    assert!(dir.path().join("data/app.db").exists(), "the default SQLite file is created");
    let client = client_builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id_token = session_token(now);

    let bounce = client.get(format!("{}/?embedded=1&shop={SHOP_DOMAIN}", server.base)).send().await.unwrap();
    assert_eq!(bounce.status(), 302);
    assert!(
        bounce.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/auth/patch-id-token?embedded=1&shop=s1.myshopify.com&shopify-reload=")
    );

    let page = client.get(format!("{}/?{}", server.base, document_query(&id_token))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors https://s1.myshopify.com https://admin.shopify.com;"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("https://cdn.shopify.com/shopifycloud/app-bridge.js")
            && html.contains("https://cdn.shopify.com/shopifycloud/polaris.js")
    );
    assert_eq!(shopify.exchanges(), 1);
    assert_eq!(shopify.requests()[0].body["expiring"], 1);

    let again = client.get(format!("{}/?{}", server.base, document_query(&id_token))).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(shopify.exchanges(), 1);

    let product = client.post(format!("{}/api/products", server.base)).bearer_auth(&id_token).send().await.unwrap();
    assert_eq!(product.status(), 200);
    assert_eq!(shopify.graphql_requests()[0].headers["x-shopify-access-token"], "shpat_fake_1");

    // A query using a deprecated field, with the shop's bucket nearly empty: both are logged.
    let deprecated = Scripted::json(
        200,
        json!({
            "data": {"productCreate": {"product": {"id": "gid://shopify/Product/2", "title": "t", "handle": "t",
                "status": "ACTIVE"}, "userErrors": []}},
            "extensions": {"cost": {"requestedQueryCost": 12, "actualQueryCost": 11,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 150.0, "restoreRate": 100.0}}}
        }),
    )
    .header("X-Shopify-API-Deprecated-Reason", "Product.bodyHtml");
    shopify.script(Endpoint::Graphql, [deprecated]);
    let product = client.post(format!("{}/api/products", server.base)).bearer_auth(&id_token).send().await.unwrap();
    assert_eq!(product.status(), 200);

    let refused = client.post(format!("{}/api/products", server.base)).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-shopify-retry-invalid-session-request"], "1");

    let (status, logs) = server.stop();
    assert!(status.success(), "a clean stop on SIGTERM: {status:?}\n{logs}");
    assert!(logs.contains("ready to serve") && logs.contains("stopped"), "{logs}");
    assert!(logs.contains("SHOPIFY_SHOP_ORIGIN is set"), "the fake origin is announced");
    assert_eq!(logs.matches("stored in plaintext").count(), 1, "one warning without TOKEN_ENCRYPTION_KEYS: {logs}");
    assert!(logs.contains("path=/api/products"), "requests are logged: {logs}");
    let costs: Vec<&str> = logs.lines().filter(|line| line.contains("Admin API query cost")).collect();
    assert_eq!(costs.len(), 2, "one cost line per Admin API call: {logs}");
    assert!(costs[0].contains("requested=10.0") && costs[0].contains("available=1990.0") && costs[0].contains("INFO"));
    assert!(costs[1].contains("requested=12.0") && costs[1].contains("actual=11.0") && costs[1].contains("WARN"));
    assert!(costs[1].contains("nearly empty"), "{}", costs[1]);
    let deprecation = logs.lines().find(|line| line.contains("used something deprecated")).unwrap_or_default();
    assert!(deprecation.contains(r#"reason="Product.bodyHtml""#) && deprecation.contains("WARN"), "{logs}");
    for secret in [API_SECRET, id_token.as_str(), "shpat_fake_1", "shprt_fake_1", id_token.split('.').nth(2).unwrap()] {
        assert!(!logs.contains(secret), "a secret reached the logs: {secret}\n{logs}");
    }
}

/// A key rotation with the real binary: tokens written under `a` are rewritten under `b` at
/// the start with `b,a`, and a start with `a` alone (a key dropped too early) cannot read them:
/// App Home obtains a new token instead of failing, and no log line shows a token or a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_rotates_the_token_key_at_start_and_survives_a_missing_key() {
    let shopify = FakeShopify::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_builder().no_proxy().build().unwrap();
    let load = |server: &Server| {
        let url = format!(
            "{}/?{}",
            server.base,
            document_query(&session_token(time::OffsetDateTime::now_utc().unix_timestamp()))
        );
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };
    let mut logs = String::new();
    for (keys, exchanges) in [(KEY_A.to_owned(), 1), (format!("{KEY_B},{KEY_A}"), 1), (KEY_A.to_owned(), 2)] {
        let mut server = start(dir.path(), &shopify, &[("TOKEN_ENCRYPTION_KEYS", &keys)]).await;
        assert_eq!(load(&server).await, 200, "{keys}");
        assert_eq!(shopify.exchanges(), exchanges, "{keys}");
        let (status, output) = server.stop();
        assert!(status.success(), "{output}");
        logs.push_str(&output);
        let database = std::fs::read(dir.path().join("data/app.db")).unwrap();
        let plaintext = |token: &str| database.windows(token.len()).any(|window| window == token.as_bytes());
        assert!(!plaintext("shpat_fake_1") && !plaintext("shprt_fake_1"), "{keys}");
    }
    assert!(logs.contains("rewritten=1"), "the start with b,a rewrote the token: {logs}");
    assert!(logs.contains("cannot be read; treated as absent"), "{logs}");
    assert!(!logs.contains("stored in plaintext"), "{logs}");
    let secrets = ["shpat_fake_1", "shprt_fake_1", "shpat_fake_2", "shprt_fake_2"];
    for secret in secrets.iter().copied().chain([&KEY_A[2..], &KEY_B[2..]]) {
        assert!(!logs.contains(secret), "a secret reached the logs: {secret}\n{logs}");
    }
}

#[test]
fn start_fails_with_one_line_naming_a_missing_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary().current_dir(dir.path()).env("SHOPIFY_API_SECRET", "x").output().unwrap();
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: missing required environment variable SHOPIFY_API_KEY\n"
    );
}

/// Sends `count` signed deliveries of `topic` to `path` at once, delivery `n` with id
/// `burst-{n}` and body `body(n)`; the numbers of those answered 200 come out of the channel.
fn send_burst(
    server: &Server,
    path: &str,
    topic: &'static str,
    count: u32,
    body: impl Fn(u32) -> String,
) -> tokio::sync::mpsc::UnboundedReceiver<u32> {
    let client = client_builder().no_proxy().build().unwrap();
    let (answered, answers) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..count {
        let (client, answered, url, body) =
            (client.clone(), answered.clone(), format!("{}{path}", server.base), body(n));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-shopify-topic", topic)
                .header("x-shopify-shop-domain", SHOP_DOMAIN)
                .header("x-shopify-webhook-id", format!("burst-{n}"))
                .header("x-shopify-hmac-sha256", body_hmac(API_SECRET, body.as_bytes()))
                .body(body)
                .send()
                .await;
            if response.is_ok_and(|response| response.status() == 200) {
                let _ = answered.send(n);
            }
        });
    }
    answers
}

/// Waits for 100 answers of a burst, kills the server with SIGKILL, and returns every
/// delivery answered 200 (those answered while it died included).
async fn kill_9_mid_burst(server: &mut Server, mut answers: tokio::sync::mpsc::UnboundedReceiver<u32>) -> Vec<u32> {
    let mut ok = Vec::new();
    while ok.len() < 100 {
        ok.push(answers.recv().await.expect("at least 100 deliveries are answered"));
    }
    server.child.kill().unwrap(); // SIGKILL, mid-burst
    server.child.wait().unwrap();
    while let Some(n) = answers.recv().await {
        ok.push(n);
    }
    ok
}

async fn open_database(dir: &std::path::Path) -> sqlx::SqlitePool {
    let url = format!("sqlite:{}", dir.join("data/app.db").display());
    sqlx::SqlitePool::connect(&url).await.unwrap()
}

/// Durability: every delivery the binary answered 200 is in the database after `kill -9` in the
/// middle of a burst (the writer answers a job only once its transaction is committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_answered_200_survives_kill_9_in_the_middle_of_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let shopify = FakeShopify::start().await;
    let mut server = start(dir.path(), &shopify, &[("RUST_LOG", "warn")]).await;
    let body = r#"{"id":1,"name":"Shop","myshopify_domain":"s1.myshopify.com"}"#;
    let answers = send_burst(&server, "/webhooks/app/uninstalled", "app/uninstalled", 400, |_| body.to_owned());
    let ok = kill_9_mid_burst(&mut server, answers).await;
    let pool = open_database(dir.path()).await;
    for n in &ok {
        let done: Option<bool> = sqlx::query_scalar("SELECT done FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(format!("burst-{n}"))
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert_eq!(done, Some(true), "burst-{n} was answered 200 but is not stored as done");
    }
    assert!(ok.len() >= 100);
}

/// Jobs: `kill -9` in the middle of a burst of `products/update` deliveries (with workers
/// running their jobs meanwhile) loses none that was answered 200: the restarted binary
/// finishes each, reading its product through the Admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_answered_200_gets_its_job_done_after_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let shopify = FakeShopify::start().await;
    // Short leases: the restarted binary takes over the killed one's running jobs within 5 s.
    let settings = [("RUST_LOG", "warn"), ("JOB_LEASE_SECS", "5")];
    let mut server = start(dir.path(), &shopify, &settings).await;
    let client = client_builder().no_proxy().build().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let page = client.get(format!("{}/?{}", server.base, document_query(&session_token(now)))).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page load stores the shop's offline token");

    let answers = send_burst(&server, "/webhooks/products/update", "products/update", 400, product_update);
    let ok = kill_9_mid_burst(&mut server, answers).await;
    let _restarted = start(dir.path(), &shopify, &settings).await;
    let pool = open_database(dir.path()).await;
    let recorded = || async {
        let ids: Vec<String> = sqlx::query_scalar("SELECT product_id FROM products").fetch_all(&pool).await.unwrap();
        ids
    };
    let expected: Vec<String> = ok.iter().map(|n| format!("gid://shopify/Product/{n}")).collect();
    let mut missing = expected.clone();
    for _ in 0..1000 {
        let ids = recorded().await;
        missing.retain(|id| !ids.contains(id));
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(missing.is_empty(), "answered 200 but never recorded: {missing:?}");
    assert!(ok.len() >= 100);
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE failed").fetch_one(&pool).await.unwrap();
    assert_eq!(failed, 0);
}
