//! A stand-in for a cluster's OIDC issuer: `/.well-known/openid-configuration`
//! and the key set it names (`/openid/v1/jwks`), as the Kubernetes API
//! server and CKS serve them, for tests of local token verification.
//!
//! Its URL (`http://127.0.0.1:PORT`) is the issuer: mint tokens with
//! [`OidcIssuer::token_spec`] so their `iss` matches. Keys can be rotated
//! (published or withdrawn) at run time, and fetches are counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::jwt::{Issuer, TokenSpec};

/// The discovery path.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The key-set path (the API server's).
pub const JWKS_PATH: &str = "/openid/v1/jwks";

/// A running issuer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OidcIssuer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    url: String,
    keys: Mutex<Vec<Value>>,
    discovery_fetches: AtomicU64,
    jwks_fetches: AtomicU64,
}

// === impl OidcIssuer ===

impl OidcIssuer {
    /// Serves on `listener` until `shutdown`, publishing `keys`' public halves.
    pub fn start(
        listener: TcpListener,
        keys: &[&Issuer],
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            url: format!("http://{addr}"),
            keys: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            discovery_fetches: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
        });
        let serving = shared.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                let shared = serving.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(shared.answer(&req)) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { shared })
    }

    /// The issuer URL (`iss` of its tokens, and the base of discovery).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The key-set URL discovery names.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.shared.url)
    }

    /// A token spec whose `iss` is this issuer.
    pub fn token_spec(&self, namespace: &str, service_account: &str) -> TokenSpec {
        TokenSpec {
            issuer: self.shared.url.clone(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            ..TokenSpec::default()
        }
    }

    /// Publishes exactly `keys` from now on (a key rotation).
    pub fn publish(&self, keys: &[&Issuer]) {
        *self
            .shared
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = keys.iter().map(|k| k.jwk()).collect();
    }

    /// Fetches of the discovery document so far.
    pub fn discovery_fetches(&self) -> u64 {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Fetches of the key set so far.
    pub fn jwks_fetches(&self) -> u64 {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }
}

// === impl Shared ===

impl Shared {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let body = match req.uri().path() {
            DISCOVERY_PATH => {
                self.discovery_fetches.fetch_add(1, Ordering::SeqCst);
                json!({
                    "issuer": self.url,
                    "jwks_uri": format!("{}{JWKS_PATH}", self.url),
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                })
            }
            JWKS_PATH => {
                self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let keys = self
                    .keys
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                json!({ "keys": keys })
            }
            _ => {
                let mut rsp = Response::new(Full::new(Bytes::from_static(b"not found")));
                *rsp.status_mut() = StatusCode::NOT_FOUND;
                return rsp;
            }
        };
        let mut rsp = Response::new(Full::new(Bytes::from(body.to_string())));
        rsp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        rsp
    }
}
