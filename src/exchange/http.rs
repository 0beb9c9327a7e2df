//! The HTTPS client for the upstream temporary-credentials endpoint.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, RETRY_AFTER, USER_AGENT,
};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::Full;

use super::client::{BoxFuture, Exchange};
use super::error::ExchangeError;
use super::parse::{parse_credentials, MAX_RESPONSE_BYTES};
use super::post;
use crate::config::{ExchangeMethod, UpstreamConfig};
use crate::credentials::Credentials;
use crate::outbound::{read_body, BodyError, BuildError, Outbound, SendError};
use crate::secret::Secret;

/// Longest `Retry-After` honoured; a larger one is clamped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Calls the real upstream over HTTPS (rustls, webpki roots plus `--ca-file`).
#[derive(Clone)]
pub struct HttpExchanger {
    client: Outbound,
    url: Uri,
    timeout: Duration,
    method: ExchangeMethod,
}

// === impl HttpExchanger ===

impl HttpExchanger {
    /// Builds a client for `config`.
    pub fn new(config: &UpstreamConfig) -> Result<Self, BuildError> {
        Ok(Self {
            client: Outbound::new(&config.outbound())?,
            url: config.url.clone(),
            timeout: config.timeout,
            method: config.method.clone(),
        })
    }

    /// The request of one exchange of `token`: the GET with the token as
    /// `Authorization`, or the POST with it in the body.
    fn request(&self, token: &Secret) -> Result<Request<Full<Bytes>>, ExchangeError> {
        let builder = Request::builder()
            .uri(self.url.clone())
            .header(ACCEPT, "application/json")
            // The upstream's documented example sends it on the GET too.
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("credagent/", env!("CARGO_PKG_VERSION")));
        let req = match &self.method {
            ExchangeMethod::Get => {
                let mut auth = HeaderValue::from_str(token.expose())
                    .map_err(|_| ExchangeError::InvalidToken)?;
                auth.set_sensitive(true);
                builder
                    .method(Method::GET)
                    .header(AUTHORIZATION, auth)
                    .body(Full::default())
            }
            ExchangeMethod::Post { org_id, key } => {
                // The claims name the workload the key is tagged with; the
                // upstream verifies the token itself.
                let claims = crate::jwt::decode(token.expose()).ok();
                let body = post::request_body(token, org_id, key, claims.as_ref());
                builder.method(Method::POST).body(Full::new(body))
            }
        };
        req.map_err(|e| ExchangeError::Transport(format!("cannot build request: {e}")))
    }

    async fn call(&self, token: &Secret) -> Result<Credentials, ExchangeError> {
        let req = self.request(token)?;
        let rsp = self.client.send(req).await.map_err(|e| match e {
            SendError::Proxy(p) => ExchangeError::Proxy(p),
            SendError::Transport(m) => ExchangeError::Transport(m),
        })?;
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
            return Err(match (&self.method, status.as_u16()) {
                (ExchangeMethod::Post { .. }, 400) => ExchangeError::KeyRequestRefused,
                (ExchangeMethod::Post { .. }, code @ (404 | 405)) => {
                    ExchangeError::PostNotOffered {
                        status: code,
                        url: self.url.to_string(),
                    }
                }
                _ => classify(status, retry_after),
            });
        }
        let body = read_body(rsp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(_) => ExchangeError::Malformed(e.to_string()),
                BodyError::Broken(_) => ExchangeError::Transport(e.to_string()),
            })?;
        match self.method {
            ExchangeMethod::Get => parse_credentials(&body, server_date),
            ExchangeMethod::Post { .. } => post::parse_answer(&body, server_date),
        }
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

    fn method(&self) -> &'static str {
        self.method.label()
    }
}

impl std::fmt::Debug for HttpExchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExchanger")
            .field("url", &self.url.to_string())
            .field("timeout", &self.timeout)
            .field("method", &self.method.label())
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
