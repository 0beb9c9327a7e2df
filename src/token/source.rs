//! The token source task: keeps an in-memory copy of the projected token
//! current while kubelet rotates it, and publishes it on a `watch` channel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::mountinfo::warn_if_subpath;
use super::read::{read_with_retry, Token};
use crate::clock::SharedClock;
use crate::dirwatch::watch_parent;
use crate::jwt;
use crate::logsafe::Untrusted;
use crate::metrics::TokenMetrics;
use crate::secret::Secret;

/// How the token source behaves.
#[derive(Debug, Clone)]
pub struct TokenSourceConfig {
    /// The user-visible token path.
    pub path: PathBuf,
    /// Quiet time after the last event before reading (trailing debounce).
    ///
    /// kubelet's swap is a burst of events well under a millisecond apart,
    /// and a read in the middle of it is still correct (the `..data` rename
    /// is the commit; a later event only causes a no-op compare), so this
    /// only saves reads: 20 ms collapses the burst into one read while
    /// adding next to nothing to the time a rotation takes to reach the
    /// upstream (BENCHMARKS.md, section 3).
    pub debounce: Duration,
    /// Longest a burst of events can delay the read.
    pub max_debounce: Duration,
    /// Poll interval; `None` derives it from the token's lifetime.
    pub poll_interval: Option<Duration>,
    /// Poll interval while there is no valid token yet.
    pub missing_interval: Duration,
    /// Longest poll interval while the directory cannot be watched (no
    /// inotify, or the directory vanished); the watch is retried each time.
    pub degraded_interval: Duration,
    /// Use inotify (notify); false means poll only.
    pub watch: bool,
}

impl TokenSourceConfig {
    /// The defaults for `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            debounce: Duration::from_millis(20),
            max_debounce: Duration::from_secs(2),
            poll_interval: None,
            missing_interval: Duration::from_secs(1),
            degraded_interval: DEGRADED_POLL,
            watch: true,
        }
    }
}

/// Poll interval while the directory cannot be watched (default).
const DEGRADED_POLL: Duration = Duration::from_secs(5);

/// When to read again after consecutive failed reads (the last step
/// repeats). A failure such as `EMFILE` under a descriptor flood, or a
/// transient `EACCES`, clears within seconds; the next regular poll may be
/// a minute away, and no inotify event announces the recovery.
const RETRY_AFTER_FAILURE: [Duration; 5] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Starts the token source and returns the channel it publishes to. The
/// value is `None` until a valid token has been read.
pub fn spawn(
    config: TokenSourceConfig,
    clock: SharedClock,
    metrics: TokenMetrics,
    shutdown: CancellationToken,
) -> watch::Receiver<Option<Arc<Token>>> {
    let (tx, rx) = watch::channel(None);
    let source = Source {
        config,
        clock,
        metrics,
        tx,
        failing: None,
        failures: 0,
        warned_expiring: false,
        warned_expired: false,
    };
    tokio::spawn(source.run(shutdown));
    rx
}

struct Source {
    config: TokenSourceConfig,
    clock: SharedClock,
    metrics: TokenMetrics,
    tx: watch::Sender<Option<Arc<Token>>>,
    /// The class of the last failed read, to log only transitions.
    failing: Option<&'static str>,
    /// Consecutive failed reads (the retry schedule's step).
    failures: usize,
    warned_expiring: bool,
    warned_expired: bool,
}

// === impl Source ===

impl Source {
    async fn run(mut self, shutdown: CancellationToken) {
        warn_if_subpath(&self.config.path);
        let kick = Arc::new(Notify::new());
        let rearm = Arc::new(AtomicBool::new(false));
        let mut dir_watch = None;
        let mut watch_failed_logged = false;
        loop {
            if self.config.watch && (dir_watch.is_none() || rearm.swap(false, Ordering::AcqRel)) {
                dir_watch = None;
                match watch_parent(&self.config.path, &kick, &rearm) {
                    Ok(w) => {
                        if watch_failed_logged {
                            info!("watching the token directory again");
                        }
                        watch_failed_logged = false;
                        dir_watch = Some(w);
                    }
                    Err(e) if !watch_failed_logged => {
                        warn!(error = %e, "cannot watch the token directory; polling only");
                        watch_failed_logged = true;
                    }
                    Err(e) => debug!(error = %e, "still cannot watch the token directory"),
                }
            }
            // A read stuck on a hung filesystem must not hold shutdown.
            tokio::select! {
                _ = self.reload() => {}
                _ = shutdown.cancelled() => break,
            }
            self.check_expiry();
            let mut interval = self.poll_interval();
            if let Some(step) = self.failures.checked_sub(1) {
                let retry = RETRY_AFTER_FAILURE[step.min(RETRY_AFTER_FAILURE.len() - 1)];
                interval = interval.min(retry);
            }
            if self.config.watch && dir_watch.is_none() {
                // Degraded (no inotify, or the directory vanished): poll
                // more often, and retry the watch each time.
                interval = interval.min(self.config.degraded_interval);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = kick.notified() => self.debounce(&kick).await,
                _ = sleep(interval) => {}
            }
        }
        drop(dir_watch);
    }

