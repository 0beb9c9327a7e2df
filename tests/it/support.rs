//! Shared test fixtures: a stand-in upstream that verifies RS256 tokens, a
//! kubelet-style token volume, and an in-process sidecar wired to both.
//!
//! The environment the tests read, all set by scripts/test.sh (`tools.rs`
//! has the details): `CREDAGENT_TEST_PYTHON`, `_TINYPROXY`, `_IP`,
//! `_UNSHARE`, `_CURL` name the programs some tests run (unset: looked for,
//! never installed; missing: the test is skipped, saying why), and
//! `CREDAGENT_TEST_REQUIRE_ALL=1` turns every such skip into a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use credagent::config::RefreshPolicy;
use credagent::config::{ProxySettings, SidecarConfig, UpstreamConfig};
use credagent::exchange::HttpExchanger;
use credagent::sidecar::{Options, Sidecar};
use credagent::token::TokenSourceConfig;
use credagent_testkit::kubelet;
use credagent_testkit::{Issuer, StandIn, StandInConfig, TokenSpec};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::paused::{off_clock, OffClock};
use crate::tools;

/// The test kit's PKI and HTTP client.
pub use credagent_testkit::testing::{request, test_pki, test_pki_for, TestResponse};

/// A test-only RSA key (see crates/testkit/fixtures/README.md).
pub const RS256_KEY: &[u8] = credagent_testkit::RS256_TEST_KEY;
/// The stand-in's keys.
pub const ACCESS_KEY_ID: &str = "CWAKIATESTKEY0000001";
pub const SECRET_ACCESS_KEY: &str = "sEcReT/aCcEsS+kEy+sHoUlD+nEvEr+lEaK0001";
pub const AUDIENCE: &str = "https://coreweave.com/iam";

/// The RS256 issuer standing in for the cluster's service-account signer.
pub fn rs256_issuer() -> Issuer {
    Issuer::from_rsa_pkcs8_der("test-rs256", RS256_KEY).expect("fixture key loads")
}

/// The stand-in the tests share: it accepts `issuer`'s tokens for
/// [`AUDIENCE`] and hands out the test keys for `lifetime`.
pub fn standin_config(issuer: &Issuer, lifetime: Duration, session_token: &str) -> StandInConfig {
    StandInConfig {
        org_id: "org".into(),
        verifiers: vec![issuer.verifier()],
        audience: Some(AUDIENCE.into()),
        lifetime,
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        session_token: session_token.into(),
        issuer: None,
    }
}

/// [`standin_config`]'s stand-in with hour-long keys and no session token,
/// on plain HTTP on loopback, until `shutdown`.
pub async fn hour_standin(issuer: &Issuer, shutdown: &CancellationToken) -> StandIn {
    StandIn::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        standin_config(issuer, Duration::from_secs(3600), ""),
        None,
        shutdown.child_token(),
    )
    .unwrap()
}

/// A k8s-shaped token for `sa`, signed by `issuer`, valid for `lifetime`.
pub fn mint(issuer: &Issuer, sa: &str, lifetime: Duration) -> String {
    let spec = TokenSpec {
        service_account: sa.into(),
        audience: AUDIENCE.into(),
        lifetime,
        ..TokenSpec::default()
    };
    issuer
        .service_account_token(&spec, SystemTime::now())
        .expect("mint")
}

