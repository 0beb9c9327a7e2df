//! The request routers behind the real hyper HTTP/1 server connection: the
//! input is the raw bytes a client sends on one connection (so pipelined
//! requests, HTTP/1.0, bodies and malformed heads are all in scope).
//!
//! Each input is served three times, over an in-memory `tokio::io::duplex`
//! with the listener's own connection settings (`server::serve`), by a
//! client that sends the input and then waits, like an SDK, without closing
//! its side. Time is tokio's paused clock, which jumps ahead whenever
//! everything waits: the connection ends when the server gives up on the
//! next request head (`HEAD_TIMEOUT`), instantly in real time.
//! - `CredentialsRoutes` (sidecar) whose store holds credentials,
//! - `CredentialsRoutes` with an empty store,
//! - `NodeRoutes` whose identity cache exchanges through a stub upstream that
//!   fails at once (401/403-style for tokens of even length, 503-style
//!   otherwise), with a fixed clock.
//!
//! Checks, besides "never panics" and "the server closes every connection
//! within a minute of (virtual) idleness":
//! every status a route returns is one it documents; 200 only for
//! `GET /v1/credentials` with the exact auth token and credentials held; 405
//! carries `Allow: GET`; every status on the wire is a route's or one of
//! hyper's own for malformed requests (400, 414, 431); every request the
//! service saw was answered on the wire.
//!
//! `CREDAGENT_FUZZ_DEBUG=1 <binary> FILE` prints the statuses of each run.
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use clap::Parser as _;
use credagent::clock::Clock;
use credagent::credentials::Credentials;
use credagent::exchange::{BoxFuture, Exchange, ExchangeError};
use credagent::node::routes::NodeRoutes;
use credagent::secret::Secret;
use credagent::server::{
    AuthToken, CredentialsRoutes, Routes, CREDENTIALS_MAX_HEAD_BYTES, CREDENTIALS_PATH,
    HEAD_TIMEOUT,
};
use credagent::store::Store;
use http::header::{ALLOW, AUTHORIZATION};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The sidecar's auth token (also in the seed corpus and the dictionary).
const AUTH_TOKEN: &str = "fz7Q2mKx9vLp4RtW8nYc3HbJ6sDg1aEuTq5V";
/// Node mode's wall clock (2027-01-15); seed tokens expire in 2033.
const NOW_UNIX: u64 = 1_800_000_000;
/// Virtual time: far past `HEAD_TIMEOUT`.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);

const SIDECAR_STATUSES: &[u16] = &[200, 401, 404, 405, 503];
const NODE_STATUSES: &[u16] = &[400, 401, 403, 404, 405, 503];
/// What hyper answers by itself to a request it cannot parse.
const HYPER_STATUSES: &[u16] = &[400, 414, 431];

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
    }
}

/// An upstream that refuses at once.
struct Refusing;

impl Exchange for Refusing {
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>> {
        let err = if token.len().is_multiple_of(2) {
            ExchangeError::AuthRejected { status: 403 }
        } else {
            ExchangeError::Upstream { status: 503 }
        };
        Box::pin(std::future::ready(Err(err)))
    }
}

struct Rig {
    rt: Runtime,
    full: Arc<CredentialsRoutes>,
    empty: Arc<CredentialsRoutes>,
    node: Arc<NodeRoutes>,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let _guard = rt.enter();