    /// Waits until no event has arrived for `debounce`, at most `max_debounce`.
    async fn debounce(&self, kick: &Notify) {
        let deadline = Instant::now() + self.config.max_debounce;
        loop {
            tokio::select! {
                _ = kick.notified() => {}
                _ = sleep(self.config.debounce) => return,
                _ = sleep_until(deadline) => return,
            }
        }
    }

    fn poll_interval(&self) -> Duration {
        let current = self.tx.borrow();
        match (&*current, self.config.poll_interval) {
            (None, _) => self.config.missing_interval,
            (Some(_), Some(fixed)) => fixed,
            (Some(token), None) => derived_poll_interval(token.claims.ttl()),
        }
    }

    async fn reload(&mut self) {
        match read_with_retry(&self.config.path).await {
            Ok(raw) => {
                let unchanged = self
                    .tx
                    .borrow()
                    .as_ref()
                    .is_some_and(|t| t.raw.expose() == raw.expose());
                if unchanged {
                    self.metrics.reloads.with_label_values(&["unchanged"]).inc();
                } else {
                    self.publish(raw);
                }
                self.failures = 0;
                if self.failing.take().is_some() {
                    info!(path = %self.config.path.display(), "projected token readable again");
                }
            }
            Err(e) => {
                self.metrics.reloads.with_label_values(&[e.class()]).inc();
                let keeping = self.tx.borrow().is_some();
                if self.failing != Some(e.class()) {
                    warn!(
                        path = %self.config.path.display(),
                        reason = e.class(),
                        error = %e,
                        keeping_last_good = keeping,
                        "cannot use the projected token"
                    );
                } else {
                    debug!(reason = e.class(), "projected token still unusable");
                }
                self.failing = Some(e.class());
                self.failures = self.failures.saturating_add(1);
            }
        }
    }

    fn publish(&mut self, raw: Secret) {
        // `read_with_retry` only returns tokens that decode.
        let Ok(claims) = jwt::decode(raw.expose()) else {
            return;
        };
        let rotated = self.tx.borrow().is_some();
        // Unverified claims: escaped and capped (a `sub` may hold a newline
        // and a forged log line).
        let aud = claims.aud.join(",");
        info!(
            iss = %Untrusted::new(claims.iss.as_deref().unwrap_or("")),
            sub = %Untrusted::new(claims.sub.as_deref().unwrap_or("")),
            aud = %Untrusted::new(&aud),
            exp = claims.exp,
            iat = claims.iat,
            ttl_s = claims.ttl().map(|d| d.as_secs()),
            len = raw.len(),
            "{}",
            if rotated {
                "projected token rotated"
            } else {
                "projected token loaded"
            }
        );
        if let Some(exp) = claims.exp {
            self.metrics.expiry.set(exp as f64);
        }
        self.metrics.reloads.with_label_values(&["updated"]).inc();
        self.warned_expiring = false;
        self.warned_expired = false;
        self.tx.send_replace(Some(Arc::new(Token { raw, claims })));
    }

    /// Warns once when kubelet seems not to rotate the token in time.
    fn check_expiry(&mut self) {
        let (exp, ttl) = match &*self.tx.borrow() {
            Some(t) => match t.claims.exp {
                Some(exp) => (exp, t.claims.ttl()),
                None => return,
            },
            None => return,
        };
        let now = crate::clock::unix_seconds(self.clock.now()) as i64;
        let margin = ttl
            .map(|t| i64::try_from(t.as_secs() / 10).unwrap_or(i64::MAX))
            .unwrap_or(60);
        if now >= exp && !self.warned_expired {
            self.warned_expired = true;
            error!(exp, "the projected token has expired and kubelet has not replaced it; exchanges will fail");
        } else if now >= exp.saturating_sub(margin) && now < exp && !self.warned_expiring {
            self.warned_expiring = true;
            warn!(
                exp,
                expires_in_s = exp - now,
                "the projected token expires soon and kubelet has not rotated it"
            );
        }
    }
}

/// `min(60 s, max(5 s, (0.2 * ttl - 100 s) / 2))`: well inside the window
/// between kubelet writing a new token (at 80 % of its TTL, plus up to one
/// pod sync) and the old one expiring.
pub fn derived_poll_interval(ttl: Option<Duration>) -> Duration {
    let Some(ttl) = ttl else {
        return Duration::from_secs(60);
    };
    let window = ttl.as_secs_f64() * 0.2 - 100.0;
    Duration::from_secs_f64((window / 2.0).clamp(5.0, 60.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_follows_ttl() {
        let s = |secs| derived_poll_interval(Some(Duration::from_secs(secs))).as_secs();
        assert_eq!(s(3600), 60);
        assert_eq!(s(600), 10);
        assert_eq!(s(300), 5);
        assert_eq!(derived_poll_interval(None).as_secs(), 60);
    }
}