/// Writes `token` into `dir` exactly as kubelet does (the shell port of
/// AtomicWriter, op for op).
pub fn kubelet_swap(dir: &Path, token: &str) {
    std::fs::create_dir_all(dir).expect("volume dir");
    let src = dir.with_extension(format!("src-{}", rand_suffix()));
    std::fs::write(&src, token).expect("write source");
    let script = Path::new(credagent_testkit::KUBELET_SWAP_SH);
    let status = std::process::Command::new("sh")
        .arg(script)
        .arg(dir)
        .arg("oidc-token")
        .arg(&src)
        .status()
        .expect("run kubelet-swap.sh");
    assert!(status.success(), "kubelet-swap.sh failed");
    std::fs::remove_file(&src).expect("remove source");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The node configuration `credagent node FLAGS` builds.
pub fn node_config(flags: &[&str]) -> credagent::config::NodeConfig {
    use clap::Parser as _;
    let mut argv = vec!["credagent", "node"];
    argv.extend_from_slice(flags);
    match credagent::cli::Cli::try_parse_from(argv)
        .expect("flags parse")
        .command
    {
        credagent::cli::Command::Node(args) => args.config().expect("valid node config"),
        _ => unreachable!("a node command"),
    }
}

/// How to start a [`Rig`].
pub struct RigOptions {
    pub lifetime: Duration,
    pub tls: bool,
    pub write_token: bool,
    pub token_poll: Option<Duration>,
    pub imds: Option<(std::net::SocketAddr, credagent::config::ImdsConfig)>,
    pub credentials_file: Option<credagent::config::FileSinkConfig>,
    pub credential_process_dir: Option<credagent::config::ProcessDirConfig>,
    pub max_connections: usize,
    /// The host name the sidecar's exchange URL names (the stand-in's
    /// certificate names it too; implies `tls`). Default: 127.0.0.1.
    pub upstream_host: Option<&'static str>,
    /// The sidecar's proxy settings. Default: none.
    pub proxy: ProxySettings,
    /// Use the POST exchange asking for this (`--key-lifetime`,
    /// `--key-attribute`). Default: the GET exchange.
    pub key: Option<credagent::config::KeyRequest>,
    /// The upstream timeout (of one exchange). Default: 5 s.
    pub upstream_timeout: Duration,
    /// The test runs on a paused clock: the sidecar's exchanges (its own
    /// HTTP client, built from the same settings) run off it, through
    /// [`OffClock`]. Default: false.
    pub paused: bool,
}

impl Default for RigOptions {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(3600),
            tls: false,
            write_token: true,
            token_poll: None,
            imds: None,
            credentials_file: None,
            credential_process_dir: None,
            max_connections: 4096,
            upstream_host: None,
            proxy: ProxySettings::none(),
            key: None,
            upstream_timeout: Duration::from_secs(5),
            paused: false,
        }
    }
}

/// A stand-in upstream, a token volume and a sidecar, all in-process.
pub struct Rig {
    pub standin: StandIn,
    pub issuer: Issuer,
    pub dir: tempfile::TempDir,
    pub token_dir: PathBuf,
    pub auth_file: PathBuf,
    pub sidecar: Sidecar,
    pub shutdown: CancellationToken,
    pub ca_pem_path: Option<PathBuf>,
    /// The exchange URL the sidecar was given.
    pub upstream_url: String,
    /// The stand-in's CA (with `tls`).
    pub ca_der: Option<rustls_pki_types::CertificateDer<'static>>,
}

