//! The Admin API helpers against the fake Shopify: a connection read page by page, a bulk
//! query run, waited for and its JSON Lines result streamed.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use shopify_app_rust::shopify::graphql::GraphqlRequest;
use shopify_app_rust::web::admin_api::bulk::BulkStatus;
use shopify_app_rust::web::admin_api::{AdminApi, GraphqlError};

use crate::support::*;

#[derive(Debug, Deserialize, PartialEq)]
struct Product {
    id: String,
}

fn page(ids: &[&str], next: Option<&str>) -> Scripted {
    let nodes: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
    Scripted::json(
        200,
        json!({ "data": { "shop": { "products": {
            "nodes": nodes,
            "pageInfo": { "hasNextPage": next.is_some(), "endCursor": next }
        } } } }),
    )
}

async fn api(app: &TestApp) -> AdminApi {
    store_offline_token(app, SHOP).await;
    AdminApi::for_shop(&app.state, SHOP).await.unwrap()
}

const PRODUCTS: &str = "query($first: Int!, $after: String) { shop { products(first: $first, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } } }";

#[tokio::test]
async fn a_connection_is_read_page_by_page_with_the_cursor_of_the_last() {
    let app = TestApp::start().await;
    let api = api(&app).await;
    app.shopify
        .script(Endpoint::Graphql, [page(&["p1", "p2"], Some("c2")), page(&["p3"], Some("c3")), page(&[], None)]);
    let request = GraphqlRequest::new(PRODUCTS).variables(json!({ "first": 2 }));
    let mut pages = api.pages::<Product>(request, "/shop/products");
    let mut seen = Vec::new();
    while let Some(products) = pages.next().await.unwrap() {
        seen.push(products.into_iter().map(|product| product.id).collect::<Vec<_>>());
    }
    assert_eq!(seen, [vec!["p1", "p2"], vec!["p3"], vec![]]);
    let sent: Vec<Value> =
        app.shopify.graphql_requests().iter().map(|request| request.body["variables"].clone()).collect();
    assert_eq!(
        sent,
        [
            json!({ "first": 2, "after": null }),
            json!({ "first": 2, "after": "c2" }),
            json!({ "first": 2, "after": "c3" })
        ]
    );
}

#[tokio::test]
async fn collect_stops_at_its_limit_and_a_stuck_cursor_ends_the_pages() {
    let app = TestApp::start().await;
    let api = api(&app).await;
    app.shopify.script(Endpoint::Graphql, [page(&["p1", "p2"], Some("c2"))]);
    let request = GraphqlRequest::new(PRODUCTS).variables(json!({ "first": 2 }));
    let two = api.pages::<Product>(request.clone(), "/shop/products").collect(2).await.unwrap();
    assert_eq!(two, [Product { id: "p1".into() }, Product { id: "p2".into() }]);
    assert_eq!(app.shopify.graphql_requests().len(), 1, "no page past the limit is fetched");

    // A cursor that comes back (a query without `after: $after`, a cycle) would read the same
    // pages for ever: an error that says why.
    app.shopify
        .script(Endpoint::Graphql, [page(&["p1"], Some("c1")), page(&["p2"], Some("c2")), page(&["p1"], Some("c1"))]);
    let cycle = api.pages::<Product>(request.clone(), "/shop/products").collect(100).await;
    assert!(matches!(&cycle, Err(GraphqlError::Shape(reason)) if reason.contains("after: $after")), "{cycle:?}");
    assert_eq!(app.shopify.graphql_requests().len(), 4);

    // Empty pages that keep saying another follows: it stops after ten.
    app.shopify.script(Endpoint::Graphql, (0..10).map(|n| page(&[], Some(&format!("e{n}")))));
    let empty = api.pages::<Product>(request.clone(), "/shop/products").collect(100).await;
    assert!(matches!(&empty, Err(GraphqlError::Shape(reason)) if reason.contains("empty pages")), "{empty:?}");
    assert_eq!(app.shopify.graphql_requests().len(), 14);

    // No connection where the pointer says: a clear error, not an empty list.
    app.shopify.script(Endpoint::Graphql, [Scripted::json(200, json!({ "data": { "shop": null } }))]);
    let missing = api.pages::<Product>(request, "/shop/products").next().await;
    assert!(matches!(missing, Err(GraphqlError::Shape(reason)) if reason.contains("/shop/products")));
}

/// Serves `chunks` as one streamed body at `/result.jsonl` (and a redirect to it at `/moved`);
/// answers its URL.
async fn result_file(chunks: Vec<&'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new()
        .route(
            "/result.jsonl",
            get(move || {
                let chunks = chunks.clone();
                async move {
                    Body::from_stream(futures_util::stream::iter(
                        chunks.into_iter().map(|chunk| Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes()))),
                    ))
                }
            }),
        )
        .route("/moved", get(|| async { axum::response::Redirect::temporary("/result.jsonl") }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}/result.jsonl")
}

fn operation(status: &str, url: Option<&str>) -> Value {
    json!({ "id": "gid://shopify/BulkOperation/9", "status": status, "errorCode": null, "objectCount": "3",
        "url": url, "partialDataUrl": null })
}

/// A bulk result row: a product, or one of its variants (a child line with `__parentId`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Row {
    Variant {
        id: String,
        #[serde(rename = "__parentId")]
        parent: String,
    },
    Product {
        id: String,
        title: String,
    },
}

