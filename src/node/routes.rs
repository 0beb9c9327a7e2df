//! The node-mode credentials route: the HTTP face of [`Resolver`]. Every
//! Pod presents its own projected token, and gets the credentials that
//! token obtained.
//!
//! Refused here, before the resolver: another path or method, a request
//! target that is not exactly one `Host` naming a listen address (and, in
//! absolute form, naming one too: anti-SSRF and DNS rebinding; see
//! [`crate::server::host`]), no token or one that is not text.

use std::future::{ready, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::resolve::{Refusal, Resolution, Resolver};
use crate::metrics::NodeMetrics;
use crate::server::host::{self, HostError, HostNames};
use crate::server::{error, method_not_allowed, retry_later, Answer, Routes, CREDENTIALS_PATH};

/// The node-mode credentials routes.
#[derive(Clone)]
pub struct NodeRoutes {
    resolver: Arc<Resolver>,
    /// The listeners' names; `None` (a wildcard listen address): any
    /// well-formed one.
    hosts: Option<Arc<HostNames>>,
    metrics: NodeMetrics,
}

// === impl NodeRoutes ===

impl NodeRoutes {
    /// Routes for listeners on `listen`, answering through `resolver`.
    pub fn new(resolver: Arc<Resolver>, listen: &[SocketAddr], metrics: NodeMetrics) -> Self {
        Self {
            resolver,
            hosts: HostNames::of(listen).map(Arc::new),
            metrics,
        }
    }

    fn reject(&self, refusal: Refusal) -> Answer {
        self.metrics
            .rejected
            .with_label_values(&[refusal.reason])
            .inc();
        answer(Resolution::Refused(refusal))
    }

    /// The token, or why the request is refused before the resolver.
    fn token<'r>(&self, req: &'r Request<Incoming>) -> Result<&'r str, Early> {
        if req.uri().path() != CREDENTIALS_PATH {
            return Err(Early::NotFound);
        }
        if req.method() != Method::GET {
            return Err(Early::Method);
        }
        let target = match &self.hosts {
            Some(hosts) => hosts.check(req),
            None => host::check_form(req),
        };
        if let Err(e) = target {
            return Err(Early::Refused(host_refusal(e)));
        }
        match req.headers().get(AUTHORIZATION).map(HeaderValue::to_str) {
            None | Some(Ok("")) => Err(Early::Refused(Refusal {
                reason: "missing_token",
                status: StatusCode::UNAUTHORIZED,
                code: "Unauthorized",
                message: "missing Authorization header; set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to the Pod's projected token",
            })),
            Some(Err(_)) => Err(Early::Refused(Refusal {
                reason: "malformed_token",
                status: StatusCode::BAD_REQUEST,
                code: "InvalidToken",
                message: "the Authorization header is not a JWT",
            })),
            Some(Ok(t)) => Ok(t),
        }
    }

    fn early(&self, early: Early) -> Answer {
        match early {
            Early::NotFound => (
                "other",
                error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "unknown path; credentials are served at /v1/credentials",
                ),
            ),
            Early::Method => ("credentials", method_not_allowed()),
            Early::Refused(refusal) => self.reject(refusal),
        }
    }
}

/// Why a request is refused before the resolver sees it.
enum Early {
    NotFound,
    Method,
    Refused(Refusal),
}

impl Routes for NodeRoutes {
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn route(&self, req: &Request<Incoming>, peer: SocketAddr) -> Self::Future {
        let token = match self.token(req) {
            Ok(t) => t,
            Err(early) => return Box::pin(ready(self.early(early))),
        };
        let admitted = match self.resolver.admit(token) {
            Ok(a) => a,
            Err(refusal) => return Box::pin(ready(self.reject(refusal))),
        };
        // Hits, refusals and backoffs answer from memory, without boxing
        // more than the ready answer.
        if let Some(resolution) = self.resolver.lookup(&admitted) {
            return Box::pin(ready(answer(resolution)));
        }
        let resolver = self.resolver.clone();
        Box::pin(async move { answer(resolver.miss(admitted, peer.ip()).await) })
    }
}

impl std::fmt::Debug for NodeRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRoutes")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// The HTTP answer for a resolution.
fn answer(resolution: Resolution) -> Answer {
    match resolution {
        Resolution::Credentials(body) => ok(body),
        Resolution::Refused(r) => ("credentials", error(r.status, r.code, r.message)),
        Resolution::Later { message, after, .. } => (
            "credentials",
            retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "CredentialsUnavailable",
                message,
                after.as_secs_f64().ceil() as u64,
            ),
        ),
    }
}

fn ok(body: Bytes) -> Answer {
    let rsp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(body))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error",
            )
        });
    ("credentials", rsp)
}

/// The refusal of a request whose target is not this agent.
fn host_refusal(e: HostError) -> Refusal {
    Refusal {
        reason: e.reason(),
        status: e.status(),
        code: match e {
            HostError::Elsewhere => "Forbidden",
            _ => "BadRequest",
        },
        message: e.message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_of_the_listeners() {
        let listen: Vec<SocketAddr> = vec![
            "169.254.170.23:80".parse().unwrap(),
            "[fd00:ec2::23]:80".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
        ];
        let hosts = HostNames::of(&listen).unwrap();
        for h in [
            "169.254.170.23",
            "169.254.170.23:80",
            "[fd00:ec2::23]",
            "[fd00:ec2::23]:80",
            "[FD00:EC2:0::23]:80",
            "127.0.0.1:8080",
        ] {
            assert!(hosts.allows(h), "{h}");
        }
        for h in ["127.0.0.1", "evil.example", "169.254.170.23:8080", ""] {
            assert!(!hosts.allows(h), "{h}");
        }
        assert!(HostNames::of(&["0.0.0.0:80".parse().unwrap()]).is_none());
    }

    #[test]
    fn malformed_targets_are_400_and_other_hosts_403() {
        for e in [HostError::Missing, HostError::Several, HostError::Malformed] {
            let r = host_refusal(e);
            assert_eq!(
                (r.status, r.reason),
                (StatusCode::BAD_REQUEST, "malformed_host")
            );
        }
        let r = host_refusal(HostError::Elsewhere);
        assert_eq!((r.status, r.reason), (StatusCode::FORBIDDEN, "bad_host"));
    }
}
