//! The serving certificate: loaded from `--tls-cert-file`/`--tls-key-file`,
//! and reloaded when they change without touching the listener.
//!
//! A Kubernetes Secret (cert-manager's, or one rotated by hand) is mounted
//! through the same `..data` symlink swap as a projected token, so the
//! files' directories are watched with notify (every event is a hint to
//! re-read) and also polled. Each handshake takes the pair current at that
//! moment ([`CertStore`] is the rustls resolver), so connections already
//! open keep theirs and new ones get the new one. A new pair that cannot be
//! used (unreadable, not PEM, a key that does not match the certificate)
//! is logged and counted, and the previous pair stays in service.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::x509;
use crate::dirwatch::{watch_parent, DirWatch};
use crate::fsread::{self, FileError};
use crate::metrics::WebhookMetrics;

/// How often the files are read even without a notify event.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);
/// How long after an event the files are read (a swap is a burst of events).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

/// Why a pair could not be used. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read (or is not a regular file within
    /// [`fsread::PEM`]).
    #[error(transparent)]
    Read(FileError),
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no PEM certificate in it")]
    NoCertificate(String),
    /// The key file holds no usable PEM private key.
    #[error("{0}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")]
    NoKey(String),
    /// rustls refused the pair (an unsupported key type, or a key that does
    /// not match the certificate).
    #[error("the certificate and key cannot be used together: {0}")]
    Pair(String),
}

/// The pair in service, and what was last read.
pub struct CertStore {
    current: ArcSwapOption<CertifiedKey>,
    /// Digest of the bytes last tried, so unchanged files are not parsed
    /// (or counted as errors) again on every poll.
    last_read: Mutex<Option<ring::digest::Digest>>,
    metrics: WebhookMetrics,
}

// === impl CertStore ===

