//! The sidecar's refresher: the one task that exchanges the current token
//! through the [`Engine`], ahead of the credentials' expiry, and publishes
//! them to the store.
//!
//! - At start-up it exchanges as soon as a token is available; readiness
//!   follows the first success.
//! - After a success it sleeps until the engine's refresh point.
//! - After a failure it retries when the engine says (backoff with full
//!   jitter, `Retry-After`), while the store keeps serving the last good
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

use super::engine::{Attempts, Engine, Failure, Fresh, Outcome};
use crate::logsafe::Untrusted;
use crate::metrics::SidecarMetrics;
use crate::store::Store;
use crate::token::Token;
use crate::wire::format_expiration;

/// The least time between the start of one exchange and a token-triggered
/// one: bounds the upstream calls a token file rewritten in a loop can
/// cause, without delaying kubelet's rotations (minutes apart).
pub const TOKEN_REFRESH_SPACING: Duration = Duration::from_secs(1);

/// Owns the refresh loop for the sidecar's identity.
pub struct Refresher {
    engine: Engine,
    tokens: watch::Receiver<Option<Arc<Token>>>,
    store: Store,
    metrics: SidecarMetrics,
}

/// What the loop remembers between attempts.
#[derive(Default)]
struct State {
    next: Option<Instant>,
    attempts: Attempts,
    /// The token the last exchange used.
    last_token: Option<Arc<Token>>,
}

// === impl Refresher ===

impl Refresher {
    /// A refresher that reads tokens from `tokens` and writes `store`.
    pub fn new(
        engine: Engine,
        tokens: watch::Receiver<Option<Arc<Token>>>,
        store: Store,
        metrics: SidecarMetrics,
    ) -> Self {
        Self {
            engine,
            tokens,
            store,
            metrics,
        }
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
                        last_error = state.attempts.last_error().map(ToString::to_string),
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
        if state.attempts.last_error().is_some_and(|e| !e.is_denied()) {
            return None;
        }
        match (&state.last_token, state.attempts.last_started()) {
            (Some(used), _) if used.raw.expose() == current.raw.expose() => None,
            (Some(_), Some(at)) => Some((at + TOKEN_REFRESH_SPACING).max(Instant::now())),
            _ => Some(Instant::now()),
        }
    }

    async fn refresh(&mut self, state: &mut State) {
        let Some(token) = self.tokens.borrow().clone() else {
            return;
        };
        state.last_token = Some(token.clone());
        match self.engine.attempt(&token.raw, &mut state.attempts).await {
            Outcome::Fresh(fresh) => {
                state.next = Some(fresh.refresh_at);
                self.succeeded(fresh);
            }
            Outcome::Failed(failure) => {
                state.next = Some(failure.retry_at);
                self.failed(failure);
            }
        }
    }

    fn succeeded(&mut self, fresh: Fresh) {
        let Fresh {
            credentials,
            lifetime,
            obtained_at,
            refresh_at,
            latency,
        } = fresh;
        self.metrics
            .credentials_expiry
            .set(credentials.expiration.unix_timestamp() as f64);
        self.metrics.ready.set(1);
        info!(
            outcome = "ok",
            latency_ms = latency.as_millis() as u64,
            expiration = %format_expiration(credentials.expiration),
            lifetime_s = lifetime.as_secs(),
            next_refresh_in_s = refresh_at.saturating_duration_since(obtained_at).as_secs(),
            role = credentials.role.as_deref().unwrap_or(""),
            // From the upstream's answer: escaped and capped.
            access_key_id = %Untrusted::new(&credentials.access_key_id),
            "credentials refreshed"
        );
        let stale = self.engine.policy().stale_margin_for(lifetime);
        self.store
            .publish(credentials, obtained_at, lifetime, stale);
    }

    fn failed(&mut self, failure: Failure) {
        let now = Instant::now();
        let serving = self.store.servable(now);
        warn!(
            outcome = failure.error.class(),
            error = %failure.error,
            latency_ms = failure.latency.as_millis() as u64,
            attempt = failure.attempt,
            retry_in_ms = failure.retry_in().as_millis() as u64,
            serving_last_good = serving.is_some(),
            serving_for_s = serving
                .as_ref()
                .map(|s| s.serve_until.saturating_duration_since(now).as_secs()),
            "credential refresh failed"
        );
    }
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}
