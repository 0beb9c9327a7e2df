//! Egress through a real HTTP proxy (tinyproxy, see `tinyproxy.rs`).
//!
//! The stand-in is named `standin.credagent.test`, a name only the proxy
//! resolves: reaching it at all proves the request went through the proxy,
//! and the proxy's log shows the `CONNECT`. Then: `NO_PROXY` sends the same
//! URL direct, a proxy that answers 407 or 403 or is down is a classified
//! failure that backs off while the last good credentials keep being
//! served, proxy credentials work and never appear in a log line, `doctor`
//! reports the proxy and its tunnel, plain http goes through `HTTP_PROXY`,
//! and node mode fetches its key set and exchanges through the proxy.

use std::collections::HashMap;
use std::time::Duration;

use credagent::config::{ProxySettings, UpstreamConfig};
use credagent::credentials::Credentials;
use credagent::exchange::{Exchange, ExchangeError, HttpExchanger};
use credagent::outbound::ProxyError;
use credagent::secret::Secret;
use rustls_pki_types::CertificateDer;
use tokio::time::Instant;

use crate::paused::off_clock;
use crate::support::{metric, mint, scrape, Rig, RigOptions, ACCESS_KEY_ID};
use crate::tinyproxy::{ProxyOptions, Tinyproxy, STANDIN_HOST};
use crate::tools::{self, require};

/// Proxy settings from these environment variables (injected, never set).
fn from_env(vars: &[(&str, &str)]) -> ProxySettings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxySettings::from_env_vars(|name| map.get(name).cloned()).expect("valid proxy settings")
}

/// A sidecar whose stand-in is `https://standin.credagent.test:PORT`,
/// proxied as `proxy` says; credentials live 24 s (refreshed after ~6 s,
/// served until 18 s).
async fn rig(proxy: ProxySettings) -> Rig {
    Rig::start(RigOptions {
        lifetime: Duration::from_secs(24),
        tls: true,
        upstream_host: Some(STANDIN_HOST),
        proxy,
        ..RigOptions::default()
    })
    .await
}

/// [`rig`], for a test on a paused clock: the refresh after ~6 s and the
/// backoff take no time; the exchanges through the proxy are real, off that
/// clock (see `paused.rs`).
async fn paused_rig(proxy: ProxySettings) -> Rig {
    Rig::start(RigOptions {
        lifetime: Duration::from_secs(24),
        tls: true,
        upstream_host: Some(STANDIN_HOST),
        proxy,
        paused: true,
        ..RigOptions::default()
    })
    .await
}

/// One exchange of a fresh token by `client`, [`off_clock`].
async fn exchange(rig: &Rig, client: HttpExchanger) -> Result<Credentials, ExchangeError> {
    let token = token(rig);
    off_clock(async move { client.exchange(&token).await }).await
}

/// An exchanger for the rig's URL with other proxy settings.
fn exchanger(rig: &Rig, proxy: ProxySettings) -> HttpExchanger {
    HttpExchanger::new(&UpstreamConfig {
        url: rig.upstream_url.parse().unwrap(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        extra_roots: rig
            .ca_der
            .iter()
            .cloned()
            .collect::<Vec<CertificateDer<'static>>>(),
        proxy,
        method: credagent::config::ExchangeMethod::Get,
    })
    .unwrap()
}

fn token(rig: &Rig) -> Secret {
    Secret::new(mint(&rig.issuer, "app", Duration::from_secs(3600)))
}

fn target(rig: &Rig) -> String {
    format!("{STANDIN_HOST}:{}", rig.standin.local_addr().port())
}

/// `credagent_refreshes_total{result=RESULT}`.
fn refreshes(rig: &Rig, result: &str) -> f64 {
    let series = format!(r#"credagent_refreshes_total{{result="{result}"}}"#);
    metric(&scrape(&rig.sidecar), &series).unwrap_or(0.0)
}

/// Waits (bounded) until the sidecar holds credentials.
async fn servable(rig: &Rig) {
    tokio::time::timeout(Duration::from_secs(15), rig.sidecar.store.wait_servable())
        .await
        .expect("the sidecar never got credentials");
}

/// Waits (up to `secs` of the paused clock) until `cond` holds; returns
/// when it did, to within 50 ms (a scrape of the metrics every 10 ms would
/// cost more real time than the waits it measures).
async fn within<F: FnMut() -> bool>(secs: u64, what: &str, mut cond: F) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Instant::now()
}

#[tokio::test]
async fn the_sidecar_reaches_the_upstream_only_through_the_proxy() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions::default()).await;
    let rig = rig(from_env(&[("HTTPS_PROXY", &proxy.url())])).await;
    servable(&rig).await;
    let served = rig.credentials().await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json()["AccessKeyId"], ACCESS_KEY_ID);
    assert_eq!(proxy.connects(), vec![target(&rig)], "{}", proxy.log());

    // The same URL without the proxy: the name does not even resolve here.
    let direct = exchanger(
        &rig,
        ProxySettings {
            disabled: true,
            ..ProxySettings::none()
        },
    );
    let err = direct.exchange(&token(&rig)).await.unwrap_err();
    assert_eq!(err.class(), "transport", "{err}");
    assert!(err.to_string().contains("dns error"), "{err}");
    assert_eq!(proxy.connects().len(), 1, "{}", proxy.log());
    rig.stop().await;
}

