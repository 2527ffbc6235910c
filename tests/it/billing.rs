//! Billing against the fake Shopify: the gate in front of App Home (`BILLING_REQUIRED=true`),
//! charges created as test charges, the cached answer and what drops it, managed pricing, a
//! merchant who declined, `userErrors`, cancel and usage records.

use axum::http::StatusCode;
use serde_json::{Value, json};
use shopify_app_rust::web::admin_api::AdminApi;

use crate::support::*;

const CONFIRMATION: &str = "https://s1.myshopify.com/admin/charges/1/confirm_recurring_application_charge?signature=x";

async fn billed_app(extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![("BILLING_REQUIRED", "true")];
    settings.extend_from_slice(extra);
    let app = TestApp::start_with(&settings).await;
    store_offline_token(&app, SHOP).await;
    app
}

fn status_answer(subscriptions: Value) -> Scripted {
    Scripted::json(
        200,
        json!({"data": {"currentAppInstallation": {
            "activeSubscriptions": subscriptions,
            "oneTimePurchases": {"nodes": []}
        }}}),
    )
}

fn active_pro() -> Value {
    json!([{"id": "gid://shopify/AppSubscription/7", "name": "Pro", "status": "ACTIVE", "test": true,
    "lineItems": [
        {"id": "gid://shopify/AppSubscriptionLineItem/1", "plan": {"pricingDetails": {"__typename": "AppRecurringPricing"}}},
        {"id": "gid://shopify/AppSubscriptionLineItem/2", "plan": {"pricingDetails": {"__typename": "AppUsagePricing"}}}
    ]}])
}

fn created(field: &str) -> Scripted {
    Scripted::json(200, json!({"data": {field: {"confirmationUrl": CONFIRMATION, "userErrors": []}}}))
}

/// `appSubscriptionCreate` answering `userErrors` with `message`.
fn refused(message: &str) -> Scripted {
    Scripted::json(
        200,
        json!({"data": {"appSubscriptionCreate": {"confirmationUrl": null,
            "userErrors": [{"field": ["returnUrl"], "message": message}]}}}),
    )
}

fn queries(app: &TestApp) -> Vec<Value> {
    app.shopify.graphql_requests().into_iter().map(|request| request.body).collect()
}

fn is_mutation(body: &Value, name: &str) -> bool {
    body["query"].as_str().is_some_and(|query| query.contains(name))
}

#[tokio::test]
async fn a_shop_without_a_plan_is_sent_to_a_new_test_charge_for_both_request_kinds() {
    let app = billed_app(&[]).await;
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([])), created("appSubscriptionCreate")]);
    let page = app.load_home().await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.ends_with(&format!(r#"<script>window.open("{CONFIRMATION}", "_top");</script>"#)),
        "{}",
        page.body
    );
    let sent = queries(&app);
    assert_eq!(sent.len(), 2);
    assert!(is_mutation(&sent[1], "appSubscriptionCreate"));
    let variables = &sent[1]["variables"];
    assert_eq!(variables["name"], "Pro");
    assert_eq!(variables["test"], true, "test charges unless SHOPIFY_BILLING_TEST=false");
    assert_eq!(variables["trialDays"], 7);
    assert_eq!(variables["returnUrl"], format!("https://admin.shopify.com/store/{SHOP}/apps/{API_KEY}"));
    assert_eq!(variables["lineItems"][0]["plan"]["appRecurringPricingDetails"]["price"]["amount"], "10.00");
    assert_eq!(variables["lineItems"][1]["plan"]["appUsagePricingDetails"]["cappedAmount"]["amount"], "100.00");

    // A fetch from the page: the answer is cached (no status query), a new charge, and a 401.
    app.shopify.script(Endpoint::Graphql, [created("appSubscriptionCreate")]);
    let token = session_token(app.now());
    let response = app.send(fetch_json("POST", "/api/products", &token, &json!({}))).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("x-shopify-api-request-failure-reauthorize-url"), Some(CONFIRMATION));
    let sent = queries(&app);
    assert_eq!(sent.len(), 3);
    assert!(is_mutation(&sent[2], "appSubscriptionCreate"), "no productCreate ran");
}

