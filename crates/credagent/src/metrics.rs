//! Prometheus metrics: one struct per subsystem, all registered on one
//! `Registry` that the admin listener serves.
//!
//! Every name starts with `credagent_`. No label carries a token, a key, or
//! anything unbounded: labels are small fixed sets (result, route, status).

use std::sync::{Arc, OnceLock};

use http::StatusCode;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// All of the agent's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Token source metrics.
    pub token: TokenMetrics,
    /// Refresher metrics.
    pub refresh: RefreshMetrics,
    /// Listener metrics.
    pub server: ServerMetrics,
}

/// Token source metrics.
#[derive(Clone, Debug)]
pub struct TokenMetrics {
    /// `credagent_token_reloads_total{result}`: `updated`, `unchanged`,
    /// `missing`, `unreadable`, `empty`, `too_large`, `malformed`.
    pub reloads: IntCounterVec,
    /// `credagent_token_expiry_timestamp_seconds`: the current token's `exp`.
    pub expiry: Gauge,
}

/// Refresher metrics.
#[derive(Clone, Debug)]
pub struct RefreshMetrics {
    /// `credagent_refreshes_total{result}`: `ok` or an error class.
    pub refreshes: IntCounterVec,
    /// `credagent_refresh_duration_seconds`: one upstream exchange.
    pub duration: Histogram,
    /// `credagent_upstream_responses_total{class}`: `2xx`, `4xx`, `5xx`, `error`.
    pub upstream_responses: IntCounterVec,
    /// `credagent_credentials_expiry_timestamp_seconds`.
    pub credentials_expiry: Gauge,
    /// `credagent_last_refresh_success_timestamp_seconds`.
    pub last_success: Gauge,
    /// `credagent_ready`: 1 while holding servable credentials.
    pub ready: IntGauge,
}

/// Listener metrics.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    /// `credagent_requests_total{route,status}`.
    pub requests: IntCounterVec,
    /// `credagent_request_duration_seconds{route}`.
    pub duration: HistogramVec,
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

/// Node-mode metrics (registered only by `credagent node`).
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    /// `credagent_node_identities`: identities cached now.
    pub identities: IntGauge,
    /// `credagent_node_max_identities`: the configured bound.
    pub max_identities: IntGauge,
    /// `credagent_node_cache_hits_total`.
    pub hits: IntCounter,
    /// `credagent_node_cache_misses_total`.
    pub misses: IntCounter,
    /// `credagent_node_cache_evictions_total{reason}`: `lru`, `idle`,
    /// `token_expired`, `auth_rejected`, `failed`.
    pub evictions: IntCounterVec,
    /// `credagent_node_singleflight_joins_total`: misses that waited on
    /// another request's exchange instead of making their own.
    pub joins: IntCounter,
    /// `credagent_node_negative_cache_hits_total`.
    pub negative_hits: IntCounter,
    /// `credagent_node_upstream_calls_total{result}`: `ok` or an error class.
    pub upstream_calls: IntCounterVec,
    /// `credagent_node_upstream_duration_seconds`.
    pub upstream_duration: Histogram,
    /// `credagent_node_refresh_ahead_total{result}`.
    pub refresh_ahead: IntCounterVec,
    /// `credagent_node_rejected_requests_total{reason}`.
    pub rejected: IntCounterVec,
}

/// Why metrics could not be set up (a programming error: duplicate names).
#[derive(Debug, thiserror::Error)]
#[error("cannot register metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

// === impl Metrics ===

impl Metrics {
    /// Creates and registers every metric on a new registry.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("credagent".into()), None)?;
        Ok(Self {
            token: TokenMetrics::register(&registry)?,
            refresh: RefreshMetrics::register(&registry)?,
            server: ServerMetrics::register(&registry)?,
            registry,
        })
    }

    /// The registry, for subsystems added later.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the Prometheus text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec fails only on invalid metric families, which
        // registration already rejected; an empty scrape is the fallback.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        out
    }
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<Gauge, prometheus::Error> {
    let g = Gauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Latency buckets from 0.1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl TokenMetrics {
    fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let reloads = counter_vec(
            r,
            "token_reloads_total",
            "Reads of the projected token file, by result.",
            &["result"],
        )?;
        for result in [
            "updated",
            "unchanged",
            "missing",
            "unreadable",
            "empty",
            "too_large",
            "malformed",
        ] {
            reloads.with_label_values(&[result]);
        }
        Ok(Self {
            reloads,
            expiry: gauge(
                r,
                "token_expiry_timestamp_seconds",
                "Expiry (exp claim) of the current projected token, Unix seconds.",
            )?,
        })
    }
}