#[tokio::test]
async fn no_proxy_sends_the_same_url_direct() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions::default()).await;
    let rig = rig(ProxySettings::none()).await;
    for no_proxy in [
        ".credagent.test",
        "credagent.test",
        "*.credagent.test",
        "*",
        STANDIN_HOST,
    ] {
        let client = exchanger(
            &rig,
            from_env(&[("https_proxy", &proxy.url()), ("no_proxy", no_proxy)]),
        );
        let err = client.exchange(&token(&rig)).await.unwrap_err();
        // A direct attempt: the name does not resolve outside the proxy.
        assert_eq!(err.class(), "transport", "no_proxy={no_proxy}: {err}");
        assert!(err.to_string().contains("dns error"), "{err}");
    }
    // A NO_PROXY entry for another port does not apply.
    let other_port = format!("{STANDIN_HOST}:1");
    let client = exchanger(
        &rig,
        from_env(&[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", &other_port)]),
    );
    assert!(client.exchange(&token(&rig)).await.is_ok());
    assert_eq!(proxy.connects(), vec![target(&rig)], "{}", proxy.log());
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_proxy_that_wants_credentials_is_retried_with_backoff() {
    require!(tools::tinyproxy());
    let open = Tinyproxy::start(ProxyOptions::default()).await;
    let rig = paused_rig(from_env(&[("HTTPS_PROXY", &open.url())])).await;
    servable(&rig).await;
    let before = rig.credentials().await;
    assert_eq!(before.status, 200);
    // The same address now wants credentials the agent does not have.
    let port = open.stop().await;
    let strict = Tinyproxy::start(ProxyOptions {
        basic_auth: Some(("credagent", "not-given")),
        port: Some(port),
        ..ProxyOptions::default()
    })
    .await;
    let first = within(20, "a proxy_refused refresh", || {
        refreshes(&rig, "proxy_refused") >= 1.0
    })
    .await;
    let second = within(10, "a second proxy_refused refresh", || {
        refreshes(&rig, "proxy_refused") >= 2.0
    })
    .await;
    // Backoff starts at 1 s (full jitter above it), on the paused clock.
    assert!(
        second - first >= Duration::from_millis(900),
        "retried after {:?}",
        second - first
    );
    let during = rig.credentials().await;
    assert_eq!((during.status, &during.body), (200, &before.body));
    let text = scrape(&rig.sidecar);
    assert_eq!(metric(&text, "credagent_ready"), Some(1.0));
    assert_eq!(
        metric(&text, r#"credagent_refreshes_total{result="transport"}"#),
        Some(0.0)
    );
    assert!(strict.connects().len() >= 2, "{}", strict.log());
    // What the refresher logs: the proxy, its status, no credentials.
    let client = exchanger(&rig, from_env(&[("HTTPS_PROXY", &strict.url())]));
    let err = exchange(&rig, client).await.unwrap_err();
    let ExchangeError::Proxy(ProxyError::Refused { status, .. }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*status, Some(407));
    assert_eq!(
        err.to_string(),
        format!(
            "the proxy {} (from HTTPS_PROXY) refused the tunnel to {}: HTTP 407 Proxy Authentication Required (the proxy URL has no credentials)",
            strict.url(),
            target(&rig)
        )
    );
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_proxy_that_is_down_is_retried_until_it_is_back() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions::default()).await;
    let rig = paused_rig(from_env(&[("HTTPS_PROXY", &proxy.url())])).await;
    servable(&rig).await;
    let before = rig.credentials().await;
    let port = proxy.stop().await;
    within(20, "a proxy_unreachable refresh", || {
        refreshes(&rig, "proxy_unreachable") >= 1.0
    })
    .await;
    let during = rig.credentials().await;
    assert_eq!((during.status, &during.body), (200, &before.body));
    let client = exchanger(
        &rig,
        from_env(&[("HTTPS_PROXY", &format!("http://127.0.0.1:{port}"))]),
    );
    let err = exchange(&rig, client).await.unwrap_err();
    assert_eq!(err.class(), "proxy_unreachable");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach the proxy http://127.0.0.1:{port} (from HTTPS_PROXY): "
        )),
        "{err}"
    );
    // Back on the same port: the next retry succeeds.
    let ok_before = refreshes(&rig, "ok");
    let back = Tinyproxy::start(ProxyOptions {
        port: Some(port),
        ..ProxyOptions::default()
    })
    .await;
    within(20, "a refresh through the restarted proxy", || {
        refreshes(&rig, "ok") > ok_before
    })
    .await;
    assert_eq!(back.connects(), vec![target(&rig)], "{}", back.log());
    rig.stop().await;
}

#[tokio::test]
async fn a_proxy_that_forbids_the_port_answers_403() {
    require!(tools::tinyproxy());
    // tinyproxy refuses CONNECT to ports not listed in ConnectPort.
    let proxy = Tinyproxy::start(ProxyOptions {
        connect_ports: vec![443],
        ..ProxyOptions::default()
    })
    .await;
    let rig = rig(ProxySettings::none()).await;
    let url = format!("http://user:pa55word@127.0.0.1:{}", proxy.port);
    let err = exchanger(&rig, from_env(&[("HTTPS_PROXY", &url)]))
        .exchange(&token(&rig))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "proxy_refused", "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "the proxy {} (from HTTPS_PROXY) refused the tunnel to {}: HTTP 403",
            proxy.url(),
            target(&rig)
        )
    );
    assert!(!format!("{err:?}").contains("pa55word"));
    rig.stop().await;
}
