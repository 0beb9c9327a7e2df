//! The sidecar's credentials route: `GET /v1/credentials` with the auth
//! token, answered from the store's pre-rendered body.

use std::future::{ready, Ready};
use std::net::SocketAddr;

use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::auth::AuthToken;
use super::routes::{error, method_not_allowed, Answer, Routes};
use crate::store::Store;

/// The credentials path every SDK is pointed at.
pub const CREDENTIALS_PATH: &str = "/v1/credentials";

/// The credentials listener's routes.
#[derive(Debug, Clone)]
pub struct CredentialsRoutes {
    /// Where the current credentials are.
    pub store: Store,
    /// The token callers must present.
    pub auth: AuthToken,
}

// === impl CredentialsRoutes ===

impl Routes for CredentialsRoutes {
    type Future = Ready<Answer>;

    fn route(&self, req: &Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        ready(match self.refusal(req) {
            None => self.credentials(HeaderMap::new()),
            Some(refusal) => refusal,
        })
    }

    /// The hot path: the answer reuses the request's header map (its
    /// allocation, not its contents), so serving credentials allocates
    /// nothing beyond what hyper allocates per request. hyper in turn keeps
    /// the answer's emptied map to parse the next request on the connection
    /// into, so on a keep-alive connection the same map goes round.
    fn route_owned(&self, mut req: Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        ready(match self.refusal(&req) {
            None => {
                let mut headers = std::mem::take(req.headers_mut());
                headers.clear();
                self.credentials(headers)
            }
            Some(refusal) => refusal,
        })
    }
}

impl CredentialsRoutes {
    /// The answer refusing `req` (path, method, auth token), if any.
    fn refusal(&self, req: &Request<Incoming>) -> Option<Answer> {
        if req.uri().path() != CREDENTIALS_PATH {
            return Some((
                "other",
                error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "unknown path; credentials are served at /v1/credentials",
                ),
            ));
        }
        if req.method() != Method::GET {
            return Some(("credentials", method_not_allowed()));
        }
        let presented = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
        match presented {
            None => Some(("credentials", error(StatusCode::UNAUTHORIZED, "Unauthorized", "missing Authorization header; set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to the agent's auth token file"))),
            Some(p) if !self.auth.matches(p) => Some(("credentials", error(StatusCode::UNAUTHORIZED, "Unauthorized", "the Authorization header does not match the agent's auth token"))),
            Some(_) => None,
        }
    }

    /// The 200 with the pre-rendered body, its headers in `headers` (an
    /// empty map), or 503.
    fn credentials(&self, mut headers: HeaderMap) -> Answer {
        let Some(body) = self.store.servable_body(Instant::now()) else {
            return (
                "credentials",
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CredentialsUnavailable",
                    "no valid credentials yet or they expired; see the agent's logs",
                ),
            );
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let mut rsp = Response::new(Full::new(body));
        *rsp.headers_mut() = headers;
        ("credentials", rsp)
    }
}
