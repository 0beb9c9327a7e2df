//! The identity cache: credentials for many Pods, each cached only under a
//! digest of the exact token that obtained them, in three bounded
//! structures that unproven tokens cannot cross:
//!
//! - `proven`: identities whose token the upstream accepted, at most
//!   `max_identities`, least recently *requested* evicted first (an O(1)
//!   LRU), so eviction prefers idle identities. Nothing enters it but a
//!   finished, successful fill: a flood of forged or unknown tokens never
//!   displaces a real identity.
//! - `fills`: the fills in flight (one per token; a fill is a task, see
//!   `node::fill`), at most `max_fills`; requests join the one in flight.
//! - `failing`: tokens whose last fill failed, until when they are not
//!   tried again: refused (401/403/400/404, or local verification) for the
//!   negative-cache time, failing otherwise for the engine's backoff. An
//!   LRU of its own, bounded like `proven`.
//!
//! Everything here is synchronous and short; locks are never held across
//! an await, and `fills` is never locked while `proven` or `failing` is.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::identity::{Digest, Identity};
use crate::metrics::NodeMetrics;
use crate::store::Snapshot;

/// Where a fill stands, as the requests waiting on it see it.
#[derive(Debug, Clone)]
pub enum FillState {
    /// The exchange is running.
    Running,
    /// It finished.
    Done(FillResult),
}

/// How a fill ended.
#[derive(Debug, Clone)]
pub enum FillResult {
    /// Credentials, now cached.
    Ready(Arc<Snapshot>),
    /// The token was refused; refused again until `until`.
    Denied {
        /// End of the negative-cache time.
        until: Instant,
    },
    /// The exchange failed; not tried again before `retry_at`.
    Unavailable {
        /// End of the backoff.
        retry_at: Instant,
    },
}

/// A token whose last fill failed.
#[derive(Debug, Clone, Copy)]
pub struct Failing {
    /// Not tried again before this.
    pub until: Instant,
    /// Refused (negative cache) rather than failing (backoff).
    pub denied: bool,
    /// Consecutive failures, so that the next fill's backoff keeps growing.
    pub failures: u32,
}

/// What the cache knows about a token, without waiting.
#[derive(Debug)]
pub enum Lookup {
    /// Servable credentials: their ECS body.
    Hit(Bytes),
    /// Refused recently; refused until then.
    Denied(Instant),
    /// Failing recently (or a cached identity whose refresh is failing past
    /// its credentials' serve-until); not tried before then.
    BackingOff(Instant),
    /// Nothing usable: start or join a fill. Carries the token's failure
    /// count so far.
    Miss(u32),
}

/// What [`Cache::join_or_begin`] did.
#[derive(Debug)]
pub enum Begin {
    /// A fill is in flight for this token: wait on it.
    Join(watch::Receiver<FillState>),
    /// No fill was in flight: the caller must run one and report through
    /// the sender (and call [`Cache::end_fill`]).
    Start(watch::Sender<FillState>, watch::Receiver<FillState>),
    /// A fill ended between the lookup and now: look up again.
    Settled,
    /// Too many fills in flight.
    Full,
}

/// The cache's three structures.
pub struct Cache {
    proven: Mutex<LruCache<Digest, Arc<Identity>>>,
    failing: Mutex<LruCache<Digest, Failing>>,
    fills: Mutex<HashMap<Digest, watch::Receiver<FillState>>>,
    max_fills: usize,
    metrics: NodeMetrics,
}

// === impl Cache ===

impl Cache {
    /// An empty cache of at most `max_identities` identities (and as many
    /// failing tokens) and `max_fills` fills in flight.
    pub fn new(max_identities: usize, max_fills: usize, metrics: NodeMetrics) -> Self {
        let bound = NonZeroUsize::new(max_identities).unwrap_or(NonZeroUsize::MIN);
        metrics.max_identities.set(bound.get() as i64);
        Self {
            proven: Mutex::new(LruCache::new(bound)),
            failing: Mutex::new(LruCache::new(bound)),
            fills: Mutex::new(HashMap::new()),
            max_fills: max_fills.max(1),
            metrics,
        }
    }

    /// Looks `key` up at `now`. A hit counts as a use of the identity.
    pub fn lookup(&self, key: &Digest, now: Instant) -> Lookup {
        let identity = self.proven.lock().get(key).cloned();
        if let Some(identity) = identity {
            if let Some(body) = identity.store.servable_body(now) {
                identity.touch();
                return Lookup::Hit(body);
            }
            // Its task keeps trying; a new fill would only race it.
            let retry_at = identity.retry_at().filter(|at| *at > now);
            return Lookup::BackingOff(retry_at.unwrap_or(now));
        }
        match self.failing.lock().peek(key) {
            Some(f) if f.until > now && f.denied => Lookup::Denied(f.until),
            Some(f) if f.until > now => Lookup::BackingOff(f.until),
            Some(f) => Lookup::Miss(f.failures),
            None => Lookup::Miss(0),
        }
    }

