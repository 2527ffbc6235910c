//! Pages for people: the landing page outside the admin, the not-found answer by content type,
//! and the protocol's answers left as they are.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::support::*;

fn browser(uri: &str, accept: &str) -> Request<Body> {
    Request::get(uri).header("accept", accept).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_browser_outside_the_admin_gets_the_landing_page_with_an_install_form() {
    let app = TestApp::start().await;
    let page = app.send(browser("/", "text/html")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("embedded Shopify app"));
    assert!(page.body.contains(r#"<form action="/auth/login" method="get">"#));
    assert!(page.body.contains(r#"name="shop""#));
    // The form's target starts the install for a shop.
    let install = app.send(get("/auth/login?shop=s1.myshopify.com")).await;
    assert_eq!(install.status, StatusCode::FOUND);
}

#[tokio::test]
async fn the_protocols_answers_at_the_root_are_unchanged() {
    let app = TestApp::start().await;
    let embedded = app.send(get(&format!("/?embedded=1&host=YWRtaW4&shop={SHOP_DOMAIN}"))).await;
    assert_eq!(embedded.status, StatusCode::FOUND, "a load inside the admin without a token bounces");
    let fetch = app.send(fetch("GET", "/", "not-a-token")).await;
    assert_eq!(fetch.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fetch.header("x-shopify-retry-invalid-session-request"), Some("1"));
}

#[tokio::test]
async fn an_unknown_path_is_a_page_for_a_browser_and_json_for_a_fetch() {
    let app = TestApp::start().await;
    let page = app.send(browser("/no-such-page", "text/html,application/xhtml+xml")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("<h1>Not found</h1>"));
    let json = app.send(browser("/api/no-such-route", "application/json")).await;
    assert_eq!(json.status, StatusCode::NOT_FOUND);
    assert_eq!(json.json()["errors"][0]["message"], "not found");
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.header("vary"), Some("accept"), "caches keep the page and the JSON apart");
    // A missing static file, and the operators' routes without OPS_TOKEN, answer alike.
    let asset = app.send(browser("/static/no-such-file.js", "text/html")).await;
    assert_eq!(asset.status, StatusCode::NOT_FOUND);
    assert!(asset.body.contains("<h1>Not found</h1>"), "{}", asset.body);
    let ops = app.send(browser("/ops/jobs", "text/html")).await;
    assert_eq!((ops.status, ops.body == page.body), (StatusCode::NOT_FOUND, true), "no sign of the route");
}

#[tokio::test]
async fn a_server_error_is_a_page_for_a_browser_and_json_for_a_fetch() {
    let app = TestApp::start().await;
    let token = session_token(app.now());
    // App Home reads the recorded products: without their table, the database fails.
    execute(&app.state, "DROP TABLE products").await;
    let mut document = get(&format!("/?{}", document_query(&token)));
    document.headers_mut().insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
    let page = app.send(document).await;
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.body.contains("<h1>Something went wrong</h1>"), "{}", page.body);
    assert!(!page.body.contains("products"), "no detail of the server reaches the page: {}", page.body);
    let json = app.send(fetch("GET", "/", &token)).await;
    assert_eq!(json.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json.json()["errors"][0]["message"], "Internal Server Error");
}

#[tokio::test]
async fn app_home_speaks_the_admins_language_and_english_otherwise() {
    let app = TestApp::start().await;
    let token = session_token(app.now());
    let french = app.send(get(&format!("/?{}", document_query(&token).replace("locale=en", "locale=fr-CA")))).await;
    assert_eq!(french.status, StatusCode::OK);
    assert!(french.body.contains("Derniers produits modifiés"), "{}", french.body);
    assert!(french.body.contains(r#"<s-page heading="Application Rust">"#));
    let german = app.send(get(&format!("/?{}", document_query(&token).replace("locale=en", "locale=de")))).await;
    assert!(german.body.contains("Latest updated products"), "English when the locale is not shipped");
}

#[tokio::test]
async fn the_nav_and_the_page_language_follow_the_admins_locale() {
    let app = TestApp::start().await;
    let french = app.load_in("/", Some("fr")).await;
    assert_eq!(french.status, StatusCode::OK, "{}", french.body);
    assert!(french.body.contains(r#"<html lang="fr">"#));
    assert!(french.body.contains("<title>Accueil · Application Rust</title>"));
    assert!(french.body.contains(r#"<s-link href="/" rel="home">Accueil</s-link>"#));
    assert!(french.body.contains(r#"<s-link href="/settings">Paramètres</s-link>"#));
    assert!(french.body.contains(r#"<s-link href="/plans">Forfaits</s-link>"#));
    for locale in [Some("de"), None] {
        let english = app.load_in("/", locale).await;
        assert!(english.body.contains(r#"<html lang="en">"#), "{locale:?}");
        assert!(english.body.contains(r#"<s-link href="/settings">Settings</s-link>"#), "{locale:?}");
        assert!(english.body.contains(r#"<s-link href="/plans">Plans</s-link>"#), "{locale:?}");
    }
}

#[tokio::test]
async fn the_settings_page_speaks_french_and_english_otherwise() {
    let app = TestApp::start().await;
    let french = app.load_in("/settings", Some("fr-CA")).await;
    assert_eq!(french.status, StatusCode::OK, "{}", french.body);
    assert!(french.body.contains(r#"<html lang="fr">"#));
    assert!(french.body.contains("<title>Paramètres · Application Rust</title>"));
    assert!(french.body.contains(r#"<s-page heading="Paramètres">"#));
    assert!(french.body.contains(">Enregistrer et revenir à l&#39;accueil</s-button>"), "{}", french.body);
    assert!(french.body.contains(">Ouvrir la page Produits de l&#39;administration</s-button>"));
    for locale in [Some("de"), None] {
        let english = app.load_in("/settings", locale).await;
        assert!(english.body.contains(r#"<html lang="en">"#), "{locale:?}");
        assert!(english.body.contains(r#"<s-page heading="Settings">"#), "{locale:?}");
        assert!(english.body.contains(">Save and go back home</s-button>"), "{locale:?}");
    }
}

#[tokio::test]
async fn app_homes_script_gets_its_texts_in_the_admins_language() {
    let app = TestApp::start().await;
    let french = app.load_in("/", Some("fr")).await;
    let element = script_element(&french.body, "app_home.js");
    let attributes = script_text_attributes("app_home.js");
    assert!(attributes.len() >= 5, "{attributes:?}");
    for attribute in &attributes {
        assert!(element.contains(attribute.as_str()), "{attribute} missing from {element}");
    }
    assert!(element.contains(r#"data-created="Produit créé""#), "{element}");
    assert!(element.contains(r#"data-not-created="Impossible de créer le produit : {message}""#));
    assert!(element.contains(r#"data-network-error="Erreur réseau""#));
    let english = app.load_in("/", Some("de")).await;
    let element = script_element(&english.body, "app_home.js");
    assert!(element.contains(r#"data-created="Product created""#), "{element}");
    assert!(english.body.contains(r#"<script src="/static/texts.js" defer></script>"#));
}
