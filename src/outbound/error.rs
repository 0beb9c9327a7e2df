//! The outbound client's errors. None holds a header value or proxy
//! credentials: a proxy is named as `http://host:port` only.

use http::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::route::Via;
use crate::config::ProxyOrigin;

/// hyper-util's `TunnelError` (public, but not exported by a path).
type TunnelError = <Tunnel<HttpConnector> as Service<Uri>>::Error;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for outbound connections: {0}")]
pub struct BuildError(pub(super) String);

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

/// A proxy did not open the way to the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No connection to the proxy itself (DNS, TCP, connect timeout).
    #[error("cannot reach the proxy {proxy} (from {origin}): {reason}")]
    Unreachable {
        /// The proxy, `http://host:port`.
        proxy: String,
        /// Where the proxy setting came from.
        origin: ProxyOrigin,
        /// What failed.
        reason: String,
    },
    /// The proxy answered the `CONNECT` with something other than 2xx, or
    /// closed the connection instead of answering.
    #[error("the proxy {proxy} (from {origin}) refused the tunnel to {target}: {reason}")]
    Refused {
        /// The proxy, `http://host:port`.
        proxy: String,
        /// Where the proxy setting came from.
        origin: ProxyOrigin,
        /// `host:port` asked for.
        target: String,
        /// The proxy's status, when it answered one (407, 403, 502...).
        status: Option<u16>,
        /// What it answered, in words.
        reason: String,
    },
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The proxy did not open the way.
    #[error(transparent)]
    Proxy(ProxyError),
    /// Anything else (DNS, TCP, TLS, a broken connection): the whole cause
    /// chain in one line.
    #[error("{0}")]
    Transport(String),
}

/// The connector's error: the proxy's, or the direct connection's.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Direct(Box<dyn std::error::Error + Send + Sync>),
}

// === impl ProxyError ===

impl ProxyError {
    /// The proxy's status, if it answered the `CONNECT` with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => *status,
            Self::Unreachable { .. } => None,
        }
    }

    /// The proxy, `http://host:port`.
    pub fn proxy(&self) -> &str {
        match self {
            Self::Refused { proxy, .. } | Self::Unreachable { proxy, .. } => proxy,
        }
    }

    pub(super) fn unreachable(via: &Via, cause: &(dyn std::error::Error + 'static)) -> Self {
        Self::Unreachable {
            proxy: via.proxy().to_owned(),
            origin: via.origin(),
            reason: error_chain(cause),
        }
    }

    /// Classifies `Tunnel`'s error; `head` is the start of what the proxy
    /// answered, if anything.
    pub(super) fn from_tunnel(via: &Via, target: &str, e: &TunnelError, head: &[u8]) -> Self {
        let credentials = if via.auth().is_some() {
            "the proxy did not accept the credentials in its URL"
        } else {
            "the proxy URL has no credentials"
        };
        let refused = |status: Option<u16>, reason: String| Self::Refused {
            proxy: via.proxy().to_owned(),
            origin: via.origin(),
            target: target.to_owned(),
            status,
            reason,
        };
        match e {
            TunnelError::ConnectFailed(cause) => Self::unreachable(via, &**cause),
            TunnelError::ProxyAuthRequired => refused(
                Some(407),
                format!("HTTP 407 Proxy Authentication Required ({credentials})"),
            ),
            TunnelError::TunnelUnsuccessful => match status_of(head) {
                // tinyproxy's answer to wrong credentials (its 407 means none).
                Some(401) => refused(Some(401), format!("HTTP 401 ({credentials})")),
                Some(status) => refused(Some(status), format!("HTTP {status}")),
                None => refused(None, "an answer that is not HTTP".into()),
            },
            TunnelError::TunnelUnexpectedEof => refused(
                None,
                "the proxy closed the connection without answering".into(),
            ),
            TunnelError::ProxyHeadersTooLong => {
                refused(status_of(head), "the proxy's answer is too long".into())
            }
            TunnelError::Io(io) => refused(None, format!("the connection broke: {io}")),
            TunnelError::MissingHost => refused(None, "the destination has no host".into()),
        }
    }
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

/// The status code of an answer that starts `HTTP/1.x NNN`.
fn status_of(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let (code, after) = (rest.get(2..5)?, rest.get(5));
    let shaped = rest.get(1) == Some(&b' ')
        && code.iter().all(u8::is_ascii_digit)
        && after.is_none_or(|b| matches!(b, b' ' | b'\r'));
    shaped
        .then(|| std::str::from_utf8(code).ok()?.parse().ok())
        .flatten()
        .filter(|c| (100..=999).contains(c))
}

// === impl ConnectError ===

impl ConnectError {
    pub(super) fn direct(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Direct(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 403 Forbidden\r\n"), Some(403));
        assert_eq!(status_of(b"HTTP/1.0 502 Bad Gateway"), Some(502));
        assert_eq!(status_of(b"HTTP/1.1 407"), Some(407));
        assert_eq!(status_of(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(status_of(b"HTTP/1.1 40"), None);
        assert_eq!(status_of(b"HTTP/1.1 0x1 x"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH_9.2p1"), None);
        assert_eq!(status_of(b""), None);
    }
}
