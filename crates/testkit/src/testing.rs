//! Test helpers: a throwaway CA and leaf certificate (rcgen), and a minimal HTTP/1.1 client.
//!
//! Behind the `testing` feature (rcgen): the agent's integration tests enable it as a
//! dev-dependency; the demo does not need it.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;

/// A test PKI: a CA and a leaf (for `localhost` and `127.0.0.1` unless named), signed by it.
pub struct TestPki {
    /// The server configuration that presents the leaf.
    pub server: Arc<rustls::ServerConfig>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca_der: CertificateDer<'static>,
    /// The leaf certificate, PEM.
    pub leaf_pem: String,
    /// The leaf private key, PKCS#8 PEM.
    pub leaf_key_pem: String,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// Generates a fresh [`TestPki`].
pub fn test_pki() -> TestPki {
    test_pki_for(&["localhost", "127.0.0.1"])
}

/// Generates a fresh [`TestPki`] whose leaf names `names` (DNS names or IP
/// addresses).
pub fn test_pki_for(names: &[&str]) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("rcgen key generation");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "credagent stand-in test CA");
    let ca = ca_params.self_signed(&ca_key).expect("self-signed CA");

    let leaf_key = KeyPair::generate().expect("rcgen key generation");
    let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let leaf_params = CertificateParams::new(sans).expect("valid SANs");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf signed by CA");

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server =
        crate::standin::tls_server_config(vec![leaf.der().clone()], key).expect("server config");
    TestPki {
        server,
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        leaf_pem: leaf.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

/// The brief's shape: a server configuration and the CA's PEM.
pub fn test_tls() -> (Arc<rustls::ServerConfig>, String) {
    let pki = test_pki();
    (pki.server, pki.ca_pem)
}

/// A rustls client configuration that trusts only `ca`.
pub fn client_config(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA certificate parses");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) to values.
    pub headers: HashMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl TestResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// Sends one request over a fresh connection (TLS when `tls` is set, with SNI `localhost`).
/// It returns `Err` with hyper's message if the connection ends without a response.
pub async fn request(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<TestResponse, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    match tls {
        None => send(tcp, method, path, headers, body).await,
        Some(config) => {
            let name = ServerName::try_from("localhost").expect("valid DNS name");
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            send(stream, method, path, headers, body).await
        }
    }
}

/// Sends one plain-HTTP request from the local address `source` (e.g. one of
/// 127.0.0.0/8, to stand for another Pod), over a fresh connection.
pub async fn request_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TestResponse, String> {
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
    send(tcp, method, path, headers, "").await
}

async fn send<S>(
    io: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<TestResponse, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        req = req.header("host", "localhost");
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(TestResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
