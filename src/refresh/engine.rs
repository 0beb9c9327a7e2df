//! The refresh engine: the one piece of code that exchanges a token, decides
//! when to do it again, and counts what happened. The sidecar's refresher
//! drives it for its one identity; node mode drives it for every identity.
//!
//! An [`Engine`] is shared by every identity of a process (the exchange, the
//! policy, the wall clock, the metrics, the jitter); each identity keeps its
//! own [`Attempts`]. One [`Engine::attempt`] is one exchange:
//!
//! - success: the credentials, their lifetime (on the upstream's clock) and
//!   when to refresh them ([`RefreshPolicy::refresh_after`], jittered);
//! - failure: the classified error and when to try again: exponential
//!   backoff with full jitter from the identity's failure count, at least
//!   the upstream's `Retry-After`, at least `denied_backoff` when the
//!   upstream refused the token itself ([`Disposition::Denied`]).
//!
//! Every attempt is counted in `credagent_refreshes_total{result}`,
//! `credagent_refresh_duration_seconds` and
//! `credagent_upstream_responses_total{class}`, whichever mode ran it. Every
//! key issued is counted in `credagent_keys_issued_total{exchange}` and
//! logged once on the `credagent::audit` target (the audit trail: the key
//! id, its principal and expiry, and the Pod and ServiceAccount it was
//! issued for).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{unix_seconds, SharedClock};
use crate::config::RefreshPolicy;
use crate::credentials::Credentials;
use crate::exchange::post::Workload;
use crate::exchange::{Disposition, Exchange, ExchangeError};
use crate::metrics::RefreshMetrics;
use crate::secret::Secret;

/// A source of uniform samples in `[0, 1)` for jitter, shared by every
/// identity (tests use a constant).
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The exchange, the schedule and the metrics every identity shares. Cheap
/// to clone.
#[derive(Clone)]
pub struct Engine {
    exchange: Arc<dyn Exchange>,
    policy: RefreshPolicy,
    clock: SharedClock,
    metrics: RefreshMetrics,
    jitter: Jitter,
}

/// One identity's memory between attempts.
#[derive(Debug, Default)]
pub struct Attempts {
    failures: u32,
    last_error: Option<ExchangeError>,
    last_started: Option<Instant>,
}

/// What one attempt concluded.
#[derive(Debug)]
pub enum Outcome {
    /// Credentials obtained.
    Fresh(Fresh),
    /// No credentials this time.
    Failed(Failure),
}

/// Credentials from a successful exchange, and when to refresh them.
#[derive(Debug)]
pub struct Fresh {
    /// What the upstream issued.
    pub credentials: Credentials,
    /// How long they were granted for, on the upstream's clock.
    pub lifetime: Duration,
    /// When the exchange started (monotonic): their lifetime counts from here.
    pub obtained_at: Instant,
    /// When to exchange again.
    pub refresh_at: Instant,
    /// How long the exchange took.
    pub latency: Duration,
}

/// A failed exchange and when to try again.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: ExchangeError,
    /// The earliest the same token should be tried again.
    pub retry_at: Instant,
    /// Consecutive failures of this identity, this one included.
    pub attempt: u32,
    /// How long the exchange took.
    pub latency: Duration,
}

// === impl Engine ===

impl Engine {
    /// An engine exchanging through `exchange` on `policy`'s schedule.
    pub fn new(
        exchange: Arc<dyn Exchange>,
        policy: RefreshPolicy,
        clock: SharedClock,
        metrics: RefreshMetrics,
    ) -> Self {
        Self {
            exchange,
            policy,
            clock,
            metrics,
            jitter: Arc::new(rand::random::<f64>),
        }
    }

    /// Replaces the jitter source (tests use a constant).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The schedule's parameters.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// The wall clock the engine measures lifetimes with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// When `refresh_after` of credentials valid for `lifetime`, obtained at
    /// `obtained_at`, falls (jittered).
    pub fn refresh_at(&self, obtained_at: Instant, lifetime: Duration) -> Instant {
        obtained_at + self.policy.refresh_after(lifetime, (self.jitter)())
    }

