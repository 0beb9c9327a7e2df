//! The identity cache: credentials for many Pods, each cached only under a
//! digest of the exact token that obtained them.
//!
//! - A hit answers from memory.
//! - A miss exchanges that token upstream; concurrent misses for the same
//!   token wait on the one exchange in flight (single-flight, woken by the
//!   filler, never polling) and share its outcome, success or failure.
//! - Different tokens proceed in parallel, at most `upstream_concurrency`
//!   exchanges at a time.
//! - A token the upstream rejects (401/403) is remembered for
//!   `negative_ttl`, so a broken Pod cannot hammer the upstream.
//! - Each identity is refreshed ahead of expiry, on the sidecar's schedule,
//!   while it is used; idle identities and those whose token expired are
//!   dropped, and the least recently used go when the cache is full. Memory
//!   is bounded by `max_identities` whatever the traffic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::{unix_seconds, SharedClock};
use crate::exchange::{Credentials, Exchange, ExchangeError};
use crate::metrics::NodeMetrics;
use crate::refresh::RefreshPolicy;
use crate::secret::Secret;
use crate::store::{Snapshot, Store};

/// SHA-256 of a whole token: the only key credentials are cached under.
pub type Digest = [u8; 32];

/// Digests a token.
pub fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// How the cache behaves.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most identities held at once.
    pub max_identities: usize,
    /// Most upstream exchanges in flight at once.
    pub upstream_concurrency: usize,
    /// Identities unused for this long are dropped at their next refresh.
    pub idle_timeout: Duration,
    /// How long a token the upstream rejected is refused without asking again.
    pub negative_ttl: Duration,
    /// When to refresh and how long to serve.
    pub policy: RefreshPolicy,
}

/// What the cache knows about a token without waiting.
#[derive(Debug)]
pub enum Lookup {
    /// Servable credentials.
    Hit(Arc<Snapshot>),
    /// The upstream rejected this token recently.
    Denied,
    /// Nothing usable: call [`IdentityCache::fetch`].
    Miss,
}

/// Why a fetch gave no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The upstream rejected the token (401/403).
    #[error("the upstream rejected this token")]
    Denied,
    /// Any other failure; the client may retry.
    #[error(transparent)]
    Unavailable(ExchangeError),
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct IdentityCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<HashMap<Digest, Arc<Entry>>>,
    negative: Mutex<HashMap<Digest, Instant>>,
    exchange: Arc<dyn Exchange>,
    upstream: Semaphore,
    config: CacheConfig,
    clock: SharedClock,
    metrics: NodeMetrics,
    epoch: Instant,
    shutdown: CancellationToken,
}

