//! The refresher: the one task that exchanges the current token for
//! credentials, ahead of their expiry, and publishes them to the store.
//!
//! - At start-up it exchanges as soon as a token is available; readiness
//!   follows the first success.
//! - After a success it sleeps until [`RefreshPolicy::refresh_after`].
//! - After a failure it retries with exponential backoff and full jitter
//!   (honouring `Retry-After`), while the store keeps serving the last good
//!   credentials until shortly before they expire.
//! - A new token is exchanged at once (at most once per
//!   [`TOKEN_REFRESH_SPACING`]): kubelet rotates the projected token at
//!   80 % of its life, and the new one may name a different identity, so
//!   the credentials follow the token within milliseconds rather than at
//!   the next scheduled refresh. After a failure that was not the token's
//!   fault (upstream down, throttled) the backoff stands: the new token is
//!   used by the next attempt.
//!
//! Timers are `tokio::time` (monotonic, paused in tests); the lifetime of
//! credentials is measured on the upstream's clock, so a skewed local clock
//! does not move the schedule.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::{unix_seconds, SharedClock};
use crate::exchange::{Credentials, Exchange, ExchangeError};
use crate::metrics::RefreshMetrics;
use crate::store::{format_expiration, Snapshot, Store};
use crate::token::Token;

mod schedule;

pub use self::schedule::RefreshPolicy;

/// The least time between the start of one exchange and a token-triggered
/// one: bounds the upstream calls a token file rewritten in a loop can
/// cause, without delaying kubelet's rotations (minutes apart).
pub const TOKEN_REFRESH_SPACING: Duration = Duration::from_secs(1);

/// A source of uniform samples in `[0, 1)` for jitter.
pub type Jitter = Box<dyn FnMut() -> f64 + Send>;

/// Owns the refresh loop for one identity.
pub struct Refresher {
    exchange: Arc<dyn Exchange>,
    tokens: watch::Receiver<Option<Arc<Token>>>,
    store: Store,
    policy: RefreshPolicy,
    clock: SharedClock,
    metrics: RefreshMetrics,
    jitter: Jitter,
}

/// What the loop remembers between attempts.
#[derive(Default)]
struct State {
    next: Option<Instant>,
    failures: u32,
    last_error: Option<ExchangeError>,
    /// When the last exchange started, and with which token.
    last_attempt: Option<(Instant, Arc<Token>)>,
}

// === impl Refresher ===

impl Refresher {
    /// A refresher that reads tokens from `tokens` and writes `store`.
    pub fn new(
        exchange: Arc<dyn Exchange>,
        tokens: watch::Receiver<Option<Arc<Token>>>,
        store: Store,
        policy: RefreshPolicy,
        clock: SharedClock,
        metrics: RefreshMetrics,
    ) -> Self {
        Self {
            exchange,
            tokens,
            store,
            policy,
            clock,
            metrics,
            jitter: Box::new(rand::random::<f64>),
        }
    }

