//! Fills: the task that owns one identity from its first exchange to its
//! eviction, driving the shared refresh [`Engine`].
//!
//! A cache miss starts (or joins) one fill. The fill runs as its own task,
//! so it completes and caches its result whether or not the requests that
//! asked are still connected: a caller that gives up (SDK container
//! providers time out after 1-2 s) and retries finds the credentials, or
//! joins the same exchange, instead of starting another. The task:
//!
//! 1. waits for an upstream slot in its requester's turn ([`FairSlots`]);
//! 2. exchanges once through the engine;
//! 3. on success admits the identity to the cache and then, as the
//!    identity's one writer, refreshes it ahead of expiry on the sidecar's
//!    schedule until it goes idle, its token expires, the upstream refuses
//!    it or the cache evicts it; failed refreshes back off on the engine's
//!    schedule while the cached credentials keep being served;
//! 4. on failure records the token as failing (refused: for the negative
//!    cache time; otherwise for the engine's backoff), so requests in that
//!    window are answered at once and cost no upstream call.
//!
//! A failing identity is logged once per attempt, that is once per backoff
//! window, with the token's `iss`, `sub`, namespace and Pod name.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::cache::{Begin, Cache, Failing, FillResult, FillState};
use super::fair::{FairSlots, Requester};
use super::health::UpstreamHealth;
use super::identity::{Digest, Identity, Who};
use super::sources::MissLimiter;
use crate::clock::unix_seconds;
use crate::logsafe::Untrusted;
use crate::refresh::{Attempts, Engine, Failure, Outcome};
use crate::secret::Secret;

/// What [`Filler::start`] did for a miss.
#[derive(Debug)]
pub enum Start {
    /// A fill is running (started now or joined): wait on it.
    Wait(watch::Receiver<FillState>),
    /// The token's state changed under the miss: look it up again.
    Settled,
    /// Too many fills in flight; come back after this long.
    Overloaded(Duration),
    /// The requester's miss budget is spent; come back after this long.
    Limited(Duration),
}

/// A miss to fill.
#[derive(Debug)]
pub struct Miss<'a> {
    /// The token's digest.
    pub key: Digest,
    /// The token.
    pub token: &'a str,
    /// Its `exp`, Unix seconds.
    pub token_exp: i64,
    /// Who it names, for logs.
    pub who: Who,
    /// The token's failures so far (from the cache's lookup).
    pub failures: u32,
    /// The Pod that asked.
    pub source: IpAddr,
}

/// Starts fills and runs identities. Shared by every request.
pub struct Filler {
    /// The identity cache.
    pub cache: Arc<Cache>,
    /// The refresh engine.
    pub engine: Engine,
    /// The upstream slots.
    pub slots: Arc<FairSlots>,
    /// The per-source miss budgets.
    pub limiter: MissLimiter,
    /// Whether the upstream is answering.
    pub health: Arc<UpstreamHealth>,
    /// Identities unused for this long are dropped at their next refresh.
    pub idle_timeout: Duration,
    /// Ends every identity's task.
    pub shutdown: CancellationToken,
}

// === impl Filler ===

impl Filler {
    /// Joins or starts the fill for `miss`.
    pub fn start(self: &Arc<Self>, miss: Miss<'_>) -> Start {
        let now = Instant::now();
        let (tx, rx) = match self.cache.join_or_begin(&miss.key, now) {
            Begin::Join(rx) => {
                self.cache.metrics().joins.inc();
                return Start::Wait(rx);
            }
            Begin::Settled => return Start::Settled,
            Begin::Full => return Start::Overloaded(Duration::from_secs(1)),
            Begin::Start(tx, rx) => (tx, rx),
        };
        if let Err(wait) = self.limiter.take(miss.source, now) {
            // Nobody else can have joined a fill that ends here unstarted
            // but in the instant since it was registered; those see the
            // channel close and retry.
            self.cache.end_fill(&miss.key);
            return Start::Limited(wait);
        }
        let this = self.clone();
        let fill = Fill {
            key: miss.key,
            token: Secret::new(miss.token),
            token_exp: miss.token_exp,
            who: miss.who,
            source: miss.source,
            attempts: Attempts::after(miss.failures),
        };
        tokio::spawn(async move { this.run(fill, tx).await });
        Start::Wait(rx)
    }

    /// Records a token local verification refused: refused again for the
    /// negative-cache time, and a charge on its source's miss budget.
    pub fn refuse_unverified(&self, key: Digest, source: IpAddr) {
        let now = Instant::now();
        let ttl = self
            .engine
            .policy()
            .denied_backoff
            .max(Duration::from_secs(1));
        self.cache.fail(
            key,
            Failing {
                until: now + ttl,
                denied: true,
                failures: 1,
            },
        );
        self.limiter.penalize(source, now);
    }

