//! Binding and serving one listener: HTTP/1.1 connections admitted through
//! a [`Gate`] (in number, in all and per source address), each bounded in
//! time by its phase ([`Timed`]) and in head size; stop accepting on
//! shutdown, then drain within a grace period. Plain TCP ([`serve`]) or
//! through a per-connection [`Handshake`] such as TLS ([`serve_with`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::accept::Acceptor;
use super::conn::{Conn, Phase};
use super::gate::{Gate, Slot};
use super::limits::{Limits, Writes, LISTEN_BACKLOG, TLS_SEND_BUFFER};
use super::routes::Routes;
use super::timed::Timed;
use crate::metrics::{ListenerMetrics, ServerMetrics};

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

/// What happens to an accepted TCP connection before HTTP is spoken on it:
/// nothing ([`Plain`]) or a TLS handshake (`tokio_rustls::TlsAcceptor`).
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream HTTP runs on.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// True for [`Plain`]: a connection starts receiving its head at once.
    const PLAIN: bool = false;

    /// Turns the accepted connection into the stream HTTP runs on. It runs
    /// in the connection's own task, bounded by the listener's
    /// [`Timeouts::handshake`](super::limits::Timeouts::handshake).
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

/// No handshake: HTTP straight on the TCP connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;
    const PLAIN: bool = true;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

impl Handshake for tokio_rustls::TlsAcceptor {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send {
        self.accept_with(tcp, |tls| tls.set_buffer_limit(Some(TLS_SEND_BUFFER)))
    }
}

/// hyper's smallest `max_buf_size`.
const MIN_BUF_SIZE: usize = 8 * 1024;

/// One accepted connection, before its task runs.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    limits: Limits,
    counters: ListenerMetrics,
}

/// Serves `routes` on `listener` until `shutdown`, then drains open
/// connections for at most the gate's grace period, within the gate's
/// [`Limits`] (counted over every listener sharing `gate`).
pub async fn serve<R: Routes>(
    listener: TcpListener,
    routes: Arc<R>,
    metrics: Arc<ServerMetrics>,
    shutdown: CancellationToken,
    gate: Gate,
) {
    serve_with(listener, routes, metrics, shutdown, gate, Plain).await;
}

/// [`serve`], with `handshake` run on every accepted connection (in the
/// connection's task, so a slow handshake holds up no other; one that fails
/// or outlasts the handshake timeout closes the connection).
pub async fn serve_with<R: Routes, H: Handshake>(
    listener: TcpListener,
    routes: Arc<R>,
    metrics: Arc<ServerMetrics>,
    shutdown: CancellationToken,
    gate: Gate,
    handshake: H,
) {
    let limits = *gate.limits();
    let counters = metrics.listener(limits.name);
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new();
    builder
        // Timed bounds every phase (hyper's own header timer would also
        // bound idle keep-alive time, which the webhook needs longer).
        .header_read_timeout(None)
        // The documented limit exactly: a head over it gets 431, whether
        // it arrives in one read or many (max_buf_size alone lets a head
        // that lands in one larger read through).
        .max_header_size(limits.max_head_bytes)
        .max_buf_size(limits.max_head_bytes.max(MIN_BUF_SIZE))
        .keep_alive(true)
        .writev(matches!(limits.writes, Writes::FromAnswer { .. }));
    let builder = Arc::new(builder);
    let first = if H::PLAIN {
        Phase::Head
    } else {
        Phase::Handshake
    };
    let mut acceptor = Acceptor::new(listener, limits.name, counters.clone());
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = gate.admit(peer.ip(), first, &counters) => slot,
        };
        let Some(slot) = slot else {
            debug!(%peer, listener = limits.name, "connection refused: too many open from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        if let Writes::FromAnswer { send_buffer } = limits.writes {
            if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(send_buffer) {
                debug!(%peer, error = %e, "cannot set the send buffer's size");
            }
        }
        let conn = Connection {
            stream,
            peer,
            slot,
            limits,
            counters: counters.clone(),
        };
        // Taken at the accept, so a drain also waits for handshakes.
        let watcher = graceful.watcher();
        tokio::spawn(conn.run(
            routes.clone(),
            metrics.clone(),
            handshake.clone(),
            builder.clone(),
            watcher,
        ));
    }
    drop(acceptor);
    let grace = limits.grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            grace_s = grace.as_secs(),
            listener = limits.name,
            "connections still open after the grace period; closing them"
        );
    }
}

// === impl Connection ===

impl Connection {
    /// Handshake, then HTTP until the client leaves, a phase outlasts its
    /// timeout, or the gate sheds the connection.
    async fn run<R: Routes, H: Handshake>(
        self,
        routes: Arc<R>,
        metrics: Arc<ServerMetrics>,
        handshake: H,
        builder: Arc<Builder>,
        watcher: Watcher,
    ) {
        let Connection {
            stream,
            peer,
            slot,
            limits,
            counters,
        } = self;
        counters.open.inc();
        let conn = slot.conn().clone();
        let served = async {
            let timeout = limits.timeouts.handshake;
            let mut shake = std::pin::pin!(handshake.handshake(stream));
            let shake = std::future::poll_fn(|cx| {
                let poll = shake.as_mut().poll(cx);
                if poll.is_pending() {
                    conn.waited();
                }
                poll
            });
            let io = match tokio::time::timeout(timeout, shake).await {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => return debug!(%peer, error = %e, "handshake failed"),
                Err(_) => {
                    counters.timed_out("handshake");
                    return debug!(%peer, "handshake timed out");
                }
            };
            // The head's time starts now (for TLS: after the handshake).
            conn.enter(Phase::Head);
            let io = Timed::new(io, conn.clone(), limits.timeouts, counters.clone());
            let svc = service(routes, metrics, conn.clone(), peer);
            let served = watcher.watch(builder.serve_connection(TokioIo::new(io), svc));
            if let Err(e) = served.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        };
        tokio::select! {
            _ = conn.shed() => debug!(%peer, listener = limits.name, "connection shed to make room for another"),
            _ = served => {}
        }
        counters.open.dec();
        drop(slot);
    }
}

/// The service of one connection: `routes`, timed and counted, marking the
/// connection busy while a request is answered, until its answer is flushed
/// ([`Conn::answered`]).
fn service<R: Routes>(
    routes: Arc<R>,
    metrics: Arc<ServerMetrics>,
    conn: Arc<Conn>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = http::Response<super::routes::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<super::routes::Body>, Infallible>> + Send,
> + Send {
    service_fn(move |req: Request<Incoming>| {
        conn.answering();
        let started = Instant::now();
        let answer = routes.route_owned(req, peer);
        let metrics = metrics.clone();
        let conn = conn.clone();
        async move {
            let (route, rsp) = answer.await;
            conn.answered();
            metrics.observe(route, rsp.status(), started.elapsed().as_secs_f64());
            Ok::<_, Infallible>(rsp)
        }
    })
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
