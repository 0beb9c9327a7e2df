//! Mirrors the store into an AWS shared credentials file, for tools that
//! only read files (`--credentials-file`).
//!
//! The file is rewritten atomically (a temporary file in the same directory,
//! then a rename; mode 0640) at start-up and after every refresh, so readers
//! never see a partial file.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::FileSinkConfig;
use crate::store::Store;
use crate::wire;

/// Writes the file whenever the store publishes, until `shutdown`.
pub async fn run(config: FileSinkConfig, store: Store, shutdown: CancellationToken) {
    let mut published = store.subscribe();
    loop {
        if let Some(snapshot) = store.load() {
            let body = wire::credentials_file(&config.profile, &snapshot.credentials);
            let path = config.path.clone();
            let written = tokio::task::spawn_blocking(move || {
                crate::atomic_file::write(&path, body.as_bytes(), 0o640)
            })
            .await;
            match written {
                Ok(Ok(())) => {
                    info!(path = %config.path.display(), profile = %config.profile, "credentials file written")
                }
                Ok(Err(e)) => {
                    warn!(path = %config.path.display(), error = %e, "cannot write the credentials file")
                }
                Err(e) => warn!(error = %e, "credentials file writer failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}