impl RefreshMetrics {
    fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let refreshes = counter_vec(
            r,
            "refreshes_total",
            "Credential refresh attempts, by result.",
            &["result"],
        )?;
        for result in [
            "ok",
            "auth_rejected",
            "throttled",
            "upstream_error",
            "transport",
            "timeout",
            "malformed",
            "expired",
            "unexpected_status",
            "invalid_token",
        ] {
            refreshes.with_label_values(&[result]);
        }
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "refresh_duration_seconds",
                "Time taken by one upstream exchange.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(duration.clone()))?;
        let ready = IntGauge::new(
            "ready",
            "1 while the agent holds credentials it can serve, else 0.",
        )?;
        r.register(Box::new(ready.clone()))?;
        Ok(Self {
            refreshes,
            duration,
            upstream_responses: counter_vec(
                r,
                "upstream_responses_total",
                "Upstream answers by HTTP status class (error: no answer).",
                &["class"],
            )?,
            credentials_expiry: gauge(
                r,
                "credentials_expiry_timestamp_seconds",
                "Expiry of the credentials being served, Unix seconds.",
            )?,
            last_success: gauge(
                r,
                "last_refresh_success_timestamp_seconds",
                "When the last refresh succeeded, Unix seconds.",
            )?,
            ready,
        })
    }
}

impl ServerMetrics {
    fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new("request_duration_seconds", "Time to answer a request.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        r.register(Box::new(duration.clone()))?;
        Ok(Self {
            requests: counter_vec(
                r,
                "requests_total",
                "Requests answered, by route and status code.",
                &["route", "status"],
            )?,
            duration,
            resolved: Arc::default(),
        })
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

impl NodeMetrics {
    /// Creates and registers the node-mode metrics on `r`.
    pub fn register(r: &Registry) -> Result<Self, MetricsError> {
        let int_gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let evictions = counter_vec(
            r,
            "node_cache_evictions_total",
            "Identities dropped from the cache, by reason.",
            &["reason"],
        )?;
        for reason in ["lru", "idle", "token_expired", "auth_rejected", "failed"] {
            evictions.with_label_values(&[reason]);
        }
        let rejected = counter_vec(
            r,
            "node_rejected_requests_total",
            "Credential requests refused, by reason.",
            &["reason"],
        )?;
        for reason in [
            "missing_token",
            "malformed_token",
            "expired_token",
            "bad_host",
            "upstream_denied",
            "upstream_unavailable",
        ] {
            rejected.with_label_values(&[reason]);
        }
        let upstream_duration = Histogram::with_opts(
            HistogramOpts::new(
                "node_upstream_duration_seconds",
                "Time taken by one upstream exchange in node mode.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(upstream_duration.clone()))?;
        Ok(Self {
            identities: int_gauge("node_identities", "Identities (distinct tokens) cached.")?,
            max_identities: int_gauge(
                "node_max_identities",
                "The configured bound on cached identities.",
            )?,
            hits: counter("node_cache_hits_total", "Requests answered from the cache.")?,
            misses: counter(
                "node_cache_misses_total",
                "Requests whose token had no servable credentials cached.",
            )?,
            evictions,
            joins: counter(
                "node_singleflight_joins_total",
                "Cache misses that waited for an exchange already in flight for the same token.",
            )?,
            negative_hits: counter(
                "node_negative_cache_hits_total",
                "Requests refused from the negative cache (token recently rejected upstream).",
            )?,
            upstream_calls: counter_vec(
                r,
                "node_upstream_calls_total",
                "Upstream exchanges in node mode, by result.",
                &["result"],
            )?,
            upstream_duration,
            refresh_ahead: counter_vec(
                r,
                "node_refresh_ahead_total",
                "Background refreshes of cached identities, by result.",
                &["result"],
            )?,
            rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_present() {
        let m = Metrics::new().unwrap();
        m.server
            .requests
            .with_label_values(&["credentials", "200"])
            .inc();
        m.server
            .duration
            .with_label_values(&["credentials"])
            .observe(0.001);
        m.refresh
            .upstream_responses
            .with_label_values(&["2xx"])
            .inc();
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            !text.contains("route=\"readyz\""),
            "no series before use\n{text}"
        );
        for name in [
            "credagent_refreshes_total{result=\"ok\"} 0",
            "credagent_refreshes_total{result=\"invalid_token\"} 0",
            "credagent_refreshes_total{result=\"unexpected_status\"} 0",
            "credagent_refresh_duration_seconds_bucket",
            "credagent_upstream_responses_total{class=\"2xx\"} 1",
            "credagent_credentials_expiry_timestamp_seconds",
            "credagent_token_expiry_timestamp_seconds",
            "credagent_token_reloads_total{result=\"updated\"} 0",
            "credagent_last_refresh_success_timestamp_seconds",
            "credagent_requests_total{route=\"credentials\",status=\"200\"} 1",
            "credagent_request_duration_seconds_bucket{route=\"credentials\"",
            "credagent_ready 0",
        ] {
            assert!(text.contains(name), "missing {name}\n{text}");
        }
    }

    #[test]
    fn observe_counts_into_the_exported_series() {
        let m = Metrics::new().unwrap();
        for _ in 0..3 {
            m.server.observe("credentials", StatusCode::OK, 0.0002);
        }
        m.server
            .observe("credentials", StatusCode::UNAUTHORIZED, 0.0001);
        // Off the cached table: a status and a route it does not know.
        m.server
            .observe("credentials", StatusCode::IM_A_TEAPOT, 0.0001);
        m.server.observe("elsewhere", StatusCode::OK, 0.0001);
        // The same child whichever way it is reached.
        m.server
            .requests
            .with_label_values(&["credentials", "200"])
            .inc();
        let text = String::from_utf8(m.encode()).unwrap();
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
