//! Binding and serving one listener: HTTP/1.1 connections bounded in number
//! (in all, and per source address), in header-read time and in head size;
//! stop accepting on shutdown, then drain within a grace period. Plain TCP
//! ([`serve`]) or through a per-connection [`Handshake`] such as TLS
//! ([`serve_with`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::routes::Routes;
use crate::metrics::ServerMetrics;

/// How long open connections get to finish after shutdown starts.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted (larger gets 431).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Connections served at once per listener, by default; more wait in the
/// kernel backlog until one closes.
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections the kernel queues for a listener before `accept` (capped by
/// `net.core.somaxconn`). `TcpListener::bind` would ask for 128, the
/// standard library's value, which a burst of clients (Pods starting on a
/// node, a load generator) overflows: the kernel then drops SYNs and each
/// dropped client waits a full second to retry.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Bounds on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long open connections get to finish after shutdown starts.
    pub grace: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one source address; a connection
    /// over it is closed as soon as it is accepted. `None`: no such bound
    /// (the sidecar, whose only callers share the Pod's loopback).
    pub max_per_source: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            grace: DRAIN_GRACE,
            max_connections: MAX_CONNECTIONS,
            max_per_source: None,
        }
    }
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

/// The connection bounds of [`Limits`], shared by every listener serving
/// through it (node mode's listeners share one). Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    limits: Limits,
    permits: Arc<Semaphore>,
    sources: Arc<Sources>,
}

/// Open connections per source address, for [`Limits::max_per_source`].
#[derive(Default)]
struct Sources(Mutex<HashMap<IpAddr, usize>>);

/// One source's claim on a connection slot, released on drop.
struct SourceSlot {
    sources: Arc<Sources>,
    ip: IpAddr,
}

// === impl Gate ===

impl Gate {
    /// A gate enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            sources: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("limits", &self.limits)
            .finish()
    }
}

// === impl Sources ===