#[tokio::test]
async fn an_active_plan_serves_the_page_and_the_answer_is_cached_until_the_webhook_drops_it() {
    let app = billed_app(&[]).await;
    app.shopify.script(Endpoint::Graphql, [status_answer(active_pro())]);
    let page = app.load_home().await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Latest updated products"), "the App Home page itself");
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(queries(&app).len(), 1, "one status query, then the cache; no charge created");

    let body =
        r#"{"app_subscription":{"admin_graphql_api_id":"gid://shopify/AppSubscription/7","status":"CANCELLED"}}"#;
    let response =
        app.send(webhook("/webhooks/app_subscriptions/update", "app_subscriptions/update", "sub-1", body)).await;
    assert_eq!(response.status, StatusCode::OK);
    shopify_app_rust::jobs::run_due(&app.state).await.unwrap();
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([])), created("appSubscriptionCreate")]);
    let page = app.load_home().await;
    assert!(page.body.contains(CONFIRMATION), "asked again after the webhook: no plan now");
    assert_eq!(queries(&app).len(), 3);
}

#[tokio::test]
async fn managed_pricing_sends_the_merchant_to_the_apps_plan_page() {
    let app = billed_app(&[("BILLING_MODE", "managed"), ("SHOPIFY_APP_HANDLE", "rust-app")]).await;
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
    let page = app.load_home().await;
    let target = "https://admin.shopify.com/store/s1/charges/rust-app/pricing_plans";
    assert!(page.body.ends_with(&format!(r#"<script>window.open("{target}", "_top");</script>"#)), "{}", page.body);
    assert_eq!(queries(&app).len(), 1, "no charge is created: the plans live in the Partner Dashboard");
    // Any subscription of the app counts (its plans are not in the code).
    app.state.billing.forget(SHOP);
    let dashboard_plan = json!([{"id": "gid://shopify/AppSubscription/8", "name": "Growth", "status": "ACTIVE", "test": true, "lineItems": []}]);
    app.shopify.script(Endpoint::Graphql, [status_answer(dashboard_plan)]);
    assert_eq!(app.load_home().await.status, StatusCode::OK);
}

#[tokio::test]
async fn back_from_the_confirmation_page_before_the_charge_is_active_asks_for_a_reload_not_a_new_charge() {
    let app = billed_app(&[]).await;
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
    let uri = format!("/?{}&charge_id=123", document_query(&session_token(app.now())));
    let page = app.send(get(&uri)).await;
    assert_eq!(page.status, StatusCode::PAYMENT_REQUIRED);
    assert!(page.body.contains("not active yet"));
    assert!(page.header("content-security-policy").is_some(), "an App Home document");
    assert!(!page.body.contains("window.open"), "no redirect loop");
    assert_eq!(queries(&app).len(), 1, "no new charge");
    // The "no plan" answer is not kept: the reload sees the charge once Shopify activated it.
    app.shopify.script(Endpoint::Graphql, [status_answer(active_pro())]);
    assert_eq!(app.load_home().await.status, StatusCode::OK);
    assert_eq!(queries(&app).len(), 2);
}

#[tokio::test]
async fn only_the_apps_plans_count_and_test_charges_only_in_test_mode() {
    let app = billed_app(&[("SHOPIFY_BILLING_TEST", "false")]).await;
    let others =
        json!([{"id": "gid://shopify/AppPurchaseOneTime/3", "name": "Setup fee", "status": "ACTIVE", "test": false}]);
    let status = Scripted::json(
        200,
        json!({"data": {"currentAppInstallation": {"activeSubscriptions": active_pro(), "oneTimePurchases": {"nodes": others}}}}),
    );
    app.shopify.script(Endpoint::Graphql, [status, created("appSubscriptionCreate")]);
    let page = app.load_home().await;
    assert!(page.body.contains(CONFIRMATION), "a test Pro and another purchase are no payment for the app's plans");
    assert_eq!(queries(&app)[1]["variables"]["test"], false);
}

#[tokio::test]
async fn user_errors_and_failures_become_a_clear_page_or_json() {
    let app = billed_app(&[]).await;
    let refused = refused("Return URL <must> be valid");
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([])), refused.clone()]);
    let page = app.load_home().await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Return URL &#60;must&#62; be valid"), "{}", page.body);
    assert!(page.header("content-security-policy").is_some(), "an App Home document");

    app.shopify.script(Endpoint::Graphql, [refused]);
    let response = app.send(fetch_json("POST", "/api/products", &session_token(app.now()), &json!({}))).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json()["errors"][0]["message"], "Shopify refused: Return URL <must> be valid");

    app.state.billing.forget(SHOP);
    app.shopify.script(Endpoint::Graphql, [Scripted::status(500)]);
    let page = app.load_home().await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "a failed status query is a page, not a 500");
}

