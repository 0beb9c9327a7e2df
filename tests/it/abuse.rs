//! Abusive clients on the credentials listener, over raw TCP.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use credagent::server::HEAD_TIMEOUT;

use crate::paused::off_clock;
use crate::support::{metric, scrape, until, Rig, RigOptions};

/// Writes `request` and reads until the server closes or `limit` passes.
async fn exchange_raw(rig: &Rig, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(rig.sidecar.credentials_addr)
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in `raw` (bodies carry no newline).
fn statuses(raw: &str) -> Vec<&str> {
    raw.match_indices("HTTP/1.")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12))
        .collect()
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let rig = Rig::start(RigOptions::default()).await;
    let big = format!(
        "GET /v1/credentials HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let raw = exchange_raw(&rig, big.as_bytes()).await;
    assert_eq!(statuses(&raw), ["431"], "{raw:.200}");
    rig.stop().await;
}

/// On a paused clock: the server's header read timeout passes in no time;
/// the client's I/O runs off that clock (see `paused.rs`).
#[tokio::test(start_paused = true)]
async fn a_slowloris_connection_is_closed() {
    let rig = Rig::start(RigOptions {
        paused: true,
        ..RigOptions::default()
    })
    .await;
    let addr = rig.sidecar.credentials_addr;
    let mut stream = off_clock(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stream
    })
    .await;
    until("the server holds the connection", || {
        metric(&scrape(&rig.sidecar), "credagent_open_connections").unwrap_or(0.0) >= 1.0
    })
    .await;
    // Never finish the headers: the server must hang up by itself, once its
    // header read timeout has passed on the paused clock. The clock stands
    // still while the test reads: 15 s bound the test, not the server.
    tokio::time::sleep(HEAD_TIMEOUT + Duration::from_secs(1)).await;
    let closed = off_clock(async move {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf)).await
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept a header-less connection open"
    );
    rig.stop().await;
}

#[tokio::test]
async fn pipelined_and_http10_requests_are_answered() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let auth = rig.auth_token();
    let one = format!("GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
    let last = format!("GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    let raw = exchange_raw(
        &rig,
        format!("{one}GET /nope HTTP/1.1\r\nHost: x\r\n\r\n{last}").as_bytes(),
    )
    .await;
    assert_eq!(statuses(&raw), ["200", "404", "200"], "{raw:?}");
    let raw = exchange_raw(
        &rig,
        format!("GET /v1/credentials HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        raw.starts_with("HTTP/1.0 200") || raw.starts_with("HTTP/1.1 200"),
        "{raw}"
    );
    assert!(raw.contains("AccessKeyId"));
    rig.stop().await;
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let cases = [
        "GET /v1/credentials HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /v1/credentials HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "GET /v1/credentials HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n",
        "BREW /v1/credentials HTCPCP/1.0\r\n\r\n",
        "\u{0}\u{1}\u{2}garbage\r\n\r\n",
    ];
    for case in cases {
        let raw = exchange_raw(&rig, case.as_bytes()).await;
        let s = statuses(&raw);
        assert!(
            s.iter().all(|c| c.starts_with('4')) && !s.is_empty() || raw.is_empty(),
            "{case:?} -> {raw:.200}"
        );
        assert!(!raw.contains("AccessKeyId"), "{case:?}");
    }
    // And the listener still works.
    assert_eq!(rig.credentials().await.status, 200);
    rig.stop().await;
}

#[tokio::test]
async fn a_full_listener_sheds_its_oldest_waiting_connection_for_a_newcomer() {
    let rig = Rig::start(RigOptions {
        max_connections: 2,
        ..RigOptions::default()
    })
    .await;
    rig.sidecar.store.wait_servable().await;
    // Two clients hold both slots with half-sent requests.
    let mut held = Vec::new();
    for n in 1..=2 {
        let mut s = TcpStream::connect(rig.sidecar.credentials_addr)
            .await
            .unwrap();
        s.write_all(b"GET /v1/credentials HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(s);
        crate::support::until("the sidecar to take it", || {
            crate::support::metric(
                &crate::support::scrape(&rig.sidecar),
                "credagent_open_connections",
            ) >= Some(n as f64)
        })
        .await;
    }
    // A third is served at once: the oldest half-request makes room.
    let mut third = TcpStream::connect(rig.sidecar.credentials_addr)
        .await
        .unwrap();
    third
        .write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), third.read_to_end(&mut buf))
        .await
        .expect("served without waiting for a slot")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 404"));
    let mut byte = [0u8; 1];
    let oldest = tokio::time::timeout(Duration::from_secs(3), held[0].read(&mut byte))
        .await
        .expect("the oldest is closed");
    assert!(matches!(oldest, Ok(0) | Err(_)), "{oldest:?}");
    let younger = tokio::time::timeout(Duration::from_millis(200), held[1].read(&mut byte)).await;
    assert!(younger.is_err(), "the younger is kept: {younger:?}");
    // Hang up the other one too: the stop would wait its drain grace for it.
    drop(held);
    rig.stop().await;
}
