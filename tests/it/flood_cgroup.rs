//! Issue 21, item 11: each mode's binary inside a memory cgroup with the
//! limit it ships with, under the worst flood an unauthenticated client
//! can send it, while the clients it exists for keep being served. The
//! process must survive without an OOM kill, its peak charge (kernel memory
//! included) must stay within three quarters of the limit (the budget of
//! docs/deploy.md, "Sizing": the worst case plus a third), and every
//! request of a real client (credentials, kubelet's probe, IMDS) must be
//! answered while the flood is held and after it. The flood runs twice, so
//! that what the allocator kept after the first counts against the second.
//!
//! - The sidecar at its defaults in the limit the webhook gives injected
//!   sidecars, its admin listener on 0.0.0.0 (as the chart runs it) and the
//!   IMDS emulation on: every listener flooded past its cap at once.
//! - The node agent at its defaults in the DaemonSet's limit: its
//!   credentials listener held at `--max-connections` from several
//!   addresses (each under `--max-connections-per-source`) with partial
//!   heads just short of the 16 KiB head limit, its admin listener
//!   flooded too, and forged tokens (each a miss) sent meanwhile. At the
//!   chart's defaults there is no local verification: the forged tokens
//!   reach the stand-in upstream, which refuses them.
//!
//! The limits are read from what ships (the chart's rendering at its
//! defaults, the rendered DaemonSet), the caps from the binary's own
//! defaults: raising a default past what its limit holds fails here. The
//! binary is this build's, or `CREDAGENT_TEST_FLOOD_BIN` (to measure the
//! release or static musl build). Needs root and cgroup v1 (`cgroup.rs`);
//! skipped with the reason otherwise. Each run prints its figures
//! (`--nocapture`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use credagent::server::{
    ADMIN_MAX_CONNECTIONS, CREDENTIALS_MAX_HEAD_BYTES, IMDS_MAX_CONNECTIONS, SMALL_MAX_HEAD_BYTES,
};
use credagent_testkit::{Fault, Issuer, StandIn};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cgroup::{node_limit, sidecar_limit, unavailable, Cgroup, Confined, Usage};
use crate::flood::{open_descriptors, peak_rss_kib, sources, Flood, Forgers, Shape};
use crate::support::{free_port, kubelet_swap, metric, mint, request, TestResponse};

/// How long a real client's request may take before the test calls it
/// unanswered (a guard against hanging, not a latency bound).
const ANSWER_GUARD: Duration = Duration::from_secs(30);
/// How many times each flood runs.
const ROUNDS: usize = 2;

/// The binary under test.
fn binary() -> PathBuf {
    std::env::var_os("CREDAGENT_TEST_FLOOD_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_credagent").into(), PathBuf::from)
}

/// `credagent ARGS`'s flags as the binary parses them (its defaults for
/// what is not given).
fn parsed(args: &[String]) -> credagent::cli::Command {
    use clap::Parser as _;
    let argv = std::iter::once("credagent").chain(args.iter().map(String::as_str));
    credagent::cli::Cli::try_parse_from(argv)
        .expect("flags parse")
        .command
}

/// A loopback address with a port free for the agent.
fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The stand-in upstream, in this process (outside the cgroup).
fn standin(shutdown: &CancellationToken) -> (StandIn, Issuer) {
    let issuer = crate::support::rs256_issuer();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let standin = StandIn::start(
        TcpListener::from_std(listener).unwrap(),
        crate::support::standin_config(&issuer, Duration::from_secs(3600), "session"),
        None,
        shutdown.child_token(),
    )
    .unwrap();
    (standin, issuer)
}

