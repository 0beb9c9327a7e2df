//! Per-source budgets for cache misses: a token bucket per Pod address.
//!
//! Starting a fill (a new identity's first exchange) takes one token from
//! the requesting address's bucket; joining a fill in flight is free. A
//! fill that ends refused (the upstream or local verification rejected the
//! token) costs its requester `penalty` more, so an address that sends
//! forged or stale tokens runs dry quickly while one that starts many real
//! identities at once (a node's Pods starting together) is not held back.
//! Buckets are kept for the most recently seen addresses only (a bounded
//! LRU); a forgotten address starts again with a full bucket.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use parking_lot::Mutex;
use tokio::time::Instant;

/// Addresses whose buckets are remembered.
const MAX_SOURCES: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(n) => n,
    None => panic!("MAX_SOURCES is not zero"),
};

/// The budget of one address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MissBudget {
    /// Misses an address may start at once (the bucket's size).
    pub burst: f64,
    /// Misses per second the bucket refills by.
    pub rate: f64,
    /// Extra cost of a fill that ended refused.
    pub penalty: f64,
}

/// The buckets of every recently seen address.
#[derive(Debug)]
pub struct MissLimiter {
    budget: MissBudget,
    buckets: Mutex<LruCache<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

// === impl MissLimiter ===

impl MissLimiter {
    /// Buckets holding `budget`.
    pub fn new(budget: MissBudget) -> Self {
        Self {
            budget,
            buckets: Mutex::new(LruCache::new(MAX_SOURCES)),
        }
    }

    /// Takes one miss from `ip`'s budget; `Err` says how long until one
    /// is available.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        let bucket = self.refilled(&mut buckets, ip, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        Err(Duration::from_secs_f64(
            missing / self.budget.rate.max(1e-3),
        ))
    }

    /// Charges `ip` the penalty for a refused fill (down to minus one burst).
    pub fn penalize(&self, ip: IpAddr, now: Instant) {
        let mut buckets = self.buckets.lock();
        let floor = -self.budget.burst;
        let bucket = self.refilled(&mut buckets, ip, now);
        bucket.tokens = (bucket.tokens - self.budget.penalty).max(floor);
    }

    fn refilled<'a>(
        &self,
        buckets: &'a mut LruCache<IpAddr, Bucket>,
        ip: IpAddr,
        now: Instant,
    ) -> &'a mut Bucket {
        let burst = self.budget.burst;
        let rate = self.budget.rate;
        let bucket = buckets.get_or_insert_mut(ip, || Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_refill_and_refusals_cost_more() {
        let limiter = MissLimiter::new(MissBudget {
            burst: 3.0,
            rate: 2.0,
            penalty: 4.0,
        });
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(ip(1), now).is_ok());
        }
        let wait = limiter.take(ip(1), now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            limiter.take(ip(2), now).is_ok(),
            "another address has its own"
        );
        let later = now + Duration::from_millis(500);
        assert!(limiter.take(ip(1), later).is_ok());
        // Two refusals: 0 - 4 - 4, floored at -3; four seconds to get one.
        limiter.penalize(ip(1), later);
        limiter.penalize(ip(1), later);
        assert_eq!(
            limiter.take(ip(1), later).unwrap_err(),
            Duration::from_secs(2)
        );
        assert!(limiter.take(ip(1), later + Duration::from_secs(2)).is_ok());
    }
}
