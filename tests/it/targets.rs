//! Issue 21, item 7: the request target in node mode and on the IMDS
//! emulation. Exactly one `Host`, naming a listen address (or, for IMDS,
//! `localhost` on its loopback port or the EC2 address SDKs use by
//! default); an absolute-form target must name one too; otherwise 400
//! (no `Host`, several, malformed) or 403 (another name). Raw TCP: an HTTP
//! client library would not send most of these.

use credagent::config::ImdsConfig;
use tokio::net::TcpStream;

use crate::listeners::{exchange, head_of};
use crate::support::{Rig, RigOptions};

/// Sends `request` on a fresh connection to `addr`; returns the status.
async fn status(addr: std::net::SocketAddr, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    exchange(&mut s, request.as_bytes()).await
}

#[tokio::test]
async fn node_mode_answers_only_requests_naming_it_once() {
    let rig = crate::node::start(&[]).await;
    let (addr, token) = (rig.addr, rig.token("app"));
    let cases = [
        (format!("GET /v1/credentials HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n"), 200, ""),
        (format!("GET /v1/credentials HTTP/1.1\r\nAuthorization: {token}\r\n\r\n"), 400, "malformed_host"),
        (format!("GET /v1/credentials HTTP/1.0\r\nAuthorization: {token}\r\n\r\n"), 400, "malformed_host"),
        (format!("GET /v1/credentials HTTP/1.1\r\nHost: {addr}\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n"), 400, "malformed_host"),
        (format!("GET /v1/credentials HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\nAuthorization: {token}\r\n\r\n"), 400, "malformed_host"),
        (format!("GET /v1/credentials HTTP/1.1\r\nHost: user@{addr}\r\nAuthorization: {token}\r\n\r\n"), 400, "malformed_host"),
        (format!("GET http://evil.example/v1/credentials HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n"), 403, "bad_host"),
        (format!("GET http://{addr}/v1/credentials HTTP/1.1\r\nHost: evil.example\r\nAuthorization: {token}\r\n\r\n"), 403, "bad_host"),
        (format!("GET http://{addr}/v1/credentials HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n"), 200, ""),
    ];
    for (request, want, reason) in cases {
        let before = rig.count(&format!(
            r#"credagent_node_rejected_requests_total{{reason="{reason}"}}"#
        ));
        assert_eq!(status(addr, &request).await, want, "{request:?}");
        if !reason.is_empty() {
            let after = rig.count(&format!(
                r#"credagent_node_rejected_requests_total{{reason="{reason}"}}"#
            ));
            assert_eq!(after, before + 1.0, "{request:?} counted as {reason}");
        }
    }
    assert_eq!(
        rig.standin.calls(),
        1,
        "only the good requests reach the upstream"
    );
}

#[tokio::test]
async fn node_mode_head_limit_is_exact() {
    let rig = crate::node::start(&[]).await;
    let (addr, token) = (rig.addr, rig.token("app"));
    let host = addr.to_string();
    let limit = credagent::server::CREDENTIALS_MAX_HEAD_BYTES;
    for (len, want) in [(limit, 200), (limit + 1, 431), (40_000, 431)] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let got = exchange(&mut s, &head_of(len, "/v1/credentials", &host, &token)).await;
        assert_eq!(got, want, "a {len}-byte head");
    }
}

#[tokio::test]
async fn imds_answers_its_own_names_and_the_ec2_address() {
    let rig = Rig::start(RigOptions {
        imds: Some((
            "127.0.0.1:0".parse().unwrap(),
            ImdsConfig {
                allow_v1: true,
                region: Some("US-EAST-04A".into()),
            },
        )),
        ..RigOptions::default()
    })
    .await;
    rig.sidecar.store.wait_servable().await;
    let addr = rig.sidecar.imds_addr.unwrap();
    let port = addr.port();
    let get = |host: &str| {
        format!("GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: {host}\r\n\r\n")
    };
    let cases = [
        (get(&addr.to_string()), 200),
        (get(&format!("localhost:{port}")), 200),
        // What SDKs send by default, kept by a redirect to the emulation.
        (get("169.254.169.254"), 200),
        (get("169.254.169.254:80"), 200),
        (get("[fd00:ec2::254]"), 200),
        (get("evil.example"), 403),
        (get(&format!("127.0.0.1:{}", port.wrapping_add(1))), 403),
        (get("localhost"), 403),
        ("GET /latest/meta-data/placement/region HTTP/1.1\r\n\r\n".into(), 400),
        (format!("GET /latest/meta-data/placement/region HTTP/1.1\r\nHost: {addr}\r\nHost: {addr}\r\n\r\n"), 400),
        (format!("GET http://evil.example/latest/meta-data/placement/region HTTP/1.1\r\nHost: {addr}\r\n\r\n"), 403),
    ];
    for (request, want) in cases {
        assert_eq!(status(addr, &request).await, want, "{request:?}");
    }
    let limit = credagent::server::SMALL_MAX_HEAD_BYTES;
    for (len, want) in [(limit, 200), (limit + 1, 431)] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = head_of(
            len,
            "/latest/meta-data/placement/region",
            &addr.to_string(),
            "x",
        );
        assert_eq!(exchange(&mut s, &head).await, want, "a {len}-byte head");
    }
    rig.stop().await;
}