#[tokio::test]
async fn cancel_and_usage_records_reach_the_billing_api() {
    let app = billed_app(&[]).await;
    let api = AdminApi::for_shop(&app.state, SHOP).await.unwrap();
    app.shopify.script(
        Endpoint::Graphql,
        [
            Scripted::json(200, json!({"data": {"appSubscriptionCancel": {"appSubscription": {"id": "x", "status": "CANCELLED"}, "userErrors": []}}})),
        ],
    );
    app.state.billing.cancel(&api, "gid://shopify/AppSubscription/7", true).await.unwrap();
    app.shopify.script(
        Endpoint::Graphql,
        [Scripted::json(
            200,
            json!({"data": {"appSubscriptionLineItemUpdate": {"confirmationUrl": CONFIRMATION, "userErrors": []}}}),
        )],
    );
    let raise =
        app.state.billing.update_capped_amount(&api, "gid://shopify/AppSubscriptionLineItem/2", ("200.00", "USD"));
    assert_eq!(raise.await.unwrap(), CONFIRMATION);
    app.shopify.script(
        Endpoint::Graphql,
        [Scripted::json(200, json!({"data": {"appUsageRecordCreate": {"appUsageRecord": {"id": "gid://shopify/AppUsageRecord/9"}, "userErrors": []}}}))],
    );
    let record = app
        .state
        .billing
        .create_usage_record(
            &api,
            "gid://shopify/AppSubscriptionLineItem/2",
            "100 products synced",
            ("1.00", "USD"),
            "sync-2026-11-30",
        )
        .await
        .unwrap();
    assert_eq!(record, "gid://shopify/AppUsageRecord/9");
    let sent = queries(&app);
    assert!(is_mutation(&sent[0], "appSubscriptionCancel"));
    assert_eq!(sent[0]["variables"]["prorate"], true);
    assert!(is_mutation(&sent[1], "appSubscriptionLineItemUpdate"));
    assert_eq!(sent[1]["variables"]["cappedAmount"]["amount"], "200.00");
    assert!(is_mutation(&sent[2], "appUsageRecordCreate"));
    assert_eq!(sent[2]["variables"]["idempotencyKey"], "sync-2026-11-30");
    assert_eq!(sent[2]["variables"]["price"]["amount"], "1.00");
}

