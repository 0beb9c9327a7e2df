//! The admission webhook's metrics (webhook mode only).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge};

use super::registry::{Metrics, MetricsError, LATENCY_BUCKETS};

/// Every `{outcome, reason}` of `credagent_webhook_admissions_total`, all
/// created at 0 on registration: `injected` by mode, `skipped` by the
/// core's skip reason, `refused` (an annotation it cannot honour), `error`
/// (the request was not answered with a decision, or a ServiceAccount
/// lookup failed and the Pod was admitted unchanged). Of the errors,
/// `too_deep` (nested deeper than the review reader allows), `too_costly`
/// (the review would cost more memory to read and answer than one request
/// may use) and `overloaded` (the memory of requests in flight stayed in
/// use; answered 503 with Retry-After) are the memory budget's refusals.
pub const ADMISSION_OUTCOMES: [(&str, &str); 18] = [
    ("injected", "sidecar"),
    ("injected", "node"),
    ("skipped", "not_pod_create"),
    ("skipped", "not_opted_in"),
    ("skipped", "opted_out"),
    ("skipped", "already_injected"),
    ("skipped", "host_network"),
    ("skipped", "all_containers_skipped"),
    ("skipped", "all_containers_have_credentials"),
    ("refused", "invalid_annotation"),
    ("error", "not_a_review"),
    ("error", "body_too_large"),
    ("error", "body_timeout"),
    ("error", "unsupported_media_type"),
    ("error", "service_account_lookup"),
    ("error", "too_deep"),
    ("error", "too_costly"),
    ("error", "overloaded"),
];

/// Webhook metrics.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    /// `credagent_webhook_admissions_total{outcome,reason}`.
    pub admissions: IntCounterVec,
    /// `credagent_webhook_admission_duration_seconds`: from the request head
    /// to the answer, body read and any ServiceAccount lookup included.
    pub duration: Histogram,
    /// `credagent_webhook_certificate_reloads_total{result}`: `ok` (a new
    /// pair is served), `error` (the files changed but the pair could not be
    /// used; the previous one is kept).
    pub certificate_reloads: IntCounterVec,
    /// `credagent_webhook_certificate_expiry_timestamp_seconds`: the served
    /// leaf's notAfter, Unix seconds (0 until one is loaded).
    pub certificate_expiry: Gauge,
    /// `credagent_webhook_service_account_lookups_total{source}` (compat
    /// mode): `cache`, `api` (a live GET after a cache miss), `error`.
    pub lookups: IntCounterVec,
    /// `credagent_webhook_service_accounts_cached` (compat mode).
    pub cached: IntGauge,
    /// `credagent_webhook_service_account_watch_restarts_total{reason}`
    /// (compat mode): `gone` (410, relisted), `ended` (the stream closed;
    /// watched again from the last version), `error` (relisted after a
    /// backoff).
    pub watch_restarts: IntCounterVec,
}

// === impl WebhookMetrics ===

impl WebhookMetrics {
    /// Registers the webhook metrics on `m`.
    pub fn register(m: &Metrics) -> Result<Self, MetricsError> {
        let admissions = m.counter_vec(
            "webhook_admissions_total",
            "AdmissionReview requests answered, by outcome and reason.",
            &["outcome", "reason"],
            &[],
        )?;
        for (outcome, reason) in ADMISSION_OUTCOMES {
            admissions.with_label_values(&[outcome, reason]);
        }
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "webhook_admission_duration_seconds",
                "Time to answer an AdmissionReview, from its head to the answer.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        m.registry().register(Box::new(duration.clone()))?;
        Ok(Self {
            admissions,
            duration,
            certificate_reloads: m.counter_vec(
                "webhook_certificate_reloads_total",
                "Changes of the serving certificate files, by result (error: the previous pair is kept).",
                &["result"],
                &["ok", "error"],
            )?,
            certificate_expiry: m.gauge(
                "webhook_certificate_expiry_timestamp_seconds",
                "notAfter of the served certificate, Unix seconds (0: none loaded).",
            )?,
            lookups: m.counter_vec(
                "webhook_service_account_lookups_total",
                "ServiceAccount lookups (CoreWeave compatibility), by where the answer came from.",
                &["source"],
                &["cache", "api", "error"],
            )?,
            cached: m.int_gauge(
                "webhook_service_accounts_cached",
                "ServiceAccounts held in the watch cache (CoreWeave compatibility).",
            )?,
            watch_restarts: m.counter_vec(
                "webhook_service_account_watch_restarts_total",
                "Restarts of the ServiceAccount watch, by reason.",
                &["reason"],
                &["gone", "ended", "error"],
            )?,
        })
    }

    /// Counts one answered request.
    pub fn admission(&self, outcome: &str, reason: &str, seconds: f64) {
        self.admissions.with_label_values(&[outcome, reason]).inc();
        self.duration.observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_exists_from_the_start() {
        let registry = Metrics::new().unwrap();
        let m = WebhookMetrics::register(&registry).unwrap();
        m.admission("injected", "sidecar", 0.001);
        let text = String::from_utf8(registry.encode()).unwrap();
        assert!(
            text.contains(
                "credagent_webhook_admissions_total{outcome=\"injected\",reason=\"sidecar\"} 1"
            ),
            "{text}"
        );
        for (outcome, reason) in ADMISSION_OUTCOMES {
            let series = format!(
                "credagent_webhook_admissions_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}"
            );
            assert!(text.contains(&series), "missing {series}");
        }
        assert!(text.contains("credagent_webhook_admission_duration_seconds_count 1"));
        assert!(text.contains("credagent_webhook_certificate_reloads_total{result=\"error\"} 0"));
    }
}