    /// One exchange of `token` for the identity whose record is `attempts`.
    pub async fn attempt(&self, token: &Secret, attempts: &mut Attempts) -> Outcome {
        let started = Instant::now();
        attempts.last_started = Some(started);
        let result = self.exchange.exchange(token).await;
        let latency = started.elapsed();
        self.metrics.duration.observe(latency.as_secs_f64());
        let class = match &result {
            Ok(_) => "2xx",
            Err(e) => e.status_class(),
        };
        self.metrics
            .upstream_responses
            .with_label_values(&[class])
            .inc();
        let now = self.clock.now();
        match result.and_then(|c| c.with_lifetime(now).map_err(ExchangeError::from)) {
            Ok((credentials, lifetime)) => {
                attempts.failures = 0;
                attempts.last_error = None;
                self.metrics.refreshes.with_label_values(&["ok"]).inc();
                self.metrics.last_success.set(unix_seconds(now));
                self.audit(token, &credentials, lifetime);
                Outcome::Fresh(Fresh {
                    credentials,
                    lifetime,
                    obtained_at: started,
                    refresh_at: self.refresh_at(started, lifetime),
                    latency,
                })
            }
            Err(error) => {
                attempts.failures = attempts.failures.saturating_add(1);
                let delay = self.policy.retry_delay(
                    attempts.failures,
                    (self.jitter)(),
                    error.disposition() == Disposition::Denied,
                    error.retry_after(),
                );
                self.metrics
                    .refreshes
                    .with_label_values(&[error.class()])
                    .inc();
                attempts.last_error = Some(error.clone());
                Outcome::Failed(Failure {
                    error,
                    retry_at: Instant::now() + delay,
                    attempt: attempts.failures,
                    latency,
                })
            }
        }
    }
}

impl Engine {
    /// The audit trail: one line per key issued, on the `credagent::audit`
    /// target, naming the key, its principal and expiry, and the workload
    /// the token names; never the secret or the token.
    fn audit(&self, token: &Secret, credentials: &Credentials, lifetime: Duration) {
        let method = self.exchange.method();
        self.metrics.keys_issued.with_label_values(&[method]).inc();
        self.metrics.key_lifetime.set(lifetime.as_secs_f64());
        let who = crate::jwt::decode(token.expose())
            .map(|c| Workload::of(&c))
            .unwrap_or_default();
        tracing::info!(
            target: "credagent::audit",
            event = "key_issued",
            exchange = method,
            access_key_id = %credentials.access_key_id,
            principal = credentials.role.as_deref(),
            expiration = %crate::wire::format_expiration(credentials.expiration),
            lifetime_s = lifetime.as_secs(),
            namespace = who.namespace.as_deref(),
            pod = who.pod.as_deref(),
            pod_uid = who.pod_uid.as_deref(),
            service_account = who.service_account.as_deref(),
            node = who.node.as_deref(),
            "access key issued"
        );
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

// === impl Attempts ===

impl Attempts {
    /// The record of an identity that has failed `failures` times in a row
    /// (node mode remembers the count across fills of one token).
    pub fn after(failures: u32) -> Self {
        Self {
            failures,
            ..Self::default()
        }
    }

    /// The last attempt's error, if it failed.
    pub fn last_error(&self) -> Option<&ExchangeError> {
        self.last_error.as_ref()
    }

    /// When the last attempt started.
    pub fn last_started(&self) -> Option<Instant> {
        self.last_started
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

// === impl Failure ===

impl Failure {
    /// How long from now until [`retry_at`](Self::retry_at).
    pub fn retry_in(&self) -> Duration {
        self.retry_at.saturating_duration_since(Instant::now())
    }

    /// Returns true if and only if the upstream refused the token itself.
    pub fn is_denied(&self) -> bool {
        self.error.is_denied()
    }
}
