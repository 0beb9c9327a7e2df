//! The listeners: credentials (`GET /v1/credentials`) and admin (`/healthz`,
//! `/readyz`, `/metrics`).
//!
//! Routing and authorization only: every answer comes from memory (the
//! store's pre-rendered body or the metrics registry); nothing here waits on
//! the upstream. Each listener stops accepting on shutdown and drains open
//! connections within a grace period.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::{Metrics, ServerMetrics};
use crate::store::Store;

pub mod auth;

pub use self::auth::AuthToken;

/// The credentials path every SDK is pointed at.
pub const CREDENTIALS_PATH: &str = "/v1/credentials";
/// How long open connections get to finish after shutdown starts.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted (larger gets 431).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Connections served at once per listener, by default; more wait in the
/// kernel backlog until one closes.
pub const MAX_CONNECTIONS: usize = 4096;

/// Bounds on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long open connections get to finish after shutdown starts.
    pub grace: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            grace: DRAIN_GRACE,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// A response body.
pub type Body = Full<Bytes>;

/// Answers requests for one listener, with the route label for metrics.
pub trait Routes: Send + Sync + 'static {
    /// The answer; `std::future::Ready` for routes that answer from memory.
    type Future: Future<Output = (&'static str, Response<Body>)> + Send + 'static;

    /// Starts answering `req`. Only what the answer needs is copied out of
    /// the request.
    fn route(&self, req: &Request<Incoming>) -> Self::Future;

    /// Starts answering `req`, which the server has no further use for, so
    /// a route may take parts of it for the answer. The server calls this;
    /// by default it is [`Self::route`].
    fn route_owned(&self, req: Request<Incoming>) -> Self::Future {
        self.route(&req)
    }
}

/// The credentials listener's routes.
#[derive(Debug, Clone)]
pub struct CredentialsRoutes {
    /// Where the current credentials are.
    pub store: Store,
    /// The token callers must present.
    pub auth: AuthToken,
}

/// The admin listener's routes.
#[derive(Debug, Clone)]
pub struct AdminRoutes {
    /// What `/readyz` reports.
    pub readiness: Readiness,
    /// What `/metrics` serves.
    pub metrics: Metrics,
}

/// When the agent is ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// While this store holds servable credentials (sidecar mode).
    Store(Store),
    /// As soon as the listeners are up (node mode: credentials are per Pod).
    Listening,
}

// === impl CredentialsRoutes ===

impl Routes for CredentialsRoutes {
    type Future = Ready<(&'static str, Response<Body>)>;

    fn route(&self, req: &Request<Incoming>) -> Self::Future {
        ready(match self.refusal(req) {
            None => self.credentials(HeaderMap::new()),
            Some(refusal) => refusal,
        })
    }

    /// The hot path: the answer reuses the request's header map (its
    /// allocation, not its contents), so serving credentials allocates
    /// nothing beyond what hyper allocates per request. hyper in turn keeps
    /// the answer's emptied map to parse the next request on the connection
    /// into, so on a keep-alive connection the same map goes round.
    fn route_owned(&self, mut req: Request<Incoming>) -> Self::Future {
        ready(match self.refusal(&req) {
            None => {
                let mut headers = std::mem::take(req.headers_mut());
                headers.clear();
                self.credentials(headers)
            }
            Some(refusal) => refusal,
        })
    }
}

impl CredentialsRoutes {
    /// The answer refusing `req` (path, method, auth token), if any.
    fn refusal(&self, req: &Request<Incoming>) -> Option<(&'static str, Response<Body>)> {
        if req.uri().path() != CREDENTIALS_PATH {
            return Some((
                "other",
                error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "unknown path; credentials are served at /v1/credentials",
                ),
            ));
        }
        if req.method() != Method::GET {
            return Some(("credentials", method_not_allowed()));
        }
        let presented = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
        match presented {
            None => Some(("credentials", error(StatusCode::UNAUTHORIZED, "Unauthorized", "missing Authorization header; set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to the agent's auth token file"))),
            Some(p) if !self.auth.matches(p) => Some(("credentials", error(StatusCode::UNAUTHORIZED, "Unauthorized", "the Authorization header does not match the agent's auth token"))),
            Some(_) => None,
        }
    }

