//! An EC2 instance-metadata service (IMDS) emulation, for tools that only
//! know the instance provider. Off by default (`--imds-listen`).
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
//!   (1-21600) issues an IMDSv2 session token valid for that long;
//! - every `GET` must carry a valid session token in
//!   `X-aws-ec2-metadata-token` (401 otherwise), unless `--imds-allow-v1`
//!   lets token-less (IMDSv1) requests through;
//! - a request carrying `X-Forwarded-For` is refused (403), as EC2 does, so
//!   a proxy in the Pod cannot relay outside callers;
//! - the request must carry exactly one `Host` (400 otherwise) naming the
//!   listen address, `localhost` on its port when that is loopback, or
//!   the address SDKs use by default, `169.254.169.254` (`[fd00:ec2::254]`
//!   over IPv6) on port 80, which a redirect to the emulation keeps
//!   (403 otherwise; an absolute-form target is held to the same rule);
//! - `GET /latest/meta-data/iam/security-credentials/` names one role and
//!   `.../ROLE` returns the credentials; `/latest/meta-data/placement/region`
//!   returns `--region`.

use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use lru::LruCache;
use parking_lot::Mutex;
use rand::RngCore;
use tokio::time::Instant;

use crate::config::ImdsConfig;
use crate::server::host::{self, HostNames};
use crate::server::{Answer, Body, Routes};
use crate::store::Store;

/// The role name IMDS reports (the upstream's role is not path-safe).
pub const ROLE_NAME: &str = "credagent";
/// Longest session-token TTL EC2 allows.
pub const MAX_TTL: Duration = Duration::from_secs(21_600);
/// EC2's instance-metadata address, which SDKs use unless told otherwise.
pub const EC2_METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// EC2's IPv6 instance-metadata address (`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`).
pub const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// Session tokens held at once; the least recently used go beyond this.
const MAX_SESSIONS: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(n) => n,
    None => panic!("MAX_SESSIONS is not zero"),
};

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const CREDENTIALS_PREFIX: &str = "/latest/meta-data/iam/security-credentials/";

/// The IMDS routes.
#[derive(Clone)]
pub struct ImdsRoutes {
    store: Store,
    config: Arc<ImdsConfig>,
    /// Session token → expiry.
    sessions: Arc<Mutex<LruCache<String, Instant>>>,
    /// The names requests may carry; `None` (a wildcard listen address):
    /// any well-formed one.
    hosts: Option<Arc<HostNames>>,
}

// === impl ImdsRoutes ===

impl ImdsRoutes {
    /// Routes serving `store` on a listener bound to `listen`.
    pub fn new(store: Store, config: ImdsConfig, listen: SocketAddr) -> Self {
        Self {
            store,
            config: Arc::new(config),
            sessions: Arc::new(Mutex::new(LruCache::new(MAX_SESSIONS))),
            hosts: host_names(listen).map(Arc::new),
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> Answer {
        if req.headers().contains_key("x-forwarded-for") {
            return ("imds", text(StatusCode::FORBIDDEN, "Forbidden"));
        }
        let target = match &self.hosts {
            Some(hosts) => hosts.check(req),
            None => host::check_form(req),
        };
        if let Err(e) = target {
            let body = match e.status() {
                StatusCode::FORBIDDEN => "Forbidden",
                _ => "Bad Request",
            };
            return ("imds", text(e.status(), body));
        }
        let path = req.uri().path();
        if path == "/latest/api/token" {
            return ("imds_token", self.issue_session(req));
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (
                "imds",
                text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            );
        }
        if !self.authorized(req) {
            return ("imds", text(StatusCode::UNAUTHORIZED, "Unauthorized"));
        }
        match path {
            CREDENTIALS_PREFIX | "/latest/meta-data/iam/security-credentials" => {
                ("imds", text(StatusCode::OK, ROLE_NAME))
            }
            p if p.strip_prefix(CREDENTIALS_PREFIX) == Some(ROLE_NAME) => {
                match self
                    .store
                    .servable(Instant::now())
                    .and_then(|s| s.imds_body.clone())
                {
                    Some(body) => ("imds_credentials", json(body)),
                    None => (
                        "imds_credentials",
                        text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
                    ),
                }
            }
            "/latest/meta-data/placement/region" => match &self.config.region {
                Some(r) => ("imds", text_owned(StatusCode::OK, r.clone())),
                None => ("imds", text(StatusCode::NOT_FOUND, "Not Found")),
            },
            _ => ("imds", text(StatusCode::NOT_FOUND, "Not Found")),
        }
    }

    fn issue_session(&self, req: &Request<Incoming>) -> Response<Body> {
        if req.method() != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let ttl = req
            .headers()
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .filter(|d| !d.is_zero() && *d <= MAX_TTL);
        let Some(ttl) = ttl else {
            return text(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        self.sessions
            .lock()
            .put(token.clone(), Instant::now() + ttl);
        let mut rsp = text_owned(StatusCode::OK, token);
        if let Ok(v) = HeaderValue::from_str(&ttl.as_secs().to_string()) {
            rsp.headers_mut().insert(TTL_HEADER, v);
        }
        rsp
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        match req
            .headers()
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            None => self.config.allow_v1,
            Some(token) => self
                .sessions
                .lock()
                .peek(token)
                .is_some_and(|exp| Instant::now() < *exp),
        }
    }
}

impl Routes for ImdsRoutes {
    type Future = Ready<Answer>;

    fn route(&self, req: &Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        ready(self.answer(req))
    }
}

impl std::fmt::Debug for ImdsRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImdsRoutes")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the emulation on `listen` answers to (see the module's docs).
fn host_names(listen: SocketAddr) -> Option<HostNames> {
    let mut names = HostNames::of(&[listen])?
        .with_ip(IpAddr::V4(EC2_METADATA_V4), 80)
        .with_ip(IpAddr::V6(EC2_METADATA_V6), 80);
    if listen.ip().is_loopback() {
        names = names.with_name("localhost", listen.port());
    }
    Some(names)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, "text/plain", Bytes::from_static(body.as_bytes()))
}

fn text_owned(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/plain", Bytes::from(body))
}

fn json(body: Bytes) -> Response<Body> {
    respond(StatusCode::OK, "application/json", body)
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut rsp = Response::new(Full::new(body));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}
