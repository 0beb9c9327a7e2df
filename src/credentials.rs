//! Temporary credentials: the one value every stage hands to the next.
//!
//! The exchange produces them, the refresh engine schedules by their
//! lifetime, the store keeps them, [`crate::wire`] renders them for each
//! surface. This module depends on nothing above [`crate::secret`].

use std::fmt;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::secret::Secret;

/// Temporary credentials as the upstream issued them.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not a secret: it appears in S3 access logs).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token; may be empty (CoreWeave issues non-session keys).
    pub session_token: Secret,
    /// When the upstream says they expire, in UTC.
    pub expiration: OffsetDateTime,
    /// The role the upstream mapped the token to (`attributes["cw-role"]`).
    pub role: Option<String>,
    /// The account id, if the upstream names one.
    pub account_id: Option<String>,
    /// The upstream's `Date` header, if it sent one: its clock at issue.
    pub server_date: Option<SystemTime>,
}

/// Credentials whose expiry is not after the time they were issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the credentials have already expired")]
pub struct Expired {
    /// Their `Expiration`.
    pub expiration: OffsetDateTime,
}

// === impl Credentials ===

impl Credentials {
    /// How long these credentials were granted for, measured on the
    /// upstream's clock when it sent a `Date`, else on ours (`now`).
    ///
    /// Fails if they are already expired.
    pub fn lifetime(&self, now: SystemTime) -> Result<Duration, Expired> {
        let issued = self.server_date.unwrap_or(now);
        let expires = SystemTime::from(self.expiration);
        match expires.duration_since(issued) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(Expired {
                expiration: self.expiration,
            }),
        }
    }

    /// These credentials with their [`lifetime`](Self::lifetime): what every
    /// caller of an exchange needs before it can use the answer.
    pub fn with_lifetime(self, now: SystemTime) -> Result<(Self, Duration), Expired> {
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
            .field("expiration", &self.expiration.unix_timestamp())
            .field("role", &self.role)
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// The credentials the crate's unit tests serve (`AKID`, a role, the given
/// session token).
#[cfg(test)]
pub(crate) fn sample(session_token: &str) -> Credentials {
    Credentials {
        access_key_id: "AKID".into(),
        secret_access_key: Secret::new("s3cr3t"),
        session_token: Secret::new(session_token),
        expiration: time::macros::datetime!(2026-03-14 21:44:43.250 +02:00),
        role: Some("role".into()),
        account_id: None,
        server_date: None,
    }
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
        assert_eq!(
            c.lifetime(local),
            Err(Expired {
                expiration: c.expiration
            })
        );
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
