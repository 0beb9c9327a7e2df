//! The proxy as the binary sees it: `HTTPS_PROXY`/`NO_PROXY` from the
//! environment, proxy credentials at trace level (never printed), `doctor`'s
//! proxy check, plain http through `HTTP_PROXY`, and node mode's key-set
//! fetch and exchange through the proxy. The proxy is tinyproxy (see
//! `tinyproxy.rs`); `standin.credagent.test` resolves only there, or in an
//! agent started with [`own_hosts`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use credagent::config::{OutboundConfig, ProxySettings};
use credagent::outbound::{read_body, Outbound};
use credagent_testkit::{Issuer, StandIn};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::support::{
    kubelet_swap, metric, mint, request, rs256_issuer, test_pki_for, ACCESS_KEY_ID,
};
use crate::tinyproxy::{own_hosts, ProxyOptions, Tinyproxy, STANDIN_HOST};
use crate::tools::{self, require};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");
const PASSWORD: &str = "Pr0xy-PaSsW0rd-MuSt-NoT-LeAk";

/// Every variable that could point the agent at a proxy.
const PROXY_VARS: [&str; 9] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "CREDAGENT_PROXY",
    "CREDAGENT_NO_PROXY",
];

/// A TLS stand-in named `standin.credagent.test`, its CA in a file, and a
/// token volume.
struct Site {
    standin: StandIn,
    issuer: Issuer,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
    pki: credagent_testkit::testing::TestPki,
    shutdown: CancellationToken,
}

impl Site {
    async fn start(issuer: Issuer, tls: bool) -> Self {
        let shutdown = CancellationToken::new();
        let pki = test_pki_for(&[STANDIN_HOST]);
        let standin = StandIn::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            crate::support::standin_config(&issuer, Duration::from_secs(3600), ""),
            tls.then(|| pki.server.clone()),
            shutdown.child_token(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).unwrap();
        kubelet_swap(
            &dir.path().join("tokens"),
            &mint(&issuer, "app", Duration::from_secs(3600)),
        );
        Self {
            standin,
            issuer,
            dir,
            ca_file,
            pki,
            shutdown,
        }
    }

    fn url(&self) -> String {
        self.standin.url().replacen("127.0.0.1", STANDIN_HOST, 1)
    }

    fn target(&self) -> String {
        format!("{STANDIN_HOST}:{}", self.standin.local_addr().port())
    }

