//! The one HTTP(S) client for everything that calls out of the agent: the
//! exchange with the upstream in every mode, and the key-set fetches of
//! node-mode token verification. One place decides TLS (rustls, the webpki
//! roots plus `--ca-file`), connect timeouts and connection reuse.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// An HTTP(S) client. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Outbound {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for outbound connections: {0}")]
pub struct BuildError(String);

/// Why reading an answer's body failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Over the caller's limit.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection broke.
    #[error("reading the answer: {0}")]
    Broken(String),
}

// === impl Outbound ===

impl Outbound {
    /// A client trusting the webpki roots and `extra_roots`, giving each
    /// TCP connect `connect_timeout`.
    pub fn new(
        connect_timeout: Duration,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, BuildError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| BuildError(format!("--ca-file certificate rejected: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(https);
        Ok(Self { client })
    }

    /// Sends `req`; the error is the whole cause chain in one line (it
    /// never holds a header value). Callers bound the time.
    pub async fn send(&self, req: Request<Empty<Bytes>>) -> Result<Response<Incoming>, String> {
        self.client.request(req).await.map_err(|e| error_chain(&e))
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

/// Reads `rsp`'s body, at most `limit` bytes, into a buffer zeroized on drop
/// (it may hold credentials).
pub async fn read_body(
    rsp: Response<Incoming>,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let body = Limited::new(rsp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyError::TooLarge(limit)
            } else {
                BodyError::Broken(e.to_string())
            }
        })?
        .to_bytes();
    Ok(Zeroizing::new(body.to_vec()))
}

/// Formats an error and its sources as `a: b: c`, for one log line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}
