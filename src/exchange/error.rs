//! Why an exchange failed, classified so that callers can decide what to do.

use std::time::Duration;

use crate::credentials::Expired;
use crate::outbound::ProxyError;
use crate::wire::{format_expiration, WireError};

/// Why an exchange failed. Display never contains a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// 401/403: the upstream does not accept this token.
    #[error("upstream rejected the token (HTTP {status}): check the OIDC configuration, the token's audience and the access policy")]
    AuthRejected {
        /// The status the upstream answered.
        status: u16,
    },
    /// 429: the upstream asks us to slow down.
    #[error("upstream is throttling (HTTP 429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// The upstream's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// 5xx.
    #[error("upstream error (HTTP {status})")]
    Upstream {
        /// The status the upstream answered.
        status: u16,
    },
    /// Any other non-200 status.
    #[error("unexpected upstream status (HTTP {status})")]
    UnexpectedStatus {
        /// The status the upstream answered.
        status: u16,
    },
    /// Connecting, TLS, or the connection broke.
    #[error("cannot reach the upstream: {0}")]
    Transport(String),
    /// The proxy refused the tunnel to the upstream (407, 403, 502...) or
    /// cannot be reached. Its Display names the proxy, never its credentials.
    #[error(transparent)]
    Proxy(ProxyError),
    /// No complete answer within the configured time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// A 200 whose body is not usable credentials.
    #[error("malformed upstream answer: {0}")]
    Malformed(String),
    /// Credentials whose `Expiration` is not after the upstream's (or our) clock.
    #[error("upstream returned credentials that have already expired (Expiration {expiration})")]
    Expired {
        /// The `Expiration` as received, reformatted.
        expiration: String,
    },
    /// The token cannot be sent as an HTTP header value.
    #[error("the token contains characters that cannot be sent in a header")]
    InvalidToken,
    /// 400 to the POST exchange: the upstream refused what was asked for.
    #[error("upstream refused the key request (HTTP 400): check --key-lifetime (15m to 12h) and --key-attribute (names, values, how many)")]
    KeyRequestRefused,
    /// 404 or 405 to the POST exchange: the upstream does not offer it here.
    #[error("upstream does not offer the POST exchange at {url} (HTTP {status}): check --exchange-url, or remove --key-lifetime to use the GET exchange")]
    PostNotOffered {
        /// The status the upstream answered.
        status: u16,
        /// The URL posted to (never holds a secret: user-info is refused
        /// in upstream URLs).
        url: String,
    },
}

/// What a failure says about the token that was exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The upstream refused this token (401, 403, 400, 404) or it cannot be
    /// sent: the same token will fail again, another may not.
    Denied,
    /// Not the token's fault (5xx, 429, timeouts, transport, a bad answer,
    /// a POST exchange the upstream refuses for every token): the same
    /// token may succeed later.
    Retry,
}

// === impl ExchangeError ===

