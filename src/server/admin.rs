//! The admin listener: `/healthz` (the process is alive), `/readyz` (the
//! mode's own [`Health`] says it can do its job), `/metrics`.

use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::routes::{error, internal_error, method_not_allowed, text, text_owned, Answer, Routes};
use crate::metrics::Metrics;

/// Whether the agent can do its job now; what `/readyz` reports.
pub trait Health: Send + Sync + 'static {
    /// `Ok` when ready; otherwise why not, in a few words (no secrets).
    fn ready(&self) -> Result<(), String>;
}

/// The admin listener's routes.
#[derive(Clone)]
pub struct AdminRoutes {
    /// What `/readyz` reports.
    pub health: Arc<dyn Health>,
    /// What `/metrics` serves.
    pub metrics: Metrics,
}

// === impl AdminRoutes ===

impl Routes for AdminRoutes {
    type Future = Ready<Answer>;

    fn route(&self, req: &Request<Incoming>, _peer: SocketAddr) -> Self::Future {
        ready(self.answer(req))
    }
}

impl AdminRoutes {
    fn answer(&self, req: &Request<Incoming>) -> Answer {
        let route = match req.uri().path() {
            "/healthz" => "healthz",
            "/readyz" => "readyz",
            "/metrics" => "metrics",
            _ => {
                return (
                    "other",
                    error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "unknown path; try /healthz, /readyz or /metrics",
                    ),
                )
            }
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (route, method_not_allowed());
        }
        let rsp = match route {
            "healthz" => text(StatusCode::OK, "ok\n"),
            "readyz" => match self.health.ready() {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(why) => text_owned(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            _ => Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(Bytes::from(self.metrics.encode())))
                .unwrap_or_else(|_| internal_error()),
        };
        (route, rsp)
    }
}

impl std::fmt::Debug for AdminRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRoutes").finish_non_exhaustive()
    }
}