impl Rig {
    pub async fn start(opts: RigOptions) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_dir = dir.path().join("tokens");
        let auth_file = dir.path().join("run/auth-token");
        let issuer = rs256_issuer();
        let shutdown = CancellationToken::new();
        let pki = match opts.upstream_host {
            Some(host) => Some(test_pki_for(&[host, "localhost", "127.0.0.1"])),
            None => opts.tls.then(test_pki),
        };
        let standin = StandIn::start(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            crate::support::standin_config(&issuer, opts.lifetime, ""),
            pki.as_ref().map(|p| p.server.clone()),
            shutdown.child_token(),
        )
        .expect("stand-in starts");
        let mut extra_roots = Vec::new();
        let mut ca_pem_path = None;
        if let Some(p) = &pki {
            extra_roots.push(p.ca_der.clone());
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, &p.ca_pem).expect("write CA");
            ca_pem_path = Some(path);
        }
        if opts.write_token {
            kubelet::atomic_write(
                &token_dir,
                "oidc-token",
                mint(&issuer, "app", Duration::from_secs(3600)).as_bytes(),
                0o644,
            )
            .expect("token volume");
        }
        let mut url = standin.url();
        if let Some(host) = opts.upstream_host {
            url = url.replacen("127.0.0.1", host, 1);
        }
        let get_url: http::Uri = url.parse().expect("url");
        let (exchange_url, method) = match &opts.key {
            None => (get_url, credagent::config::ExchangeMethod::Get),
            Some(key) => {
                let (post_url, org_id) =
                    credagent::config::post_target(&get_url).expect("post url");
                let method = credagent::config::ExchangeMethod::Post {
                    org_id,
                    key: key.clone(),
                };
                (post_url, method)
            }
        };
        let config = SidecarConfig {
            token_file: token_dir.join("oidc-token"),
            upstream: UpstreamConfig {
                url: exchange_url,
                connect_timeout: Duration::from_secs(2),
                timeout: opts.upstream_timeout,
                extra_roots,
                proxy: opts.proxy.clone(),
                method,
            },
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            auth_token_file: auth_file.clone(),
            refresh: RefreshPolicy::default(),
            imds: opts.imds.clone(),
            credentials_file: opts.credentials_file.clone(),
            credential_process_dir: opts.credential_process_dir.clone(),
            max_connections: opts.max_connections,
        };
        let mut token = TokenSourceConfig::new(config.token_file.clone());
        token.missing_interval = Duration::from_millis(50);
        token.poll_interval = opts.token_poll;
        let exchange = opts.paused.then(|| {
            let client = HttpExchanger::new(&config.upstream).expect("upstream client");
            Arc::new(OffClock(Arc::new(client))) as Arc<dyn credagent::exchange::Exchange>
        });
        let sidecar = Sidecar::start(
            &config,
            Options {
                token: Some(token),
                exchange,
                ..Options::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("sidecar starts");
        Rig {
            standin,
            issuer,
            dir,
            token_dir,
            auth_file,
            sidecar,
            shutdown,
            ca_pem_path,
            upstream_url: url,
            ca_der: pki.as_ref().map(|p| p.ca_der.clone()),
        }
    }

    pub fn auth_token(&self) -> String {
        std::fs::read_to_string(&self.auth_file).expect("auth token file")
    }

    /// GET `path` on the credentials listener with `auth` (None: no header).
    pub async fn get(&self, path: &str, auth: Option<&str>) -> TestResponse {
        get(self.sidecar.credentials_addr, path, auth)
            .await
            .expect("credentials listener answers")
    }

    /// GET the credentials with the right auth token.
    pub async fn credentials(&self) -> TestResponse {
        let auth = self.auth_token();
        self.get("/v1/credentials", Some(&auth)).await
    }

    /// GET `path` on the admin listener.
    pub async fn admin(&self, path: &str) -> TestResponse {
        get(self.sidecar.admin_addr, path, None)
            .await
            .expect("admin listener answers")
    }

    /// Rotates the projected token (kubelet-style) and returns the new one.
    pub fn rotate(&self, sa: &str) -> String {
        let token = mint(&self.issuer, sa, Duration::from_secs(3600));
        kubelet_swap(&self.token_dir, &token);
        token
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.sidecar.wait().await;
    }
}

/// GET `path` on `addr` with `auth` as the `Authorization` value, over a
/// fresh connection, [`off_clock`] (so it is safe on a paused clock).
pub async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> Result<TestResponse, String> {
    let (path, auth) = (path.to_owned(), auth.map(str::to_owned));
    off_clock(async move {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        request(addr, None, "GET", &path, &headers, "").await
    })
    .await
}

/// The value of one sample line of the Prometheus text format, e.g.
/// `credagent_refreshes_total{result="ok"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (bounded) until `cond` holds, checking every 10 ms: for state only
/// observable by looking (metrics, files), never as a fixed sleep.
pub async fn until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The registry's text as a String.
pub fn scrape(sidecar: &Sidecar) -> String {
    String::from_utf8(sidecar.metrics.encode()).expect("utf-8 metrics")
}

/// Runs `script` with botocore ([`tools::python`]: the test requires it
/// first), in an environment holding only `env` (plus PATH and a
/// HOME/config isolated in `home`), and parses the one JSON line it prints.
/// Off the test's clock ([`off_clock`]): a paused clock stands still while
/// Python runs.
pub async fn botocore_json(script: &str, home: &Path, env: &[(&str, String)]) -> serde_json::Value {
    let python = tools::python().unwrap_or_else(|missing| panic!("{missing}"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = off_clock(async move { cmd.output().await })
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("bad output: {stdout}"))
}

/// A TCP port for a child process to bind later (on 127.0.0.1 and 0.0.0.0).
/// Taken below the kernel's ephemeral range, so that no `bind(:0)` in a
/// parallel test (or the client side of any connection) can take it between
/// now and the child's bind; each call in this process gets a different one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000, ephemeral_start.clamp(10_001, 65_535));
    let span = high - low;
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = low + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("below 65536");
        let free = |ip: &str| std::net::TcpListener::bind((ip, port)).is_ok();
        if free("127.0.0.1") && free("0.0.0.0") {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM to `pid` with the shell's own `kill` (sh is always there;
/// procps's `kill` may not be). Returns whether it was delivered.
pub fn sigterm(pid: u32) -> bool {
    std::process::Command::new("sh")
        .args(["-c", r#"kill -TERM "$1""#, "sh"])
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}
