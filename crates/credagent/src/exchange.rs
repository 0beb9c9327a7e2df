//! The exchange: a projected token in, temporary credentials (or a classified
//! error) out.
//!
//! This is the only code that talks to the upstream. The [`Exchange`] trait
//! lets tests and the demo plug in a stand-in; [`HttpExchanger`] is the real
//! HTTPS client.
//!
//! The upstream (CoreWeave AI Object Storage) is called as
//! `GET <url>` with the raw JWT as the whole `Authorization` value and
//! answers, in PascalCase:
//!
//! ```json
//! {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "",
//!  "Expiration": "2026-03-14T21:44:43Z", "attributes": {"cw-role": "..."}}
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::secret::Secret;

pub mod http;
mod parse;

pub use self::http::HttpExchanger;
pub use self::parse::parse_credentials;

/// Largest upstream answer read (bigger answers are malformed).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A boxed future, so that [`Exchange`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Exchanges a token for credentials.
pub trait Exchange: Send + Sync + 'static {
    /// One exchange. Implementations bound it in time.
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>>;
}

/// Temporary credentials as the upstream issued them.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not a secret: it appears in S3 access logs).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token; may be empty (CoreWeave issues non-session keys).
    pub session_token: Secret,
    /// When the upstream says they expire.
    pub expiration: OffsetDateTime,
    /// The role the upstream mapped the token to (`attributes["cw-role"]`).
    pub role: Option<String>,
    /// The account id, if the upstream names one.
    pub account_id: Option<String>,
    /// The upstream's `Date` header, if it sent one: its clock at issue.
    pub server_date: Option<SystemTime>,
}

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
            Self::Timeout(_) => "timeout",
            Self::Malformed(_) => "malformed",
            Self::Expired { .. } => "expired",
            Self::InvalidToken => "invalid_token",
        }
    }

    /// Returns true if and only if a different token might succeed where
    /// this one failed.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::AuthRejected { .. } | Self::InvalidToken)
    }
}

// === impl Credentials ===

impl Credentials {
    /// How long these credentials were granted for, measured on the
    /// upstream's clock when it sent a `Date`, else on ours (`now`).
    ///
    /// Fails with [`ExchangeError::Expired`] if they are already expired.
    pub fn lifetime(&self, now: SystemTime) -> Result<Duration, ExchangeError> {
        let issued = self.server_date.unwrap_or(now);
        let expires = SystemTime::from(self.expiration);
        match expires.duration_since(issued) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(ExchangeError::Expired {
                expiration: crate::store::format_expiration(self.expiration),
            }),
        }
    }

    /// These credentials with their [`lifetime`](Self::lifetime): what every
    /// caller of an exchange needs before it can use the answer.
    pub fn with_lifetime(self, now: SystemTime) -> Result<(Self, Duration), ExchangeError> {
        let lifetime = self.lifetime(now)?;
        Ok((self, lifetime))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field(
                "expiration",
                &crate::store::format_expiration(self.expiration),
            )
            .field("role", &self.role)
            .field("account_id", &self.account_id)
            .finish()
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("SECRETKEY"),
            session_token: Secret::new("SESSIONTOKEN"),
            expiration: datetime!(2026-01-01 01:00:00 UTC),
            role: None,
            account_id: None,
            server_date: None,
        }
    }

    #[test]
    fn lifetime_uses_server_clock_when_known() {
        let mut c = creds();
        let local = SystemTime::from(datetime!(2026-01-01 00:50:00 UTC));
        assert_eq!(c.lifetime(local), Ok(Duration::from_secs(600)));
        // Our clock is 10 minutes ahead; the upstream's Date wins.
        c.server_date = Some(SystemTime::from(datetime!(2026-01-01 00:00:00 UTC)));
        assert_eq!(c.lifetime(local), Ok(Duration::from_secs(3600)));
        c.server_date = Some(SystemTime::from(datetime!(2026-01-01 01:00:00 UTC)));
        assert!(matches!(
            c.lifetime(local),
            Err(ExchangeError::Expired { .. })
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let out = format!("{:?}", creds());
        assert!(out.contains("AKID"));
        assert!(
            !out.contains("SECRETKEY") && !out.contains("SESSIONTOKEN"),
            "{out}"
        );
    }
}