/// Starts `credagent ARGS` in `cgroup`; returns once its admin listener at
/// `admin` says it is ready.
async fn start(cgroup: &Cgroup, args: &[String], admin: SocketAddr, log: PathBuf) -> Confined {
    let mut agent = cgroup.spawn(binary(), args, log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while request(admin, None, "GET", "/readyz", &[], "")
        .await
        .map(|r| r.status)
        != Ok(200)
    {
        agent.alive(cgroup);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {}",
            agent.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent
}

/// One real client's request, answered (within [`ANSWER_GUARD`]).
async fn answered(
    what: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    tokio::time::timeout(ANSWER_GUARD, request(addr, None, method, path, headers, ""))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// One round of checks while flooded: credentials from `listen` (with
/// `headers`: the auth token, or a Pod's token), kubelet's probe on
/// `admin`, and the agent still alive.
async fn still_serving(
    what: &str,
    listen: SocketAddr,
    headers: &[(&str, &str)],
    admin: SocketAddr,
    agent: &mut Confined,
    cgroup: &Cgroup,
) {
    let creds = answered(what, listen, "GET", "/v1/credentials", headers).await;
    assert_eq!(creds.status, 200, "{what}: {}", creds.body);
    assert!(creds.json()["AccessKeyId"].is_string());
    let probe = answered("kubelet's probe", admin, "GET", "/healthz", &[]).await;
    assert_eq!(probe.status, 200);
    agent.alive(cgroup);
}

/// Waits (bounded) until `done` says so, failing with its last reason if
/// it never does or if the agent exits first.
async fn until(
    agent: &mut Confined,
    cgroup: &Cgroup,
    mut done: impl AsyncFnMut() -> Result<(), String>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Err(why) = done().await {
        agent.alive(cgroup);
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}; {}",
            cgroup.usage()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `agent` holds at least `n` descriptors (a flood's
/// connections accepted).
async fn until_holding(agent: &mut Confined, cgroup: &Cgroup, n: usize) {
    let pid = agent.pid;
    until(agent, cgroup, async || match open_descriptors(pid) {
        held if held >= n => Ok(()),
        held => Err(format!("holds {held} descriptors, never {n}")),
    })
    .await;
}

/// Waits until the agent's listeners hold no connection but the one asking
/// (`credagent_open_connections` on `admin`).
async fn until_flood_closed(agent: &mut Confined, cgroup: &Cgroup, admin: SocketAddr) {
    until(agent, cgroup, async || {
        let metrics = answered("/metrics", admin, "GET", "/metrics", &[]).await;
        match metric(&metrics.body, "credagent_open_connections") {
            Some(open) if open <= 1.0 => Ok(()),
            open => Err(format!("connections still open: {open:?}")),
        }
    })
    .await;
}

/// Asserts what the suite promises of a flooded process: alive, never
/// OOM-killed, never at its limit, and its peak inside the budget
/// docs/deploy.md ("Sizing") sizes the limit from: the worst case plus a
/// third fits the limit, so the worst case is at most three quarters of it.
fn assert_within(cgroup: &Cgroup, agent: &mut Confined, what: &str) -> Usage {
    agent.alive(cgroup);
    let usage = cgroup.usage();
    assert_eq!(usage.oom_kills, 0, "{what}: OOM kill; {usage}");
    assert_eq!(usage.failcnt, 0, "{what}: reached its limit; {usage}");
    assert!(usage.peak < usage.limit, "{what}: {usage}");
    assert!(
        usage.peak <= usage.limit / 4 * 3,
        "{what}: past the budget (three quarters of the limit); {usage}"
    );
    usage
}

/// How many times its cap each small listener (admin, IMDS) is flooded
/// with, of each shape: enough that without its cap it would take the
/// process past its limit.
const SMALL_FLOOD: usize = 4;

/// What the flood of a small listener asks for: idle connections, partial
/// heads.
type Paths = [&'static str; 2];
const ADMIN_PATHS: Paths = ["/healthz", "/metrics"];
const IMDS_PATHS: Paths = ["/latest/meta-data/", "/latest/api/token"];

/// A small listener (admin, IMDS) with cap `cap` flooded from 64
/// addresses of `127.0.NET.0/24` (as many neighbouring Pods; kubelet's
/// address is another): [`SMALL_FLOOD`] times its cap of idle keep-alive
/// connections, as many of partial heads just short of its head limit.
/// Returns how many.
fn flood_small(flood: &mut Flood, addr: SocketAddr, cap: usize, net: u8, paths: Paths) -> usize {
    let (from, n) = (sources(net, 64), SMALL_FLOOD * cap);
    flood.spawn(addr, &from, n, paths[0], Shape::Idle);
    let partial = Shape::Partial(SMALL_MAX_HEAD_BYTES - 200);
    flood.spawn(addr, &from, n, paths[1], partial);
    2 * n
}

/// A real client of the IMDS emulation: a session token, the role, its
/// credentials.
async fn imds_credentials(imds: SocketAddr) {
    let host = imds.to_string();
    let ttl = ("x-aws-ec2-metadata-token-ttl-seconds", "60");
    let token = answered(
        "IMDS token",
        imds,
        "PUT",
        "/latest/api/token",
        &[("host", &host), ttl],
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.body);
    let session = [
        ("host", host.as_str()),
        ("x-aws-ec2-metadata-token", &token.body),
    ];
    let path = "/latest/meta-data/iam/security-credentials/";
    let role = answered("IMDS role", imds, "GET", path, &session).await;
    assert_eq!(role.status, 200, "{}", role.body);
    let path = format!("{path}{}", role.body.trim());
    let creds = answered("IMDS credentials", imds, "GET", &path, &session).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    assert!(creds.json()["AccessKeyId"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_keeps_serving_inside_its_memory_limit_with_every_listener_flooded() {
    let cgroup = match Cgroup::create("flood-sidecar", sidecar_limit()) {
        Ok(c) => c,
        Err(reason) => return unavailable(&reason),
    };
    let shutdown = CancellationToken::new();
    let (standin, issuer) = standin(&shutdown);
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("tokens");
    kubelet_swap(&volume, &mint(&issuer, "app", Duration::from_secs(3600)));
    let auth_file = dir.path().join("auth-token");
    let (listen, imds) = (loopback(), loopback());
    let admin = loopback();
    let args: Vec<String> = [
        "sidecar",
        "--token-file",
        &volume.join("oidc-token").to_string_lossy(),
        "--exchange-url",
        &standin.url(),
        "--auth-token-file",
        &auth_file.to_string_lossy(),
        "--listen",
        &listen.to_string(),
        "--admin-listen",
        &format!("0.0.0.0:{}", admin.port()),
        "--imds-listen",
        &imds.to_string(),
    ]
    .map(str::to_owned)
    .into();
    let credagent::cli::Command::Sidecar(flags) = parsed(&args) else {
        unreachable!("a sidecar command")
    };
    let cap = flags.max_connections;
    let mut agent = start(&cgroup, &args, admin, dir.path().join("log")).await;
    let auth = std::fs::read_to_string(&auth_file).unwrap();
    let mut figures = vec![format!("idle {}", cgroup.usage())];
    let baseline = open_descriptors(agent.pid);

    for round in 1..=ROUNDS {
        // Every listener at once, each past its cap.
        let mut flood = Flood::default();
        let n = cap + cap / 8;
        let partial = Shape::Partial(CREDENTIALS_MAX_HEAD_BYTES - 200);
        let reopened = flood.spawn(listen, &sources(1, 8), n, "/v1/credentials", partial);
        let admin_n = flood_small(&mut flood, admin, ADMIN_MAX_CONNECTIONS, 2, ADMIN_PATHS);
        let imds_n = flood_small(&mut flood, imds, IMDS_MAX_CONNECTIONS, 3, IMDS_PATHS);
        let total = n + admin_n + imds_n;
        until_holding(&mut agent, &cgroup, baseline + cap).await;

        // While it is held, until each connection to the credentials
        // listener has been closed and reopened once on average:
        // credentials and kubelet's probe, again and again, and an IMDS
        // client once (the flooded IMDS listener makes it wait in the
        // kernel's backlog: seconds).
        imds_credentials(imds).await;
        let mut checks = 0;
        while reopened.get() < 2 * n || checks < 3 {
            let auth = [("authorization", auth.as_str())];
            still_serving("credentials", listen, &auth, admin, &mut agent, &cgroup).await;
            checks += 1;
        }
        let held = assert_within(&cgroup, &mut agent, "flooded");
        let opened = reopened.get();
        flood.stop().await;
        until_flood_closed(&mut agent, &cgroup, admin).await;
        let auth = [("authorization", auth.as_str())];
        let creds = answered("credentials after", listen, "GET", "/v1/credentials", &auth).await;
        assert_eq!(creds.status, 200);
        let after = assert_within(&cgroup, &mut agent, "after the flood");
        figures.push(format!(
            "flood {round} ({total} connections, {opened} opened on the credentials listener, {checks} rounds of checks answered; VmHWM {} KiB): {held}; after: {after}",
            peak_rss_kib(agent.pid)
        ));
    }
    println!(
        "sidecar (--max-connections {cap}) in {} MiB:\n  {}",
        cgroup.limit() >> 20,
        figures.join("\n  ")
    );
    drop(agent);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_agent_keeps_serving_inside_its_memory_limit_at_its_connection_cap() {
    let cgroup = match Cgroup::create("flood-node", node_limit()) {
        Ok(c) => c,
        Err(reason) => return unavailable(&reason),
    };
    let shutdown = CancellationToken::new();
    let (standin, issuer) = standin(&shutdown);
    // An upstream taking a moment, so that forged tokens' exchanges overlap.
    standin.set_sticky_fault(Some(Fault::Delay(Duration::from_millis(200))));
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (loopback(), loopback());
    let args: Vec<String> = [
        "node",
        "--exchange-url",
        &standin.url(),
        "--listen",
        &listen.to_string(),
        "--admin-listen",
        &format!("0.0.0.0:{}", admin.port()),
    ]
    .map(str::to_owned)
    .into();
    let credagent::cli::Command::Node(flags) = parsed(&args) else {
        unreachable!("a node command")
    };
    let (cap, per_source) = (flags.max_connections, flags.max_connections_per_source);
    let mut agent = start(&cgroup, &args, admin, dir.path().join("log")).await;
    let mut figures = vec![format!("idle {}", cgroup.usage())];
    let baseline = open_descriptors(agent.pid);
    let host = listen.to_string();
    let pod = mint(&issuer, "app", Duration::from_secs(3600));
    let pod = [("host", host.as_str()), ("authorization", pod.as_str())];
    // Twice as many addresses as it takes to fill it, each under its
    // per-source cap.
    let from = sources(1, u8::try_from(2 * cap.div_ceil(per_source)).unwrap());
    let n = cap + cap / 16;
    assert!(n.div_ceil(from.len()) <= per_source);

    for round in 1..=ROUNDS {
        let mut flood = Flood::default();
        let partial = Shape::Partial(CREDENTIALS_MAX_HEAD_BYTES - 200);
        let reopened = flood.spawn(listen, &from, n, "/v1/credentials", partial);
        let total = n + flood_small(&mut flood, admin, ADMIN_MAX_CONNECTIONS, 2, ADMIN_PATHS);
        let forgers = Forgers::start(listen, &sources(3, 8), 64);
        until_holding(&mut agent, &cgroup, baseline + cap).await;

        // While it is held, until each connection to the credentials
        // listener has been closed and reopened once on average: a Pod's
        // credentials, kubelet's probe.
        let mut checks = 0;
        while reopened.get() < 2 * n || checks < 3 {
            still_serving(
                "a Pod's credentials",
                listen,
                &pod,
                admin,
                &mut agent,
                &cgroup,
            )
            .await;
            checks += 1;
        }
        let held = assert_within(&cgroup, &mut agent, "flooded");
        let opened = reopened.get();
        let forged = forgers.stop().await;
        // Misses the upstream refused, never credentials.
        assert!(
            forged.get(&403).is_some_and(|n| *n > 0) && !forged.contains_key(&200),
            "{forged:?}"
        );
        flood.stop().await;
        until_flood_closed(&mut agent, &cgroup, admin).await;
        let creds = answered(
            "a Pod's credentials after",
            listen,
            "GET",
            "/v1/credentials",
            &pod,
        )
        .await;
        assert_eq!(creds.status, 200);
        let after = assert_within(&cgroup, &mut agent, "after the flood");
        figures.push(format!(
            "flood {round} ({total} connections from {} addresses, {opened} opened on the credentials listener, forged tokens answered {forged:?}, {checks} rounds of checks answered; VmHWM {} KiB): {held}; after: {after}",
            from.len(),
            peak_rss_kib(agent.pid)
        ));
    }
    println!(
        "node (--max-connections {cap}, {per_source} per source) in {} MiB:\n  {}",
        cgroup.limit() >> 20,
        figures.join("\n  ")
    );
    drop(agent);
    shutdown.cancel();
}
