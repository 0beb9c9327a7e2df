//! The listeners' metrics: requests by route and status, and latency; per
//! listener, the connections shed or timed out and the failed accepts.

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
    /// share open already, every one answering a request).
    pub refused: IntCounterVec,
    /// `credagent_connections_shed_total{listener,reason}`: connections
    /// closed to make room for a newcomer (`full`: the listener was full;
    /// `per_source`: the newcomer's address held its share).
    pub shed: IntCounterVec,
    /// `credagent_connection_timeouts_total{listener,phase}`: connections
    /// closed because a phase took too long (`handshake`, `head`, `idle`,
    /// `send`).
    pub timeouts: IntCounterVec,
    /// `credagent_accept_errors_total{listener}`: failed `accept` calls
    /// (e.g. out of file descriptors).
    pub accept_errors: IntCounterVec,
    /// The children of the usual labels, resolved once (see [`Self::observe`]).
    resolved: Arc<Resolved>,
}

/// The counters of one listener, resolved once (see [`ServerMetrics::listener`]).
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    /// Its failed accepts.
    pub accept_errors: IntCounter,
    /// Connections refused because their address held its share, every one
    /// answering a request.
    pub refused_per_source: IntCounter,
    shed_full: IntCounter,
    shed_per_source: IntCounter,
    timeouts: [IntCounter; TIMEOUT_PHASES.len()],
    /// Connections open now, on every listener (`credagent_open_connections`).
    pub open: IntGauge,
}

/// Every `phase` of `credagent_connection_timeouts_total`.
const TIMEOUT_PHASES: [&str; 4] = ["handshake", "head", "idle", "send"];

// === impl ListenerMetrics ===

impl ListenerMetrics {
    /// Counts a connection shed for `reason` (`full`, `per_source`).
    pub fn shed(&self, reason: &'static str) {
        match reason {
            "per_source" => self.shed_per_source.inc(),
            _ => self.shed_full.inc(),
        }
    }

    /// Counts a connection closed because `phase` took too long.
    pub fn timed_out(&self, phase: &'static str) {
        if let Some(i) = TIMEOUT_PHASES.iter().position(|p| *p == phase) {
            self.timeouts[i].inc();
        }
    }
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
            shed: m.counter_vec(
                "connections_shed_total",
                "Connections closed to make room for a new one, by listener and reason.",
                &["listener", "reason"],
                &[],
            )?,
            timeouts: m.counter_vec(
                "connection_timeouts_total",
                "Connections closed because a phase took too long, by listener and phase.",
                &["listener", "phase"],
                &[],
            )?,
            accept_errors: m.counter_vec(
                "accept_errors_total",
                "Failed accepts (e.g. out of file descriptors), by listener.",
                &["listener"],
                &[],
            )?,
            resolved: Arc::default(),
        })
    }

    /// The counters of the listener `name`, every series created (at 0).
    pub fn listener(&self, name: &'static str) -> ListenerMetrics {
        let shed = |reason| self.shed.with_label_values(&[name, reason]);
        let timeout = |phase| self.timeouts.with_label_values(&[name, phase]);
        ListenerMetrics {
            accept_errors: self.accept_errors.with_label_values(&[name]),
            refused_per_source: self.refused.with_label_values(&["per_source"]),
            shed_full: shed("full"),
            shed_per_source: shed("per_source"),
            timeouts: TIMEOUT_PHASES.map(timeout),
            open: self.open_connections.clone(),
        }
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
