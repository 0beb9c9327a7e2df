//! A rustls `ServerConfig` for serving the stand-in over HTTPS (HTTP/1.1 only, ring provider).

use std::{path::Path, sync::Arc};

use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};

use crate::error::StandInError;

/// Builds a server configuration from a certificate chain (leaf first) and its private key. It
/// uses the ring provider explicitly, so it does not depend on a process-wide default provider,
/// and it advertises only `http/1.1` through ALPN.
pub fn tls_server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, StandInError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StandInError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)
        .map_err(|e| StandInError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1) and builds the
/// server configuration. Errors name the file, never its contents.
pub fn load_tls_pem(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, StandInError> {
    let pem_error = |path: &Path, e: rustls_pki_types::pem::Error| {
        // Only error kinds that cannot quote the file (a bad line may be key material).
        use rustls_pki_types::pem::Error as E;
        let why = match e {
            E::Io(e) => e.to_string(),
            E::NoItemsFound => "no PEM item of the expected type".to_owned(),
            E::SectionTooLarge => "PEM section too large".to_owned(),
            _ => "malformed PEM".to_owned(),
        };
        StandInError::Tls(format!("reading {}: {why}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e))?;
    if chain.is_empty() {
        return Err(StandInError::Tls(format!(
            "no certificate in {}",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    tls_server_config(chain, key_der)
}
