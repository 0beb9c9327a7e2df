//! Starting the stand-in: the accept loop and per-connection serving (plain or TLS), both bound
//! to the shutdown token, and the split of each request between the control API and the
//! credential endpoint.

use std::{sync::Arc, time::Duration};

use http::Request;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::handle::StandIn;
use super::respond::{Dropped, Resp};
use super::state::{PostSettings, Shared};
use super::types::{StandInConfig, CONTROL_PATH_PREFIX};
use super::{control, service};

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
        Self::start_with(listener, config, PostSettings::default(), tls, shutdown)
    }

    /// [`start`](Self::start) with the POST exchange set up as `post` from the first request on
    /// (the command line's options).
    pub(super) fn start_with(
        listener: TcpListener,
        config: StandInConfig,
        post: PostSettings,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<StandIn> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let local_addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared::new(config, post, local_addr, scheme));
        let acceptor = tls.map(TlsAcceptor::from);
        runtime.spawn(accept_loop(listener, shared.clone(), acceptor, shutdown));
        Ok(StandIn { shared })
    }
}

/// Accepts connections until `shutdown`, serving each on its own task. It then drops the listener
/// and marks the stand-in stopped.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            res = listener.accept() => match res {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // EMFILE and the like: back off briefly instead of spinning.
                    tracing::warn!(%error, "stand-in accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (shared, tls, shutdown) = (shared.clone(), tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(stream, shared, shutdown).await;
            };
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                () = shutdown.cancelled() => return,
                res = handshake => match res {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return tracing::debug!(%error, "stand-in TLS handshake failed"),
                    Err(_) => return tracing::debug!("stand-in TLS handshake timed out"),
                },
            };
            serve_connection(stream, shared, shutdown).await;
        });
    }
    drop(listener);
    shared.stopped.send_replace(true);
}

/// Serves HTTP/1.1 on one connection; on shutdown it closes the connection gracefully.
async fn serve_connection<S>(stream: S, shared: Arc<Shared>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shutdown = shutdown.clone();
    let svc =
        hyper::service::service_fn(move |req| route(shared.clone(), svc_shutdown.clone(), req));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    let mut conn = std::pin::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = res {
        // Includes the deliberate drops of `Fault::CloseConnection` and `Fault::Hang`.
        tracing::debug!(%error, "stand-in connection ended");
    }
}

/// Serves one request: the control API under [`CONTROL_PATH_PREFIX`], the credential endpoint
/// otherwise.
async fn route(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, Dropped> {
    if req.uri().path().starts_with(CONTROL_PATH_PREFIX) {
        return Ok(control::handle(&shared, req).await);
    }
    service::handle(shared, shutdown, req).await
}
