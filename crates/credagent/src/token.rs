//! The token source: keeps an in-memory copy of the kubelet-projected
//! service-account token current while kubelet rotates it.
//!
//! kubelet never writes the token file in place: it writes a new hidden
//! directory and renames a `..data` symlink over the old one. So this module
//! - watches the token's *directory*, non-recursively, with notify, and treats
//!   every event except `Access` as a hint (names and kinds vary by writer);
//! - debounces the burst of events of one swap;
//! - re-reads through the user-visible path every time (never a resolved
//!   path, whose directory kubelet deletes right after the swap);
//! - retries transient `ENOENT`, `EACCES` and empty reads, and keeps the last
//!   good token;
//! - publishes only when the bytes change;
//! - also polls (at most every 60 s, more often for short-lived tokens), so it
//!   works where inotify does not (gVisor, Kata, NFS, exhausted limits).
//!
//! See `shared/research/token-watch.md` for the evidence behind each rule.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::SharedClock;
use crate::metrics::TokenMetrics;
use crate::secret::Secret;

pub mod jwt;
pub mod mountinfo;

pub use self::jwt::{Claims, JwtError, MAX_TOKEN_BYTES};

/// A validated projected token and what it says about itself.
pub struct Token {
    /// The raw JWT, exactly as sent upstream.
    pub raw: Secret,
    /// Its decoded (unverified) claims.
    pub claims: Claims,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("raw", &self.raw)
            .field("claims", &self.claims)
            .finish()
    }
}

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
            watch: true,
        }
    }
}

/// Poll interval while the directory cannot be watched.
const DEGRADED_POLL: Duration = Duration::from_secs(5);

/// Retry delays for one read that hits a transient error.
const READ_RETRIES: [Duration; 5] = [
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
    Duration::from_millis(160),
];

/// Why one read of the token file gave no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// `ENOENT`, possibly transient during a swap.
    #[error("the token file does not exist (check the projected volume's mountPath and path)")]
    Missing,
    /// Another I/O error, e.g. `EACCES`.
    #[error(
        "cannot read the token file: {0} (check runAsUser/fsGroup and the volume's defaultMode)"
    )]
    Unreadable(String),
    /// Read fine, but not a usable token.
    #[error(transparent)]
    Invalid(#[from] JwtError),
}

impl ReadError {
    fn class(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unreadable(_) => "unreadable",
            Self::Invalid(e) => e.class(),
        }
    }

    fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Missing | Self::Unreadable(_) | Self::Invalid(JwtError::Empty)
        )
    }
}

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
    warned_expiring: bool,
    warned_expired: bool,
}

/// The notify watcher and the flags its callback sets.
struct DirWatch {
    _watcher: RecommendedWatcher,
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
                match watch_dir(&self.config.path, &kick, &rearm) {
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
            self.reload().await;
            self.check_expiry();
            let mut interval = self.poll_interval();
            if self.config.watch && dir_watch.is_none() {
                // Degraded (no inotify, or the directory vanished): poll
                // more often, and retry the watch each time.
                interval = interval.min(DEGRADED_POLL);
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
            }
        }
    }

    fn publish(&mut self, raw: Secret) {
        // `read_with_retry` only returns tokens that decode.
        let Ok(claims) = jwt::decode(raw.expose()) else {
            return;
        };
        let rotated = self.tx.borrow().is_some();
        info!(
            iss = claims.iss.as_deref().unwrap_or(""),
            sub = claims.sub.as_deref().unwrap_or(""),
            aud = claims.aud.join(","),
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

fn watch_dir(path: &Path, kick: &Arc<Notify>, rearm: &Arc<AtomicBool>) -> notify::Result<DirWatch> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (kick, rearm, watched) = (kick.clone(), rearm.clone(), dir.clone());
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
            Ok(ev) => {
                let dir_itself = ev.paths.iter().any(|p| p == &watched)
                    && matches!(
                        ev.kind,
                        EventKind::Remove(_)
                            | EventKind::Modify(notify::event::ModifyKind::Name(_))
                    );
                if ev.need_rescan() || dir_itself {
                    rearm.store(true, Ordering::Release);
                }
                kick.notify_one();
            }
            Err(_) => {
                rearm.store(true, Ordering::Release);
                kick.notify_one();
            }
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch { _watcher: watcher })
}

/// Reads and validates the token, retrying transient failures briefly.
async fn read_with_retry(path: &Path) -> Result<Secret, ReadError> {
    let mut last = ReadError::Missing;
    for delay in std::iter::once(Duration::ZERO).chain(READ_RETRIES) {
        if !delay.is_zero() {
            sleep(delay).await;
        }
        match read_once(path).await {
            Ok(token) => return Ok(token),
            Err(e) if e.is_transient() => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

async fn read_once(path: &Path) -> Result<Secret, ReadError> {
    let file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(2048));
    file.take(MAX_TOKEN_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(io_error)?;
    if buf.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge(buf.len()).into());
    }
    let text = std::str::from_utf8(&buf).map_err(|_| JwtError::Malformed("not UTF-8"))?;
    // kubelet writes no newline; a hand-made file often ends in one.
    let text = text.trim_end_matches(|c: char| c.is_ascii_whitespace());
    jwt::decode(text)?;
    Ok(Secret::new(text))
}

fn io_error(e: std::io::Error) -> ReadError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Unreadable(e.kind().to_string()),
    }
}

fn warn_if_subpath(path: &Path) {
    if is_subpath_mount(path) {
        warn!(
            path = %path.display(),
            "the token file is a subPath (single-file) mount: kubelet will never rotate it and exchanges will fail once it expires; mount the projected volume's directory instead"
        );
    }
}

/// Returns true if and only if `path` is itself a mount point in this
/// process's mount namespace: a `subPath` mount that kubelet never rotates.
pub fn is_subpath_mount(path: &Path) -> bool {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => return false,
        }
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|info| mountinfo::is_mount_point(&info, &absolute))
}

/// Reads and validates the token at `path` once (with the same brief
/// retries as the watcher), for one-shot commands.
pub async fn read_token(path: &Path) -> Result<Token, ReadError> {
    let raw = read_with_retry(path).await?;
    let claims = jwt::decode(raw.expose())?;
    Ok(Token { raw, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let raw = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let token = Token {
            raw: Secret::new(raw),
            claims: jwt::decode(raw).unwrap(),
        };
        let out = format!("{token:?}");
        assert!(
            out.contains("** redacted **") && out.contains("sub: Some(\"x\")"),
            "{out}"
        );
        assert!(
            !out.contains("c2lnbmF0dXJl") && !out.contains("eyJ"),
            "{out}"
        );
    }

    #[test]
    fn poll_interval_follows_ttl() {
        let s = |secs| derived_poll_interval(Some(Duration::from_secs(secs))).as_secs();
        assert_eq!(s(3600), 60);
        assert_eq!(s(600), 10);
        assert_eq!(s(300), 5);
        assert_eq!(derived_poll_interval(None).as_secs(), 60);
    }
}
