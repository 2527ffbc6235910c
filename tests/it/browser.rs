//! App Home in a real browser: headless Chromium loads the page from the app served on
//! 127.0.0.1, with stand-ins for the App Bridge and Polaris scripts (`browser/`: the CDN is out
//! of reach), clicks the button and sees the product the fake Shopify made; then a
//! load without a session token goes through the patch-id-token page and back. Screenshots go
//! to `target/browser-screenshots/`; any exception or console error on the pages fails it.

use serde_json::json;

use crate::support::browser::{Browser, screenshots_dir};
use crate::support::*;

const APP_BRIDGE_URL: &str = "https://cdn.shopify.com/shopifycloud/app-bridge.js";
const POLARIS_URL: &str = "https://cdn.shopify.com/shopifycloud/polaris.js";
/// Served for Polaris: a style sheet for the `s-` elements, no components.
const POLARIS_STAND_IN: &str = include_str!("browser/polaris-stand-in.js");

/// The App Bridge stand-in, answering `session_token` for `shopify.idToken()`.
fn app_bridge_stand_in(session_token: &str) -> String {
    let script = include_str!("browser/app-bridge-stand-in.js");
    assert!(script.contains("\"SESSION_TOKEN\""));
    script.replace("\"SESSION_TOKEN\"", &json!(session_token).to_string())
}

#[tokio::test]
async fn app_home_in_chromium_creates_a_product_and_comes_back_from_the_patch_page_with_a_fresh_token() {
    let Some(browser) = Browser::launch().await else { return };
    let served = Served::start(&[]).await;
    let shots = screenshots_dir();
    println!("browser screenshots: {}", shots.display());
    let token = session_token(served.app.now());
    browser.serve_script(APP_BRIDGE_URL, &app_bridge_stand_in(&token));
    browser.serve_script(POLARIS_URL, POLARIS_STAND_IN);

    // App Home as the admin loads it: the session token is exchanged for the shop's token.
    browser.goto(&format!("{}/?{}", served.url(), document_query(&token))).await;
    browser
        .wait_for("App Home", "document.readyState === 'complete' && document.getElementById('create-product')")
        .await;
    assert_eq!(browser.eval("appBridgeStandIn.apiKey").await, API_KEY, "the App Bridge tag carries the API key");
    assert_eq!(served.app.shopify.exchanges(), 1);
    browser.screenshot("1-app-home").await;

    browser.click("#create-product").await;
    let shown = browser
        .wait_for(
            "created product",
            "!document.getElementById('product-section').hidden && document.getElementById('product-title').textContent",
        )
        .await;
    let creations = served.app.shopify.graphql_requests();
    assert_eq!(creations.len(), 1, "one productCreate");
    assert_eq!(
        shown, creations[0].body["variables"]["product"]["title"],
        "the title the fake Shopify got and answered"
    );
    let product = browser.eval("JSON.parse(document.getElementById('product-json').textContent)").await;
    assert_eq!(product["id"], "gid://shopify/Product/1");
    // A property (Polaris's `s-link` reflects it to its link; without Polaris it stays one).
    assert_eq!(browser.eval("document.getElementById('product-link').href").await, "shopify://admin/products/1");
    assert_eq!(browser.eval("appBridgeStandIn.authorizedFetches").await, json!(["POST /api/products"]));
    assert_eq!(
        browser.eval("appBridgeStandIn.toasts").await,
        json!([{"message": "Product created", "isError": false}])
    );
    browser.screenshot("2-product-created").await;

    // A load without a session token: the app sends it to the patch-id-token page, whose App
    // Bridge gets a fresh token and goes back to the page it came from.
    let mut fresh_claims = claims(served.app.now());
    fresh_claims["jti"] = json!("jti-fresh");
    let fresh = sign(&fresh_claims, API_SECRET);
    browser.serve_script(APP_BRIDGE_URL, &app_bridge_stand_in(&fresh));
    let home = format!("{}/?embedded=1&host=YWRtaW4&shop={SHOP_DOMAIN}", served.url());
    browser.goto(&home).await;
    let fresh_literal = json!(fresh).to_string();
    browser
        .wait_for(
            "App Home with the fresh token",
            &format!(
                "document.readyState === 'complete' && document.getElementById('create-product') \
                 && new URLSearchParams(location.search).get('id_token') === {fresh_literal}"
            ),
        )
        .await;
    let bounce = browser.eval("JSON.parse(sessionStorage.getItem('appBridgeStandIn.bounce'))").await;
    let back = format!("{home}&id_token={fresh}");
    assert_eq!(bounce, json!({"from": "/auth/patch-id-token", "apiKey": API_KEY, "idTokenCalls": 1, "to": back}));
    assert_eq!(browser.eval("location.href").await, back);
    browser.screenshot("3-back-from-the-patch-page").await;

    assert_eq!(browser.errors(), Vec::<String>::new(), "errors on the pages (screenshots in {})", shots.display());
    assert_eq!(browser.refused_requests(), Vec::<String>::new(), "requests that would leave the machine");
}

#[tokio::test]
async fn a_browser_outside_the_admin_installs_from_the_landing_page_and_app_home_speaks_french() {
    let Some(browser) = Browser::launch().await else { return };
    let served = Served::start(&[]).await;

    // `cargo run`, then http://localhost:8080/ in a browser: the landing page, whose form starts
    // the install on the shop typed in (Shopify's authorize page is out of reach: the request
    // is refused, and recorded).
    browser.goto(&format!("{}/", served.url())).await;
    let heading = browser
        .wait_for("landing page", "document.readyState === 'complete' && document.querySelector('h1')?.textContent")
        .await;
    assert_eq!(heading, "Rust app for Shopify");
    browser.screenshot("4-landing-page").await;
    browser.eval("document.getElementById('shop').value = 's1.myshopify.com'").await;
    browser.click("button[type=submit]").await;
    let authorize = browser.wait_for_refused("https://s1.myshopify.com/admin/oauth/authorize?").await;
    assert!(authorize.contains(&format!("client_id={API_KEY}")), "{authorize}");

    // A path the app does not serve: the not-found page.
    browser.goto(&format!("{}/no-such-page", served.url())).await;
    let heading = browser
        .wait_for("not-found page", "document.readyState === 'complete' && document.querySelector('h1')?.textContent")
        .await;
    assert_eq!(heading, "Not found");

    // App Home in the admin's language.
    let token = session_token(served.app.now());
    browser.serve_script(APP_BRIDGE_URL, &app_bridge_stand_in(&token));
    browser.serve_script(POLARIS_URL, POLARIS_STAND_IN);
    browser.goto(&format!("{}/?{}", served.url(), document_query(&token).replace("locale=en", "locale=fr"))).await;
    let button = browser
        .wait_for(
            "App Home in French",
            "document.readyState === 'complete' && document.getElementById('create-product')?.textContent.trim()",
        )
        .await;
    assert_eq!(button, "Créer un produit");
    assert_eq!(browser.eval("document.documentElement.lang").await, "fr");
    browser.screenshot("5-app-home-in-french").await;

    // The one error: the browser reports the not-found page's own 404 status.
    let errors = browser.errors();
    assert!(errors.len() == 1 && errors[0].contains("404") && errors[0].contains("/no-such-page"), "{errors:?}");
    let refused = browser.refused_requests();
    assert!(
        refused.iter().all(|url| url.starts_with("https://s1.myshopify.com/admin/oauth/authorize?")),
        "{refused:?}"
    );
}
