//! The accept loop and per-connection serving (plain or TLS), both bound to the shutdown token.

use std::{sync::Arc, time::Duration};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{service, Shared};

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown`, serving each on its own task. It then drops the listener
/// and marks the stand-in stopped.
pub(super) async fn accept_loop(
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
    let svc = hyper::service::service_fn(move |req| {
        service::handle(shared.clone(), svc_shutdown.clone(), req)
    });
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
