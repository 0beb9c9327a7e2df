//! The HTTPS client for the upstream temporary-credentials endpoint.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, RETRY_AFTER, USER_AGENT,
};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{
    error_chain, parse_credentials, BoxFuture, Credentials, Exchange, ExchangeError,
    MAX_RESPONSE_BYTES,
};
use crate::config::UpstreamConfig;
use crate::secret::Secret;

/// Longest `Retry-After` honoured; a larger one is clamped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Calls the real upstream over HTTPS (rustls, webpki roots plus `--ca-file`).
#[derive(Clone)]
pub struct HttpExchanger {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: Uri,
    timeout: Duration,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for the upstream: {0}")]
pub struct BuildError(String);

// === impl HttpExchanger ===

impl HttpExchanger {
    /// Builds a client for `config`.
    pub fn new(config: &UpstreamConfig) -> Result<Self, BuildError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &config.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| BuildError(format!("--ca-file certificate rejected: {e}")))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Self {
            client,
            url: config.url.clone(),
            timeout: config.timeout,
        })
    }

    async fn call(&self, token: &Secret) -> Result<Credentials, ExchangeError> {
        let mut auth =
            HeaderValue::from_str(token.expose()).map_err(|_| ExchangeError::InvalidToken)?;
        auth.set_sensitive(true);
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            // The upstream's documented example sends it on the GET too.
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("credagent/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| ExchangeError::Transport(format!("cannot build request: {e}")))?;
        let rsp = self
            .client
            .request(req)
            .await
            .map_err(|e| ExchangeError::Transport(error_chain(&e)))?;
        let status = rsp.status();
        let server_date = rsp
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let retry_after = rsp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, server_date.unwrap_or_else(SystemTime::now)));
        if status != StatusCode::OK {
            return Err(classify(status, retry_after));
        }
        let body = Limited::new(rsp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ExchangeError::Malformed(format!(
                        "answer larger than {MAX_RESPONSE_BYTES} bytes"
                    ))
                } else {
                    ExchangeError::Transport(format!("reading the answer: {e}"))
                }
            })?
            .to_bytes();
        let body = zeroize::Zeroizing::new(body.to_vec());
        parse_credentials(&body, server_date)
    }
}

impl Exchange for HttpExchanger {
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.call(token)).await {
                Ok(result) => result,
                Err(_) => Err(ExchangeError::Timeout(self.timeout)),
            }
        })
    }
}

impl std::fmt::Debug for HttpExchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExchanger")
            .field("url", &self.url.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Maps a non-200 status to an error class.
fn classify(status: StatusCode, retry_after: Option<Duration>) -> ExchangeError {
    let status_u16 = status.as_u16();
    match status_u16 {
        401 | 403 => ExchangeError::AuthRejected { status: status_u16 },
        429 => ExchangeError::Throttled { retry_after },
        500..=599 => ExchangeError::Upstream { status: status_u16 },
        _ => ExchangeError::UnexpectedStatus { status: status_u16 },
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (relative to `now`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let cases = [
            (401, "auth_rejected"),
            (403, "auth_rejected"),
            (429, "throttled"),
            (500, "upstream_error"),
            (503, "upstream_error"),
            (404, "unexpected_status"),
            (400, "unexpected_status"),
            (204, "unexpected_status"),
        ];
        for (code, class) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(classify(status, None).class(), class, "{code}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
