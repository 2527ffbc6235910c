//! Durable jobs over HTTP: webhook deliveries stored as jobs and answered at once, retries,
//! the dead-letter list, leases of dead workers, periodic jobs across instances, the
//! `products/update` example end to end, and the operators' route.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use shopify_app_rust::config::JobSettings;
use shopify_app_rust::jobs::{self, EnqueueError, JobRegistry, Jobs, NewJob, Outcome, Scope};
use tokio::sync::watch;

use crate::support::*;

const OPS_TOKEN: &str = "ops-0123456789abcdef0123456789abcdef";

async fn send_product_update(app: &TestApp, webhook_id: &str, number: u32) -> StatusCode {
    app.send(webhook("/webhooks/products/update", "products/update", webhook_id, &product_update(number))).await.status
}

/// Runs the due jobs here; their outcomes, but the template's housekeeping's.
/// The app's workers, running in the background until stopped.
struct Workers {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    fn start(app: &TestApp) -> Self {
        let (stop, stopped) = watch::channel(false);
        Self { stop, task: tokio::spawn(jobs::run_workers(app.state.clone(), stopped)) }
    }

    /// Tells them to stop and waits until they did (their shutdown included).
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

async fn run_due(app: &TestApp) -> Vec<Outcome> {
    let outcomes = jobs::run_due(&app.state).await.unwrap();
    outcomes.into_iter().filter(|(kind, _)| kind != "housekeeping").map(|(_, outcome)| outcome).collect()
}

async fn recorded_titles(app: &TestApp) -> Vec<String> {
    let rows: Vec<String> = shopify_app_rust::on_pool!(&app.state.db, pool =>
        sqlx::query_scalar("SELECT title FROM products ORDER BY product_id").fetch_all(pool).await)
    .unwrap();
    rows
}

/// The recorded titles once there are `count` of them (workers run in the background: up to
/// 5 s of real time).
async fn titles_once_recorded(app: &TestApp, count: usize) -> Vec<String> {
    for _ in 0..500 {
        let titles = recorded_titles(app).await;
        if titles.len() >= count {
            return titles;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    recorded_titles(app).await
}

async fn ops(app: &TestApp, method: &str, uri: &str, token: Option<&str>) -> TestResponse {
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    app.send(request.body(axum::body::Body::empty()).unwrap()).await
}

#[tokio::test]
async fn products_update_reaches_the_admin_api_with_the_offline_token_and_app_home_shows_it() {
    let app = TestApp::start().await;
    store_offline_token(&app, SHOP).await;
    assert_eq!(send_product_update(&app, "p-1", 42).await, StatusCode::OK);
    assert!(app.shopify.graphql_requests().is_empty(), "the answer comes before the job runs");
    assert_eq!(count_rows(&app.state, "jobs").await, 1, "the delivery is stored as a job");

    assert_eq!(run_due(&app).await, [Outcome::Done]);
    let calls = app.shopify.graphql_requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].shop, SHOP_DOMAIN);
    assert_eq!(calls[0].headers["x-shopify-access-token"], "shpat_s1");
    assert_eq!(calls[0].body["variables"]["id"], "gid://shopify/Product/42");
    assert_eq!(recorded_titles(&app).await, ["Snowboard <b>42</b>"]);
    assert_eq!(count_rows(&app.state, "jobs").await, 0, "a job that succeeded is deleted");

    let page = app.load_home().await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Latest updated products"));
    assert!(page.body.contains("Snowboard &#60;b&#62;42&#60;/b&#62; · ACTIVE"), "escaped: {}", page.body);
    assert!(!page.body.contains("<b>42"));
}

#[tokio::test]
async fn a_repeated_delivery_does_not_run_its_job_twice() {
    let app = TestApp::start().await;
    store_offline_token(&app, SHOP).await;
    for _ in 0..3 {
        assert_eq!(send_product_update(&app, "p-dup", 7).await, StatusCode::OK);
    }
    assert_eq!(run_due(&app).await, [Outcome::Done]);
    assert_eq!(send_product_update(&app, "p-dup", 7).await, StatusCode::OK, "after the job ran too");
    assert_eq!(run_due(&app).await, []);
    assert_eq!(app.shopify.graphql_requests().len(), 1);
}

#[tokio::test]
async fn a_slow_handler_does_not_delay_the_answer() {
    let app = TestApp::start_with(&[("JOB_WORKERS", "2")]).await;
    store_offline_token(&app, SHOP).await;
    let gate = app.shopify.hold_graphql();
    let workers = Workers::start(&app);

    assert_eq!(send_product_update(&app, "p-slow", 1).await, StatusCode::OK);
    gate.arrived().await; // the job runs, held inside its Admin API call
    assert_eq!(send_product_update(&app, "p-slow-2", 2).await, StatusCode::OK, "answered while a job is held");
    assert!(recorded_titles(&app).await.is_empty());
    gate.release();
    gate.arrived().await;
    gate.release();
    assert_eq!(titles_once_recorded(&app, 2).await, ["Snowboard <b>1</b>", "Snowboard <b>2</b>"]);
    workers.stop().await;
}

#[tokio::test]
async fn a_failing_job_is_retried_with_backoff_then_kept_in_the_dead_letter_list() {
    let app =
        TestApp::start_with(&[("JOB_MAX_ATTEMPTS", "3"), ("JOB_RETRY_BASE_SECS", "10"), ("OPS_TOKEN", OPS_TOKEN)])
            .await;
    store_offline_token(&app, SHOP).await;
    app.shopify.script(Endpoint::Graphql, (0..3).map(|_| Scripted::status(500)));
    assert_eq!(send_product_update(&app, "p-fail", 5).await, StatusCode::OK);

    assert_eq!(run_due(&app).await, [Outcome::Retry]);
    let (run_at, error): (i64, Option<String>) = shopify_app_rust::on_pool!(&app.state.db, pool =>
        sqlx::query_as("SELECT run_at, last_error FROM jobs").fetch_one(pool).await)
    .unwrap();
    let wait = run_at - app.now();
    assert!((5..=10).contains(&wait), "the first retry waits 10 s less up to half of jitter, not {wait}");
    assert!(error.is_some_and(|error| error.contains("the Admin API call failed")));
    assert_eq!(run_due(&app).await, [], "not before its time");

    app.clock.0.advance(Duration::from_secs(10));
    assert_eq!(run_due(&app).await, [Outcome::Retry]);
    let (run_at,): (i64,) = shopify_app_rust::on_pool!(&app.state.db, pool =>
        sqlx::query_as("SELECT run_at FROM jobs").fetch_one(pool).await)
    .unwrap();
    let wait = run_at - app.now();
    assert!((10..=20).contains(&wait), "the second retry waits twice as long, not {wait}");
    app.clock.0.advance(Duration::from_secs(20));
    assert_eq!(run_due(&app).await, [Outcome::Failed]);
    app.clock.0.advance(Duration::from_secs(3600));
    assert_eq!(run_due(&app).await, [], "a failed job is not run again");

    let listed = ops(&app, "GET", "/ops/jobs", Some(OPS_TOKEN)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(
        (listed["pending"].as_i64(), listed["running"].as_i64(), listed["failed"].as_i64()),
        (Some(0), Some(0), Some(1))
    );
    let failed = &listed["failed_jobs"][0];
    assert_eq!(failed["kind"], "products/update");
    assert_eq!(failed["shop"], SHOP);
    assert_eq!(failed["attempts"], 3);
    assert!(failed["last_error"].as_str().is_some_and(|error| error.contains("the Admin API call failed")));
    assert!(!listed.to_string().contains("shpat_"), "no token in the operators' view");

    // An operator retries it once Shopify answers again.
    let id = failed["id"].as_i64().unwrap();
    assert_eq!(ops(&app, "POST", &format!("/ops/jobs/{id}/retry"), Some(OPS_TOKEN)).await.status, StatusCode::OK);
    assert_eq!(ops(&app, "POST", "/ops/jobs/999999/retry", Some(OPS_TOKEN)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(run_due(&app).await, [Outcome::Done]);
    assert_eq!(recorded_titles(&app).await, ["Snowboard <b>5</b>"]);
}

#[tokio::test]
async fn a_shop_without_an_offline_token_fails_its_job_at_once() {
    let app = TestApp::start().await;
    assert_eq!(send_product_update(&app, "p-none", 3).await, StatusCode::OK);
    assert_eq!(run_due(&app).await, [Outcome::Failed], "retrying cannot help: the merchant must open the app");
    let failed = app.state.jobs.failed(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].last_error.as_deref().is_some_and(|error| error.contains("no offline token")));
    assert_eq!(app.shopify.exchanges(), 0);
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_once_its_lease_runs_out() {
    let app = TestApp::start().await;
    store_offline_token(&app, SHOP).await;
    assert_eq!(send_product_update(&app, "p-dead", 9).await, StatusCode::OK);
    // What a worker killed mid-attempt leaves: the row leased, its lease running out later.
    let lease_end = app.now() + 150;
    let leased = execute(
        &app.state,
        &format!("UPDATE jobs SET lease_id = 'killed-worker', attempts = 1, run_at = {lease_end} WHERE kind = 'products/update'"),
    )
    .await;
    assert_eq!(leased, 1);
    assert_eq!(app.state.jobs.counts().await.unwrap().running, 1);
    assert_eq!(run_due(&app).await, [], "leased to a worker that may still be running");
    app.clock.0.advance(Duration::from_secs(150));
    assert_eq!(run_due(&app).await, [Outcome::Done]);
    assert_eq!(recorded_titles(&app).await, ["Snowboard <b>9</b>"]);
}

#[tokio::test]
async fn a_running_job_keeps_its_lease_while_its_worker_lives() {
    let app = TestApp::start_with(&[("JOB_LEASE_SECS", "6")]).await;
    store_offline_token(&app, SHOP).await;
    let gate = app.shopify.hold_graphql();
    let workers = Workers::start(&app);
    assert_eq!(send_product_update(&app, "p-long", 8).await, StatusCode::OK);
    gate.arrived().await;
    let lease_end = || async {
        let (run_at,): (i64,) = shopify_app_rust::on_pool!(&app.state.db, pool =>
            sqlx::query_as("SELECT run_at FROM jobs WHERE kind = 'products/update'").fetch_one(pool).await)
        .unwrap();
        run_at
    };
    let first_lease_end = lease_end().await;
    assert_eq!(first_lease_end, app.now() + 6);
    app.clock.0.advance(Duration::from_secs(4));
    for _ in 0..300 {
        if lease_end().await > first_lease_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lease_end().await, app.now() + 6, "the worker renewed its lease (every 2 s here)");
    app.clock.0.advance(Duration::from_secs(4)); // past the first lease, within the renewed one
    let other = app.second_process().await;
    let taken = jobs::run_due(&other).await.unwrap();
    assert!(taken.iter().all(|(kind, _)| kind != "products/update"), "another instance leaves it alone: {taken:?}");
    gate.release();
    assert_eq!(titles_once_recorded(&app, 1).await, ["Snowboard <b>8</b>"]);
    assert_eq!(app.shopify.graphql_requests().len(), 1, "run once");
    workers.stop().await;
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_its_attempt_and_leaves_the_job_to_the_new_holder() {
    let app = TestApp::start_with(&[("JOB_LEASE_SECS", "6")]).await;
    store_offline_token(&app, SHOP).await;
    let gate = app.shopify.hold_graphql();
    let workers = Workers::start(&app);
    assert_eq!(send_product_update(&app, "p-lost", 6).await, StatusCode::OK);
    gate.arrived().await;
    // Another worker took the job over (as after a lease that ran out during a stall).
    let taken = execute(&app.state, "UPDATE jobs SET lease_id = 'other-worker' WHERE kind = 'products/update'").await;
    assert_eq!(taken, 1);
    let holder = || async {
        let (lease,): (Option<String>,) = shopify_app_rust::on_pool!(&app.state.db, pool =>
            sqlx::query_as("SELECT lease_id FROM jobs WHERE kind = 'products/update'").fetch_one(pool).await)
        .unwrap();
        lease
    };
    // The next renewal (every 2 s) finds the lease gone and stops the attempt, which then
    // settles nothing: letting the held call answer records no product.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    gate.release();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(recorded_titles(&app).await.is_empty(), "the stopped attempt recorded nothing");
    assert_eq!(holder().await.as_deref(), Some("other-worker"), "the new holder's lease is untouched");
    workers.stop().await;
    assert_eq!(holder().await.as_deref(), Some("other-worker"), "a lost job is not put back at shutdown");
}

#[tokio::test]
async fn shop_redact_deletes_the_shops_waiting_jobs_and_payload_errors_quote_nothing() {
    let app = TestApp::start().await;
    store_offline_token(&app, SHOP).await;
    let leaky = json!({"admin_graphql_api_id": 5551234567u64, "email": "jane@example.com"}).to_string();
    let response = app.send(webhook("/webhooks/products/update", "products/update", "p-shape", &leaky)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(run_due(&app).await, [Outcome::Failed], "a payload of another shape fails for good");
    let failed = app.state.jobs.failed(10).await.unwrap();
    let error = failed[0].last_error.clone().unwrap_or_default();
    assert!(error.starts_with("payload: not of the expected shape"), "{error}");
    assert!(!error.contains("5551234567"), "no payload value in the dead-letter list: {error}");

    let waiting =
        NewJob::new("products/update").shop(SHOP).raw_payload(product_update(2)).after(Duration::from_secs(60));
    app.state.jobs.enqueue(waiting).await.unwrap();
    let redact = r#"{"shop_id":1,"shop_domain":"s1.myshopify.com"}"#;
    app.clock.0.advance(Duration::from_secs(1)); // the redaction comes after the token was obtained
    assert_eq!(app.send(webhook("/webhooks/compliance", "shop/redact", "r-1", redact)).await.status, StatusCode::OK);
    assert_eq!(run_due(&app).await, [Outcome::Done], "the redaction ran; the waiting job is gone with the shop");
    assert_eq!(count_rows(&app.state, "jobs").await, 0, "the failed job and its payload are gone too");
    app.clock.0.advance(Duration::from_secs(60));
    assert_eq!(run_due(&app).await, []);
    assert!(app.shopify.graphql_requests().is_empty());
}

#[tokio::test]
async fn a_redaction_run_after_the_shop_installed_again_deletes_nothing() {
    let app = TestApp::start().await;
    let redact = r#"{"shop_id":1,"shop_domain":"s1.myshopify.com"}"#;
    assert_eq!(app.send(webhook("/webhooks/compliance", "shop/redact", "r-late", redact)).await.status, StatusCode::OK);
    // The merchant installs the app again before the job runs (a backlog, retries, an
    // operator's retry days later).
    app.clock.0.advance(Duration::from_secs(3600));
    store_offline_token(&app, SHOP).await;
    assert_eq!(run_due(&app).await, [Outcome::Done]);
    let token = app.state.tokens.repository().load(&shopify_app_rust::tokens::TokenKey::offline(SHOP)).await.unwrap();
    assert!(token.is_some(), "the new install's token is kept");
}

#[tokio::test]
async fn an_attempt_past_its_timeout_is_stopped_and_retried() {
    let app = TestApp::start_with(&[("JOB_TIMEOUT_SECS", "1")]).await;
    store_offline_token(&app, SHOP).await;
    let _held = app.shopify.hold_graphql();
    assert_eq!(send_product_update(&app, "p-slow-call", 3).await, StatusCode::OK);
    assert_eq!(run_due(&app).await, [Outcome::Retry]);
    let (error,): (Option<String>,) = shopify_app_rust::on_pool!(&app.state.db, pool =>
        sqlx::query_as("SELECT last_error FROM jobs WHERE kind = 'products/update'").fetch_one(pool).await)
    .unwrap();
    assert_eq!(error.as_deref(), Some("timed out after 1 s"));
}

#[tokio::test]
async fn stopping_lets_running_jobs_finish_within_the_grace_then_puts_the_rest_back() {
    let app = TestApp::start_with(&[("JOB_SHUTDOWN_GRACE_SECS", "1")]).await;
    store_offline_token(&app, SHOP).await;
    let gate = app.shopify.hold_graphql();
    let workers = Workers::start(&app);
    assert_eq!(send_product_update(&app, "p-stop", 4).await, StatusCode::OK);
    gate.arrived().await;
    workers.stop().await; // the held job outlives the grace: stopped and put back
    let (lease, attempts): (Option<String>, i64) = shopify_app_rust::on_pool!(&app.state.db, pool =>
        sqlx::query_as("SELECT lease_id, attempts FROM jobs WHERE kind = 'products/update'").fetch_one(pool).await)
    .unwrap();
    assert_eq!((lease, attempts), (None, 0), "put back, due now, its attempt not counted");
    app.shopify.stop_holding_graphql();
    assert_eq!(run_due(&app).await, [Outcome::Done]);
}

#[tokio::test]
async fn a_periodic_job_runs_once_per_period_with_two_instances() {
    let app = TestApp::start().await;
    let other = app.second_process().await;
    let mut ran = 0;
    for period in 0..3 {
        for state in [&app.state, &other, &app.state] {
            ran += jobs::run_due(state).await.unwrap().len();
        }
        assert_eq!(ran, period + 1, "housekeeping ran once in period {period}");
        app.clock.0.advance(shopify_app_rust::app_jobs::HOUSEKEEPING_EVERY);
    }
}

#[tokio::test]
async fn a_per_shop_periodic_job_is_enqueued_once_per_shop_and_period() {
    let app = TestApp::start().await;
    store_offline_token(&app, "s1").await;
    store_offline_token(&app, "s2").await;
    let queue = || {
        let registry =
            JobRegistry::new().every("sync", Duration::from_secs(60), Scope::PerShop, |_, _| async { Ok(()) });
        Jobs::new(app.state.db.clone(), registry, JobSettings::default(), app.clock.clone())
    };
    let (first, second) = (queue(), queue());
    assert_eq!(first.schedule_due().await.unwrap(), 2);
    assert_eq!(second.schedule_due().await.unwrap(), 0, "the other instance took this period");
    assert_eq!(first.schedule_due().await.unwrap(), 0);
    app.clock.0.advance(Duration::from_secs(60));
    assert_eq!(second.schedule_due().await.unwrap(), 2);
    let shops: Vec<String> = shopify_app_rust::on_pool!(&app.state.db, pool =>
        sqlx::query_scalar("SELECT shop FROM jobs WHERE kind = 'sync' ORDER BY id").fetch_all(pool).await)
    .unwrap();
    assert_eq!(shops.len(), 4);
    assert_eq!(shops.iter().filter(|shop| *shop == "s1").count(), 2);
}

#[tokio::test]
async fn enqueueing_an_unknown_kind_is_refused_and_a_known_one_runs() {
    let app = TestApp::start().await;
    let unknown = app.state.jobs.enqueue(NewJob::new("no-such-kind")).await;
    assert!(matches!(unknown, Err(EnqueueError::UnknownKind(kind)) if kind == "no-such-kind"));
    let id = app
        .state
        .jobs
        .enqueue(NewJob::new("customers/redact").shop(SHOP).payload(json!({"customer": {"id": 1}})).unwrap())
        .await
        .unwrap();
    assert!(id > 0);
    assert_eq!(run_due(&app).await, [Outcome::Done]);
    let later = app.state.jobs.enqueue(NewJob::new("customers/redact").shop(SHOP).after(Duration::from_secs(30))).await;
    assert!(later.is_ok());
    assert_eq!(run_due(&app).await, [], "not due yet");
    app.clock.0.advance(Duration::from_secs(30));
    assert_eq!(run_due(&app).await, [Outcome::Done]);
}

#[tokio::test]
async fn the_operators_route_needs_its_token() {
    let without = TestApp::start().await;
    assert_eq!(ops(&without, "GET", "/ops/jobs", Some("anything")).await.status, StatusCode::NOT_FOUND);
    let app = TestApp::start_with(&[("OPS_TOKEN", OPS_TOKEN)]).await;
    assert_eq!(ops(&app, "GET", "/ops/jobs", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ops(&app, "GET", "/ops/jobs", Some("ops-0123456789abcdef0123456789abcdeg")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ops(&app, "POST", "/ops/jobs/1/retry", Some("wrong")).await.status, StatusCode::UNAUTHORIZED);
    let listed = ops(&app, "GET", "/ops/jobs", Some(OPS_TOKEN)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json(), json!({"pending": 0, "running": 0, "failed": 0, "failed_jobs": []}));
}

#[tokio::test]
async fn a_webhook_topic_at_another_topics_route_is_refused_and_enqueues_nothing() {
    let app = TestApp::start().await;
    let response = app.send(webhook("/webhooks/products/update", "shop/redact", "p-forged", &product_update(1))).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(count_rows(&app.state, "jobs").await, 0);
}
