//! Accepting connections when `accept` fails, mostly for want of file
//! descriptors (EMFILE, ENFILE) or memory: every failure is counted
//! (`credagent_accept_errors_total{listener}`), the next try waits an
//! exponentially longer time ([`FIRST_BACKOFF`] doubling up to
//! [`MAX_BACKOFF`], Go's `net/http` schedule), and the log gets at most one
//! line per [`LOG_INTERVAL`] with the count since the last. A retry loop
//! without those would spin a core and flood the log while the pending
//! connections wait anyway; descriptors free up when connections close,
//! and accepting resumes within [`MAX_BACKOFF`] of that.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics::ListenerMetrics;

/// The wait after a first failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one log line per listener this often while accepts fail.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A listener's accept loop state.
pub struct Acceptor {
    listener: TcpListener,
    name: &'static str,
    metrics: ListenerMetrics,
    backoff: Backoff,
    log: LogLimit,
}

/// The wait before the next try: doubling from [`FIRST_BACKOFF`] to
/// [`MAX_BACKOFF`], back to nothing after a success.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

/// Failures seen and when they were last logged.
#[derive(Debug, Default)]
pub struct LogLimit {
    unlogged: u64,
    total: u64,
    last: Option<Instant>,
}

// === impl Acceptor ===

impl Acceptor {
    /// Accepts on `listener`, counting failures for the listener `name`.
    pub fn new(listener: TcpListener, name: &'static str, metrics: ListenerMetrics) -> Self {
        Self {
            listener,
            name,
            metrics,
            backoff: Backoff::default(),
            log: LogLimit::default(),
        }
    }

    /// The next connection, however many tries it takes.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff.reset();
                    if let Some(failures) = self.log.recovered() {
                        info!(
                            listener = self.name,
                            failures, "accepting connections again"
                        );
                    }
                    return accepted;
                }
                Err(e) => {
                    self.metrics.accept_errors.inc();
                    let wait = self.backoff.next();
                    if let Some(failures) = self.log.failed(Instant::now()) {
                        warn!(
                            listener = self.name,
                            error = %e,
                            failures,
                            retry_ms = wait.as_millis() as u64,
                            "cannot accept connections (out of file descriptors?); backing off"
                        );
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

// === impl Backoff ===

impl Backoff {
    /// The wait after one more failure.
    pub fn next(&mut self) -> Duration {
        let wait = self
            .next
            .map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF));
        self.next = Some(wait);
        wait
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

// === impl LogLimit ===

impl LogLimit {
    /// One more failure at `now`: `Some(failures since the last line)` if a
    /// line is due.
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        self.total += 1;
        match self.last {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }

    /// A success: `Some(failures in the episode)` if it ends one.
    pub fn recovered(&mut self) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let total = std::mem::take(&mut self.total);
        self.unlogged = 0;
        self.last = None;
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..10).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), FIRST_BACKOFF);
    }

    #[test]
    fn failures_are_logged_once_per_interval_with_their_count() {
        let mut log = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(log.failed(t0), Some(1), "the first failure is logged");
        for i in 1..100 {
            let at = t0 + Duration::from_millis(i * 50);
            assert_eq!(log.failed(at), None, "within the interval");
        }
        assert_eq!(log.failed(t0 + LOG_INTERVAL), Some(100), "the count since");
        assert_eq!(log.recovered(), Some(101), "the episode's total");
        assert_eq!(log.recovered(), None, "no episode");
        assert_eq!(
            log.failed(t0 + LOG_INTERVAL),
            Some(1),
            "a new episode logs at once"
        );
    }
}