#[tokio::test]
async fn the_plans_page_shows_the_plan_starts_a_charge_and_cancels() {
    let app = TestApp::start().await; // no BILLING_REQUIRED: the page works without the gate
    store_offline_token(&app, SHOP).await;
    let id_token = session_token(app.now());
    app.shopify.script(Endpoint::Graphql, [status_answer(active_pro())]);
    let page = app.send(get(&format!("/plans?{}", document_query(&id_token)))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<s-text type=\"strong\">Pro</s-text> · Active · test charge"), "{}", page.body);
    assert!(!page.body.contains("plan=Pro"), "the plan the shop has is not offered again");
    assert!(page.body.contains("data-subscription-id=\"gid://shopify/AppSubscription/7\""));

    // Back from a confirmation page before the charge is active: asked again, a notice, and
    // the answer not kept.
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
    let back = app.send(get(&format!("/plans?{}&charge_id=5", document_query(&id_token)))).await;
    assert_eq!(back.status, StatusCode::OK);
    assert!(back.body.contains("Shopify has not confirmed the charge yet"));
    assert!(back.body.contains("10.00 USD every 30 days, 7-day trial, plus usage up to 100.00 USD"));
    assert_eq!(queries(&app).len(), 2);
    app.shopify.script(Endpoint::Graphql, [status_answer(active_pro())]);
    let again = app.send(get(&format!("/plans?{}", document_query(&id_token)))).await;
    assert!(again.body.contains("· Active"));
    assert_eq!(queries(&app).len(), 3, "the pending answer was not cached");

    app.shopify.script(Endpoint::Graphql, [created("appSubscriptionCreate")]);
    let chosen = app.send(get(&format!("/plans/subscribe?plan=Pro&{}", document_query(&id_token)))).await;
    assert!(chosen.body.contains(CONFIRMATION), "{}", chosen.body);
    let sent = queries(&app);
    assert_eq!(
        sent[3]["variables"]["returnUrl"],
        format!("https://admin.shopify.com/store/{SHOP}/apps/{API_KEY}/plans")
    );

    let unknown = app.send(get(&format!("/plans/subscribe?plan=%3Cscript%3E&{}", document_query(&id_token)))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("&#60;script&#62;") && !unknown.body.contains("<script>alert"));

    let malformed = app.send(fetch_json("POST", "/api/plans/cancel", &id_token, &json!({"id": 7}))).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.json()["errors"][0]["message"].is_string());
    let not_ours = json!({"subscription_id": "gid://shopify/AppSubscription/999"});
    let refused = app.send(fetch_json("POST", "/api/plans/cancel", &id_token, &not_ours)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.shopify.script(
        Endpoint::Graphql,
        [Scripted::json(200, json!({"data": {"appSubscriptionCancel": {"appSubscription": {"id": "x", "status": "CANCELLED"}, "userErrors": []}}}))],
    );
    let ours = json!({"subscription_id": "gid://shopify/AppSubscription/7"});
    let cancelled = app.send(fetch_json("POST", "/api/plans/cancel", &id_token, &ours)).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json(), json!({"cancelled": "gid://shopify/AppSubscription/7"}));
    assert!(is_mutation(queries(&app).last().unwrap(), "appSubscriptionCancel"));
}

