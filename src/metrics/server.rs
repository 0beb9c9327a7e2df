//! The listeners' metrics: requests by route and status, and latency.

use std::sync::{Arc, OnceLock};

use http::StatusCode;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge};

use super::registry::{Metrics, MetricsError, LATENCY_BUCKETS};

/// Listener metrics.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    /// `credagent_requests_total{route,status}`.
    pub requests: IntCounterVec,
    /// `credagent_request_duration_seconds{route}`.
    pub duration: HistogramVec,
    /// `credagent_open_connections`: connections open now, on every listener.
    pub open_connections: IntGauge,
    /// `credagent_connections_refused_total{reason}`: connections closed as
    /// soon as they were accepted (`per_source`: that address had its
    /// share open already).
    pub refused: IntCounterVec,
    /// The children of the usual labels, resolved once (see [`Self::observe`]).
    resolved: Arc<Resolved>,
}

/// Routes and statuses whose label children [`ServerMetrics::observe`]
/// keeps; any other pair goes through the vectors.
const ROUTES: [&str; 8] = [
    "credentials",
    "other",
    "healthz",
    "readyz",
    "metrics",
    "imds",
    "imds_token",
    "imds_credentials",
];
const STATUSES: [StatusCode; 10] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// Label children, each created in its vector on first use (so `/metrics`
/// shows exactly the series that have been observed, as before).
#[derive(Debug, Default)]
struct Resolved {
    requests: [[OnceLock<IntCounter>; STATUSES.len()]; ROUTES.len()],
    duration: [OnceLock<Histogram>; ROUTES.len()],
}

// === impl ServerMetrics ===

impl ServerMetrics {
    /// Registers the listeners' metrics on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        let duration = HistogramVec::new(
            HistogramOpts::new("request_duration_seconds", "Time to answer a request.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        m.registry().register(Box::new(duration.clone()))?;
        Ok(Self {
            requests: m.counter_vec(
                "requests_total",
                "Requests answered, by route and status code.",
                &["route", "status"],
                &[],
            )?,
            duration,
            open_connections: m.int_gauge(
                "open_connections",
                "Connections open now, on every listener.",
            )?,
            refused: m.counter_vec(
                "connections_refused_total",
                "Connections closed as soon as they were accepted, by reason.",
                &["reason"],
                &[],
            )?,
            resolved: Arc::default(),
        })
    }

    /// Counts a connection refused for `reason`.
    pub fn refused_connection(&self, reason: &'static str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    /// Counts one answered request and observes how long it took.
    ///
    /// This runs for every request, so the children of the usual labels are
    /// resolved once and kept: recording is then a few atomic adds, where
    /// `with_label_values` hashes the labels and takes the vector's lock
    /// each time. The kept children are the vectors' own (nothing removes
    /// label values), so the exported series are the same.
    pub fn observe(&self, route: &'static str, status: StatusCode, seconds: f64) {
        let Some(r) = ROUTES.iter().position(|known| *known == route) else {
            self.requests
                .with_label_values(&[route, status.as_str()])
                .inc();
            self.duration.with_label_values(&[route]).observe(seconds);
            return;
        };
        match STATUSES.iter().position(|known| *known == status) {
            Some(s) => self.resolved.requests[r][s]
                .get_or_init(|| self.requests.with_label_values(&[route, status.as_str()]))
                .inc(),
            None => self
                .requests
                .with_label_values(&[route, status.as_str()])
                .inc(),
        }
        self.resolved.duration[r]
            .get_or_init(|| self.duration.with_label_values(&[route]))
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_counts_into_the_exported_series() {
        let registry = Metrics::new().unwrap();
        let m = ServerMetrics::register(&registry).unwrap();
        for _ in 0..3 {
            m.observe("credentials", StatusCode::OK, 0.0002);
        }
        m.observe("credentials", StatusCode::UNAUTHORIZED, 0.0001);
        // Off the cached table: a status and a route it does not know.
        m.observe("credentials", StatusCode::IM_A_TEAPOT, 0.0001);
        m.observe("elsewhere", StatusCode::OK, 0.0001);
        // The same child whichever way it is reached.
        m.requests.with_label_values(&["credentials", "200"]).inc();
        let text = String::from_utf8(registry.encode()).unwrap();
        for line in [
            "credagent_requests_total{route=\"credentials\",status=\"200\"} 4",
            "credagent_requests_total{route=\"credentials\",status=\"401\"} 1",
            "credagent_requests_total{route=\"credentials\",status=\"418\"} 1",
            "credagent_requests_total{route=\"elsewhere\",status=\"200\"} 1",
            "credagent_request_duration_seconds_count{route=\"credentials\"} 5",
            "credagent_request_duration_seconds_bucket{route=\"credentials\",le=\"0.00025\"} 5",
            "credagent_request_duration_seconds_count{route=\"elsewhere\"} 1",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        assert!(!text.contains("route=\"healthz\""), "{text}");
    }
}
