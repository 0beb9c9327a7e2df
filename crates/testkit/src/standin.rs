//! A local stand-in for the CoreWeave AI Object Storage temporary-credentials endpoint.
//!
//! It serves `GET /v1/cwobject/temporary-credentials/oidc/{ORG_ID}` the way the upstream is
//! documented to (research/coreweave-api.md). The raw JWT is the whole `Authorization` value, with
//! no `Bearer`. The 200 body is PascalCase (`AccessKeyId`, `SecretAccessKey`, `Token` (empty by
//! default), `Expiration` (`YYYY-MM-DDTHH:MM:SSZ`), `attributes.cw-role` = `<iss>:<sub>`). A bad token
//! gets a 401 `{"code":"unauthenticated","message":…}` whose message never repeats the token.
//!
//! This is a test double for `credagent demo`, the integration tests, the bench and the
//! separate-process interoperability rig (`credagent-standin`). Tests can inject faults (status codes, throttling, delays, hangs, raw
//! bodies, dropped connections), rotate the keys it hands out, and count the calls. Another process
//! does the same through the unauthenticated JSON control API under `/_standin/` (see `control`).
//! Bind it to loopback only.
//!
//! # Layout
//! - [`crate::jwt`]: [`Issuer`] mints service-account-shaped JWTs; [`Verifier`] checks them.
//! - `serve`: the accept loop and per-connection tasks.
//! - `service`: the credential endpoint and fault injection.
//! - `control`: the `/_standin/` control API.
//! - `tls`: building a rustls `ServerConfig` from PEM files or DER.
//! - `cli`: [`StandInArgs`] and [`run`], the `credagent-standin` process entry point.

use std::{
    collections::VecDeque,
    fmt,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, SystemTime},
};

use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::jwt::{Issuer, Verifier};
use crate::secret::{Secret, REDACTED};

mod cli;
mod control;
mod serve;
mod service;
#[cfg(test)]
mod tests;
mod tls;

pub use cli::{run, start_from_args, StandInArgs};
pub use tls::{load_tls_pem, tls_server_config};

/// The exchange path without the org id.
pub const EXCHANGE_PATH_PREFIX: &str = "/v1/cwobject/temporary-credentials/oidc/";
/// The prefix of the control API.
pub const CONTROL_PATH_PREFIX: &str = "/_standin/";

/// The stand-in's configuration. `Debug` redacts the secret access key and the session token.
pub struct StandInConfig {
    /// The org id in the exchange path. Default `standin-org`.
    pub org_id: String,
    /// The stand-in accepts a token if and only if one of these verifies its signature.
    pub verifiers: Vec<Verifier>,
    /// If set, `aud` (a string or an array) must contain it. Default `None`.
    pub audience: Option<String>,
    /// The lifetime of the credentials it hands out (`Expiration = now + lifetime`). Default 3600 s.
    pub lifetime: Duration,
    /// The `AccessKeyId` it hands out.
    pub access_key_id: String,
    /// The `SecretAccessKey` it hands out.
    pub secret_access_key: String,
    /// The `Token` it hands out. Default `""`, as CoreWeave sends.
    pub session_token: String,
    /// The stand-in's own signer, used by `POST /_standin/token`. When set, its verifier is
    /// accepted too. Default `None`.
    pub issuer: Option<Issuer>,
}

/// What the stand-in does for the next request(s) instead of the normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// That status with a JSON error body (`{"code","message"}`).
    Status(u16),
    /// 429, plus a `Retry-After` header with this exact value if it is given.
    Throttle {
        /// The `Retry-After` value, sent as is.
        retry_after: Option<String>,
    },
    /// Sleep for this long, then answer normally.
    Delay(Duration),
    /// Never answer (until shutdown, which then drops the connection).
    Hang,
    /// This status with this raw body, with `Content-Type: application/json`.
    Body {
        /// The status code.
        status: u16,
        /// The body, sent as is.
        body: String,
    },
    /// Drop the connection without answering.
    CloseConnection,
    /// Answer 200 with a `Content-Length` larger than the body, then close:
    /// the connection breaks mid-body.
    TruncatedBody,
}

