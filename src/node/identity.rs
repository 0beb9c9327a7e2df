//! One proven identity: a token the upstream accepted, the credentials it
//! obtained, and what its task needs to keep them fresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::secret::Secret;
use crate::store::Store;
use crate::token::Claims;

/// SHA-256 of a whole token: the only key credentials are cached under.
pub type Digest = [u8; 32];

/// Digests a token.
pub fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Who a token says it is, for log lines (never the token itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// `iss`.
    pub iss: String,
    /// `sub`, e.g. `system:serviceaccount:NS:SA`.
    pub sub: String,
    /// The Pod's namespace, from `kubernetes.io`.
    pub namespace: String,
    /// The Pod's name, from `kubernetes.io`.
    pub pod: String,
}

/// A cached identity. Its task (node::fill) is the one writer of `store`.
#[derive(Debug)]
pub struct Identity {
    /// The token, exchanged again at every refresh.
    pub token: Secret,
    /// The token's `exp`, Unix seconds.
    pub token_exp: i64,
    /// Who the token names.
    pub who: Who,
    /// The current credentials.
    pub store: Store,
    /// Cancelled when the identity leaves the cache: ends its task.
    pub cancel: CancellationToken,
    epoch: Instant,
    /// Milliseconds since `epoch` when last served.
    last_used_ms: AtomicU64,
    /// Milliseconds since `epoch` before which its task will not try again
    /// (0: not backing off).
    retry_at_ms: AtomicU64,
}

// === impl Who ===

impl Who {
    /// What `claims` say.
    pub fn of(claims: &Claims) -> Self {
        Self {
            iss: claims.iss.clone().unwrap_or_default(),
            sub: claims.sub.clone().unwrap_or_default(),
            namespace: claims.namespace.clone().unwrap_or_default(),
            pod: claims.pod.clone().unwrap_or_default(),
        }
    }
}

// === impl Identity ===

impl Identity {
    /// A new identity for `token`, used now.
    pub fn new(token: Secret, token_exp: i64, who: Who, cancel: CancellationToken) -> Self {
        Self {
            token,
            token_exp,
            who,
            store: Store::new(),
            cancel,
            epoch: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            retry_at_ms: AtomicU64::new(0),
        }
    }

    /// Records a use now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_used_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last use.
    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)))
    }

    /// Records that its task backs off until `at` (`None`: it does not).
    pub fn set_retry_at(&self, at: Option<Instant>) {
        let ms = at.map_or(0, |at| {
            (at.saturating_duration_since(self.epoch).as_millis() as u64).max(1)
        });
        self.retry_at_ms.store(ms, Ordering::Relaxed);
    }

    /// When its task will try again, if it is backing off.
    pub fn retry_at(&self) -> Option<Instant> {
        match self.retry_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }
}