        let dir =
            std::env::temp_dir().join(format!("credagent-fuzz-router-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let token_file = dir.join("auth-token");
        std::fs::write(&token_file, AUTH_TOKEN).expect("auth token file");
        let auth = AuthToken::load_or_create_blocking(&token_file).expect("auth token");
        let _ = std::fs::remove_dir_all(&dir);

        // Every connection advances the paused clock by a few seconds:
        // a century stays servable for any run.
        let lifetime = Duration::from_secs(100 * 365 * 24 * 3600);
        let credentials = Credentials {
            access_key_id: "CWFUZZACCESSKEYID".into(),
            secret_access_key: Secret::new("fuzzSecretAccessKey"),
            session_token: Secret::new(""),
            expiration: (SystemTime::now() + lifetime).into(),
            role: None,
            account_id: None,
            server_date: None,
        };
        let full = Store::new();
        full.publish(
            credentials,
            tokio::time::Instant::now(),
            lifetime,
            Duration::from_secs(300),
        );

        // The node agent as `credagent node` builds it, over an upstream
        // that refuses every token.
        let cli = credagent::cli::Cli::try_parse_from([
            "credagent",
            "node",
            "--exchange-url",
            "http://127.0.0.1:1/unused",
            "--max-identities",
            "64",
            "--upstream-concurrency",
            "4",
            "--fill-wait",
            "1s",
        ])
        .expect("node flags");
        let credagent::cli::Command::Node(args) = cli.command else {
            unreachable!("a node command")
        };
        let config = args.config().expect("node config");
        let service = credagent::node::Service::new(
            &config,
            Some(Arc::new(Refusing)),
            Some(Arc::new(FixedClock)),
            Some(Arc::new(|| 0.0)),
            tokio_util::sync::CancellationToken::new(),
        )
        .expect("node service");
        let listen: Vec<SocketAddr> = vec![
            "169.254.170.23:80".parse().unwrap(),
            "[fd00:ec2::23]:80".parse().unwrap(),
        ];
        let node: NodeRoutes = service.routes(&listen);
        Rig {
            rt,
            full: Arc::new(CredentialsRoutes {
                store: full,
                auth: auth.clone(),
            }),
            empty: Arc::new(CredentialsRoutes {
                store: Store::new(),
                auth,
            }),
            node: Arc::new(node),
        }
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    SidecarFull,
    SidecarEmpty,
    Node,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::SidecarFull => "sidecar with credentials",
        Kind::SidecarEmpty => "sidecar without credentials",
        Kind::Node => "node",
    }
}

/// Checks one answer of the routes against what they document.
fn check_answer(kind: Kind, req: &Request<Incoming>, status: StatusCode, allow: Option<&[u8]>) {
    let code = status.as_u16();
    let documented = match kind {
        Kind::SidecarFull | Kind::SidecarEmpty => SIDECAR_STATUSES,
        Kind::Node => NODE_STATUSES,
    };
    assert!(documented.contains(&code), "undocumented status {code}");
    if code == 405 {
        assert_eq!(allow, Some(&b"GET"[..]), "405 without Allow: GET");
    }
    if code == 200 {
        assert!(kind == Kind::SidecarFull, "200 without credentials");
        assert_eq!(req.uri().path(), CREDENTIALS_PATH, "200 for another path");
        assert_eq!(req.method(), Method::GET, "200 for another method");
        let presented = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        assert_eq!(
            presented,
            Some(AUTH_TOKEN.as_bytes()),
            "200 without the auth token"
        );
    }
}

/// Serves `input` as one connection; returns the bytes written back and
/// how many requests reached the routes.
async fn serve_one<R: Routes>(routes: Arc<R>, kind: Kind, input: &[u8]) -> (Vec<u8>, usize) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let seen = Arc::new(Mutex::new(0usize));
    let counter = seen.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let answer = routes.route(&req, "10.0.0.1:40000".parse().expect("a socket address"));
        let counter = counter.clone();
        async move {
            let (_route, rsp) = answer.await;
            let allow = rsp.headers().get(ALLOW).map(|v| v.as_bytes().to_vec());
            check_answer(kind, &req, rsp.status(), allow.as_deref());
            *counter.lock().unwrap() += 1;
            Ok::<_, Infallible>(rsp)
        }
    });
    // The listener's parser settings, as in `server::serve` (which bounds
    // each phase's time on the connection's I/O; hyper's header timer
    // stands in for that here).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(CREDENTIALS_MAX_HEAD_BYTES)
        .max_buf_size(CREDENTIALS_MAX_HEAD_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(server), svc);
    let (mut rd, mut wr) = tokio::io::split(client);
    let write = async move {
        // The server may close first (a malformed request): not an error here.
        let _ = wr.write_all(input).await;
        // Keep our side open until the server closes (a half-close would
        // make hyper drop the last request unanswered).
        wr
    };
    let read = async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    };
    let (_result, _wr, out) = tokio::join!(conn, write, read);
    let n = *seen.lock().unwrap();
    (out, n)
}

/// The status of every response on the wire (responses start with
/// `HTTP/1.x NNN`; no body the routes send contains `HTTP/1.`).
fn wire_statuses(out: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut i = 0;
    while let Some(pos) = out[i..].windows(7).position(|w| w == b"HTTP/1.") {
        let at = i + pos;
        let line = &out[at..out.len().min(at + 12)];
        let code = line
            .get(9..12)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("malformed status line {:?}", String::from_utf8_lossy(line)));
        statuses.push(code);
        i = at + 7;
    }
    statuses
}

fn run<R: Routes>(rig: &Rig, routes: &Arc<R>, kind: Kind, input: &[u8]) {
    let (out, seen) = rig
        .rt
        .block_on(async {
            tokio::time::timeout(CONNECTION_DEADLINE, serve_one(routes.clone(), kind, input)).await
        })
        .expect("the connection did not finish");
    let statuses = wire_statuses(&out);
    if std::env::var_os("CREDAGENT_FUZZ_DEBUG").is_some() {
        eprintln!(
            "{}: {seen} routed, on the wire {statuses:?}",
            kind_name(kind)
        );
    }
    let documented = match kind {
        Kind::SidecarFull | Kind::SidecarEmpty => SIDECAR_STATUSES,
        Kind::Node => NODE_STATUSES,
    };
    for code in &statuses {
        assert!(
            documented.contains(code) || HYPER_STATUSES.contains(code),
            "status {code} on the wire"
        );
    }
    assert!(
        statuses.len() >= seen,
        "{seen} requests routed but {} answered",
        statuses.len()
    );
}

fuzz_target!(|input: &[u8]| {
    let rig = rig();
    run(rig, &rig.full, Kind::SidecarFull, input);
    run(rig, &rig.empty, Kind::SidecarEmpty, input);
    run(rig, &rig.node, Kind::Node, input);
});
