//! The registry every subsystem registers on, and the text exposition.

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 0.1 ms to 10 s.
pub(super) const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The agent's metrics registry (names prefixed `credagent_`), with
/// `credagent_build_info{version}` registered. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
}

/// Why metrics could not be set up (a programming error: duplicate names).
#[derive(Debug, thiserror::Error)]
#[error("cannot register metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

// === impl Metrics ===

impl Metrics {
    /// A new registry holding `credagent_build_info`.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("credagent".into()), None)?;
        let this = Self { registry };
        let info = IntGaugeVec::new(
            Opts::new("build_info", "Always 1; the version of the running agent."),
            &["version"],
        )?;
        this.registry.register(Box::new(info.clone()))?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(this)
    }

    /// The underlying registry.
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

    pub(super) fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        values: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(c.clone()))?;
        // Series known up front exist from the first scrape (at 0), so that
        // rates and alerts see them before the first event.
        for value in values {
            c.with_label_values(&[value]);
        }
        Ok(c)
    }

    pub(super) fn counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        let c = IntCounter::new(name, help)?;
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    pub(super) fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        let g = Gauge::new(name, help)?;
        self.registry.register(Box::new(g.clone()))?;
        Ok(g)
    }

    pub(super) fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        let g = IntGauge::new(name, help)?;
        self.registry.register(Box::new(g.clone()))?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_the_version() {
        let text = String::from_utf8(Metrics::new().unwrap().encode()).unwrap();
        assert!(
            text.contains(&format!(
                "credagent_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }
}