/// One identity: a token and the credentials it obtained.
struct Entry {
    token: Secret,
    /// The token's `exp`, Unix seconds.
    token_exp: i64,
    store: Store,
    /// Milliseconds since the cache's epoch when last served.
    last_used_ms: AtomicU64,
    /// Held while exchanging; holds the last exchange's failure, so that
    /// requests that waited share it instead of calling again.
    fill: tokio::sync::Mutex<Option<FetchError>>,
    /// Bumped after every exchange attempt.
    attempts: AtomicU64,
    refreshing: AtomicBool,
    cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent
    // (every critical section is a single insert/remove), so recover.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// === impl IdentityCache ===

impl IdentityCache {
    /// An empty cache exchanging through `exchange`.
    pub fn new(
        exchange: Arc<dyn Exchange>,
        config: CacheConfig,
        clock: SharedClock,
        metrics: NodeMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        metrics.max_identities.set(config.max_identities as i64);
        let inner = Arc::new(Inner {
            entries: Mutex::new(HashMap::new()),
            negative: Mutex::new(HashMap::new()),
            exchange,
            upstream: Semaphore::new(config.upstream_concurrency.max(1)),
            config,
            clock,
            metrics,
            epoch: Instant::now(),
            shutdown,
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Looks `digest` up without waiting.
    pub fn lookup(&self, digest: &Digest) -> Lookup {
        let now = Instant::now();
        let entry = lock(&self.inner.entries).get(digest).cloned();
        if let Some(entry) = entry {
            if let Some(snapshot) = entry.store.servable(now) {
                entry.touch(&self.inner);
                self.inner.metrics.hits.inc();
                return Lookup::Hit(snapshot);
            }
        }
        if self.inner.is_denied(digest, now) {
            self.inner.metrics.negative_hits.inc();
            return Lookup::Denied;
        }
        Lookup::Miss
    }

    /// Gets credentials for `token` (whose `exp` is `token_exp`), exchanging
    /// it if needed. Concurrent calls for one token share one exchange.
    pub async fn fetch(
        &self,
        digest: Digest,
        token: &str,
        token_exp: i64,
    ) -> Result<Arc<Snapshot>, FetchError> {
        self.inner.metrics.misses.inc();
        let entry = self.inner.entry_for(digest, token, token_exp);
        let seen = entry.attempts.load(Ordering::Acquire);
        let mut fill = match entry.fill.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                self.inner.metrics.joins.inc();
                entry.fill.lock().await
            }
        };
        if let Some(snapshot) = entry.store.servable(Instant::now()) {
            entry.touch(&self.inner);
            return Ok(snapshot);
        }
        if entry.attempts.load(Ordering::Acquire) != seen {
            // An exchange for this token finished while we waited: share it.
            if let Some(e) = fill.clone() {
                return Err(e);
            }
        }
        if self.inner.is_denied(&digest, Instant::now()) {
            return Err(FetchError::Denied);
        }
        let result = self.inner.exchange_once(&entry.token).await;
        entry.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok((credentials, lifetime, started)) => {
                *fill = None;
                let snapshot = self.inner.publish(&entry, credentials, lifetime, started);
                entry.touch(&self.inner);
                if !entry.refreshing.swap(true, Ordering::AcqRel) {
                    tokio::spawn(refresh_ahead(self.inner.clone(), digest, entry.clone()));
                }
                Ok(snapshot)
            }
            Err(e) => {
                let err = if e.is_auth() {
                    self.inner.deny(digest);
                    self.inner.evict(&digest, &entry, "auth_rejected");
                    FetchError::Denied
                } else {
                    if entry.store.load().is_none() {
                        self.inner.evict(&digest, &entry, "failed");
                    }
                    FetchError::Unavailable(e)
                };
                *fill = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Identities cached now.
    pub fn len(&self) -> usize {
        lock(&self.inner.entries).len()
    }

    /// Returns true if and only if no identity is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("identities", &self.len())
            .field("config", &self.inner.config)
            .finish()
    }
}

// === impl Entry ===

impl Entry {
    fn touch(&self, inner: &Inner) {
        let ms = inner.epoch.elapsed().as_millis() as u64;
        self.last_used_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self, inner: &Inner) -> Duration {
        let now = inner.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)))
    }
}

// === impl Inner ===

impl Inner {
    fn entry_for(&self, digest: Digest, token: &str, token_exp: i64) -> Arc<Entry> {
        let mut entries = lock(&self.entries);
        if let Some(e) = entries.get(&digest) {
            return e.clone();
        }
        while entries.len() >= self.config.max_identities.max(1) {
            let victim = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used_ms.load(Ordering::Relaxed))
                .map(|(d, _)| *d);
            let Some(victim) = victim else { break };
            if let Some(e) = entries.remove(&victim) {
                e.cancel.cancel();
                self.metrics.evictions.with_label_values(&["lru"]).inc();
            }
        }
        let entry = Arc::new(Entry {
            token: Secret::new(token),
            token_exp,
            store: Store::new(),
            last_used_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            fill: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            cancel: self.shutdown.child_token(),
        });
        entries.insert(digest, entry.clone());
        self.metrics.identities.set(entries.len() as i64);
        entry
    }

    /// Removes `entry` if it is still the one cached under `digest`.
    fn evict(&self, digest: &Digest, entry: &Arc<Entry>, reason: &'static str) {
        let mut entries = lock(&self.entries);
        if entries.get(digest).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            entries.remove(digest);
            self.metrics.evictions.with_label_values(&[reason]).inc();
            debug!(reason, "identity evicted");
        }
        self.metrics.identities.set(entries.len() as i64);
        entry.cancel.cancel();
    }

    fn is_denied(&self, digest: &Digest, now: Instant) -> bool {
        lock(&self.negative)
            .get(digest)
            .is_some_and(|until| now < *until)
    }

    fn deny(&self, digest: Digest) {
        let now = Instant::now();
        let mut negative = lock(&self.negative);
        if negative.len() >= self.config.max_identities.max(1) {
            negative.retain(|_, until| now < *until);
        }
        while negative.len() >= self.config.max_identities.max(1) {
            let oldest = negative
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(d, _)| *d);
            match oldest {
                Some(d) => negative.remove(&d),
                None => break,
            };
        }
        negative.insert(digest, now + self.config.negative_ttl);
    }

    /// One upstream exchange, within the concurrency bound.
    async fn exchange_once(
        &self,
        token: &Secret,
    ) -> Result<(Credentials, Duration, Instant), ExchangeError> {
        let _permit = self
            .upstream
            .acquire()
            .await
            .map_err(|_| ExchangeError::Transport("shutting down".into()))?;
        let started = Instant::now();
        let result = self
            .exchange
            .exchange(token)
            .await
            .and_then(|c| c.with_lifetime(self.clock.now()))
            .map(|(c, l)| (c, l, started));
        self.metrics
            .upstream_duration
            .observe(started.elapsed().as_secs_f64());
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.class(),
        };
        self.metrics
            .upstream_calls
            .with_label_values(&[label])
            .inc();
        result
    }

    fn publish(
        &self,
        entry: &Entry,
        credentials: Credentials,
        lifetime: Duration,
        started: Instant,
    ) -> Arc<Snapshot> {
        let stale = self.config.policy.stale_margin_for(lifetime);
        entry
            .store
            .publish(Snapshot::new(credentials, started, lifetime, stale))
    }
}