impl CertStore {
    /// An empty store: handshakes fail until a pair is loaded.
    pub fn new(metrics: WebhookMetrics) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            last_read: Mutex::new(None),
            metrics,
        }
    }

    /// Returns true if and only if a pair is in service.
    pub fn loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Reads both files and puts the pair in service if they changed since
    /// the last read. `Ok(true)`: a new pair is served; `Ok(false)`: the
    /// files are as last read; `Err`: the files changed (or could not be
    /// read) and the previous pair, if any, stays.
    pub async fn reload(&self, files: &CertFiles) -> Result<bool, CertError> {
        let (cert_pem, key_pem) = match read_pair(files).await {
            Ok(pair) => pair,
            Err(e) => {
                *self.last_read.lock() = None;
                self.metrics
                    .certificate_reloads
                    .with_label_values(&["error"])
                    .inc();
                return Err(e);
            }
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&cert_pem);
        ctx.update(&key_pem);
        let digest = ctx.finish();
        {
            let mut last = self.last_read.lock();
            if last.as_ref().map(|d| d.as_ref()) == Some(digest.as_ref()) {
                return Ok(false);
            }
            *last = Some(digest);
        }
        match certified_key(files, &cert_pem, &key_pem) {
            Ok(key) => {
                let not_after = key.end_entity_cert().ok().and_then(|c| x509::not_after(c));
                self.metrics
                    .certificate_expiry
                    .set(not_after.map_or(0.0, |t| t as f64));
                self.metrics
                    .certificate_reloads
                    .with_label_values(&["ok"])
                    .inc();
                info!(
                    cert_file = %files.cert.display(),
                    chain = key.cert.len(),
                    not_after = not_after.map(format_time).unwrap_or_default(),
                    "serving certificate loaded"
                );
                self.current.store(Some(Arc::new(key)));
                Ok(true)
            }
            Err(e) => {
                self.metrics
                    .certificate_reloads
                    .with_label_values(&["error"])
                    .inc();
                Err(e)
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("loaded", &self.loaded())
            .finish_non_exhaustive()
    }
}

/// A TLS server configuration (TLS 1.2 and 1.3, HTTP/1.1 only) that
/// presents whatever `store` holds at each handshake.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Watches the files' directories and polls every `poll`, reloading on
/// every hint, until `shutdown`.
pub async fn run_reloader(
    store: Arc<CertStore>,
    files: CertFiles,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let kick = Arc::new(Notify::new());
    let rearm = Arc::new(AtomicBool::new(true));
    let mut dirs = vec![files.cert.clone()];
    if files.key.parent() != files.cert.parent() {
        dirs.push(files.key.clone());
    }
    let mut watches: Vec<DirWatch> = Vec::new();
    loop {
        if rearm.swap(false, Ordering::AcqRel) {
            watches.clear();
            for path in &dirs {
                match watch_parent(path, &kick, &rearm) {
                    Ok(w) => watches.push(w),
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "cannot watch the certificate's directory; polling only")
                    }
                }
            }
        }
        // A read stuck on a hung filesystem must not hold shutdown.
        let reloaded = tokio::select! {
            reloaded = store.reload(&files) => reloaded,
            _ = shutdown.cancelled() => break,
        };
        match reloaded {
            Ok(_) => {}
            Err(e) if store.loaded() => {
                warn!(error = %e, "serving certificate not reloaded; the previous one stays in service")
            }
            Err(e) => {
                warn!(error = %e, "no serving certificate yet; TLS handshakes fail until one loads")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = kick.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

fn certified_key(
    files: &CertFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, CertError> {
    let cert_name = || files.cert.display().to_string();
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertError::NoCertificate(cert_name()))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate(cert_name()));
    }
    // The key's parse error is not passed on: it may quote the file.
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| CertError::NoKey(files.key.display().to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| CertError::Pair(e.to_string()))
}

/// Both files, consistent: a swap between reading the certificate and the
/// key (kubelet replaces both at once) is seen as the certificate having
/// changed under the key read, and the pair is read again.
async fn read_pair(
    files: &CertFiles,
) -> Result<(zeroize::Zeroizing<Vec<u8>>, zeroize::Zeroizing<Vec<u8>>), CertError> {
    let mut attempts = 0;
    loop {
        let cert = read(&files.cert).await?;
        let key = read(&files.key).await?;
        attempts += 1;
        if attempts == 3 || *read(&files.cert).await? == *cert {
            return Ok((cert, key));
        }
    }
}

async fn read(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, CertError> {
    fsread::read_async(path, fsread::PEM)
        .await
        .map_err(CertError::Read)
}

fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn pair() -> (String, String) {
        let pki = credagent_testkit::testing::test_pki();
        (pki.leaf_pem, pki.leaf_key_pem)
    }

    #[tokio::test]
    async fn loads_keeps_the_old_pair_on_a_bad_one_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let registry = Metrics::new().unwrap();
        let metrics = WebhookMetrics::register(&registry).unwrap();
        let store = CertStore::new(metrics.clone());
        assert!(matches!(
            store.reload(&files).await,
            Err(CertError::Read(_))
        ));
        assert!(!store.loaded());

        let (cert, key) = pair();
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        assert!(store.reload(&files).await.unwrap());
        assert!(!store.reload(&files).await.unwrap(), "unchanged files");
        let first = store.current.load_full().unwrap();
        assert!(metrics.certificate_expiry.get() > 1.7e9);

        // A key that belongs to another certificate: refused, the old pair stays.
        let (_, other_key) = pair();
        std::fs::write(&files.key, &other_key).unwrap();
        let e = store.reload(&files).await.unwrap_err();
        assert!(matches!(e, CertError::Pair(_)), "{e}");
        assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
        assert!(Arc::ptr_eq(&first, &store.current.load_full().unwrap()));
        // Garbage: refused once, not again on the next poll.
        std::fs::write(&files.key, "not a key").unwrap();
        assert!(matches!(
            store.reload(&files).await,
            Err(CertError::NoKey(_))
        ));
        assert!(!store.reload(&files).await.unwrap());
        let reloads = |r: &str| metrics.certificate_reloads.with_label_values(&[r]).get();
        assert_eq!((reloads("ok"), reloads("error")), (1, 3));

        let (cert, key) = pair();
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        assert!(store.reload(&files).await.unwrap());
        assert!(!Arc::ptr_eq(&first, &store.current.load_full().unwrap()));
    }
}
