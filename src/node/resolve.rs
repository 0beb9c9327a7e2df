//! From a Pod's token to an answer, without HTTP: the node agent's logic,
//! which the credentials route adapts to the wire and tests drive directly
//! under paused time.
//!
//! Everything that can be refused is refused before any upstream call: a
//! token that is not a JWT or over [`MAX_TOKEN_BYTES`], one whose `exp` has
//! passed, one that fails local verification. Then the cache answers from
//! memory (a hit, a recent refusal, a backoff) or the request waits at most
//! `fill_wait` for the fill of its token, which runs on whether or not the
//! request stays: its retry joins the same fill or finds the result.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::watch;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::cache::{Cache, FillResult, FillState, Lookup};
use super::fill::{Filler, Miss, Start};
use super::identity::{digest, Digest, Who};
use crate::clock::{unix_seconds, SharedClock};
use crate::jwt;
use crate::metrics::NodeMetrics;
use crate::node::verify::{Verdict, Verify};

/// Largest token node mode accepts: a Kubernetes projected token is about
/// 1-2 KiB; the bound keeps what a hostile Pod can make the agent hold small.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many times a miss looks again when the cache changes under it.
const SETTLE_RETRIES: usize = 3;

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// 200 with this ECS body.
    Credentials(Bytes),
    /// Refused: retrying the same token will not help (soon).
    Refused(Refusal),
    /// 503: retry after this long.
    Later {
        /// The metric label.
        reason: &'static str,
        /// For the caller (fixed text).
        message: &'static str,
        /// When to come back.
        after: Duration,
    },
}