/// A handle to a running stand-in. Cloning is cheap (it is an `Arc` inside).
#[derive(Clone)]
pub struct StandIn {
    shared: Arc<Shared>,
}

/// State shared by the handle, the accept loop and the connection tasks.
struct Shared {
    path: String,
    audience: Option<String>,
    issuer: Option<Issuer>,
    local_addr: SocketAddr,
    scheme: &'static str,
    state: Mutex<State>,
    /// The count of credential requests. It is a watch so that `wait_for_calls` can await it.
    calls: watch::Sender<u64>,
    successes: AtomicU64,
    stopped: watch::Sender<bool>,
}

/// The mutable part of [`Shared`].
struct State {
    verifiers: Vec<Verifier>,
    lifetime: Duration,
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Secret,
    faults: VecDeque<Fault>,
    sticky: Option<Fault>,
    /// The length of the last request's `Authorization` and whether it began with `Bearer `.
    last_authorization: Option<(usize, bool)>,
    /// The `sub` of the token behind the last successful exchange.
    last_subject: Option<String>,
}

// === impl StandInConfig ===

impl Default for StandInConfig {
    /// Org `standin-org`, no verifiers, no audience check, 3600 s, test keys
    /// `STANDINACCESSKEY0000` / `standin-secret-access-key`, an empty session token, no issuer.
    fn default() -> Self {
        Self {
            org_id: "standin-org".to_owned(),
            verifiers: Vec::new(),
            audience: None,
            lifetime: Duration::from_secs(3600),
            access_key_id: "STANDINACCESSKEY0000".to_owned(),
            secret_access_key: "standin-secret-access-key".to_owned(),
            session_token: String::new(),
            issuer: None,
        }
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("org_id", &self.org_id)
            .field("verifiers", &self.verifiers)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .field("session_token", &REDACTED)
            .field("issuer", &self.issuer)
            .finish()
    }
}

// === impl StandIn ===