impl ExchangeError {
    /// A short, bounded label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::AuthRejected { .. } => "auth_rejected",
            Self::Throttled { .. } => "throttled",
            Self::Upstream { .. } => "upstream_error",
            Self::UnexpectedStatus { .. } => "unexpected_status",
            Self::Transport(_) => "transport",
            Self::Proxy(ProxyError::Refused { .. }) => "proxy_refused",
            Self::Proxy(ProxyError::Unreachable { .. }) => "proxy_unreachable",
            Self::Timeout(_) => "timeout",
            Self::Malformed(_) => "malformed",
            Self::Expired { .. } => "expired",
            Self::InvalidToken => "invalid_token",
            Self::KeyRequestRefused => "key_request_refused",
            Self::PostNotOffered { .. } => "post_not_offered",
        }
    }

    /// Every [`class`](Self::class) there is, for metrics that show each
    /// series from the start.
    pub const CLASSES: [&'static str; 13] = [
        "auth_rejected",
        "throttled",
        "upstream_error",
        "unexpected_status",
        "transport",
        "proxy_refused",
        "proxy_unreachable",
        "timeout",
        "malformed",
        "expired",
        "invalid_token",
        "key_request_refused",
        "post_not_offered",
    ];

    /// Whether retrying the same token can help.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::AuthRejected { .. } | Self::InvalidToken => Disposition::Denied,
            Self::UnexpectedStatus { status: 400 | 404 } => Disposition::Denied,
            _ => Disposition::Retry,
        }
    }

    /// Returns true if and only if a different token might succeed where
    /// this one failed.
    pub fn is_denied(&self) -> bool {
        self.disposition() == Disposition::Denied
    }

    /// The upstream's `Retry-After`, if it sent one with a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The status class of the upstream's answer (`2xx`, `4xx`, `5xx`, or
    /// `error` when there was none), for metrics.
    pub fn status_class(&self) -> &'static str {
        let status = match self {
            Self::Malformed(_) | Self::Expired { .. } => 200,
            Self::AuthRejected { status }
            | Self::Upstream { status }
            | Self::UnexpectedStatus { status }
            | Self::PostNotOffered { status, .. } => *status,
            Self::KeyRequestRefused => 400,
            Self::Throttled { .. } => 429,
            // A proxy's refusal is not the upstream's answer.
            Self::Transport(_) | Self::Proxy(_) | Self::Timeout(_) | Self::InvalidToken => 0,
        };
        status_class(status)
    }
}

/// The class label of an HTTP status (`error` for none).
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

impl From<Expired> for ExchangeError {
    fn from(e: Expired) -> Self {
        Self::Expired {
            expiration: format_expiration(e.expiration),
        }
    }
}

impl From<WireError> for ExchangeError {
    fn from(e: WireError) -> Self {
        Self::Malformed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_dispositions() {
        let cases = [
            (
                ExchangeError::AuthRejected { status: 401 },
                Disposition::Denied,
                "4xx",
            ),
            (
                ExchangeError::UnexpectedStatus { status: 404 },
                Disposition::Denied,
                "4xx",
            ),
            (
                ExchangeError::UnexpectedStatus { status: 400 },
                Disposition::Denied,
                "4xx",
            ),
            (
                ExchangeError::UnexpectedStatus { status: 409 },
                Disposition::Retry,
                "4xx",
            ),
            (ExchangeError::InvalidToken, Disposition::Denied, "error"),
            // The agent's configuration, not the token: every token fails
            // alike, so node mode answers 503 (not the Pod's fault) and
            // reports itself unready, and retries back off.
            (ExchangeError::KeyRequestRefused, Disposition::Retry, "4xx"),
            (
                ExchangeError::PostNotOffered {
                    status: 405,
                    url: "https://api.example/oidc".into(),
                },
                Disposition::Retry,
                "4xx",
            ),
            (
                ExchangeError::Upstream { status: 503 },
                Disposition::Retry,
                "5xx",
            ),
            (
                ExchangeError::Throttled { retry_after: None },
                Disposition::Retry,
                "4xx",
            ),
            (
                ExchangeError::Timeout(Duration::from_secs(1)),
                Disposition::Retry,
                "error",
            ),
            (
                ExchangeError::Malformed("x".into()),
                Disposition::Retry,
                "2xx",
            ),
            (
                ExchangeError::Proxy(ProxyError::Refused {
                    proxy: "http://proxy:3128".into(),
                    origin: crate::config::ProxyOrigin::Env("HTTPS_PROXY"),
                    target: "api.example:443".into(),
                    status: Some(407),
                    reason: "HTTP 407".into(),
                }),
                Disposition::Retry,
                "error",
            ),
            (
                ExchangeError::Proxy(ProxyError::Unreachable {
                    proxy: "http://proxy:3128".into(),
                    origin: crate::config::ProxyOrigin::Flag,
                    reason: "tcp connect error".into(),
                }),
                Disposition::Retry,
                "error",
            ),
        ];
        for (e, disposition, class) in cases {
            assert_eq!(e.disposition(), disposition, "{e}");
            assert_eq!(e.status_class(), class, "{e}");
            assert!(ExchangeError::CLASSES.contains(&e.class()), "{e}");
        }
    }
}
