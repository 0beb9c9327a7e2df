//! The token source's metrics (sidecar mode).

use prometheus::{Gauge, IntCounterVec};

use super::registry::{Metrics, MetricsError};

/// Token source metrics.
#[derive(Clone, Debug)]
pub struct TokenMetrics {
    /// `credagent_token_reloads_total{result}`: `updated`, `unchanged`,
    /// `missing`, `unreadable`, `empty`, `too_large`, `malformed`.
    pub reloads: IntCounterVec,
    /// `credagent_token_expiry_timestamp_seconds`: the current token's `exp`.
    pub expiry: Gauge,
}

// === impl TokenMetrics ===

impl TokenMetrics {
    /// Registers the token source's metrics on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        Ok(Self {
            reloads: m.counter_vec(
                "token_reloads_total",
                "Reads of the projected token file, by result.",
                &["result"],
                &[
                    "updated",
                    "unchanged",
                    "missing",
                    "unreadable",
                    "empty",
                    "too_large",
                    "malformed",
                ],
            )?,
            expiry: m.gauge(
                "token_expiry_timestamp_seconds",
                "Expiry (exp claim) of the current projected token, Unix seconds.",
            )?,
        })
    }
}
