//! Upstream faults against a running sidecar: whatever the upstream does,
//! the last good credentials keep being served while valid, the failure is
//! counted by class, and the request path never waits on the upstream.
//!
//! The sidecar's schedule runs on a paused clock, so its refresh after 6 s
//! and its retries take no time; its exchanges and the test's requests are
//! real, off that clock (see `paused.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use credagent_testkit::Fault;

use crate::paused::OffClock;
use crate::support::{get, metric, scrape, Rig, RigOptions};

/// Credentials that live 24 s (of the paused clock): refreshed after ~6 s,
/// served until 18 s.
fn short_lived() -> RigOptions {
    RigOptions {
        lifetime: Duration::from_secs(24),
        paused: true,
        ..RigOptions::default()
    }
}

async fn keeps_serving_through(fault: Fault, class: &str) {
    keeps_serving_through_with(short_lived(), fault, class).await;
}

async fn keeps_serving_through_with(options: RigOptions, fault: Fault, class: &str) {
    let rig = Rig::start(options).await;
    rig.sidecar.store.wait_servable().await;
    let before = rig.credentials().await;
    assert_eq!(before.status, 200);
    let series = format!(r#"credagent_refreshes_total{{result="{class}"}}"#);
    let failures = || metric(&scrape(&rig.sidecar), &series).unwrap_or(0.0);
    let (calls, failed_before) = (rig.standin.calls(), failures());
    rig.standin.set_sticky_fault(Some(fault.clone()));
    // The next scheduled refresh reaches the faulty upstream...
    rig.standin.wait_for_calls(calls + 1).await;
    // ...and while it is in flight (or after it failed) the endpoint still
    // answers at once, from memory, with the same credentials.
    let during = rig.credentials().await;
    assert_eq!(during.status, 200, "{fault:?}");
    assert_eq!(
        during.body, before.body,
        "{fault:?}: the last good credentials"
    );
    crate::support::until(&format!("a {class} refresh"), || failures() > failed_before).await;
    let after = rig.credentials().await;
    assert_eq!(
        (after.status, &after.body),
        (200, &before.body),
        "{fault:?}"
    );
    assert_eq!(metric(&scrape(&rig.sidecar), "credagent_ready"), Some(1.0));
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_run_of_500s() {
    keeps_serving_through(Fault::Status(500), "upstream_error").await;
}

#[tokio::test(start_paused = true)]
async fn throttling() {
    keeps_serving_through(
        Fault::Throttle {
            retry_after: Some("3".into()),
        },
        "throttled",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_hang_past_the_timeout() {
    // The exchange runs off the paused clock, so its timeout is real time:
    // 1 s, not the Rig's 5 s, is as short as a loaded machine allows for the
    // first (good) exchange, which must not time out.
    let options = RigOptions {
        upstream_timeout: Duration::from_secs(1),
        ..short_lived()
    };
    keeps_serving_through_with(options, Fault::Hang, "timeout").await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_reset_mid_body() {
    keeps_serving_through(Fault::TruncatedBody, "transport").await;
}

#[tokio::test(start_paused = true)]
async fn garbage() {
    keeps_serving_through(
        Fault::Body {
            status: 200,
            body: "\u{0}\u{1}garbage<html>".into(),
        },
        "malformed",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn truncated_json() {
    keeps_serving_through(
        Fault::Body {
            status: 200,
            body: r#"{"AccessKeyId":"A","SecretAcc"#.into(),
        },
        "malformed",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_eight_mebibyte_body() {
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(8 * 1024 * 1024));
    keeps_serving_through(Fault::Body { status: 200, body }, "malformed").await;
}

#[tokio::test(start_paused = true)]
async fn credentials_already_expired() {
    let body = r#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"","Expiration":"2001-01-01T00:00:00Z"}"#;
    keeps_serving_through(
        Fault::Body {
            status: 200,
            body: body.into(),
        },
        "expired",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_zoneless_expiration() {
    let body = r#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"","Expiration":"2099-01-01T00:00:00"}"#;
    keeps_serving_through(
        Fault::Body {
            status: 200,
            body: body.into(),
        },
        "malformed",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn credentials_revoked() {
    keeps_serving_through(Fault::Status(403), "auth_rejected").await;
}

#[tokio::test(start_paused = true)]
async fn upstream_down_at_start_then_up() {
    // Reserve a port, leave nothing listening on it, point the sidecar there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let issuer = crate::support::rs256_issuer();
    crate::support::kubelet_swap(
        &dir.path().join("tokens"),
        &crate::support::mint(&issuer, "app", Duration::from_secs(3600)),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = credagent::config::SidecarConfig {
        token_file: dir.path().join("tokens/oidc-token"),
        upstream: credagent::config::UpstreamConfig {
            url: format!("http://127.0.0.1:{port}/v1/cwobject/temporary-credentials/oidc/test-org")
                .parse()
                .unwrap(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            extra_roots: vec![],
            proxy: Default::default(),
            method: credagent::config::ExchangeMethod::Get,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        auth_token_file: dir.path().join("auth"),
        refresh: Default::default(),
        imds: None,
        credentials_file: None,
        credential_process_dir: None,
        max_connections: 4096,
    };
    let client = credagent::exchange::HttpExchanger::new(&config.upstream).unwrap();
    let options = credagent::sidecar::Options {
        exchange: Some(Arc::new(OffClock(Arc::new(client)))),
        ..Default::default()
    };
    let sidecar = credagent::sidecar::Sidecar::start(&config, options, shutdown.clone())
        .await
        .unwrap();
    let text = || String::from_utf8(sidecar.metrics.encode()).unwrap();
    crate::support::until("a transport failure", || {
        metric(&text(), r#"credagent_refreshes_total{result="transport"}"#).unwrap_or(0.0) >= 1.0
    })
    .await;
    let readyz = get(sidecar.admin_addr, "/readyz", None).await.unwrap();
    assert_eq!(readyz.status, 503);
    // The upstream comes up on that port; the agent's retries (1 s and more
    // of the paused clock apart) find it.
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let standin = credagent_testkit::StandIn::start(
        listener,
        credagent_testkit::StandInConfig {
            org_id: "test-org".into(),
            verifiers: vec![issuer.verifier()],
            access_key_id: "AKID".into(),
            secret_access_key: "SK".into(),
            ..Default::default()
        },
        None,
        shutdown.child_token(),
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(70), sidecar.store.wait_servable())
        .await
        .expect("ready once the upstream is up");
    let readyz = get(sidecar.admin_addr, "/readyz", None).await.unwrap();
    assert_eq!(readyz.status, 200);
    assert_eq!(standin.successes(), 1);
    shutdown.cancel();
    sidecar.wait().await;
}