#[tokio::test]
async fn a_bulk_query_runs_is_waited_for_and_its_result_streams_line_by_line() {
    let app = TestApp::start().await;
    let api = api(&app).await;
    // Lines cut across chunks, a blank line, no newline at the end.
    let url = result_file(vec![
        "{\"id\":\"gid://shopify/Product/1\",\"title\":\"Snow",
        "board\"}\n{\"id\":\"gid://shopify/ProductVariant/11\",\"__parentId\":\"gid://shopify/Product/1\"}\n\n",
        "{\"id\":\"gid://shopify/Product/2\",\"title\":\"Skis\"}",
    ])
    .await;
    app.shopify.script(
        Endpoint::Graphql,
        [
            Scripted::json(
                200,
                json!({ "data": { "bulkOperationRunQuery": {
                "bulkOperation": operation("CREATED", None), "userErrors": [] } } }),
            ),
            Scripted::json(200, json!({ "data": { "node": operation("RUNNING", None) } })),
            Scripted::json(200, json!({ "data": { "node": operation("COMPLETED", Some(&url)) } })),
        ],
    );
    let started = api.run_bulk_query("{ products { edges { node { id title } } } }").await.unwrap();
    assert_eq!(started.status, BulkStatus::Created);
    let query = &app.shopify.graphql_requests()[0].body;
    assert!(query["query"].as_str().unwrap().contains("bulkOperationRunQuery"));
    assert_eq!(query["variables"]["query"], "{ products { edges { node { id title } } } }");

    let sleeps_before = app.clock.0.sleeps().len();
    let finished = api.wait_for_bulk_operation(&started.id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(finished.status, BulkStatus::Completed);
    assert_eq!(app.clock.0.sleeps()[sleeps_before..], [Duration::from_secs(5)], "one wait between the two polls");
    assert_eq!(app.shopify.graphql_requests()[2].body["variables"]["id"], "gid://shopify/BulkOperation/9");

    let mut rows = api.bulk_results::<Row>(&finished).await.unwrap();
    let mut seen = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        seen.push(row);
    }
    assert_eq!(
        seen,
        [
            Row::Product { id: "gid://shopify/Product/1".into(), title: "Snowboard".into() },
            Row::Variant { id: "gid://shopify/ProductVariant/11".into(), parent: "gid://shopify/Product/1".into() },
            Row::Product { id: "gid://shopify/Product/2".into(), title: "Skis".into() },
        ]
    );
}

#[tokio::test]
async fn bulk_failures_are_clear_errors() {
    let app = TestApp::start().await;
    let api = api(&app).await;
    // One operation at a time: Shopify refuses a second with a userError.
    app.shopify.script(
        Endpoint::Graphql,
        [Scripted::json(200, json!({ "data": { "bulkOperationRunQuery": { "bulkOperation": null,
            "userErrors": [{ "field": ["query"], "message": "A bulk query operation for this app and shop is already in progress" }] } } }))],
    );
    let refused = api.run_bulk_query("{ products { edges { node { id } } } }").await;
    assert!(
        matches!(refused, Err(GraphqlError::UserErrors(errors)) if errors[0].message.contains("already in progress"))
    );

    // A failed operation has no result lines; a result file that breaks a line is a shape error
    // naming the line, not its content.
    let failed: shopify_app_rust::web::admin_api::bulk::BulkOperation =
        serde_json::from_value(operation("FAILED", None)).unwrap();
    assert!(api.bulk_results::<Value>(&failed).await.unwrap().next().await.unwrap().is_none());
    let url = result_file(vec!["{\"id\":1}\n{\"email\":\"jane@example.com\"\n"]).await;
    let broken: shopify_app_rust::web::admin_api::bulk::BulkOperation =
        serde_json::from_value(operation("COMPLETED", Some(&url))).unwrap();
    let mut rows = api.bulk_results::<Value>(&broken).await.unwrap();
    assert_eq!(rows.next().await.unwrap(), Some(json!({ "id": 1 })));
    let error = rows.next().await.unwrap_err().to_string();
    assert!(error.contains("line 2") && !error.contains("jane"), "{error}");

    // A result file that is gone (expired link): a download error, answered 502 by a route.
    let gone = operation("COMPLETED", Some(&format!("{}/missing.jsonl", url.trim_end_matches("/result.jsonl"))));
    let gone: shopify_app_rust::web::admin_api::bulk::BulkOperation = serde_json::from_value(gone).unwrap();
    let error = api.bulk_results::<Value>(&gone).await.err().unwrap();
    assert!(matches!(&error, GraphqlError::Download(reason) if reason.contains("404") && !reason.contains("missing")));
    let response = axum::response::IntoResponse::into_response(error);
    assert_eq!(response.status(), axum::http::StatusCode::BAD_GATEWAY);

    // A redirect is not the file (an empty body would read as no rows): an error too.
    let moved = operation("COMPLETED", Some(&url.replace("/result.jsonl", "/moved")));
    let moved: shopify_app_rust::web::admin_api::bulk::BulkOperation = serde_json::from_value(moved).unwrap();
    let error = api.bulk_results::<Value>(&moved).await.err().unwrap();
    assert!(matches!(&error, GraphqlError::Download(reason) if reason.contains("307")), "{error:?}");
    assert!(!format!("{moved:?}").contains("127.0.0.1"), "Debug leaves the signed URL out");
}
