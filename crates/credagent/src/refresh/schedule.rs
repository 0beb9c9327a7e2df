//! The refresh schedule: pure functions of the credentials' lifetime, the
//! attempt count and a random sample, so they are tested without clocks.

use std::time::Duration;

/// When to refresh, when to retry, and how long to keep serving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshPolicy {
    /// Refresh once this fraction of the lifetime has passed (default 0.5).
    pub fraction: f64,
    /// ...but no later than this long before expiry (default 20 min).
    pub margin: Duration,
    /// Refresh up to this fraction earlier than computed, at random, so that
    /// many agents started together spread out (default 0.1).
    pub jitter: f64,
    /// First retry delay after a failure (default 1 s).
    pub min_backoff: Duration,
    /// Largest retry delay (default 60 s).
    pub max_backoff: Duration,
    /// Stop serving credentials this long before they expire (default 5 min),
    /// or a quarter of their lifetime if that is shorter.
    pub stale_margin: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            fraction: 0.5,
            margin: Duration::from_secs(20 * 60),
            jitter: 0.1,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            stale_margin: Duration::from_secs(5 * 60),
        }
    }
}

/// Shortest interval between scheduled refreshes, whatever the lifetime.
const MIN_REFRESH_AFTER: Duration = Duration::from_secs(1);

// === impl RefreshPolicy ===

impl RefreshPolicy {
    /// How long after obtaining credentials valid for `lifetime` to refresh
    /// them. `sample` is uniform in `[0, 1)` and only ever moves the refresh
    /// earlier.
    ///
    /// The nominal point is `fraction` of the lifetime, pulled earlier so
    /// that at least `margin` is left, but never earlier than half of
    /// `fraction` of the lifetime (so credentials too short to keep the
    /// margin are refreshed at a quarter of their life, not in a loop). With
    /// the defaults: 60 min credentials refresh after 30 min, 40 min ones
    /// after 20 min, 30 min ones after 10 min, 2 min ones after 30 s.
    pub fn refresh_after(&self, lifetime: Duration, sample: f64) -> Duration {
        let nominal = lifetime.mul_f64(self.fraction);
        let floor = lifetime.mul_f64(self.fraction / 2.0);
        let by_margin = lifetime.saturating_sub(self.margin);
        let at = nominal.min(by_margin.max(floor));
        let jittered = at.mul_f64(1.0 - self.jitter * sample.clamp(0.0, 1.0));
        jittered.max(MIN_REFRESH_AFTER)
    }

    /// How long before expiry to stop serving credentials of `lifetime`.
    pub fn stale_margin_for(&self, lifetime: Duration) -> Duration {
        self.stale_margin.min(lifetime / 4)
    }

    /// The delay before retry number `attempt` (1 for the first retry):
    /// exponential from `min_backoff`, capped at `max_backoff`, with full
    /// jitter above `min_backoff`. `sample` is uniform in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, sample: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .min_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
            .max(self.min_backoff);
        let span = ceiling - self.min_backoff;
        self.min_backoff + span.mul_f64(sample.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;

    fn p() -> RefreshPolicy {
        RefreshPolicy::default()
    }

    #[test]
    fn refresh_point_without_jitter() {
        let cases = [
            (60 * MIN, 30 * MIN), // half-life
            (40 * MIN, 20 * MIN), // half-life == margin
            (30 * MIN, 10 * MIN), // margin wins
            (24 * MIN, 6 * MIN),  // floor (quarter) wins
            (12 * 3600, 6 * 3600),
            (120, 30), // margin unreachable: a quarter
            (60, 15),
            (1, 1), // never below a second
        ];
        for (lifetime, want) in cases {
            let got = p().refresh_after(Duration::from_secs(lifetime), 0.0);
            assert_eq!(got, Duration::from_secs(want), "lifetime {lifetime}s");
        }
    }

    #[test]
    fn served_credentials_keep_fifteen_minutes_when_granted_forty() {
        for lifetime_min in 40..=24 * 60 {
            let lifetime = Duration::from_secs(lifetime_min * MIN);
            for sample in [0.0, 0.5, 0.999] {
                let at = p().refresh_after(lifetime, sample);
                assert!(
                    lifetime - at >= Duration::from_secs(15 * MIN),
                    "{lifetime_min}m {sample}"
                );
                assert!(at <= lifetime.mul_f64(0.5), "{lifetime_min}m {sample}");
            }
        }
    }

    #[test]
    fn jitter_only_moves_earlier_and_is_bounded() {
        let lifetime = Duration::from_secs(60 * MIN);
        let base = p().refresh_after(lifetime, 0.0);
        let early = p().refresh_after(lifetime, 0.999);
        assert!(early < base);
        assert!(early >= base.mul_f64(0.9));
    }

    #[test]
    fn stale_margin() {
        assert_eq!(
            p().stale_margin_for(Duration::from_secs(60 * MIN)),
            Duration::from_secs(5 * MIN)
        );
        assert_eq!(
            p().stale_margin_for(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let secs = |a| p().backoff(a, 0.999_999).as_secs_f64().round() as u64;
        assert_eq!(
            [
                secs(1),
                secs(2),
                secs(3),
                secs(4),
                secs(7),
                secs(8),
                secs(100)
            ],
            [1, 2, 4, 8, 60, 60, 60]
        );
        for attempt in 1..40 {
            for sample in [0.0, 0.3, 0.999] {
                let d = p().backoff(attempt, sample);
                assert!(
                    d >= Duration::from_secs(1) && d <= Duration::from_secs(60),
                    "{attempt} {sample}"
                );
            }
        }
        assert_eq!(p().backoff(5, 0.0), Duration::from_secs(1));
    }
}
