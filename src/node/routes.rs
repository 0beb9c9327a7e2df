//! The node-mode credentials route: the HTTP face of [`Resolver`]. Every
//! Pod presents its own projected token, and gets the credentials that
//! token obtained.
//!
//! Refused here, before the resolver: another path or method, a `Host` that
//! is not one of the listen addresses (anti-SSRF and DNS rebinding), no
//! token or one that is not text.

use std::collections::HashSet;
use std::future::{ready, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::resolve::{Refusal, Resolution, Resolver};
use crate::metrics::NodeMetrics;
use crate::server::{error, method_not_allowed, retry_later, Answer, Routes, CREDENTIALS_PATH};

/// The node-mode credentials routes.
#[derive(Clone)]
pub struct NodeRoutes {
    resolver: Arc<Resolver>,
    /// Accepted `Host` values; `None` accepts any (a wildcard listen address).
    hosts: Option<Arc<HashSet<String>>>,
    metrics: NodeMetrics,
}

// === impl NodeRoutes ===

impl NodeRoutes {
    /// Routes for listeners on `listen`, answering through `resolver`.
    pub fn new(resolver: Arc<Resolver>, listen: &[SocketAddr], metrics: NodeMetrics) -> Self {
        Self {
            resolver,
            hosts: allowed_hosts(listen).map(Arc::new),
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
        if let (Some(hosts), Some(host)) = (&self.hosts, req.headers().get(HOST)) {
            let host = host.to_str().unwrap_or("").to_ascii_lowercase();
            if !hosts.contains(&host) {
                return Err(Early::Refused(Refusal {
                    reason: "bad_host",
                    status: StatusCode::FORBIDDEN,
                    code: "Forbidden",
                    message: "the Host header is not this agent's address",
                }));
            }
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

/// The `Host` values that name the listeners (`ip:port`, and bare `ip` for
/// port 80). `None` when a listener is on a wildcard address, whose names
/// cannot be enumerated.
pub fn allowed_hosts(listen: &[SocketAddr]) -> Option<HashSet<String>> {
    let mut hosts = HashSet::new();
    for addr in listen {
        if addr.ip().is_unspecified() {
            return None;
        }
        hosts.insert(addr.to_string().to_ascii_lowercase());
        if addr.port() == 80 {
            let ip = match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            hosts.insert(ip.to_ascii_lowercase());
        }
    }
    Some(hosts)
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
        let hosts = allowed_hosts(&listen).unwrap();
        for h in [
            "169.254.170.23",
            "169.254.170.23:80",
            "[fd00:ec2::23]",
            "[fd00:ec2::23]:80",
            "127.0.0.1:8080",
        ] {
            assert!(hosts.contains(h), "{h}");
        }
        for h in ["127.0.0.1", "evil.example", "169.254.170.23:8080"] {
            assert!(!hosts.contains(h), "{h}");
        }
        assert!(allowed_hosts(&["0.0.0.0:80".parse().unwrap()]).is_none());
    }
}
