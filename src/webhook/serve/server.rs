//! `POST /mutate` (and `/mutate/namespace`, the namespace-wide entry): an
//! AdmissionReview in, an AdmissionReview out, around the pure core
//! ([`super::admit`]).
//!
//! Every request is bounded: its body by size, time and the memory bodies
//! in flight share ([`super::body`]); reading and answering it by the cost
//! the pre-scan counts, refused above
//! [`MAX_COST`](crate::webhook::mutate::review::MAX_COST) and reserved from
//! the [`Budget`] before anything is built; any ServiceAccount lookup by
//! [`LOOKUP_TIMEOUT`]. A body that is not an AdmissionReview gets 400 (413
//! if too costly to read), a request that finds the budget in use for
//! [`WAIT`](super::budget::WAIT) gets 503 with `Retry-After`; every
//! AdmissionReview read gets 200 with the answer. The handler has no side
//! effects (the only calls it makes are reads), so `dryRun` requests are
//! answered like the others.
//! One log line per decision.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::cli::InjectArgs;
use crate::logsafe::Untrusted;
use crate::metrics::WebhookMetrics;
use crate::server::{error, internal_error, Answer, Body, Routes};
use crate::webhook::compat::sa_cache::ServiceAccounts;
use crate::webhook::mutate::admit::{
    admit, respond, service_account_to_look_up, ServiceAccountRef,
};
use crate::webhook::mutate::annotations::{Entry, Mode};
use crate::webhook::mutate::inject::{Decision, SkipReason};
use crate::webhook::mutate::names;
use crate::webhook::mutate::review::{scan, Request as Review, ReviewError};

use super::body::{self, BodyError};
use super::budget::{Budget, Reservation, RETRY_AFTER_SECS};

/// The path of the Pod entry ([`Entry::Pod`]).
pub const MUTATE_PATH: &str = "/mutate";
/// The path of the namespace entry ([`Entry::Namespace`]).
pub const MUTATE_NAMESPACE_PATH: &str = "/mutate/namespace";
/// The longest a ServiceAccount lookup may take (the webhook's own
/// `timeoutSeconds` is 5 s, body and answer included).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTPS listener's routes.
pub struct MutateRoutes {
    /// What is injected.
    pub config: Arc<InjectArgs>,
    /// ServiceAccount lookups (CoreWeave compatibility), if on.
    pub accounts: Option<Arc<dyn ServiceAccounts>>,
    /// Where outcomes are counted.
    pub metrics: WebhookMetrics,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed for the body.
    pub body_timeout: Duration,
    /// The memory requests in flight may hold.
    pub budget: Budget,
}

/// How a request ended, for the metric and the log line.
struct Outcome {
    outcome: &'static str,
    reason: &'static str,
}

// === impl MutateRoutes ===

impl Routes for MutateRoutes {
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn route(&self, _req: &Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        // The server always hands over the request (route_owned): the body
        // is needed.
        Box::pin(std::future::ready(("mutate", internal_error())))
    }

    fn route_owned(&self, req: Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        let started = Instant::now();
        let entry = match req.uri().path() {
            MUTATE_PATH => Entry::Pod,
            MUTATE_NAMESPACE_PATH => Entry::Namespace,
            _ => {
                let rsp = error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "unknown path; POST AdmissionReviews to /mutate or /mutate/namespace",
                );
                return Box::pin(std::future::ready(("other", rsp)));
            }
        };
        if req.method() != Method::POST {
            let mut rsp = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "only POST is supported",
            );
            rsp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return Box::pin(std::future::ready(("mutate", rsp)));
        }
        let config = self.config.clone();
        let accounts = self.accounts.clone();
        let metrics = self.metrics.clone();
        let bounds = Bounds {
            max: self.max_body_bytes,
            timeout: self.body_timeout,
            budget: self.budget.clone(),
        };
        Box::pin(async move {
            let (rsp, outcome) = mutate(req, entry, &config, accounts.as_deref(), &bounds).await;
            metrics.admission(
                outcome.outcome,
                outcome.reason,
                started.elapsed().as_secs_f64(),
            );
            ("mutate", rsp)
        })
    }
}

impl std::fmt::Debug for MutateRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutateRoutes")
            .field("compat", &self.accounts.is_some())
            .finish_non_exhaustive()
    }
}

/// What bounds one request.
struct Bounds {
    max: usize,
    timeout: Duration,
    budget: Budget,
}