    /// Replaces the jitter source (tests use a constant).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut state = State {
            next: Some(Instant::now()),
            ..State::default()
        };
        let mut tokens_open = true;
        loop {
            let now = Instant::now();
            let stale_at = self.store.servable(now).map(|s| s.serve_until);
            let have_token = self.tokens.borrow().is_some();
            let next = state.next.unwrap_or(now);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                changed = self.tokens.changed(), if tokens_open => {
                    if changed.is_err() {
                        tokens_open = false;
                        continue;
                    }
                    if let Some(at) = self.token_refresh_at(&state) {
                        debug!("the projected token changed; exchanging the new one");
                        state.next = Some(state.next.map_or(at, |next| next.min(at)));
                    }
                }
                _ = sleep_until(stale_at.unwrap_or(now)), if stale_at.is_some() => {
                    self.metrics.ready.set(0);
                    error!(
                        last_error = state.last_error.as_ref().map(ToString::to_string),
                        "credentials are about to expire and no refresh has succeeded; answering 503 until one does"
                    );
                }
                _ = sleep_until(next), if have_token => {
                    self.refresh(&mut state).await;
                }
            }
        }
    }

    /// When to exchange after the token changed, if it should be sooner
    /// than planned: not while backing off from an upstream that is failing
    /// on its own, and not for a token already exchanged.
    fn token_refresh_at(&self, state: &State) -> Option<Instant> {
        let current = self.tokens.borrow().clone()?;
        if state.last_error.as_ref().is_some_and(|e| !e.is_auth()) {
            return None;
        }
        match &state.last_attempt {
            None => Some(Instant::now()),
            Some((_, used)) if used.raw.expose() == current.raw.expose() => None,
            Some((at, _)) => Some((*at + TOKEN_REFRESH_SPACING).max(Instant::now())),
        }
    }

    async fn refresh(&mut self, state: &mut State) {
        let Some(token) = self.tokens.borrow().clone() else {
            return;
        };
        let started = Instant::now();
        state.last_attempt = Some((started, token.clone()));
        let result = self.exchange.exchange(&token.raw).await;
        let latency = started.elapsed();
        self.metrics.duration.observe(latency.as_secs_f64());
        self.metrics
            .upstream_responses
            .with_label_values(&[upstream_class(&result)])
            .inc();
        let result = result.and_then(|c| c.with_lifetime(self.clock.now()));
        match result {
            Ok((credentials, lifetime)) => {
                self.succeeded(state, credentials, lifetime, started, latency)
            }
            Err(e) => self.failed(state, e, latency),
        }
    }

    fn succeeded(
        &mut self,
        state: &mut State,
        credentials: Credentials,
        lifetime: Duration,
        started: Instant,
        latency: Duration,
    ) {
        let after = self.policy.refresh_after(lifetime, (self.jitter)());
        state.next = Some(started + after);
        state.failures = 0;
        state.last_error = None;
        self.metrics.refreshes.with_label_values(&["ok"]).inc();
        self.metrics
            .credentials_expiry
            .set(credentials.expiration.unix_timestamp() as f64);
        self.metrics
            .last_success
            .set(unix_seconds(self.clock.now()));
        self.metrics.ready.set(1);
        info!(
            outcome = "ok",
            latency_ms = latency.as_millis() as u64,
            expiration = %format_expiration(credentials.expiration),
            lifetime_s = lifetime.as_secs(),
            next_refresh_in_s = after.as_secs(),
            role = credentials.role.as_deref().unwrap_or(""),
            access_key_id = %credentials.access_key_id,
            "credentials refreshed"
        );
        let stale = self.policy.stale_margin_for(lifetime);
        self.store
            .publish(Snapshot::new(credentials, started, lifetime, stale));
    }

    fn failed(&mut self, state: &mut State, error: ExchangeError, latency: Duration) {
        state.failures = state.failures.saturating_add(1);
        let mut delay = self.policy.backoff(state.failures, (self.jitter)());
        if let ExchangeError::Throttled {
            retry_after: Some(retry_after),
        } = error
        {
            delay = delay.max(retry_after);
        }
        state.next = Some(Instant::now() + delay);
        self.metrics
            .refreshes
            .with_label_values(&[error.class()])
            .inc();
        let serving = self.store.servable(Instant::now());
        let serving_until_s = serving.as_ref().map(|s| {
            s.serve_until
                .saturating_duration_since(Instant::now())
                .as_secs()
        });
        warn!(
            outcome = error.class(),
            error = %error,
            latency_ms = latency.as_millis() as u64,
            attempt = state.failures,
            retry_in_ms = delay.as_millis() as u64,
            serving_last_good = serving.is_some(),
            serving_for_s = serving_until_s,
            "credential refresh failed"
        );
        state.last_error = Some(error);
    }
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The status class of the upstream's answer, for metrics.
fn upstream_class(result: &Result<Credentials, ExchangeError>) -> &'static str {
    let status = match result {
        Ok(_) | Err(ExchangeError::Malformed(_)) | Err(ExchangeError::Expired { .. }) => 200,
        Err(ExchangeError::AuthRejected { status })
        | Err(ExchangeError::Upstream { status })
        | Err(ExchangeError::UnexpectedStatus { status }) => *status,
        Err(ExchangeError::Throttled { .. }) => 429,
        Err(
            ExchangeError::Transport(_) | ExchangeError::Timeout(_) | ExchangeError::InvalidToken,
        ) => 0,
    };
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}
