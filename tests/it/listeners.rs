//! Issue 21, item 2 and the header limit: each listener's bounds under a
//! flood, over raw TCP (and TLS for the webhook). A flood on the admin
//! listener leaves room for kubelet's probes and never touches the
//! credentials listener; slow clients cannot hold the webhook; a request
//! head over a listener's documented limit gets 431, one at it does not.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use credagent::server::{
    ADMIN_MAX_CONNECTIONS, ADMIN_MAX_PER_SOURCE, CREDENTIALS_MAX_HEAD_BYTES, SMALL_MAX_HEAD_BYTES,
    WEBHOOK_MAX_HEAD_BYTES,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{metric, scrape, until, Rig, RigOptions};
use crate::webhook::{fixture, WebhookRig};

/// A connection to `addr` from the loopback address `source` (another Pod).
pub async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let source: IpAddr = source.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes `request` and reads one answer; returns its status code.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8]) -> u16 {
    stream.write_all(request).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head[9..12].parse().unwrap()
}

/// Resolves when the server has closed `stream` (within 10 s).
pub async fn closed<S: AsyncRead + Unpin>(stream: &mut S, what: &str) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Err(_) => panic!("{what}: still open"),
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// A request head of exactly `len` bytes (`X-Pad` makes up the length).
pub fn head_of(len: usize, target: &str, host: &str, auth: &str) -> Vec<u8> {
    let start =
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nX-Pad: ");
    let pad = len - start.len() - 4;
    let mut head = start.into_bytes();
    head.extend(std::iter::repeat_n(b'a', pad));
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), len);
    head
}

fn count(rig: &Rig, series: &str) -> f64 {
    metric(&scrape(&rig.sidecar), series).unwrap_or(-1.0)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// Issue 21, item 2: a neighbour on the Pod network (or a hostNetwork Pod
/// sharing kubelet's address) keeps at most its share of the admin
/// listener; a probe from its own address and one from elsewhere are
/// answered, and so are credentials.
#[tokio::test]
async fn a_neighbour_keeps_at_most_its_share_of_the_admin_listener() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let admin = rig.sidecar.admin_addr;
    let mut flood = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from("127.9.0.1", admin).await;
        assert_eq!(exchange(&mut s, HEALTHZ).await, 200);
        flood.push(s);
    }
    let shed = 20 - ADMIN_MAX_PER_SOURCE;
    for (i, s) in flood.iter_mut().take(shed).enumerate() {
        closed(s, &format!("flood connection {i}")).await;
    }
    let series = r#"credagent_connections_shed_total{listener="admin",reason="per_source"}"#;
    assert_eq!(count(&rig, series), shed as f64);
    assert!(count(&rig, "credagent_open_connections") <= ADMIN_MAX_PER_SOURCE as f64);
    // kubelet from the flood's own address, and a scraper from elsewhere.
    let mut probe = connect_from("127.9.0.1", admin).await;
    assert_eq!(exchange(&mut probe, HEALTHZ).await, 200);
    let mut scraper = connect_from("127.9.0.2", admin).await;
    assert_eq!(
        exchange(&mut scraper, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await,
        200
    );
    assert_eq!(rig.credentials().await.status, 200);
    rig.stop().await;
}

/// Issue 21, item 2: many addresses together hold at most the admin
/// listener's cap; a new probe sheds the oldest idle connection of the
/// address holding the most, and credentials are answered throughout.
#[tokio::test]
async fn an_admin_flood_from_many_addresses_leaves_room_for_probes() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let admin = rig.sidecar.admin_addr;
    let per = ADMIN_MAX_PER_SOURCE - 1;
    let sources = ADMIN_MAX_CONNECTIONS / per + 4;
    let mut flood = Vec::new();
    for i in 0..sources * per {
        let mut s = connect_from(&format!("127.9.1.{}", 1 + i % sources), admin).await;
        assert_eq!(exchange(&mut s, HEALTHZ).await, 200, "connection {i}");
        flood.push(s);
    }
    let shed = flood.len() - ADMIN_MAX_CONNECTIONS;
    let series = r#"credagent_connections_shed_total{listener="admin",reason="full"}"#;
    until("the admin listener to shed down to its cap", || {
        count(&rig, series) >= shed as f64
    })
    .await;
    assert_eq!(count(&rig, series), shed as f64);
    assert!(count(&rig, "credagent_open_connections") <= ADMIN_MAX_CONNECTIONS as f64);
    for _ in 0..3 {
        let mut probe = connect_from("127.9.2.1", admin).await;
        assert_eq!(exchange(&mut probe, HEALTHZ).await, 200);
        assert_eq!(rig.credentials().await.status, 200);
    }
    rig.stop().await;
}