impl Sources {
    /// Claims a slot for `ip`, if it holds fewer than `max`.
    fn claim(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let mut open = self.0.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.0.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What happens to an accepted TCP connection before HTTP is spoken on it:
/// nothing ([`Plain`]) or a TLS handshake (`tokio_rustls::TlsAcceptor`).
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream HTTP runs on.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Turns the accepted connection into the stream HTTP runs on. It runs
    /// in the connection's own task, bounded by [`HEADER_READ_TIMEOUT`].
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

/// No handshake: HTTP straight on the TCP connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// Bytes of encrypted records a TLS connection holds that the kernel has
/// not taken (rustls's default is 64 KiB): one full record.
pub const TLS_SEND_BUFFER: usize = 16 * 1024;

impl Handshake for tokio_rustls::TlsAcceptor {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send {
        self.accept_with(tcp, |tls| tls.set_buffer_limit(Some(TLS_SEND_BUFFER)))
    }
}

/// How [`serve_with`] treats each connection.
#[derive(Debug, Clone)]
pub struct Connections<H> {
    /// Run before HTTP on every accepted connection.
    pub handshake: H,
    /// How long a connection may wait for (all of) a request's head, idle
    /// keep-alive time included. [`HEADER_READ_TIMEOUT`] for [`serve`].
    pub header_read_timeout: Duration,
    /// How answers are written: [`Writes::Joined`] for [`serve`].
    pub writes: Writes,
}

/// How a connection writes its answers, and so where the bytes a client
/// has not taken yet wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Head and body copied into the connection's write buffer and sent in
    /// one write(2), which costs less than writev(2) of the two; the
    /// kernel's send buffer grows as it sees fit (up to `tcp_wmem`'s
    /// maximum, 4 MiB by default). For small answers: the write buffer
    /// keeps the size of the largest answer as long as the connection
    /// lives, and the kernel takes whole answers off the process's hands.
    Joined,
    /// The body written from its own buffer (hyper's writev queue), and the
    /// kernel's send buffer fixed at `send_buffer` bytes (`SO_SNDBUF`,
    /// which Linux doubles and which stops it growing): what a client has
    /// not taken stays in the answer, where the routes count it (the
    /// webhook's memory budget), and at most twice `send_buffer` more waits
    /// in the kernel (plus [`TLS_SEND_BUFFER`] behind TLS).
    FromAnswer {
        /// The kernel's send buffer, bytes (as asked; Linux doubles it).
        send_buffer: usize,
    },
}

/// Serves `routes` on `listener` until `shutdown`, then drains open
/// connections for at most the gate's grace period. At most its
/// `max_connections` are open at once (and `max_per_source` from one
/// address), counted over every listener sharing `gate`; an idle keep-alive
/// connection is closed after [`HEADER_READ_TIMEOUT`].
pub async fn serve<R: Routes>(
    listener: TcpListener,
    routes: Arc<R>,
    metrics: Arc<ServerMetrics>,
    shutdown: CancellationToken,
    gate: Gate,
) {
    let plain = Connections {
        handshake: Plain,
        header_read_timeout: HEADER_READ_TIMEOUT,
        writes: Writes::Joined,
    };
    serve_with(listener, routes, metrics, shutdown, gate, plain).await;
}

/// [`serve`], with `connections.handshake` run on every accepted connection
/// (in the connection's task, so a slow handshake holds up no other; one
/// that fails or takes over [`HEADER_READ_TIMEOUT`] closes the connection)
/// and `connections.header_read_timeout` as the bound on a request head's
/// arrival, idle keep-alive time included.
pub async fn serve_with<R: Routes, H: Handshake>(
    listener: TcpListener,
    routes: Arc<R>,
    metrics: Arc<ServerMetrics>,
    shutdown: CancellationToken,
    gate: Gate,
    connections: Connections<H>,
) {
    let Gate {
        limits,
        permits,
        sources,
    } = gate;
    let grace = limits.grace;
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(connections.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .writev(matches!(connections.writes, Writes::FromAnswer { .. }));
    let builder = Arc::new(builder);
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
        let slot = match limits.max_per_source {
            None => None,
            Some(max) => match sources.claim(peer.ip(), max) {
                Some(slot) => Some(slot),
                None => {
                    metrics.refused_connection("per_source");
                    debug!(%peer, "connection refused: too many open from this address");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Writes::FromAnswer { send_buffer } = connections.writes {
            if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(send_buffer) {
                debug!(%peer, error = %e, "cannot set the send buffer's size");
            }
        }
        let routes = routes.clone();
        let svc_metrics = metrics.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let started = Instant::now();
            let answer = routes.route_owned(req, peer);
            let metrics = svc_metrics.clone();
            async move {
                let (route, rsp) = answer.await;
                metrics.observe(route, rsp.status(), started.elapsed().as_secs_f64());
                Ok::<_, Infallible>(rsp)
            }
        });
        // Held from the accept, so a drain also waits for handshakes.
        let watcher = graceful.watcher();
        let handshake = connections.handshake.clone();
        let builder = builder.clone();
        let open = metrics.open_connections.clone();
        open.inc();
        tokio::spawn(async move {
            match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake.handshake(stream)).await {
                Ok(Ok(io)) => {
                    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), svc));
                    if let Err(e) = conn.await {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "handshake failed"),
                Err(_) => debug!(%peer, "handshake timed out"),
            }
            open.dec();
            drop(slot);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_slots_are_counted_and_released() {
        let sources = Arc::new(Sources::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = sources.claim(a, 2).unwrap();
        let second = sources.claim(a, 2).unwrap();
        assert!(
            sources.claim(a, 2).is_none(),
            "a third from the same source"
        );
        let other = sources.claim(b, 2).unwrap();
        drop(first);
        let again = sources.claim(a, 2).unwrap();
        drop((second, again, other));
        assert!(
            sources.0.lock().is_empty(),
            "nothing is kept for closed sources"
        );
    }
}
