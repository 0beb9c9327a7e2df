//! The connector under TLS: a TCP connection straight to the destination,
//! or through the proxy its [`Route`] names.
//!
//! - `https://` through a proxy: hyper-util's [`Tunnel`] sends `CONNECT
//!   host:port` (with `Proxy-Authorization` when the proxy URL has
//!   credentials), and TLS to the destination runs inside the tunnel, so
//!   the proxy sees neither the token nor the credentials.
//! - `http://` through a proxy: a connection to the proxy, marked so that
//!   hyper sends requests in absolute form (the client adds
//!   `Proxy-Authorization`).
//!
//! [`Tunnel`] reports a refusal other than 407 without its status; the
//! connection it is given records the first bytes the proxy answers (the
//! status line, nothing more) so the error can say `HTTP 403`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower_service::Service;

use super::error::{ConnectError, ProxyError};
use super::route::{Route, Routes, Via};

/// Bytes of the proxy's answer kept: `HTTP/1.1 403` and a little more.
const HEAD_BYTES: usize = 16;

type Connecting = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

/// Connects to a destination, directly or through its proxy.
#[derive(Clone)]
pub(super) struct Connector {
    http: HttpConnector,
    routes: Arc<Routes>,
}

/// One connection, to the destination or to the proxy.
#[derive(Debug)]
pub(super) struct Conn {
    io: TokioIo<Tapped>,
    /// Plain http through a proxy: requests go in absolute form.
    forwarded: bool,
}

/// A TCP stream that can record the first bytes it reads.
#[derive(Debug)]
struct Tapped {
    tcp: TcpStream,
    head: Option<Arc<Mutex<Vec<u8>>>>,
}

/// The inner connector [`Tunnel`] is given: TCP to the proxy, recorded.
#[derive(Clone)]
struct ToProxy {
    http: HttpConnector,
    head: Arc<Mutex<Vec<u8>>>,
}

// === impl Connector ===

impl Connector {
    pub(super) fn new(http: HttpConnector, routes: Arc<Routes>) -> Self {
        Self { http, routes }
    }

    /// Opens a connection to `dst` (for https through a proxy: the tunnel,
    /// before TLS).
    pub(super) fn open(&self, dst: Uri) -> Connecting {
        let route = self.routes.route(&dst);
        let mut http = self.http.clone();
        Box::pin(async move {
            match route {
                Route::Direct(_) => {
                    let io = http.call(dst).await.map_err(ConnectError::direct)?;
                    Ok(Conn::new(io.into_inner(), None, false))
                }
                Route::Proxy(via) if dst.scheme_str() == Some("https") => {
                    tunnel(http, via, dst).await
                }
                Route::Proxy(via) => {
                    let io = http
                        .call(via.uri().clone())
                        .await
                        .map_err(|e| ProxyError::unreachable(&via, &e))?;
                    Ok(Conn::new(io.into_inner(), None, true))
                }
            }
        })
    }
}

async fn tunnel(http: HttpConnector, via: Via, dst: Uri) -> Result<Conn, ConnectError> {
    let head = Arc::new(Mutex::new(Vec::with_capacity(HEAD_BYTES)));
    let mut tunnel = Tunnel::new(
        via.uri().clone(),
        ToProxy {
            http,
            head: head.clone(),
        },
    );
    if let Some(auth) = via.auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    let target = format!(
        "{}:{}",
        dst.host().unwrap_or_default(),
        dst.port_u16().unwrap_or(443)
    );
    std::future::poll_fn(|cx| tunnel.poll_ready(cx))
        .await
        .map_err(|e| ProxyError::from_tunnel(&via, &target, &e, &head.lock()))?;
    match tunnel.call(dst).await {
        Ok(mut conn) => {
            conn.io.inner_mut().head = None;
            Ok(conn)
        }
        Err(e) => Err(ProxyError::from_tunnel(&via, &target, &e, &head.lock()).into()),
    }
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HttpConnector is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        self.open(dst)
    }
}

// === impl ToProxy ===

impl Service<Uri> for ToProxy {
    type Response = Conn;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, proxy: Uri) -> Self::Future {
        let connecting = self.http.call(proxy);
        let head = self.head.clone();
        Box::pin(async move {
            let io = connecting.await?;
            Ok(Conn::new(io.into_inner(), Some(head), false))
        })
    }
}

// === impl Conn ===

impl Conn {
    fn new(tcp: TcpStream, head: Option<Arc<Mutex<Vec<u8>>>>, forwarded: bool) -> Self {
        Self {
            io: TokioIo::new(Tapped { tcp, head }),
            forwarded,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.forwarded)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.io)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

// === impl Tapped ===

impl AsyncRead for Tapped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Some(head) = &this.head {
            let mut head = head.lock();
            let room = HEAD_BYTES.saturating_sub(head.len());
            let new = &buf.filled()[before..];
            head.extend_from_slice(&new[..new.len().min(room)]);
        }
        polled
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }
}
