//! The UI extensions under `extensions/` against the app: every `/api/extensions/<surface>`
//! path an extension's source calls is served by the router, for the surface the extension's
//! targets run in, and answers the extension's request (preflight, then POST with the kind of
//! session token that surface gets) with the field the samples show. The route's own behaviour
//! (bad tokens, CORS on errors, token exchange) is tested in `surfaces.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

const ENDPOINT_PREFIX: &str = "/api/extensions/";

/// Where UI extensions run (the origin of their `fetch`).
const EXTENSION_ORIGIN: &str = "https://extensions.shopifycdn.com";

/// One call to the app found in an extension's source.
#[derive(Debug)]
struct Call {
    file: PathBuf,
    surface: String,
}

/// An extension folder: its targets (from `shopify.extension.toml`) and the calls its source makes.
#[derive(Debug)]
struct Extension {
    dir: PathBuf,
    targets: Vec<String>,
    calls: Vec<Call>,
}

fn extensions() -> Vec<Extension> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions");
    let Ok(entries) = fs::read_dir(&root) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries {
        let dir = entry.unwrap().path();
        let Ok(toml) = fs::read_to_string(dir.join("shopify.extension.toml")) else { continue };
        let mut calls = Vec::new();
        let mut files = Vec::new();
        collect_sources(&dir.join("src"), &mut files);
        for file in files {
            let source = fs::read_to_string(&file).unwrap();
            for (at, _) in source.match_indices(ENDPOINT_PREFIX) {
                let rest = &source[at + ENDPOINT_PREFIX.len()..];
                let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '-')).unwrap_or(rest.len());
                calls.push(Call { file: file.clone(), surface: rest[..end].to_owned() });
            }
        }
        found.push(Extension { dir, targets: targets(&toml), calls });
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    found
}

/// The source files under `dir` (no `node_modules`, no build output).
fn collect_sources(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "node_modules" && name != "dist" {
                collect_sources(&path, files);
            }
        } else if [".js", ".jsx", ".ts", ".tsx", ".mjs"].iter().any(|ext| name.ends_with(ext)) {
            files.push(path);
        }
    }
}

/// The `target = "..."` values of a `shopify.extension.toml` (comments skipped).
fn targets(toml: &str) -> Vec<String> {
    toml.lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("target"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .collect()
}

/// The app route segment for a target: where the extension runs decides which session token
/// it gets and so which endpoint verifies it.
fn surface_of(target: &str) -> Option<&'static str> {
    [("admin.", "admin"), ("pos.", "pos"), ("purchase.", "checkout"), ("customer-account.", "customer-account")]
        .into_iter()
        .find(|(prefix, _)| target.starts_with(prefix))
        .map(|(_, surface)| surface)
}

/// A session token as Shopify issues it to an extension on `surface`: a staff member's for the
/// admin and POS (exchangeable), a buyer's (bare shop domain in `dest`) for checkout and
/// customer accounts.
fn token_for(surface: &str) -> String {
    match surface {
        "admin" | "pos" => session_token(NOW),
        _ => sign(&json!({"dest": SHOP_DOMAIN, "aud": API_KEY, "exp": NOW + 60, "nbf": NOW - 5}), API_SECRET),
    }
}

/// The field of the app's answer the samples show.
fn shown_field(surface: &str) -> &'static str {
    match surface {
        "admin" | "pos" => "name",
        _ => "message",
    }
}

fn request(method: &str, surface: &str, token: Option<&str>) -> Request<Body> {
    let mut request =
        Request::builder().method(method).uri(format!("{ENDPOINT_PREFIX}{surface}")).header("origin", EXTENSION_ORIGIN);
    if method == "OPTIONS" {
        request = request.header("access-control-request-method", "POST");
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

#[test]
fn each_extension_calls_the_endpoint_of_the_surface_it_runs_in() {
    for extension in extensions() {
        let surfaces: Vec<_> = extension.targets.iter().map(|target| surface_of(target)).collect();
        for call in &extension.calls {
            assert!(
                surfaces.iter().all(|surface| *surface == Some(call.surface.as_str())),
                "{} calls {ENDPOINT_PREFIX}{} but its targets {:?} run on {surfaces:?}: the session token it sends \
                 is verified by the endpoint of that surface (build the path from a literal so this test can read it)",
                call.file.display(),
                call.surface,
                extension.targets,
            );
        }
    }
}

#[tokio::test]
async fn every_endpoint_an_extension_calls_answers_its_request() {
    let app = TestApp::start().await;
    for extension in extensions() {
        for call in &extension.calls {
            let surface = call.surface.as_str();
            let context = format!("{} -> {ENDPOINT_PREFIX}{surface}", call.file.display());

            // The Authorization header makes the extension's fetch cross-origin with a preflight.
            let preflight = app.send(request("OPTIONS", surface, None)).await;
            assert_eq!(preflight.status, StatusCode::NO_CONTENT, "{context}: preflight");
            assert!(
                preflight
                    .header("access-control-allow-headers")
                    .is_some_and(|allowed| allowed.contains("Authorization")),
                "{context}: the preflight must allow the Authorization header"
            );

            if surface == "admin" || surface == "pos" {
                app.shopify
                    .script(Endpoint::Graphql, [Scripted::json(200, json!({"data": {"shop": {"name": "Shop One"}}}))]);
            }
            let response = app.send(request("POST", surface, Some(&token_for(surface)))).await;
            assert_eq!(response.status, StatusCode::OK, "{context}: {}", response.body);
            assert_eq!(response.header("access-control-allow-origin"), Some("*"), "{context}");
            let answer = response.json();
            assert_eq!(answer["shop"], SHOP, "{context}: {answer}");
            let field = shown_field(surface);
            assert!(answer[field].is_string(), "{context}: no {field:?} in {answer}");
        }
    }
}

#[test]
fn the_samples_are_found() {
    // The scan above would pass on nothing: make sure it reads the two samples this template
    // ships (delete this test together with them).
    let calls: Vec<_> = extensions()
        .into_iter()
        .flat_map(|extension| extension.calls)
        .map(|call| (call.file.file_name().unwrap().to_string_lossy().into_owned(), call.surface))
        .collect();
    for expected in [("ActionExtension.jsx", "admin"), ("Checkout.jsx", "checkout")] {
        assert!(
            calls.iter().any(|(file, surface)| (file.as_str(), surface.as_str()) == expected),
            "{expected:?} not found in {calls:?}"
        );
    }
}