async fn mutate(
    req: Request<Incoming>,
    entry: Entry,
    config: &InjectArgs,
    accounts: Option<&dyn ServiceAccounts>,
    bounds: &Bounds,
) -> (Response<Body>, Outcome) {
    // Not a decision: one warning line, never quoting the body.
    let failed = |status: StatusCode, reason, message: String| {
        warn!(status = status.as_u16(), reason, error = %Untrusted::new(&message), "request not answered with a decision");
        let mut rsp = json_error(status, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            rsp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        (
            rsp,
            Outcome {
                outcome: "error",
                reason,
            },
        )
    };
    let body = match body::read(req, bounds.max, bounds.timeout, &bounds.budget).await {
        Ok(b) => b,
        Err(e) => {
            let (status, reason) = match e {
                BodyError::NotJson => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                }
                BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
                BodyError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
                BodyError::Unreadable => (StatusCode::BAD_REQUEST, "not_a_review"),
                BodyError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            };
            return failed(status, reason, e.to_string());
        }
    };
    // Scanned without allocating; its cost reserved before it is read.
    let refused = |e: ReviewError| {
        let (status, reason) = match e {
            ReviewError::TooDeep => (StatusCode::BAD_REQUEST, "too_deep"),
            ReviewError::TooCostly { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_costly"),
            _ => (StatusCode::BAD_REQUEST, "not_a_review"),
        };
        failed(status, reason, e.to_string())
    };
    let scanned = match scan(&body.bytes) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let mut held = match bounds.budget.read(scanned.cost()).await {
        Ok(r) => r,
        Err(e) => return failed(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string()),
    };
    let parsed = scanned.parse();
    drop(body);
    let review = match parsed {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let (decision, lookup_failed) = decide(&review, entry, config, accounts).await;
    let answer = respond(&review, &decision).to_bytes();
    let outcome = match (&decision, lookup_failed) {
        (_, true) => Outcome {
            outcome: "error",
            reason: "service_account_lookup",
        },
        (
            Decision::Inject {
                mode: Mode::Sidecar,
                ..
            },
            _,
        ) => Outcome {
            outcome: "injected",
            reason: "sidecar",
        },
        (
            Decision::Inject {
                mode: Mode::Node, ..
            },
            _,
        ) => Outcome {
            outcome: "injected",
            reason: "node",
        },
        (Decision::Skip { reason, .. }, _) => Outcome {
            outcome: "skipped",
            reason: reason.as_str(),
        },
        (Decision::Refuse { .. }, _) => Outcome {
            outcome: "refused",
            reason: "invalid_annotation",
        },
    };
    log_decision(&review, entry, &decision, &outcome);
    drop((review, decision));
    // The answer holds its share of the budget until it has been sent.
    held.shrink_to(answer.len());
    let rsp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_owner(Held {
            bytes: answer,
            _reservation: held,
        })))
        .unwrap_or_else(|_| internal_error());
    (rsp, outcome)
}

/// An answer's bytes and the share of the budget they hold.
struct Held {
    bytes: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The decision, after looking up the ServiceAccount when it matters; true
/// if that lookup failed (the Pod is then admitted unchanged, with a
/// warning saying why).
async fn decide(
    review: &Review,
    entry: Entry,
    config: &InjectArgs,
    accounts: Option<&dyn ServiceAccounts>,
) -> (Decision, bool) {
    let sa = service_account_to_look_up(review, entry, config);
    let (Some(sa), Some(accounts)) = (sa, accounts) else {
        return (admit(review, entry, None, config), false);
    };
    match tokio::time::timeout(LOOKUP_TIMEOUT, accounts.lookup(&sa)).await {
        Ok(Ok(found)) => {
            let annotations = (found == Some(true)).then(|| {
                let mut m = Map::new();
                m.insert(
                    names::COREWEAVE_SA_INJECT.into(),
                    Value::String("true".into()),
                );
                m
            });
            (admit(review, entry, annotations.as_ref(), config), false)
        }
        Ok(Err(e)) => (lookup_failed(&sa, &e.to_string()), true),
        Err(_) => (
            lookup_failed(
                &sa,
                &format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()),
            ),
            true,
        ),
    }
}

fn lookup_failed(sa: &ServiceAccountRef, why: &str) -> Decision {
    warn!(namespace = %Untrusted::new(&sa.namespace), service_account = %Untrusted::new(&sa.name), error = %Untrusted::new(why), "cannot read the Pod's ServiceAccount; admitting it unchanged");
    Decision::Skip {
        reason: SkipReason::NotOptedIn,
        warnings: vec![format!(
            "credagent: not injected: cannot read ServiceAccount {}/{} to check {}: {why}",
            sa.namespace,
            sa.name,
            names::COREWEAVE_SA_INJECT
        )],
    }
}

fn log_decision(review: &Review, entry: Entry, decision: &Decision, outcome: &Outcome) {
    let metadata = review.object.get("metadata");
    let field = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (pod, generated) = match review.name.as_deref().or_else(|| field("name")) {
        Some(name) => (name, false),
        None => (field("generateName").unwrap_or(""), true),
    };
    let spec = review.object.get("spec");
    let service_account = spec
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let namespace = review
        .namespace
        .as_deref()
        .or_else(|| field("namespace"))
        .unwrap_or("");
    let (warnings, message) = match decision {
        Decision::Inject { warnings, .. } | Decision::Skip { warnings, .. } => (warnings.len(), ""),
        Decision::Refuse { message } => (0, message.as_str()),
    };
    let is_pod = review.is_pod_create();
    // Every string here comes from the request: escaped and capped.
    info!(
        uid = %Untrusted::new(&review.uid),
        operation = review.operation.as_str(),
        kind = %Untrusted::new(&review.kind.kind),
        namespace = %Untrusted::new(namespace),
        pod = %Untrusted::new(if is_pod { pod } else { "" }),
        generate_name = is_pod && generated,
        service_account = %Untrusted::new(if is_pod { service_account } else { "" }),
        entry = entry.as_str(),
        outcome = outcome.outcome,
        reason = outcome.reason,
        dry_run = review.dry_run,
        warnings,
        message = %Untrusted::new(message),
        "admission"
    );
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = json!({"code": status.as_u16(), "message": message});
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| internal_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_a_pre_created_series() {
        use crate::metrics::ADMISSION_OUTCOMES;
        for reason in [
            SkipReason::NotPodCreate,
            SkipReason::NotOptedIn,
            SkipReason::OptedOut,
            SkipReason::AlreadyInjected,
            SkipReason::HostNetwork,
            SkipReason::AllContainersSkipped,
            SkipReason::AllContainersHaveCredentials,
        ] {
            assert!(
                ADMISSION_OUTCOMES.contains(&("skipped", reason.as_str())),
                "{}",
                reason.as_str()
            );
        }
    }
}
