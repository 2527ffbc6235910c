//! Property tests for every verifier: arbitrary methods, headers, URLs, bodies and tokens
//! never panic, and never pass without a valid signature.

use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use shopify_app_rust::shopify::clock::ManualClock;
use shopify_app_rust::shopify::http::ReqwestTransport;
use shopify_app_rust::shopify::model::Req;
use shopify_app_rust::shopify::{AppConfig, ShopifyApp};

const SECRET: &str = "prop-secret";

/// One core for every case: building an HTTP client per case would dominate the run.
static APP: LazyLock<ShopifyApp> = LazyLock::new(|| {
    let config =
        AppConfig { client_id: "api-key".into(), client_secret: SECRET.into(), old_client_secret: Some("old".into()) };
    ShopifyApp::new(config, Arc::new(ReqwestTransport::new().unwrap()))
        .unwrap()
        .with_clock(Arc::new(ManualClock::at(1_750_000_000)))
});

fn shopify() -> &'static ShopifyApp {
    &APP
}

/// Header names the verifiers read, plus noise, with arbitrary (visible or not) values.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("authorization".to_owned()),
        Just("Authorization".to_owned()),
        Just("X-Shopify-Hmac-SHA256".to_owned()),
        Just("shopify-hmac-sha256".to_owned()),
        Just("X-Shopify-Shop-Domain".to_owned()),
        Just("origin".to_owned()),
        Just("x-shopify-bounce".to_owned()),
        "[a-zA-Z-]{1,12}",
    ];
    let value =
        prop_oneof![Just("Bearer ".to_owned()), "Bearer [A-Za-z0-9._=-]{0,60}", "[A-Za-z0-9+/=]{0,48}", ".{0,40}",];
    proptest::collection::vec((name, value), 0..6)
}

fn urls() -> impl Strategy<Value = String> {
    prop_oneof![
        "https://app\\.example\\.com/[a-z/]{0,10}\\?[a-zA-Z0-9_%&=+.;#-]{0,80}",
        "https://app\\.example\\.com/\\?shop=[a-z0-9.%-]{0,30}&timestamp=1750000000&signature=[0-9a-f]{64}",
        "https://app\\.example\\.com/\\?id_token=[A-Za-z0-9._-]{0,80}&shopify-reload=%2F&shop=[a-zA-Z0-9.%;-]{0,30}",
        ".{0,60}",
    ]
}

fn requests() -> impl Strategy<Value = Req> {
    (
        prop_oneof![Just("POST".to_owned()), Just("GET".to_owned()), Just("OPTIONS".to_owned()), "[A-Za-z]{0,7}"],
        headers(),
        urls(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, headers, url, body)| Req { method, headers, url, body })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn signed_request_verifiers_never_pass_a_forged_request(req in requests()) {
        let app = shopify();
        prop_assert!(!app.verify_webhook_req(&req).ok);
        prop_assert!(!app.verify_flow_action_req(&req).ok);
        prop_assert!(!app.verify_app_proxy_req(&req).ok);
    }

    #[test]
    fn token_verifiers_never_pass_an_unsigned_token(req in requests()) {
        let app = shopify();
        let preflight = req.method == "OPTIONS";
        let home = app.verify_app_home_req(&req, "/auth/patch-id-token");
        prop_assert!(!home.ok);
        prop_assert!(matches!(home.response.status, 302 | 400 | 401 | 500), "{}", home.response.status);
        for result in [app.verify_checkout_ui_ext_req(&req), app.verify_customer_account_ui_ext_req(&req)] {
            prop_assert!(!result.ok || (preflight && result.response.status == 204 && result.id_token.is_none()));
        }
        for result in [app.verify_admin_ui_ext_req(&req), app.verify_pos_ui_ext_req(&req)] {
            prop_assert!(!result.ok || (preflight && result.response.status == 204 && result.id_token.is_none()));
        }
    }

    #[test]
    fn helpers_never_put_an_unvalidated_shop_in_a_header_nor_forward_a_token(req in requests(), shop in ".{0,24}", redirect in ".{0,40}") {
        let app = shopify();
        let csp_is_clean = |headers: &[(String, String)]| headers.iter().all(|(name, value)| {
            name != "Content-Security-Policy"
                || value.strip_prefix("frame-ancestors https://").and_then(|rest| rest.strip_suffix(".myshopify.com https://admin.shopify.com;"))
                    .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        });
        let patch = app.app_home_patch_id_token(&req);
        prop_assert!(csp_is_clean(&patch.response.headers));
        let redirect_result = app.app_home_redirect(&req, &redirect, &shop);
        prop_assert!(csp_is_clean(&redirect_result.response.headers));
        if let Some(location) = redirect_result.response.header("Location") {
            prop_assert!(!location.contains("id_token="), "{location}");
        }
        let parent = app.app_home_parent_redirect(&req, &redirect, &shop, None);
        prop_assert!(csp_is_clean(&parent.response.headers));
        for (_, value) in patch.response.headers.iter().chain(&redirect_result.response.headers).chain(&parent.response.headers) {
            prop_assert!(!value.contains(['\r', '\n']));
        }
    }
}

#[test]
fn a_correctly_signed_webhook_does_pass() {
    use base64::Engine;
    use hmac::Mac;
    let body = b"{\"id\":1}".to_vec();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let req = Req {
        method: "POST".into(),
        headers: vec![
            ("X-Shopify-Hmac-SHA256".into(), signature),
            ("X-Shopify-Shop-Domain".into(), "s1.myshopify.com".into()),
        ],
        url: "https://app.example.com/webhooks".into(),
        body,
    };
    let result = shopify().verify_webhook_req(&req);
    assert!(result.ok);
    assert_eq!(result.shop.as_deref(), Some("s1"));
}