/// Refreshes one identity ahead of expiry while it is used.
async fn refresh_ahead(inner: Arc<Inner>, digest: Digest, entry: Arc<Entry>) {
    let mut failures = 0u32;
    let mut next = match entry.store.load() {
        Some(s) => {
            s.obtained_at
                + inner
                    .config
                    .policy
                    .refresh_after(s.lifetime, rand::random())
        }
        None => return,
    };
    loop {
        tokio::select! {
            _ = entry.cancel.cancelled() => return,
            _ = sleep_until(next) => {}
        }
        if entry.idle_for(&inner) >= inner.config.idle_timeout {
            inner.evict(&digest, &entry, "idle");
            return;
        }
        if (unix_seconds(inner.clock.now()) as i64) >= entry.token_exp {
            inner.evict(&digest, &entry, "token_expired");
            return;
        }
        let mut fill = entry.fill.lock().await;
        let result = inner.exchange_once(&entry.token).await;
        entry.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok((credentials, lifetime, started)) => {
                *fill = None;
                inner.publish(&entry, credentials, lifetime, started);
                inner.metrics.refresh_ahead.with_label_values(&["ok"]).inc();
                failures = 0;
                next = started + inner.config.policy.refresh_after(lifetime, rand::random());
            }
            Err(e) if e.is_auth() => {
                inner
                    .metrics
                    .refresh_ahead
                    .with_label_values(&[e.class()])
                    .inc();
                info!(error = %e, "a cached identity's token is no longer accepted; dropping it");
                inner.deny(digest);
                *fill = Some(FetchError::Denied);
                inner.evict(&digest, &entry, "auth_rejected");
                return;
            }
            Err(e) => {
                inner
                    .metrics
                    .refresh_ahead
                    .with_label_values(&[e.class()])
                    .inc();
                failures = failures.saturating_add(1);
                let mut delay = inner.config.policy.backoff(failures, rand::random());
                if let ExchangeError::Throttled {
                    retry_after: Some(r),
                } = e
                {
                    delay = delay.max(r);
                }
                warn!(error = %e, attempt = failures, retry_in_ms = delay.as_millis() as u64, "refresh-ahead failed; serving the cached credentials meanwhile");
                next = Instant::now() + delay;
            }
        }
    }
}

/// Drops expired negative entries and identities that never got
/// credentials, every 30 s, until the cache is gone.
async fn sweep(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.shutdown.is_cancelled() {
            return;
        }
        let now = Instant::now();
        lock(&inner.negative).retain(|_, until| now < *until);
        let dead: Vec<(Digest, Arc<Entry>)> = lock(&inner.entries)
            .iter()
            .filter(|(_, e)| {
                e.store.servable(now).is_none()
                    && !e.refreshing.load(Ordering::Acquire)
                    && e.fill.try_lock().is_ok()
            })
            .map(|(d, e)| (*d, e.clone()))
            .collect();
        for (d, e) in dead {
            inner.evict(&d, &e, "failed");
        }
    }
}