    /// The fill, then (on success) the identity's life.
    async fn run(self: Arc<Self>, mut fill: Fill, tx: watch::Sender<FillState>) {
        let outcome = tokio::select! {
            _ = self.shutdown.cancelled() => {
                self.cache.end_fill(&fill.key);
                return;
            }
            outcome = self.exchange(&fill.token, Requester::Pod(fill.source), &mut fill.attempts) => outcome,
        };
        match outcome {
            Outcome::Fresh(fresh) => {
                let identity = Arc::new(Identity::new(
                    fill.token,
                    fill.token_exp,
                    fill.who,
                    self.shutdown.child_token(),
                ));
                let stale = self.engine.policy().stale_margin_for(fresh.lifetime);
                let snapshot = identity.store.publish(
                    fresh.credentials,
                    fresh.obtained_at,
                    fresh.lifetime,
                    stale,
                );
                identity.touch();
                self.cache.admit(fill.key, identity.clone());
                self.cache.end_fill(&fill.key);
                let _ = tx.send(FillState::Done(FillResult::Ready(snapshot)));
                drop(tx);
                self.refresh_ahead(fill.key, identity, fresh.refresh_at, fill.attempts)
                    .await;
            }
            Outcome::Failed(failure) => {
                let result = self.failed(&fill, &failure);
                self.cache.end_fill(&fill.key);
                let _ = tx.send(FillState::Done(result));
            }
        }
    }

    /// One exchange in `requester`'s turn for an upstream slot.
    async fn exchange(
        &self,
        token: &Secret,
        requester: Requester,
        attempts: &mut Attempts,
    ) -> Outcome {
        let _slot = self.slots.acquire(requester).await;
        let outcome = self.engine.attempt(token, attempts).await;
        self.health.record(&outcome);
        outcome
    }

    /// Records a failed fill and what its waiters are told.
    fn failed(&self, fill: &Fill, failure: &Failure) -> FillResult {
        let denied = failure.is_denied();
        self.cache.fail(
            fill.key,
            Failing {
                until: failure.retry_at,
                denied,
                failures: failure.attempt,
            },
        );
        if denied {
            self.limiter.penalize(fill.source, Instant::now());
        }
        log_failure(
            "cannot obtain credentials for a new identity",
            &fill.who,
            failure,
        );
        if denied {
            FillResult::Denied {
                until: failure.retry_at,
            }
        } else {
            FillResult::Unavailable {
                retry_at: failure.retry_at,
            }
        }
    }

    /// Keeps `identity` fresh until it leaves the cache.
    async fn refresh_ahead(
        &self,
        key: Digest,
        identity: Arc<Identity>,
        mut next: Instant,
        mut attempts: Attempts,
    ) {
        loop {
            tokio::select! {
                _ = identity.cancel.cancelled() => return,
                _ = sleep_until(next) => {}
            }
            if identity.idle_for() >= self.idle_timeout {
                self.cache.evict(&key, &identity, "idle");
                return;
            }
            let now_unix = unix_seconds(self.engine.clock().now()) as i64;
            if now_unix >= identity.token_exp {
                self.cache.evict(&key, &identity, "token_expired");
                return;
            }
            let outcome = tokio::select! {
                _ = identity.cancel.cancelled() => return,
                outcome = self.exchange(&identity.token, Requester::Refresh, &mut attempts) => outcome,
            };
            match outcome {
                Outcome::Fresh(fresh) => {
                    let stale = self.engine.policy().stale_margin_for(fresh.lifetime);
                    identity.store.publish(
                        fresh.credentials,
                        fresh.obtained_at,
                        fresh.lifetime,
                        stale,
                    );
                    identity.set_retry_at(None);
                    next = fresh.refresh_at;
                }
                Outcome::Failed(failure) if failure.is_denied() => {
                    info!(
                        iss = %Untrusted::new(&identity.who.iss),
                        sub = %Untrusted::new(&identity.who.sub),
                        namespace = %Untrusted::new(&identity.who.namespace),
                        pod = %Untrusted::new(&identity.who.pod),
                        error = %failure.error,
                        "a cached identity's token is no longer accepted; dropping it"
                    );
                    self.cache.fail(
                        key,
                        Failing {
                            until: failure.retry_at,
                            denied: true,
                            failures: failure.attempt,
                        },
                    );
                    self.cache.evict(&key, &identity, "denied");
                    return;
                }
                Outcome::Failed(failure) => {
                    log_failure(
                        "refreshing a cached identity failed; serving its cached credentials meanwhile",
                        &identity.who,
                        &failure,
                    );
                    identity.set_retry_at(Some(failure.retry_at));
                    next = failure.retry_at;
                }
            }
        }
    }
}

impl std::fmt::Debug for Filler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filler")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What a fill task holds.
struct Fill {
    key: Digest,
    token: Secret,
    token_exp: i64,
    who: Who,
    source: IpAddr,
    attempts: Attempts,
}

fn log_failure(message: &'static str, who: &Who, failure: &Failure) {
    warn!(
        iss = %Untrusted::new(&who.iss),
        sub = %Untrusted::new(&who.sub),
        namespace = %Untrusted::new(&who.namespace),
        pod = %Untrusted::new(&who.pod),
        outcome = failure.error.class(),
        error = %failure.error,
        attempt = failure.attempt,
        retry_in_ms = failure.retry_in().as_millis() as u64,
        "{message}"
    );
}
