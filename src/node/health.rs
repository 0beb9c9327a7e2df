//! Whether the node agent can do its job: the upstream answered recently
//! and, with local verification on, the issuers' keys are loaded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::exchange::Disposition;
use crate::refresh::Outcome;
use crate::server::Health;

/// How long every exchange may fail (for reasons not the token's) before
/// the agent reports not ready.
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(60);

/// The upstream's recent record, from every exchange's outcome.
#[derive(Debug)]
pub struct UpstreamHealth {
    epoch: Instant,
    /// Milliseconds since `epoch` (plus one) of the first failure since the
    /// last success; 0 while the last exchange succeeded or none was made.
    failing_since: AtomicU64,
}

/// Something else readiness depends on (the key sets of local verification).
pub trait Ready: Send + Sync + 'static {
    /// `Err` names what is missing.
    fn ready(&self) -> Result<(), String>;
}

/// The node agent's `/readyz`.
pub struct NodeHealth {
    /// The upstream's record.
    pub upstream: Arc<UpstreamHealth>,
    /// Local verification, when on.
    pub keys: Option<Arc<dyn Ready>>,
}

// === impl UpstreamHealth ===

impl UpstreamHealth {
    /// A record with nothing in it (ready).
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            failing_since: AtomicU64::new(0),
        }
    }

    /// Takes one exchange's outcome into account. A refused token says
    /// nothing about the upstream.
    pub fn record(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Fresh(_) => self.failing_since.store(0, Ordering::Relaxed),
            Outcome::Failed(f) if f.error.disposition() == Disposition::Denied => {}
            Outcome::Failed(_) => {
                let now = self.epoch.elapsed().as_millis() as u64 + 1;
                let _ = self.failing_since.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// How long every exchange has been failing, if it has.
    pub fn failing_for(&self) -> Option<Duration> {
        match self.failing_since.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = self.epoch.elapsed().as_millis() as u64 + 1;
                Some(Duration::from_millis(now.saturating_sub(since)))
            }
        }
    }
}

impl Default for UpstreamHealth {
    fn default() -> Self {
        Self::new()
    }
}

// === impl NodeHealth ===

impl Health for NodeHealth {
    fn ready(&self) -> Result<(), String> {
        if let Some(keys) = &self.keys {
            keys.ready()?;
        }
        match self.upstream.failing_for() {
            Some(d) if d >= UNHEALTHY_AFTER => Err(format!(
                "every upstream exchange has failed for {}s",
                d.as_secs()
            )),
            _ => Ok(()),
        }
    }
}
