//! [`Outbound`]: the client every caller shares.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::PROXY_AUTHORIZATION;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

use super::connect::Connector;
use super::error::{error_chain, BodyError, BuildError, ConnectError, ProxyError, SendError};
use super::route::{Route, Routes};
use crate::config::OutboundConfig;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// An HTTP(S) client. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Outbound {
    client: Client<HttpsConnector<Connector>, Full<Bytes>>,
    connector: Connector,
    routes: Arc<Routes>,
}

// === impl Outbound ===

impl Outbound {
    /// A client trusting the webpki roots and `config.extra_roots`, giving
    /// each TCP connect `config.connect_timeout`, and going through the
    /// proxy `config.proxy` names for each destination.
    pub fn new(config: &OutboundConfig) -> Result<Self, BuildError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &config.extra_roots {
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
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let routes = Arc::new(Routes::new(&config.proxy));
        let connector = Connector::new(http, routes.clone());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector.clone());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(https);
        Ok(Self {
            client,
            connector,
            routes,
        })
    }

    /// Sends `req`. The error tells a proxy's refusal from everything else;
    /// it never holds a header value or proxy credentials. Callers bound
    /// the time.
    pub async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, SendError> {
        if let Route::Proxy(via) = self.routes.route(req.uri()) {
            // Plain http through a proxy: the request itself carries the
            // proxy's credentials (https ones go on the CONNECT).
            if req.uri().scheme_str() == Some("http") {
                if let Some(auth) = via.auth() {
                    req.headers_mut().insert(PROXY_AUTHORIZATION, auth.clone());
                }
            }
        }
        self.client.request(req).await.map_err(|e| classify(&e))
    }

    /// How a request to `uri` leaves: directly (and why) or through which proxy.
    pub fn route(&self, uri: &Uri) -> Route {
        self.routes.route(uri)
    }

    /// Opens a connection to `uri` (through its proxy, the `CONNECT` tunnel)
    /// and closes it, sending nothing through it: `credagent doctor`'s check.
    pub async fn open_tunnel(&self, uri: &Uri) -> Result<(), SendError> {
        match self.connector.open(uri.clone()).await {
            Ok(_) => Ok(()),
            Err(ConnectError::Proxy(e)) => Err(SendError::Proxy(e)),
            Err(ConnectError::Direct(e)) => Err(SendError::Transport(error_chain(&*e))),
        }
    }
}

/// A proxy's error if one is in `err`'s source chain, else the whole chain.
fn classify(err: &(dyn std::error::Error + 'static)) -> SendError {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(ConnectError::Proxy(p)) = e.downcast_ref::<ConnectError>() {
            return SendError::Proxy(p.clone());
        }
        if let Some(p) = e.downcast_ref::<ProxyError>() {
            return SendError::Proxy(p.clone());
        }
        source = e.source();
    }
    SendError::Transport(error_chain(err))
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
