//! SIGTERM (what Kubernetes sends to start a graceful shutdown) and SIGINT
//! become one cancellation token.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Returns a token cancelled on the first SIGTERM or SIGINT.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = t.cancelled() => return,
        };
        info!(
            signal = name,
            "shutting down: no new connections, draining open ones"
        );
        t.cancel();
    });
    Ok(token)
}