/// Issue 21, "slow clients hold the webhook": connections that send half a
/// request head fill the HTTPS listener; a fresh API-server connection is
/// served at once, and each slow one is closed within the head timeout
/// (5 s; the idle keep-alive timeout, 120 s, no longer applies to a head).
#[tokio::test]
async fn slow_clients_cannot_hold_the_webhook() {
    let rig = WebhookRig::start(
        &[
            "--sidecar-image",
            "credagent:test",
            "--org-id",
            "org",
            "--max-connections",
            "4",
        ],
        None,
    )
    .await;
    let config = credagent_testkit::testing::client_config(&rig.ca);
    let mut slow = Vec::new();
    for i in 0..4 {
        let tcp = connect_from(&format!("127.9.3.{}", i + 1), rig.webhook.addr).await;
        let mut tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        slow.push(tls);
        until("the webhook to read the half head", || {
            metric(&rig.scrape(), "credagent_open_connections") >= Some(i as f64 + 1.0)
        })
        .await;
    }
    let fresh = tokio::time::timeout(Duration::from_secs(3), async {
        rig.client().await.review(fixture("bare-pod.json")).await
    })
    .await
    .expect("a fresh client is served while slow ones hold every slot");
    assert_eq!(fresh["response"]["allowed"], true);
    for (i, s) in slow.iter_mut().enumerate() {
        closed(s, &format!("slow client {i}")).await;
    }
    assert!(
        metric(
            &rig.scrape(),
            r#"credagent_connection_timeouts_total{listener="webhook",phase="head"}"#
        ) >= Some(1.0)
    );
    rig.stop().await;
}

/// Issue 21: "the header limit documented as 32 KiB lets 40 KB through".
/// Each listener's limit is exact: a head of that many bytes is answered,
/// one byte more gets 431, and so does 40 KB.
#[tokio::test]
async fn request_heads_over_each_listeners_limit_get_431() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let auth = rig.auth_token();
    let cases = [
        (
            rig.sidecar.credentials_addr,
            "/v1/credentials",
            CREDENTIALS_MAX_HEAD_BYTES,
            200,
        ),
        (
            rig.sidecar.admin_addr,
            "/healthz",
            SMALL_MAX_HEAD_BYTES,
            200,
        ),
    ];
    for (addr, path, limit, ok) in cases {
        for (len, want) in [(limit, ok), (limit + 1, 431), (40_000, 431)] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let status = exchange(&mut s, &head_of(len, path, "x", &auth)).await;
            assert_eq!(status, want, "{path}: a {len}-byte head");
        }
    }
    rig.stop().await;
}

/// The webhook's HTTPS listener: the same, over TLS.
#[tokio::test]
async fn the_webhooks_head_limit_is_exact() {
    let rig = WebhookRig::start(
        &["--sidecar-image", "credagent:test", "--org-id", "org"],
        None,
    )
    .await;
    let config = credagent_testkit::testing::client_config(&rig.ca);
    for (len, want) in [
        (WEBHOOK_MAX_HEAD_BYTES, 405),
        (WEBHOOK_MAX_HEAD_BYTES + 1, 431),
        (40_000, 431),
    ] {
        let tcp = TcpStream::connect(rig.webhook.addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let status = exchange(&mut tls, &head_of(len, "/mutate", "localhost", "none")).await;
        assert_eq!(status, want, "a {len}-byte head");
    }
    rig.stop().await;
}