    /// `credagent sidecar` flags for this site.
    fn sidecar_args(&self, listen: u16, admin: u16) -> Vec<String> {
        let d = self.dir.path();
        [
            "sidecar",
            "--exchange-url",
            &self.url(),
            "--ca-file",
            &self.ca_file.display().to_string(),
            "--token-file",
            &d.join("tokens/oidc-token").display().to_string(),
            "--auth-token-file",
            &d.join(format!("auth-{listen}")).display().to_string(),
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cmd` with exactly `env` for proxy variables.
fn with_proxy_env(mut cmd: Command, env: &[(&str, &str)]) -> Command {
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<crate::support::TestResponse> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    request(addr, None, "GET", path, headers, "").await.ok()
}

/// Waits until the agent's `/readyz` is 200.
async fn until_ready(admin: u16, child: &mut Child) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while get(admin, "/readyz", &[]).await.map(|r| r.status) != Some(200) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "credagent exited early"
        );
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, then everything it printed.
async fn stop(child: Child) -> String {
    let _ = crate::support::sigterm(child.id().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// A sidecar for `site` started by `cmd`; returns it once ready, with the
/// credentials it serves.
async fn served(site: &Site, cmd: Command) -> (Child, crate::support::TestResponse) {
    let (listen, admin) = (free_port(), free_port());
    let mut cmd = cmd;
    let mut child = cmd.args(site.sidecar_args(listen, admin)).spawn().unwrap();
    until_ready(admin, &mut child).await;
    let auth = std::fs::read_to_string(site.dir.path().join(format!("auth-{listen}"))).unwrap();
    let r = get(listen, "/v1/credentials", &[("authorization", &auth)])
        .await
        .unwrap();
    (child, r)
}

#[tokio::test]
async fn no_proxy_reaches_the_upstream_directly() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions::default()).await;
    let site = Site::start(rs256_issuer(), true).await;
    // Agents that resolve the stand-in's name themselves, like the proxy.
    let direct_ok = |no_proxy: &'static str| {
        let cmd = own_hosts(site.dir.path(), Path::new(BIN));
        with_proxy_env(
            cmd,
            &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", no_proxy)],
        )
    };
    let (child, r) = served(&site, direct_ok("")).await;
    assert_eq!(r.status, 200);
    stop(child).await;
    assert_eq!(
        proxy.connects(),
        vec![site.target()],
        "HTTPS_PROXY is used: {}",
        proxy.log()
    );
    let (child, r) = served(&site, direct_ok("localhost,.credagent.test")).await;
    assert_eq!(
        (r.status, r.json()["AccessKeyId"].as_str()),
        (200, Some(ACCESS_KEY_ID))
    );
    stop(child).await;
    assert_eq!(
        proxy.connects().len(),
        1,
        "NO_PROXY bypasses the proxy: {}",
        proxy.log()
    );
}

#[tokio::test]
async fn proxy_credentials_are_sent_and_never_printed() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions {
        basic_auth: Some(("credagent", PASSWORD)),
        ..ProxyOptions::default()
    })
    .await;
    let site = Site::start(rs256_issuer(), true).await;
    let with_creds = format!("http://credagent:{PASSWORD}@127.0.0.1:{}", proxy.port);
    let trace = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["--log-level", "trace", "--log-format", "text"]);
        with_proxy_env(cmd, env)
    };
    let (child, r) = served(&site, trace(&[("HTTPS_PROXY", &with_creds)])).await;
    assert_eq!(r.status, 200);
    let mut seen = stop(child).await;
    assert_eq!(proxy.connects(), vec![site.target()], "{}", proxy.log());

    // A wrong password (tinyproxy answers 401; 407 means none given), and
    // a log line naming the proxy.
    let wrong = format!("http://credagent:WrOnG-{PASSWORD}@127.0.0.1:{}", proxy.port);
    let (listen, admin) = (free_port(), free_port());
    let child = trace(&[("https_proxy", &wrong)])
        .args(site.sidecar_args(listen, admin))
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = get(admin, "/metrics", &[])
            .await
            .map(|r| r.body)
            .unwrap_or_default();
        if metric(&m, r#"credagent_refreshes_total{result="proxy_refused"}"#) >= Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no proxy_refused refresh: {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = stop(child).await;
    let line = logs
        .lines()
        .find(|l| l.contains("credential refresh failed"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("proxy_refused"), "{line}");
    assert!(
        line.contains(&format!("the proxy http://127.0.0.1:{} (from https_proxy) refused the tunnel to {}: HTTP 401 (the proxy did not accept the credentials in its URL)", proxy.port, site.target())),
        "{line}"
    );
    seen.push_str(&logs);

    // The configuration as printed, a bad proxy URL, and --help.
    let check = trace(&[("HTTPS_PROXY", &with_creds)])
        .args(site.sidecar_args(1, 2))
        .arg("--check-config")
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        printed.contains(&format!(
            "http://127.0.0.1:{} (from HTTPS_PROXY, with credentials)",
            proxy.port
        )),
        "{printed}"
    );
    seen.push_str(&printed);
    let bad = format!("https://credagent:{PASSWORD}@proxy:3128");
    let o = trace(&[("HTTPS_PROXY", &bad)])
        .args(site.sidecar_args(1, 2))
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(
            "error: invalid value for HTTPS_PROXY: TLS to the proxy (https://) is not supported"
        ),
        "{err}"
    );
    seen.push_str(&err);
    let o = trace(&[("HTTPS_PROXY", &with_creds), ("CREDAGENT_NO_PROXY", "true")])
        .args(site.sidecar_args(1, 2))
        .arg("--check-config")
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        printed.contains(
            "proxy: ProxySettings { https: None, http: None, no_proxy: None, disabled: true }"
        ),
        "{printed}"
    );
    let o = trace(&[])
        .args(site.sidecar_args(1, 2))
        .args(["--proxy", &with_creds, "--no-proxy"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(
        err,
        "error: invalid value for --no-proxy: give either --proxy or --no-proxy, not both\n"
    );
    seen.push_str(&err);
    let o = trace(&[("CREDAGENT_PROXY", &with_creds)])
        .args(["sidecar", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(help.contains("--proxy <URL>"), "{help}");
    seen.push_str(&help);

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("credagent:{PASSWORD}"));
    assert!(
        !seen.is_empty() && !seen.contains(PASSWORD) && !seen.contains(&basic),
        "the proxy password leaked"
    );
}

fn doctor(site: &Site, env: &[(&str, &str)], extra: &[&str]) -> Command {
    let d = site.dir.path();
    let mut cmd = with_proxy_env(Command::new(BIN), env);
    cmd.args([
        "doctor",
        "--exchange-url",
        &site.url(),
        "--admin-listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .arg("--ca-file")
    .arg(&site.ca_file)
    .arg("--token-file")
    .arg(d.join("tokens/oidc-token"))
    .arg("--auth-token-file")
    .arg(d.join("auth"))
    .args(extra);
    cmd
}

#[tokio::test]
async fn doctor_reports_the_proxy_and_its_tunnel() {
    require!(tools::tinyproxy());
    let open = Tinyproxy::start(ProxyOptions::default()).await;
    let strict = Tinyproxy::start(ProxyOptions {
        basic_auth: Some(("credagent", PASSWORD)),
        ..ProxyOptions::default()
    })
    .await;
    let site = Site::start(rs256_issuer(), true).await;
    let run = |env: Vec<(&'static str, String)>, extra: &'static [&'static str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut cmd = doctor(&site, &env, extra);
        async move { String::from_utf8_lossy(&cmd.output().await.unwrap().stdout).into_owned() }
    };
    let target = site.target();

    let out = run(vec![("HTTPS_PROXY", open.url())], &[]).await;
    assert!(
        out.contains(&format!(
            "  PASS  proxy              via {} (from HTTPS_PROXY): tunnel to {target} opens\n",
            open.url()
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "  PASS  exchange           GET exchange (the upstream chooses the lifetime), role "
        ),
        "{out}"
    );
    assert!(
        !out.contains("upstream reachable"),
        "the tunnel replaces the direct check: {out}"
    );

    let out = run(vec![("HTTPS_PROXY", strict.url())], &[]).await;
    assert!(out.contains(&format!("  FAIL  proxy              the proxy {} (from HTTPS_PROXY) refused the tunnel to {target}: HTTP 407", strict.url())), "{out}");
    assert!(
        out.contains("fix: give the proxy's user and password in its URL"),
        "{out}"
    );
    assert!(
        out.contains("  FAIL  exchange           the proxy"),
        "{out}"
    );
    assert!(out.contains("fix: see the proxy check above"), "{out}");

    let with_creds = format!("http://credagent:{PASSWORD}@127.0.0.1:{}", strict.port);
    let out = run(
        vec![("HTTPS_PROXY", open.url())],
        &["--proxy", "PLACEHOLDER"],
    )
    .await;
    assert!(
        out.contains(
            "FAIL  proxy              cannot reach the proxy http://PLACEHOLDER (from --proxy)"
        ),
        "--proxy wins: {out}"
    );
    let out = {
        let mut cmd = doctor(&site, &[("HTTPS_PROXY", &open.url())], &[]);
        cmd.args(["--proxy", &with_creds]);
        String::from_utf8_lossy(&cmd.output().await.unwrap().stdout).into_owned()
    };
    assert!(
        out.contains(&format!(
            "PASS  proxy              via {} (from --proxy): tunnel to {target} opens",
            strict.url()
        )),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");

    let out = run(vec![("HTTPS_PROXY", open.url())], &["--no-proxy"]).await;
    assert!(
        out.contains("  PASS  proxy              none (--no-proxy)\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  FAIL  upstream reachable cannot resolve {STANDIN_HOST}"
        )),
        "{out}"
    );
    let out = run(
        vec![("HTTPS_PROXY", open.url()), ("NO_PROXY", ".test".into())],
        &[],
    )
    .await;
    assert!(
        out.contains(&format!(
            "  PASS  proxy              none: {STANDIN_HOST} matches NO_PROXY\n"
        )),
        "{out}"
    );
}

#[tokio::test]
async fn plain_http_goes_through_http_proxy_in_absolute_form() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions {
        basic_auth: Some(("credagent", PASSWORD)),
        ..ProxyOptions::default()
    })
    .await;
    let site = Site::start(rs256_issuer(), false).await;
    let with_creds = format!("http://credagent:{PASSWORD}@127.0.0.1:{}", proxy.port);
    let settings =
        ProxySettings::from_env_vars(|n| (n == "HTTP_PROXY").then(|| with_creds.clone())).unwrap();
    let client = Outbound::new(&OutboundConfig {
        connect_timeout: Duration::from_secs(2),
        extra_roots: Vec::new(),
        proxy: settings,
    })
    .unwrap();
    let token = mint(&site.issuer, "app", Duration::from_secs(3600));
    let req = http::Request::get(site.url())
        .header("authorization", token)
        .body(Full::default())
        .unwrap();
    let rsp = client.send(req).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let body = read_body(rsp, 64 * 1024).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains(ACCESS_KEY_ID));
    let path = site.url();
    assert_eq!(
        proxy.requests(),
        vec![format!("GET {path} HTTP/1.1")],
        "{}",
        proxy.log()
    );
}

/// Serves `body` as `application/json` over TLS, to every connection.
async fn json_server(
    tls: Arc<rustls::ServerConfig>,
    body: String,
    shutdown: CancellationToken,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let rsp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(rsp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn node_mode_fetches_keys_and_exchanges_through_the_proxy() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions::default()).await;
    let issuer = Issuer::generate_es256("pods").unwrap();
    let site = Site::start(issuer, true).await;
    let jwks = serde_json::json!({"keys": [site.issuer.verifier().jwk().unwrap()]}).to_string();
    let jwks_port = json_server(site.pki.server.clone(), jwks, site.shutdown.clone()).await;
    let (listen, admin) = (free_port(), free_port());
    let mut child = with_proxy_env(Command::new(BIN), &[("HTTPS_PROXY", &proxy.url())])
        .args([
            "node",
            "--exchange-url",
            &site.url(),
            "--issuer",
            "https://oidc.standin.invalid/cluster",
        ])
        .args([
            "--jwks-url",
            &format!("https://{STANDIN_HOST}:{jwks_port}/jwks"),
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .arg("--ca-file")
        .arg(&site.ca_file)
        .spawn()
        .unwrap();
    until_ready(admin, &mut child).await;
    let token = mint(&site.issuer, "app", Duration::from_secs(3600));
    let host = format!("127.0.0.1:{listen}");
    let r = get(
        listen,
        "/v1/credentials",
        &[("host", &host), ("authorization", &token)],
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.json()["AccessKeyId"].as_str()),
        (200, Some(ACCESS_KEY_ID)),
        "{}",
        r.body
    );
    let logs = stop(child).await;
    let connects = proxy.connects();
    assert_eq!(
        connects,
        vec![format!("{STANDIN_HOST}:{jwks_port}"), site.target()],
        "keys, then the exchange, both through the proxy: {}\n{logs}",
        proxy.log()
    );
}
