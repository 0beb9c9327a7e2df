//! The refresh engine's metrics, shared by every identity in both modes,
//! and the sidecar's readiness and expiry gauges.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge};

use super::registry::{Metrics, MetricsError, LATENCY_BUCKETS};
use crate::exchange::ExchangeError;

/// What the refresh engine records for every exchange, whoever asked for it
/// (the sidecar's one identity, every node-mode identity).
#[derive(Clone, Debug)]
pub struct RefreshMetrics {
    /// `credagent_refreshes_total{result}`: `ok` or an error class.
    pub refreshes: IntCounterVec,
    /// `credagent_refresh_duration_seconds`: one upstream exchange.
    pub duration: Histogram,
    /// `credagent_upstream_responses_total{class}`: `2xx`, `4xx`, `5xx`, `error`.
    pub upstream_responses: IntCounterVec,
    /// `credagent_last_refresh_success_timestamp_seconds`: the last exchange
    /// that succeeded, for any identity.
    pub last_success: Gauge,
    /// `credagent_keys_issued_total{exchange}`: keys the upstream issued,
    /// by exchange (`get`, `post`); each has one audit log line.
    pub keys_issued: IntCounterVec,
    /// `credagent_key_lifetime_seconds`: the lifetime of the last key
    /// issued, as granted (on the upstream's clock).
    pub key_lifetime: Gauge,
}

/// The sidecar's gauges about the one identity it serves.
#[derive(Clone, Debug)]
pub struct SidecarMetrics {
    /// `credagent_credentials_expiry_timestamp_seconds`.
    pub credentials_expiry: Gauge,
    /// `credagent_ready`: 1 while holding servable credentials.
    pub ready: IntGauge,
}

// === impl RefreshMetrics ===

impl RefreshMetrics {
    /// Registers the engine's metrics on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        let mut results = vec!["ok"];
        results.extend(ExchangeError::CLASSES);
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "refresh_duration_seconds",
                "Time taken by one upstream exchange.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        m.registry().register(Box::new(duration.clone()))?;
        Ok(Self {
            refreshes: m.counter_vec(
                "refreshes_total",
                "Credential exchanges with the upstream, by result.",
                &["result"],
                &results,
            )?,
            duration,
            upstream_responses: m.counter_vec(
                "upstream_responses_total",
                "Upstream answers by HTTP status class (error: no answer).",
                &["class"],
                &[],
            )?,
            last_success: m.gauge(
                "last_refresh_success_timestamp_seconds",
                "When the last exchange succeeded, Unix seconds.",
            )?,
            keys_issued: m.counter_vec(
                "keys_issued_total",
                "Access keys the upstream issued, by exchange (get, post); each is logged on the credagent::audit target.",
                &["exchange"],
                &["get", "post"],
            )?,
            key_lifetime: m.gauge(
                "key_lifetime_seconds",
                "Lifetime of the last access key issued, as granted, in seconds.",
            )?,
        })
    }
}

// === impl SidecarMetrics ===

impl SidecarMetrics {
    /// Registers the sidecar's gauges on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        Ok(Self {
            credentials_expiry: m.gauge(
                "credentials_expiry_timestamp_seconds",
                "Expiry of the credentials being served, Unix seconds.",
            )?,
            ready: m.int_gauge(
                "ready",
                "1 while the agent holds credentials it can serve, else 0.",
            )?,
        })
    }
}
