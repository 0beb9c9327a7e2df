//! The refresh policy: when to refresh, when to retry, how long to serve.
//! The schedule computed from it lives in `refresh::schedule`.

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
    /// Least time before a token the upstream refused is tried again
    /// (default 0: the backoff alone; node mode sets `--negative-cache-ttl`).
    pub denied_backoff: Duration,
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
            denied_backoff: Duration::ZERO,
        }
    }
}

/// `--refresh-fraction`: strictly between 0 and 1.
pub fn refresh_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if f > 0.0 && f < 1.0 {
        Ok(f)
    } else {
        Err("must be between 0 and 1 (exclusive)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(refresh_fraction("0.5"), Ok(0.5));
        for bad in ["0", "1", "2", "-0.1", "NaN", "x"] {
            assert!(refresh_fraction(bad).is_err(), "{bad}");
        }
    }
}