impl StandIn {
    /// Serves on `listener` until `shutdown` is cancelled. It speaks plain HTTP/1.1 when `tls` is
    /// `None` and HTTP/1.1 over TLS otherwise. It must be called from within a tokio runtime
    /// (otherwise it returns an error). Each connection runs on its own task. On shutdown the
    /// accept loop drops the listener, idle connections close, and pending hangs and delays end by
    /// dropping their connections.
    pub fn start(
        listener: TcpListener,
        config: StandInConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<StandIn> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let local_addr = listener.local_addr()?;
        let mut verifiers = config.verifiers;
        verifiers.extend(config.issuer.as_ref().map(Issuer::verifier));
        let shared = Arc::new(Shared {
            path: format!("{EXCHANGE_PATH_PREFIX}{}", config.org_id),
            audience: config.audience,
            issuer: config.issuer,
            local_addr,
            scheme: if tls.is_some() { "https" } else { "http" },
            state: Mutex::new(State {
                verifiers,
                lifetime: config.lifetime,
                access_key_id: config.access_key_id,
                secret_access_key: Secret::new(config.secret_access_key),
                session_token: Secret::new(config.session_token),
                faults: VecDeque::new(),
                sticky: None,
                last_authorization: None,
                last_subject: None,
            }),
            calls: watch::Sender::new(0),
            successes: AtomicU64::new(0),
            stopped: watch::Sender::new(false),
        });
        let acceptor = tls.map(TlsAcceptor::from);
        runtime.spawn(serve::accept_loop(
            listener,
            shared.clone(),
            acceptor,
            shutdown,
        ));
        Ok(StandIn { shared })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The full exchange URL, such as `http://127.0.0.1:PORT/v1/cwobject/temporary-credentials/oidc/ORG`.
    /// A listener on an unspecified address is reached through loopback.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.shared.scheme,
            self.connect_addr(),
            self.shared.path
        )
    }

    /// The address a client should connect to (`127.0.0.1:PORT` for a `0.0.0.0` listener).
    pub fn connect_addr(&self) -> SocketAddr {
        let mut addr = self.shared.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        addr
    }

    /// How many credential requests have arrived, whatever their outcome. This counts every request
    /// outside `/_standin/`, including 404s and faulted ones.
    pub fn calls(&self) -> u64 {
        *self.shared.calls.borrow()
    }

    /// How many credentials have been served: normal 200 answers only. A `Fault::Body` with status
    /// 200 does not count.
    pub fn successes(&self) -> u64 {
        self.shared.successes.load(Ordering::SeqCst)
    }

    /// Queues `fault` for the next credential request only (FIFO).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.state().faults.push_back(fault);
    }

    /// Applies `fault` to every credential request until cleared with `None`. Queued faults go first.
    pub fn set_sticky_fault(&self, fault: Option<Fault>) {
        self.shared.state().sticky = fault;
    }

    /// Drops every queued fault and the sticky fault.
    pub fn clear_faults(&self) {
        let mut state = self.shared.state();
        state.faults.clear();
        state.sticky = None;
    }

    /// Switches the credentials handed out from now on (a rotation or "revocation" upstream).
    pub fn set_keys(&self, access_key_id: &str, secret_access_key: &str, session_token: &str) {
        let mut state = self.shared.state();
        state.access_key_id = access_key_id.to_owned();
        state.secret_access_key = Secret::new(secret_access_key);
        state.session_token = Secret::new(session_token);
    }

    /// Sets the lifetime of credentials handed out from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.shared.state().lifetime = lifetime;
    }

    /// Also accepts tokens that `v` verifies.
    pub fn add_verifier(&self, v: Verifier) {
        self.shared.state().verifiers.push(v);
    }

    /// The stand-in's own issuer, if it was configured with one.
    pub fn issuer(&self) -> Option<&Issuer> {
        self.shared.issuer.as_ref()
    }

    /// The `sub` of the token behind the last successful exchange.
    pub fn last_subject(&self) -> Option<String> {
        self.shared.state().last_subject.clone()
    }

    /// The length of the last credential request's `Authorization` value (`None` if it had none).
    /// Tests get only the length, never the token.
    pub fn last_authorization_len(&self) -> Option<usize> {
        self.shared.state().last_authorization.map(|(len, _)| len)
    }

    /// Whether the last credential request's `Authorization` began with `Bearer ` (in any case),
    /// which the upstream does not expect.
    pub fn last_authorization_had_bearer_prefix(&self) -> bool {
        self.shared
            .state()
            .last_authorization
            .is_some_and(|(_, bearer)| bearer)
    }

    /// Resolves once [`calls`](Self::calls) is at least `n`.
    pub async fn wait_for_calls(&self, n: u64) {
        let mut rx = self.shared.calls.subscribe();
        // Fails only if the sender is dropped; `self` keeps it alive.
        let _ = rx.wait_for(|calls| *calls >= n).await;
    }

    /// Resolves once the accept loop has stopped after shutdown (the listener is closed by then).
    pub async fn stopped(&self) {
        let mut rx = self.shared.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("local_addr", &self.shared.local_addr)
            .field("path", &self.shared.path)
            .field("calls", &self.calls())
            .field("successes", &self.successes())
            .finish_non_exhaustive()
    }
}

// === impl Shared ===

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent after a panic: each critical section is a plain assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the fault for this request: the queue first, then the sticky one.
    fn next_fault(&self) -> Option<Fault> {
        let mut state = self.state();
        state.faults.pop_front().or_else(|| state.sticky.clone())
    }
}

/// The wall clock. This is the only `SystemTime::now` call in the stand-in, a test double.
#[allow(clippy::disallowed_methods)]
fn now() -> SystemTime {
    SystemTime::now()
}