    /// The 200 with the pre-rendered body, its headers in `headers` (an
    /// empty map), or 503.
    fn credentials(&self, mut headers: HeaderMap) -> (&'static str, Response<Body>) {
        let Some(body) = self.store.servable_body(Instant::now()) else {
            return (
                "credentials",
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CredentialsUnavailable",
                    "no valid credentials yet or they expired; see the agent's logs",
                ),
            );
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let mut rsp = Response::new(Full::new(body));
        *rsp.headers_mut() = headers;
        ("credentials", rsp)
    }
}

// === impl AdminRoutes ===

impl Routes for AdminRoutes {
    type Future = Ready<(&'static str, Response<Body>)>;

    fn route(&self, req: &Request<Incoming>) -> Self::Future {
        ready(self.answer(req))
    }
}

impl AdminRoutes {
    fn is_ready(&self) -> bool {
        match &self.readiness {
            Readiness::Store(store) => store.servable(Instant::now()).is_some(),
            Readiness::Listening => true,
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> (&'static str, Response<Body>) {
        let route = match req.uri().path() {
            "/healthz" => "healthz",
            "/readyz" => "readyz",
            "/metrics" => "metrics",
            _ => {
                return (
                    "other",
                    error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "unknown path; try /healthz, /readyz or /metrics",
                    ),
                )
            }
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (route, method_not_allowed());
        }
        let rsp = match route {
            "healthz" => text(StatusCode::OK, "ok\n"),
            "readyz" if self.is_ready() => text(StatusCode::OK, "ready\n"),
            "readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no valid credentials\n",
            ),
            _ => Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(Bytes::from(self.metrics.encode())))
                .unwrap_or_else(|_| internal_error()),
        };
        (route, rsp)
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| internal_error())
}

fn method_not_allowed() -> Response<Body> {
    let mut rsp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "only GET is supported",
    );
    rsp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET"));
    rsp
}

/// A JSON error body. `Code`/`Message` are what the JS SDK reads; the
/// lowercase pair is what the Go and Java SDKs read. Neither ever holds a
/// secret: both come from fixed strings.
pub fn error(status: StatusCode, code: &'static str, message: &'static str) -> Response<Body> {
    let body = serde_json::json!({
        "Code": code, "Message": message, "code": code, "message": message,
    });
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| internal_error())
}

fn internal_error() -> Response<Body> {
    let mut rsp = Response::new(Full::new(Bytes::from_static(
        b"{\"Code\":\"InternalError\",\"Message\":\"internal error\"}",
    )));
    *rsp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    rsp
}

/// Connections the kernel queues for a listener before `accept` (capped by
/// `net.core.somaxconn`). `TcpListener::bind` would ask for 128, the
/// standard library's value, which a burst of clients (Pods starting on a
/// node, a load generator) overflows: the kernel then drops SYNs and each
/// dropped client waits a full second to retry.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and
/// listens with [`LISTEN_BACKLOG`], naming `flag` in the error.
pub async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, BindError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| BindError { flag, addr, source })
}

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({flag}): {source}")]
pub struct BindError {
    /// The flag that configured it.
    pub flag: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Serves `routes` on `listener` until `shutdown`, then drains open
/// connections for at most `limits.grace`. At most `limits.max_connections`
/// are open at once; an idle keep-alive connection is closed after
/// [`HEADER_READ_TIMEOUT`].
pub async fn serve<R: Routes>(
    listener: TcpListener,
    routes: Arc<R>,
    metrics: Arc<ServerMetrics>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let grace = limits.grace;
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        // Answers are small: one write(2) of head and body together costs
        // less than writev(2) of the two.
        .writev(false);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let metrics = metrics.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let started = Instant::now();
            let answer = routes.route_owned(req);
            let metrics = metrics.clone();
            async move {
                let (route, rsp) = answer.await;
                metrics.observe(route, rsp.status(), started.elapsed().as_secs_f64());
                Ok::<_, Infallible>(rsp)
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            grace_s = grace.as_secs(),
            "connections still open after the grace period; closing them"
        );
    }
}
