//! The refresh schedule: pure functions of the credentials' lifetime, the
//! attempt count and a random sample, so they are tested without clocks.
//! [`RefreshPolicy`] (in [`crate::config`]) holds the parameters.

use std::time::Duration;

use crate::config::RefreshPolicy;

/// Shortest interval between scheduled refreshes, whatever the lifetime.
const MIN_REFRESH_AFTER: Duration = Duration::from_secs(1);

// === impl RefreshPolicy ===

impl RefreshPolicy {
    /// How long after obtaining credentials valid for `lifetime` to refresh
    /// them. `sample` is uniform in `[0, 1)` and only ever moves the refresh
    /// earlier (by at most `jitter` of it).
    ///
    /// The nominal point is `fraction` of the lifetime, pulled earlier so
    /// that at least `margin` is left, but never earlier than half the
    /// lifetime (or `fraction` of it, if that is less). A margin the key
    /// cannot keep at half-life is not worth more exchanges: keys shorter
    /// than twice the margin start inside botocore's 15-minute advisory
    /// window anyway, and refreshing them at a quarter of their life (as
    /// before) doubled the exchanges (16 per hour for 15-minute keys) for
    /// no client's benefit. With the defaults (0.5, 20 min), every lifetime
    /// refreshes at half-life:
    ///
    /// | lifetime | refresh after | serve margin | exchanges per hour |
    /// |---|---|---|---|
    /// | 5 min | 2.5 min | 1.25 min | 24 |
    /// | 15 min | 7.5 min | 3.75 min | 8 |
    /// | 60 min | 30 min | 5 min | 2 |
    /// | 12 h | 6 h | 5 min | 1/6 |
    ///
    /// (jitter makes each up to 10 % earlier). The serve margin is
    /// [`stale_margin_for`](Self::stale_margin_for).
    pub fn refresh_after(&self, lifetime: Duration, sample: f64) -> Duration {
        let nominal = lifetime.mul_f64(self.fraction);
        let floor = lifetime.mul_f64(self.fraction.min(0.5));
        let by_margin = lifetime.saturating_sub(self.margin);
        let at = nominal.min(by_margin).max(floor);
        let jittered = at.mul_f64(1.0 - self.jitter * sample.clamp(0.0, 1.0));
        jittered.max(MIN_REFRESH_AFTER)
    }

    /// How long before expiry to stop serving credentials of `lifetime`.
    pub fn stale_margin_for(&self, lifetime: Duration) -> Duration {
        self.stale_margin.min(lifetime / 4)
    }

    /// The delay before retrying after failure number `attempt` (1 for the
    /// first): the [`backoff`](Self::backoff), at least the upstream's
    /// `Retry-After` when it sent one, and at least `denied_backoff` when
    /// the upstream refused the token itself.
    pub fn retry_delay(
        &self,
        attempt: u32,
        sample: f64,
        denied: bool,
        retry_after: Option<Duration>,
    ) -> Duration {
        let mut delay = self.backoff(attempt, sample);
        if let Some(r) = retry_after {
            delay = delay.max(r);
        }
        if denied {
            delay = delay.max(self.denied_backoff);
        }
        delay
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
            (30 * MIN, 15 * MIN), // margin unreachable at half-life: half-life
            (15 * MIN, 450),      // CoreWeave's GET keys: 8 exchanges an hour
            (5 * MIN, 150),
            (12 * 3600, 6 * 3600),
            (120, 60),
            (1, 1), // never below a second
        ];
        for (lifetime, want) in cases {
            let got = p().refresh_after(Duration::from_secs(lifetime), 0.0);
            assert_eq!(got, Duration::from_secs(want), "lifetime {lifetime}s");
        }
    }

    #[test]
    fn a_late_fraction_is_pulled_earlier_by_the_margin_but_not_before_half_life() {
        let late = RefreshPolicy {
            fraction: 0.8,
            ..p()
        };
        let at = |min: u64| late.refresh_after(Duration::from_secs(min * MIN), 0.0);
        assert_eq!(at(60), Duration::from_secs(40 * MIN), "the margin wins");
        assert_eq!(at(200), Duration::from_secs(160 * MIN), "the fraction wins");
        assert_eq!(at(30), Duration::from_secs(15 * MIN), "half-life floor");
        let early = RefreshPolicy {
            fraction: 0.05,
            ..p()
        };
        assert_eq!(
            early.refresh_after(Duration::from_secs(15 * MIN), 0.0),
            Duration::from_secs(45),
            "a fraction under a half is its own floor"
        );
    }

    #[test]
    fn short_keys_are_served_until_the_margin_and_refreshed_long_before() {
        for (lifetime, serve_margin) in [
            (5 * MIN, 75),
            (15 * MIN, 225),
            (60 * MIN, 300),
            (12 * 3600, 300),
        ] {
            let l = Duration::from_secs(lifetime);
            let stale = p().stale_margin_for(l);
            assert_eq!(stale, Duration::from_secs(serve_margin), "{lifetime}s");
            // Between the refresh and the end of serving there is time for
            // retries: at least a quarter of the lifetime.
            let refresh = p().refresh_after(l, 0.0);
            assert!(l - stale - refresh >= l / 4, "{lifetime}s");
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
    fn retry_delay_honours_retry_after_and_denials() {
        let policy = RefreshPolicy {
            denied_backoff: Duration::from_secs(5),
            ..p()
        };
        let s = Duration::from_secs;
        assert_eq!(policy.retry_delay(1, 0.0, false, None), s(1));
        assert_eq!(policy.retry_delay(1, 0.0, false, Some(s(30))), s(30));
        assert_eq!(policy.retry_delay(1, 0.0, true, None), s(5));
        assert_eq!(policy.retry_delay(8, 0.999_999, true, None).as_secs(), 59);
        assert_eq!(p().retry_delay(1, 0.0, true, None), s(1));
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