#[tokio::test]
async fn the_plans_page_speaks_french_and_english_otherwise() {
    let app = TestApp::start().await;
    store_offline_token(&app, SHOP).await;
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
    let french = app.load_in("/plans", Some("fr")).await;
    assert_eq!(french.status, StatusCode::OK, "{}", french.body);
    assert!(french.body.contains(r#"<html lang="fr">"#));
    assert!(french.body.contains(r#"<s-page heading="Forfaits">"#));
    assert!(french.body.contains("<s-paragraph>Aucun forfait actif.</s-paragraph>"));
    assert!(
        french.body.contains(
            "10.00 USD tous les 30 jours, essai de 7 jours, plus les frais d&#39;utilisation jusqu&#39;à 100.00 USD"
        ),
        "{}",
        french.body
    );
    assert!(french.body.contains(">Choisir</s-button>"));
    for locale in [Some("de"), None] {
        let english = app.load_in("/plans", locale).await;
        assert!(english.body.contains(r#"<html lang="en">"#), "{locale:?}");
        assert!(english.body.contains("<s-paragraph>No active plan.</s-paragraph>"), "{locale:?}");
        assert!(english.body.contains("10.00 USD every 30 days, 7-day trial, plus usage up to 100.00 USD"));
        assert!(english.body.contains(">Choose</s-button>"), "{locale:?}");
        assert!(script_element(&english.body, "plans.js").contains(r#"data-cancelled="Plan cancelled""#));
    }

    app.state.billing.forget(SHOP);
    app.shopify.script(Endpoint::Graphql, [status_answer(active_pro())]);
    let subscribed = app.load_in("/plans", Some("fr")).await;
    assert!(subscribed.body.contains("· Actif · frais de test"), "{}", subscribed.body);
    assert!(subscribed.body.contains(">Annuler le forfait</s-button>"));

    app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
    let back = app.load_in("/plans?charge_id=5", Some("fr")).await;
    assert!(back.body.contains("Shopify n&#39;a pas encore confirmé les frais"), "{}", back.body);

    let element = script_element(&subscribed.body, "plans.js");
    let attributes = script_text_attributes("plans.js");
    assert!(attributes.len() >= 3, "{attributes:?}");
    for attribute in &attributes {
        assert!(element.contains(attribute.as_str()), "{attribute} missing from {element}");
    }
    assert!(element.contains(r#"data-cancelled="Forfait annulé""#), "{element}");
    assert!(element.contains(r#"data-not-cancelled="Impossible d&#39;annuler le forfait : {message}""#));
}

#[tokio::test]
async fn the_billing_pages_speak_french_and_english_otherwise() {
    let app = billed_app(&[]).await;
    app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
    let pending = app.load_in("/?charge_id=123", Some("fr")).await;
    assert_eq!(pending.status, StatusCode::PAYMENT_REQUIRED);
    assert!(pending.body.contains(r#"<html lang="fr">"#));
    assert!(pending.body.contains("<title>Forfait pas encore actif · Application Rust</title>"));
    assert!(
        pending.body.contains(r#"<s-page heading="Votre forfait n&#39;est pas encore actif">"#),
        "{}",
        pending.body
    );
    assert!(pending.body.contains("actualisez cette page dans un instant"));
    assert!(pending.body.contains(r#"<s-button href="/plans">Forfaits</s-button>"#));
    for locale in [Some("de"), None] {
        app.shopify.script(Endpoint::Graphql, [status_answer(json!([]))]);
        let english = app.load_in("/?charge_id=123", locale).await;
        assert_eq!(english.status, StatusCode::PAYMENT_REQUIRED);
        assert!(english.body.contains(r#"<html lang="en">"#), "{locale:?}");
        assert!(english.body.contains(r#"<s-page heading="Your plan is not active yet">"#), "{locale:?}");
        assert!(english.body.contains(r#"<s-button href="/plans">Plans</s-button>"#), "{locale:?}");
    }

    app.shopify.script(Endpoint::Graphql, [status_answer(json!([])), refused("Return URL must be valid")]);
    let error = app.load_in("/", Some("fr")).await;
    assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error.body.contains(r#"<html lang="fr">"#));
    assert!(error.body.contains(r#"<s-page heading="Facturation indisponible">"#));
    let reason = "L&#39;application n&#39;a pas pu vérifier ni créer votre forfait : Shopify a refusé : Return URL must \
                  be valid. Réessayez dans un instant.";
    assert!(error.body.contains(reason), "{}", error.body);
    app.shopify.script(Endpoint::Graphql, [refused("Return URL must be valid")]);
    let english = app.load_in("/", None).await;
    assert!(english.body.contains(r#"<s-page heading="Billing unavailable">"#));
    let reason = "The app could not check or create your plan: Shopify refused: Return URL must be valid. Try again";
    assert!(english.body.contains(reason), "{}", english.body);
}
