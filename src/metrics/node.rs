//! The node agent's identity-cache metrics (node mode only). Exchanges
//! themselves are counted by the refresh engine's shared metrics.

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use super::registry::{Metrics, MetricsError};

/// Node-mode metrics.
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
    /// `token_expired`, `denied`.
    pub evictions: IntCounterVec,
    /// `credagent_node_singleflight_joins_total`: misses that waited on a
    /// fill already in flight for the same token instead of starting one.
    pub joins: IntCounter,
    /// `credagent_node_negative_cache_hits_total`: requests answered from
    /// the record of a recent failure (refused token, or backing off).
    pub negative_hits: IntCounter,
    /// `credagent_node_fills_in_flight`: fills (first exchanges) running.
    pub fills: IntGauge,
    /// `credagent_node_requests_waiting`: requests waiting on a fill.
    pub waiting: IntGauge,
    /// `credagent_node_rejected_requests_total{reason}`.
    pub rejected: IntCounterVec,
}

/// Every `reason` of `credagent_node_rejected_requests_total`.
pub const REJECT_REASONS: [&str; 12] = [
    "missing_token",
    "malformed_token",
    "expired_token",
    "bad_host",
    "malformed_host",
    "unverified_token",
    "upstream_denied",
    "upstream_unavailable",
    "backing_off",
    "fill_timeout",
    "rate_limited",
    "overloaded",
];

/// Local token verification's metrics (node mode with `--issuer`).
#[derive(Clone, Debug)]
pub struct VerifyMetrics {
    /// `credagent_token_verifications_total{result}`: `accepted`, or why not
    /// (`issuer`, `algorithm`, `unknown_key`, `signature`, `audience`,
    /// `expired`, `not_yet_valid`, `malformed`).
    pub verifications: IntCounterVec,
    /// `credagent_jwks_fetches_total{result}`: `ok`, `error`.
    pub fetches: IntCounterVec,
    /// `credagent_jwks_keys`: keys held, over every issuer.
    pub keys: IntGauge,
}

// === impl VerifyMetrics ===

impl VerifyMetrics {
    /// Registers the verification metrics on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        Ok(Self {
            verifications: m.counter_vec(
                "token_verifications_total",
                "Pod tokens checked against the configured issuers' keys, by result.",
                &["result"],
                &[
                    "accepted",
                    "issuer",
                    "algorithm",
                    "unknown_key",
                    "signature",
                    "audience",
                    "expired",
                    "not_yet_valid",
                    "malformed",
                ],
            )?,
            fetches: m.counter_vec(
                "jwks_fetches_total",
                "Fetches of the issuers' key sets, by result.",
                &["result"],
                &["ok", "error"],
            )?,
            keys: m.int_gauge("jwks_keys", "Verification keys held, over every issuer.")?,
        })
    }
}

// === impl NodeMetrics ===

impl NodeMetrics {
    /// Registers the node-mode metrics on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        Ok(Self {
            identities: m.int_gauge("node_identities", "Identities (distinct tokens) cached.")?,
            max_identities: m.int_gauge(
                "node_max_identities",
                "The configured bound on cached identities.",
            )?,
            hits: m.counter("node_cache_hits_total", "Requests answered from the cache.")?,
            misses: m.counter(
                "node_cache_misses_total",
                "Requests whose token had no servable credentials cached.",
            )?,
            evictions: m.counter_vec(
                "node_cache_evictions_total",
                "Identities dropped from the cache, by reason.",
                &["reason"],
                &["lru", "idle", "token_expired", "denied"],
            )?,
            joins: m.counter(
                "node_singleflight_joins_total",
                "Cache misses that joined a fill already in flight for the same token.",
            )?,
            negative_hits: m.counter(
                "node_negative_cache_hits_total",
                "Requests refused from the record of a recent failure for their token.",
            )?,
            fills: m.int_gauge(
                "node_fills_in_flight",
                "First exchanges of new identities running now.",
            )?,
            waiting: m.int_gauge(
                "node_requests_waiting",
                "Credential requests waiting for a fill to finish.",
            )?,
            rejected: m.counter_vec(
                "node_rejected_requests_total",
                "Credential requests refused, by reason.",
                &["reason"],
                &REJECT_REASONS,
            )?,
        })
    }
}
