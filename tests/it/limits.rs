//! The server's limits, from the outside: the app served by `server::serve` on 127.0.0.1 and
//! driven over raw TCP, so a test can be the slow or stuck client the limits are for.

use std::time::{Duration, Instant};

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something a limit of one second must cause.
const GENEROUS: Duration = Duration::from_secs(10);

impl Served {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.address).await.unwrap()
    }

    /// Sends `request` on a new connection and reads the answer until the server closes.
    async fn exchange(&self, request: &str) -> String {
        let mut stream = self.connect().await;
        stream.write_all(request.as_bytes()).await.unwrap();
        read_to_close(&mut stream).await
    }

    /// Signals the shutdown and waits for `serve` to return.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(GENEROUS, &mut self.server).await.expect("serve returned").unwrap();
    }
}

/// Everything the server sends until it closes the connection (or resets it); panics if it is
/// still open after [`GENEROUS`].
async fn read_to_close(stream: &mut TcpStream) -> String {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match tokio::time::timeout_at((started + GENEROUS).into(), stream.read(&mut buffer)).await {
            Err(_) => panic!("still open after {GENEROUS:?}: {:?}", String::from_utf8_lossy(&received)),
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Reads one response head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(GENEROUS, stream.read_u8()).await.expect("a response in time").unwrap();
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

const DELIVERY: &str = r#"{"id":1}"#;

/// The head of a signed `app/uninstalled` delivery of [`DELIVERY`] that announces
/// `content_length` bytes and asks for `100 Continue`, so the client learns when the request
/// is in a handler.
fn delivery_head(content_length: usize) -> String {
    format!(
        "POST /webhooks/app/uninstalled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Shopify-Topic: app/uninstalled\r\nX-Shopify-Shop-Domain: {SHOP_DOMAIN}\r\n\
         X-Shopify-Webhook-Id: w-1\r\nX-Shopify-Hmac-SHA256: {}\r\nContent-Length: {content_length}\r\n\
         Expect: 100-continue\r\n\r\n",
        body_hmac(API_SECRET, DELIVERY.as_bytes())
    )
}

/// Opens a delivery and sends its head: once this returns, the server is waiting for the body
/// (without a request slot: those are for handlers).
async fn delivery_in_flight(served: &Served) -> TcpStream {
    let mut stream = served.connect().await;
    stream.write_all(delivery_head(DELIVERY.len()).as_bytes()).await.unwrap();
    assert_eq!(read_head(&mut stream).await, "HTTP/1.1 100 Continue\r\n\r\n");
    stream
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let served = Served::start(&[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let opened = Instant::now();
    let mut silent = served.connect().await;
    let mut slow = served.connect().await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();

    // Other clients are served meanwhile.
    assert!(served.exchange(HEALTHZ).await.starts_with("HTTP/1.1 200 OK\r\n"));
    for stream in [&mut slow, &mut silent] {
        assert_eq!(read_to_close(stream).await, "", "closed without an answer");
        assert!(opened.elapsed() >= Duration::from_millis(900), "not before the timeout: {:?}", opened.elapsed());
    }
    served.stop().await;
}

#[tokio::test]
async fn a_body_slower_than_the_body_timeout_gets_408_and_the_connection_closes() {
    let served = Served::start(&[("BODY_READ_TIMEOUT_SECS", "1"), ("REQUEST_TIMEOUT_SECS", "60")]).await;
    let mut stream = delivery_in_flight(&served).await;
    stream.write_all(&DELIVERY.as_bytes()[..3]).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer:?}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer:?}");
    assert_eq!(count_rows(&served.app.state, "webhook_deliveries").await, 0, "the handler did nothing");
    served.stop().await;
}

#[tokio::test]
async fn a_body_the_client_breaks_off_gets_400_and_reaches_no_handler() {
    let served = Served::start(&[("BODY_READ_TIMEOUT_SECS", "60")]).await;
    let mut stream = delivery_in_flight(&served).await;
    stream.write_all(&DELIVERY.as_bytes()[..3]).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer:?}");
    assert_eq!(count_rows(&served.app.state, "webhook_deliveries").await, 0, "the handler did nothing");
    served.stop().await;
}

/// A stored token near expiry and a held refresh: App Home `GET /` then stays in its handler,
/// holding a request slot, until the gate is released. Returns the request and the gate.
async fn app_home_held_in_its_handler(served: &Served) -> (String, RefreshGate) {
    let token = shopify_app_rust::shopify::model::AccessToken {
        shop: SHOP.into(),
        token: "shpat_stored".into(),
        expires: Some(time::OffsetDateTime::from_unix_timestamp(NOW + 10).unwrap()),
        scope: "write_products".into(),
        access_mode: shopify_app_rust::shopify::model::AccessMode::Offline,
        refresh_token: Some("shprt_stored".into()),
        refresh_token_expires: Some(time::OffsetDateTime::from_unix_timestamp(NOW + 86_400).unwrap()),
        user: None,
    };
    served.app.state.tokens.repository().save(&token).await.unwrap();
    let gate = served.app.shopify.hold_refreshes();
    let home = format!(
        "GET /?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        document_query(&session_token(served.app.now()))
    );
    (home, gate)
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed_with_503_until_a_slot_frees() {
    let served = Served::start(&[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    let (home, gate) = app_home_held_in_its_handler(&served).await;
    let mut held = served.connect().await;
    held.write_all(home.as_bytes()).await.unwrap();
    tokio::time::timeout(GENEROUS, gate.arrived()).await.expect("the request reached its handler");

    let shed = served.exchange(HEALTHZ).await;
    assert!(shed.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{shed:?}");
    assert!(shed.contains("\r\nretry-after: 1\r\n"), "{shed:?}");
    // An extension's request shed the same way still carries its CORS headers, so the
    // extension can read the 503 and its Retry-After.
    let extension = "OPTIONS /api/extensions/admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let shed = served.exchange(extension).await;
    assert!(shed.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{shed:?}");
    assert!(shed.contains("\r\naccess-control-allow-origin: *\r\n"), "{shed:?}");

    gate.release();
    assert!(read_head(&mut held).await.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(served.exchange(HEALTHZ).await.starts_with("HTTP/1.1 200 OK\r\n"), "the slot is free again");
    served.stop().await;
}

#[tokio::test]
async fn bodies_that_never_arrive_hold_no_request_slot() {
    let served = Served::start(&[("MAX_CONCURRENT_REQUESTS", "2"), ("BODY_READ_TIMEOUT_SECS", "60")]).await;
    // Anyone can send this: a 44-character HMAC header passes the checks made before the body,
    // and the body that would fail it never comes.
    let forged = format!(
        "POST /webhooks/compliance HTTP/1.1\r\nHost: x\r\nX-Shopify-Topic: shop/redact\r\n\
         X-Shopify-Shop-Domain: {SHOP_DOMAIN}\r\nX-Shopify-Hmac-SHA256: {}=\r\nContent-Length: 1000\r\n\
         Expect: 100-continue\r\n\r\n",
        "A".repeat(43)
    );
    let mut stuck = Vec::new();
    for _ in 0..8 {
        let mut stream = served.connect().await;
        stream.write_all(forged.as_bytes()).await.unwrap();
        // `100 Continue`: the server is waiting for this body.
        assert_eq!(read_head(&mut stream).await, "HTTP/1.1 100 Continue\r\n\r\n");
        stuck.push(stream);
    }

    let health = served.exchange(HEALTHZ).await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health:?}");
    let mut delivery = delivery_in_flight(&served).await;
    delivery.write_all(DELIVERY.as_bytes()).await.unwrap();
    assert!(read_head(&mut delivery).await.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(count_rows(&served.app.state, "webhook_deliveries").await, 1, "the signed delivery was handled");
    drop(stuck);
    served.stop().await;
}

#[tokio::test]
async fn an_answer_slower_than_the_request_timeout_is_503() {
    let served = Served::start(&[("REQUEST_TIMEOUT_SECS", "1")]).await;
    let (home, gate) = app_home_held_in_its_handler(&served).await;
    let answer = served.exchange(&home).await;
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer:?}");
    gate.release();
    served.stop().await;
}

#[tokio::test]
async fn a_shutdown_lets_the_request_in_flight_finish_and_refuses_new_connections() {
    let served = Served::start(&[]).await;
    let mut in_flight = delivery_in_flight(&served).await;
    let Served { app, address, stop, server } = served;
    stop.unwrap().send(()).unwrap();

    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(address).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener is closed at the shutdown");

    in_flight.write_all(DELIVERY.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut in_flight).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert_eq!(count_rows(&app.state, "webhook_deliveries").await, 1, "the delivery was handled");
    tokio::time::timeout(GENEROUS, server).await.expect("serve returned once the request was done").unwrap();
}

#[tokio::test]
async fn signed_requests_the_headers_condemn_are_answered_without_waiting_for_the_body() {
    let served = Served::start(&[("BODY_READ_TIMEOUT_SECS", "60")]).await;
    let signed = format!("X-Shopify-Hmac-SHA256: {}\r\n", body_hmac(API_SECRET, DELIVERY.as_bytes()));
    let oversized = format!("X-Shopify-Hmac-SHA256: {}\r\n", "A".repeat(129));
    let unprefixed = format!("Shopify-Hmac-SHA256: {}\r\n", body_hmac(API_SECRET, DELIVERY.as_bytes()));
    let cases = [
        ("POST /webhooks/app/uninstalled", "", 1_000_000, "400 Bad Request", "Bad Request"),
        ("POST /webhooks/compliance", "X-Shopify-Hmac-SHA256: \r\n", 1_000_000, "400 Bad Request", "Bad Request"),
        ("POST /webhooks/app/uninstalled", oversized.as_str(), 1_000_000, "401 Unauthorized", "Unauthorized"),
        ("PUT /webhooks/app/uninstalled", signed.as_str(), 1_000_000, "405 Method Not Allowed", "Method not allowed"),
        ("POST /api/flow/action", unprefixed.as_str(), 1_000_000, "400 Bad Request", "Bad Request"),
        (
            "POST /webhooks/app/uninstalled",
            signed.as_str(),
            3 * 1024 * 1024,
            "413 Payload Too Large",
            "length limit exceeded",
        ),
    ];
    for (request_line, hmac, content_length, status, body) in cases {
        let mut stream = served.connect().await;
        let head = format!(
            "{request_line} HTTP/1.1\r\nHost: x\r\nX-Shopify-Topic: app/uninstalled\r\n\
             X-Shopify-Shop-Domain: {SHOP_DOMAIN}\r\n{hmac}Content-Length: {content_length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // No body is ever sent: an answer within GENEROUS (far below the body timeout) was
        // decided on the headers alone.
        let answer = read_head(&mut stream).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{request_line}: {answer:?}");
        assert!(answer.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{answer:?}");
        let mut text = vec![0; body.len()];
        tokio::time::timeout(GENEROUS, stream.read_exact(&mut text)).await.unwrap().unwrap();
        assert_eq!(text, body.as_bytes(), "{request_line}");
    }
    assert_eq!(count_rows(&served.app.state, "webhook_deliveries").await, 0);
    served.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_after_the_send_timeout() {
    let served = Served::start(&[("SEND_TIMEOUT_SECS", "1"), ("HEADER_READ_TIMEOUT_SECS", "60")]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let (_never_read, mut requests) = socket.connect(served.address).await.unwrap().into_split();
    let started = Instant::now();

    // Requests for a static file, pipelined until the buffers between are full: the server's
    // answers stall, then its reading. Once it gives up and closes, its side answers the
    // requests still coming with a reset, and a write fails.
    let request = b"GET /static/app_home.js HTTP/1.1\r\nHost: x\r\n\r\n";
    let cut_off = tokio::time::timeout(GENEROUS, async { while requests.write_all(request).await.is_ok() {} }).await;
    assert!(cut_off.is_ok(), "still connected after {GENEROUS:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "not before the send timeout: {elapsed:?}");
    assert!(served.exchange(HEALTHZ).await.starts_with("HTTP/1.1 200 OK\r\n"), "others are served");
    served.stop().await;
}

#[tokio::test]
async fn at_max_connections_a_new_connection_waits_until_one_closes() {
    let served = Served::start(&[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT_SECS", "60")]).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = served.connect().await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 200 OK\r\n"), "kept alive");
        open.push(stream);
    }
    // The kernel completes the handshake; the server does not accept the connection yet.
    let mut third = served.connect().await;
    third.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(1), third.read(&mut [0])).await;
    assert!(waited.is_err(), "no answer while two connections are open: {waited:?}");

    drop(open.pop());
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "served once one closed: {answer:?}");
    drop(open);
    served.stop().await;
}
