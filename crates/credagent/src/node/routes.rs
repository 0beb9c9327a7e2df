//! The node-mode credentials route: every Pod presents its own projected
//! token, and gets the credentials that token obtained.
//!
//! Everything that can be refused is refused before any upstream call: a
//! `Host` that is not one of the listen addresses (anti-SSRF and DNS
//! rebinding), a missing token, one that is not a JWT or over 16 KiB, one
//! whose `exp` has passed.

use std::collections::HashSet;
use std::future::{ready, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::cache::{digest, FetchError, IdentityCache, Lookup};
use crate::clock::{unix_seconds, SharedClock};
use crate::metrics::NodeMetrics;
use crate::server::{error, Body, Routes, CREDENTIALS_PATH};
use crate::store::Snapshot;
use crate::token::jwt;

type Answer = (&'static str, Response<Body>);

/// The node-mode credentials routes.
#[derive(Clone)]
pub struct NodeRoutes {
    cache: IdentityCache,
    /// Accepted `Host` values; `None` accepts any (a wildcard listen address).
    hosts: Option<Arc<HashSet<String>>>,
    metrics: NodeMetrics,
    clock: SharedClock,
    /// Longest a request waits for a cache miss to be filled.
    miss_timeout: Duration,
}

// === impl NodeRoutes ===

impl NodeRoutes {
    /// Routes for listeners on `listen`.
    pub fn new(
        cache: IdentityCache,
        listen: &[SocketAddr],
        metrics: NodeMetrics,
        clock: SharedClock,
        miss_timeout: Duration,
    ) -> Self {
        Self {
            cache,
            hosts: allowed_hosts(listen).map(Arc::new),
            metrics,
            clock,
            miss_timeout,
        }
    }

    fn reject(
        &self,
        reason: &'static str,
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    ) -> Answer {
        self.metrics.rejected.with_label_values(&[reason]).inc();
        ("credentials", error(status, code, message))
    }

    fn refuse(&self, r: Refusal) -> Answer {
        match r {
            Refusal::NotFound => (
                "other",
                error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "unknown path; credentials are served at /v1/credentials",
                ),
            ),
            Refusal::Method => {
                let mut rsp = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "only GET is supported",
                );
                rsp.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
                ("credentials", rsp)
            }
            Refusal::Rejected {
                reason,
                status,
                code,
                message,
            } => self.reject(reason, status, code, message),
        }
    }

    /// Checks the request; returns the token and its `exp`, or the refusal.
    fn admit(&self, req: &Request<Incoming>) -> Result<(String, i64), Refusal> {
        if req.uri().path() != CREDENTIALS_PATH {
            return Err(Refusal::NotFound);
        }
        if req.method() != Method::GET {
            return Err(Refusal::Method);
        }
        if let (Some(hosts), Some(host)) = (&self.hosts, req.headers().get(HOST)) {
            let host = host.to_str().unwrap_or("").to_ascii_lowercase();
            if !hosts.contains(&host) {
                return Err(Refusal::rejected(
                    "bad_host",
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "the Host header is not this agent's address",
                ));
            }
        }
        let not_a_jwt = Refusal::rejected(
            "malformed_token",
            StatusCode::BAD_REQUEST,
            "InvalidToken",
            "the Authorization header is not a JWT",
        );
        let token = match req.headers().get(AUTHORIZATION).map(HeaderValue::to_str) {
            None | Some(Ok("")) => {
                return Err(Refusal::rejected(
                    "missing_token",
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "missing Authorization header; set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to the Pod's projected token",
                ))
            }
            Some(Err(_)) => return Err(not_a_jwt),
            Some(Ok(t)) => t,
        };
        let claims = match jwt::decode(token) {
            Ok(c) => c,
            Err(jwt::JwtError::TooLarge(_)) => {
                return Err(Refusal::rejected(
                    "malformed_token",
                    StatusCode::BAD_REQUEST,
                    "InvalidToken",
                    "the token is over 16 KiB",
                ))
            }
            Err(_) => return Err(not_a_jwt),
        };
        let Some(exp) = claims.exp else {
            return Err(Refusal::rejected(
                "malformed_token",
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "the token has no exp claim",
            ));
        };
        if exp <= unix_seconds(self.clock.now()) as i64 {
            return Err(Refusal::rejected(
                "expired_token",
                StatusCode::UNAUTHORIZED,
                "TokenExpired",
                "the token has expired; kubelet should have rotated it",
            ));
        }
        Ok((token.to_owned(), exp))
    }
}

/// Why a request is refused before the cache is consulted.
enum Refusal {
    NotFound,
    Method,
    Rejected {
        reason: &'static str,
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    },
}

impl Refusal {
    fn rejected(
        reason: &'static str,
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    ) -> Self {
        Self::Rejected {
            reason,
            status,
            code,
            message,
        }
    }
}

impl Routes for NodeRoutes {
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn route(&self, req: &Request<Incoming>) -> Self::Future {
        let (token, exp) = match self.admit(req) {
            Ok(t) => t,
            Err(refusal) => return Box::pin(ready(self.refuse(refusal))),
        };
        let key = digest(&token);
        match self.cache.lookup(&key) {
            Lookup::Hit(snapshot) => Box::pin(ready(ok(&snapshot))),
            Lookup::Denied => Box::pin(ready(self.denied())),
            Lookup::Miss => {
                let this = self.clone();
                Box::pin(async move {
                    let token = zeroize::Zeroizing::new(token);
                    match tokio::time::timeout(
                        this.miss_timeout,
                        this.cache.fetch(key, &token, exp),
                    )
                    .await
                    {
                        Ok(Ok(snapshot)) => ok(&snapshot),
                        Ok(Err(FetchError::Denied)) => this.denied(),
                        Ok(Err(FetchError::Unavailable(_))) | Err(_) => this.reject(
                            "upstream_unavailable",
                            StatusCode::SERVICE_UNAVAILABLE,
                            "CredentialsUnavailable",
                            "the upstream could not exchange this token right now; retry",
                        ),
                    }
                })
            }
        }
    }
}

impl NodeRoutes {
    fn denied(&self) -> Answer {
        self.reject(
            "upstream_denied",
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the upstream rejected this token (check the OIDC configuration and access policy)",
        )
    }
}

impl std::fmt::Debug for NodeRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRoutes")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

fn ok(snapshot: &Snapshot) -> Answer {
    let rsp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::clone(&snapshot.body)))
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