/// A refusal: the status, the error code and message the caller sees, and
/// the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `credagent_node_rejected_requests_total{reason}`.
    pub reason: &'static str,
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Code` of the JSON error body.
    pub code: &'static str,
    /// The `Message` of the JSON error body.
    pub message: &'static str,
}

/// A token that passed the checks that need no upstream.
#[derive(Debug)]
pub struct Admitted {
    token: Zeroizing<String>,
    key: Digest,
    claims: jwt::Claims,
    exp: i64,
}

/// Resolves tokens to answers. Shared by every request.
pub struct Resolver {
    cache: Arc<Cache>,
    filler: Arc<Filler>,
    verifier: Option<Arc<dyn Verify>>,
    metrics: NodeMetrics,
    clock: SharedClock,
    fill_wait: Duration,
}

const DENIED: Refusal = Refusal {
    reason: "upstream_denied",
    status: StatusCode::FORBIDDEN,
    code: "AccessDenied",
    message: "the upstream rejected this token (check the OIDC configuration and access policy)",
};

// === impl Resolver ===

impl Resolver {
    /// A resolver filling through `filler` and, when given, verifying
    /// tokens locally first.
    pub fn new(
        filler: Arc<Filler>,
        verifier: Option<Arc<dyn Verify>>,
        metrics: NodeMetrics,
        clock: SharedClock,
        fill_wait: Duration,
    ) -> Self {
        Self {
            cache: filler.cache.clone(),
            filler,
            verifier,
            metrics,
            clock,
            fill_wait,
        }
    }

    /// The identity cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Resolves `token` for the Pod at `source`.
    pub async fn resolve(&self, token: &str, source: IpAddr) -> Resolution {
        match self.admit(token) {
            Ok(admitted) => match self.lookup(&admitted) {
                Some(answer) => answer,
                None => self.miss(admitted, source).await,
            },
            Err(refusal) => self.refused(refusal),
        }
    }

    /// The checks that need nothing but the token and the clock.
    pub fn admit(&self, token: &str) -> Result<Admitted, Refusal> {
        let malformed = |message| Refusal {
            reason: "malformed_token",
            status: StatusCode::BAD_REQUEST,
            code: "InvalidToken",
            message,
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("the token is over 8 KiB"));
        }
        let Ok(claims) = jwt::decode(token) else {
            return Err(malformed("the Authorization header is not a JWT"));
        };
        let Some(exp) = claims.exp else {
            return Err(malformed("the token has no exp claim"));
        };
        if exp <= unix_seconds(self.clock.now()) as i64 {
            return Err(Refusal {
                reason: "expired_token",
                status: StatusCode::UNAUTHORIZED,
                code: "TokenExpired",
                message: "the token has expired; kubelet should have rotated it",
            });
        }
        Ok(Admitted {
            token: Zeroizing::new(token.to_owned()),
            key: digest(token),
            claims,
            exp,
        })
    }

    /// The answer from memory, if there is one (`None`: a miss).
    pub fn lookup(&self, admitted: &Admitted) -> Option<Resolution> {
        match self.cache.lookup(&admitted.key, Instant::now()) {
            Lookup::Hit(body) => {
                self.metrics.hits.inc();
                Some(Resolution::Credentials(body))
            }
            Lookup::Denied(_) => {
                self.metrics.negative_hits.inc();
                Some(self.refused(DENIED))
            }
            Lookup::BackingOff(until) => {
                self.metrics.negative_hits.inc();
                Some(self.backing_off(until))
            }
            Lookup::Miss(_) => None,
        }
    }

    /// A miss: verify, then start or join the token's fill and wait for it.
    pub async fn miss(&self, admitted: Admitted, source: IpAddr) -> Resolution {
        self.metrics.misses.inc();
        if let Some(verifier) = &self.verifier {
            if let Verdict::Refused(why) = verifier.verify(&admitted.token, &admitted.claims).await
            {
                self.filler.refuse_unverified(admitted.key, source);
                tracing::debug!(reason = why, "token refused by local verification");
                return self.refused(Refusal {
                    reason: "unverified_token",
                    status: StatusCode::FORBIDDEN,
                    code: "AccessDenied",
                    message: "the token did not pass verification against the configured issuers (issuer, signature, audience or lifetime)",
                });
            }
        }
        let mut failures = match self.cache.lookup(&admitted.key, Instant::now()) {
            Lookup::Miss(n) => n,
            _ => 0,
        };
        for _ in 0..SETTLE_RETRIES {
            let start = self.filler.start(Miss {
                key: admitted.key,
                token: &admitted.token,
                token_exp: admitted.exp,
                who: Who::of(&admitted.claims),
                failures,
                source,
            });
            match start {
                Start::Wait(rx) => return self.wait(rx).await,
                Start::Overloaded(after) => {
                    return self.later(
                        "overloaded",
                        "the agent is exchanging many new tokens; retry",
                        after,
                    )
                }
                Start::Limited(after) => {
                    return self.later(
                        "rate_limited",
                        "this address has started too many exchanges recently; retry later",
                        after,
                    )
                }
                Start::Settled => match self.cache.lookup(&admitted.key, Instant::now()) {
                    Lookup::Hit(body) => return Resolution::Credentials(body),
                    Lookup::Denied(_) => return self.refused(DENIED),
                    Lookup::BackingOff(until) => return self.backing_off(until),
                    Lookup::Miss(n) => failures = n,
                },
            }
        }
        self.later(
            "overloaded",
            "the agent is busy with this token; retry",
            Duration::from_secs(1),
        )
    }

    /// Waits at most `fill_wait` for the fill; the fill goes on regardless.
    async fn wait(&self, mut rx: watch::Receiver<FillState>) -> Resolution {
        self.metrics.waiting.inc();
        let done = tokio::time::timeout(
            self.fill_wait,
            rx.wait_for(|s| matches!(s, FillState::Done(_))),
        )
        .await
        .map(|r| r.map(|s| s.clone()));
        self.metrics.waiting.dec();
        match done {
            Ok(Ok(FillState::Done(FillResult::Ready(snapshot)))) => {
                Resolution::Credentials(snapshot.body.clone())
            }
            Ok(Ok(FillState::Done(FillResult::Denied { .. }))) => self.refused(DENIED),
            Ok(Ok(FillState::Done(FillResult::Unavailable { retry_at }))) => self.later(
                "upstream_unavailable",
                "the upstream could not exchange this token right now; retry later",
                retry_at.saturating_duration_since(Instant::now()),
            ),
            // Still running: the retry joins the same fill.
            Ok(Ok(FillState::Running)) | Err(_) => self.later(
                "fill_timeout",
                "the exchange for this token is still in progress; retry",
                Duration::from_secs(1),
            ),
            // The fill ended without an outcome (shutting down, or it was
            // withdrawn before it started).
            Ok(Err(_)) => self.later(
                "upstream_unavailable",
                "the upstream could not exchange this token right now; retry",
                Duration::from_secs(1),
            ),
        }
    }

    fn refused(&self, refusal: Refusal) -> Resolution {
        self.metrics
            .rejected
            .with_label_values(&[refusal.reason])
            .inc();
        Resolution::Refused(refusal)
    }

    fn later(&self, reason: &'static str, message: &'static str, after: Duration) -> Resolution {
        self.metrics.rejected.with_label_values(&[reason]).inc();
        Resolution::Later {
            reason,
            message,
            after,
        }
    }

    fn backing_off(&self, until: Instant) -> Resolution {
        self.later(
            "backing_off",
            "the upstream failed to exchange this token recently; retry later",
            until.saturating_duration_since(Instant::now()),
        )
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cache", &self.cache)
            .field("fill_wait", &self.fill_wait)
            .finish_non_exhaustive()
    }
}