    /// Joins the fill in flight for `key`, or registers a new one.
    pub fn join_or_begin(&self, key: &Digest, now: Instant) -> Begin {
        let mut fills = self.fills.lock();
        if let Some(rx) = fills.get(key) {
            return Begin::Join(rx.clone());
        }
        // A fill ends by publishing its outcome (`admit` or `fail`) before
        // it leaves `fills`, so under this lock a finished one is visible.
        if self.proven.lock().contains(key) {
            return Begin::Settled;
        }
        if self.failing.lock().peek(key).is_some_and(|f| f.until > now) {
            return Begin::Settled;
        }
        if fills.len() >= self.max_fills {
            return Begin::Full;
        }
        let (tx, rx) = watch::channel(FillState::Running);
        fills.insert(*key, rx.clone());
        self.metrics.fills.set(fills.len() as i64);
        Begin::Start(tx, rx)
    }

    /// Removes the fill for `key` (after its outcome is published).
    pub fn end_fill(&self, key: &Digest) {
        let mut fills = self.fills.lock();
        fills.remove(key);
        self.metrics.fills.set(fills.len() as i64);
    }

    /// Caches `identity` under `key`, forgetting any failure of the token.
    /// The least recently requested identity goes if the cache is full.
    pub fn admit(&self, key: Digest, identity: Arc<Identity>) {
        self.failing.lock().pop(&key);
        let (evicted, len) = {
            let mut proven = self.proven.lock();
            let evicted = proven.push(key, identity);
            (evicted, proven.len())
        };
        self.metrics.identities.set(len as i64);
        if let Some((old_key, old)) = evicted {
            old.cancel.cancel();
            if old_key != key {
                self.metrics.evictions.with_label_values(&["lru"]).inc();
                debug!("identity evicted: the cache is full and it was the least recently used");
            }
        }
    }

    /// Records that `key`'s last fill failed.
    pub fn fail(&self, key: Digest, failing: Failing) {
        self.failing.lock().put(key, failing);
    }

    /// Removes `identity` if it is still the one cached under `key`.
    pub fn evict(&self, key: &Digest, identity: &Arc<Identity>, reason: &'static str) {
        let len = {
            let mut proven = self.proven.lock();
            if proven.peek(key).is_some_and(|e| Arc::ptr_eq(e, identity)) {
                proven.pop(key);
                self.metrics.evictions.with_label_values(&[reason]).inc();
                debug!(reason, "identity evicted");
            }
            proven.len()
        };
        self.metrics.identities.set(len as i64);
        identity.cancel.cancel();
    }

    /// The node-mode metrics the cache keeps.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// Identities cached now.
    pub fn len(&self) -> usize {
        self.proven.lock().len()
    }

    /// Returns true if and only if no identity is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills in flight now.
    pub fn fills(&self) -> usize {
        self.fills.lock().len()
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("identities", &self.len())
            .field("fills", &self.fills())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::node::identity::Who;
    use crate::secret::Secret;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    fn cache(max: usize) -> Cache {
        let m = Metrics::new().unwrap();
        Cache::new(max, 2, NodeMetrics::register(&m).unwrap())
    }

    fn identity() -> Arc<Identity> {
        Arc::new(Identity::new(
            Secret::new("t"),
            i64::MAX,
            Who::default(),
            CancellationToken::new(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn only_admitted_identities_compete_and_the_least_used_goes() {
        let c = cache(2);
        let now = Instant::now();
        let (a, b, x) = ([1; 32], [2; 32], [3; 32]);
        let (ia, ib, ix) = (identity(), identity(), identity());
        c.admit(a, ia.clone());
        c.admit(b, ib.clone());
        // Failures of other tokens do not touch the proven ones.
        for n in 10..200u8 {
            c.fail(
                [n; 32],
                Failing {
                    until: now + Duration::from_secs(5),
                    denied: true,
                    failures: 1,
                },
            );
        }
        assert_eq!(c.len(), 2);
        // `a` was requested more recently than `b`: `b` goes.
        ia.store.publish(
            crate::credentials::Credentials {
                access_key_id: "A".into(),
                secret_access_key: Secret::new("S"),
                session_token: Secret::new(""),
                expiration: time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
                role: None,
                account_id: None,
                server_date: None,
            },
            now,
            Duration::from_secs(3600),
            Duration::ZERO,
        );
        assert!(matches!(c.lookup(&a, now), Lookup::Hit(_)));
        c.admit(x, ix);
        assert!(
            ib.cancel.is_cancelled(),
            "the evicted identity's task stops"
        );
        assert!(!ia.cancel.is_cancelled());
        assert!(matches!(c.lookup(&b, now), Lookup::Miss(0)));
    }

    #[tokio::test(start_paused = true)]
    async fn fills_are_joined_bounded_and_settle() {
        let c = cache(4);
        let now = Instant::now();
        let Begin::Start(tx, _rx) = c.join_or_begin(&[1; 32], now) else {
            panic!("first miss starts a fill");
        };
        assert!(matches!(c.join_or_begin(&[1; 32], now), Begin::Join(_)));
        assert!(matches!(c.join_or_begin(&[2; 32], now), Begin::Start(..)));
        assert!(matches!(c.join_or_begin(&[3; 32], now), Begin::Full));
        let until = now + Duration::from_secs(5);
        c.fail(
            [1; 32],
            Failing {
                until,
                denied: false,
                failures: 3,
            },
        );
        let _ = tx.send(FillState::Done(FillResult::Unavailable { retry_at: until }));
        c.end_fill(&[1; 32]);
        assert!(matches!(c.join_or_begin(&[1; 32], now), Begin::Settled));
        assert!(matches!(c.lookup(&[1; 32], now), Lookup::BackingOff(t) if t == until));
        assert!(matches!(c.lookup(&[1; 32], until), Lookup::Miss(3)));
    }
}
