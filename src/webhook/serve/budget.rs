//! The memory the webhook's requests in flight may hold, reserved before it
//! is used, so that no mix of requests, however hostile, takes the process
//! past its memory limit (the chart's is 64 MiB).
//!
//! Two pools, in bytes, taken in this order and never the other way round:
//!
//! - **bodies** ([`BODY_POOL`]): a body's declared length (its largest
//!   allowed size when it declares none) is reserved before a byte of it is
//!   read, and given back once the review is read from it;
//! - **reads** ([`READ_POOL`]): the cost the pre-scan counted
//!   (`review::Scanned::cost`: the Pod as a JSON value, the decision, the
//!   answer) is reserved before the review is read, and given back when the
//!   answer has been sent (the answer's bytes hold their share until then).
//!
//! An answer's bytes hold its share until the client has taken them: the
//! listener writes it from its own buffer and lets the kernel hold at most
//! twice [`WEBHOOK_SEND_BUFFER`](crate::server::WEBHOOK_SEND_BUFFER) of it
//! ([`Writes::FromAnswer`](crate::server::Writes::FromAnswer)), rustls at
//! most [`TLS_SEND_BUFFER`](crate::server::TLS_SEND_BUFFER). A client that
//! stops reading keeps its share until the listener's send timeout
//! ([`SEND_TIMEOUT`](crate::server::SEND_TIMEOUT), 10 s without progress)
//! closes its connection; while such clients fill the pool, newcomers get
//! 503.
//!
//! A request that cannot get its share within [`WAIT`] is answered 503 with
//! `Retry-After` (what Envoy's overload manager does): the API server's
//! client retries a 5xx that carries `Retry-After` within the webhook's
//! timeout, and otherwise applies the webhook's failurePolicy. The pools
//! are first come, first served, so a large request is not starved by
//! small ones.
//!
//! The budget, with the chart's 64 MiB: 8 MiB of bodies + 24 MiB of reads
//! (one review of the largest allowed cost, or hundreds of typical ones) +
//! the baseline and the connections (the listener's bounds) below the rest.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::webhook::mutate::review::MAX_COST;

/// Bytes of request bodies held at once: two bodies of the 3 MiB default
/// limit (the API server's own limit on a request) and room for hundreds
/// of typical 5–10 KB ones. Never less than the body limit itself.
pub const BODY_POOL: usize = 8 * 1024 * 1024;
/// Bytes of reviews being read and answered at once: one of the largest
/// cost a review may have ([`MAX_COST`]).
pub const READ_POOL: usize = MAX_COST as usize;
/// The longest a request waits for its share of a pool.
pub const WAIT: Duration = Duration::from_secs(1);
/// The `Retry-After` of a 503 (seconds): well inside the 5 s the chart's
/// webhook configuration gives a call.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The pools; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Budget {
    bodies: Arc<Semaphore>,
    reads: Arc<Semaphore>,
    body_pool: usize,
    wait: Duration,
}

/// A share of a pool, given back when dropped.
#[derive(Debug)]
pub struct Reservation(Option<OwnedSemaphorePermit>);

/// A pool had no room within [`WAIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the webhook's memory for requests in flight is in use; retry in {RETRY_AFTER_SECS} s")]
pub struct Busy;

// === impl Budget ===

impl Budget {
    /// The pools for bodies of at most `max_body_bytes`.
    pub fn new(max_body_bytes: usize) -> Self {
        Self::with(BODY_POOL.max(max_body_bytes), READ_POOL, WAIT)
    }

    /// Pools of the given sizes (tests).
    pub fn with(body_pool: usize, read_pool: usize, wait: Duration) -> Self {
        Self {
            bodies: Arc::new(Semaphore::new(body_pool)),
            reads: Arc::new(Semaphore::new(read_pool)),
            body_pool,
            wait,
        }
    }

    /// Reserves `bytes` for a body (at most the body pool: a body limit
    /// above it is served one body at a time).
    pub async fn body(&self, bytes: usize) -> Result<Reservation, Busy> {
        self.take(&self.bodies, bytes.min(self.body_pool)).await
    }

    /// Reserves `bytes` for reading and answering a review.
    pub async fn read(&self, bytes: u64) -> Result<Reservation, Busy> {
        self.take(&self.reads, usize::try_from(bytes).unwrap_or(usize::MAX))
            .await
    }

    async fn take(&self, pool: &Arc<Semaphore>, bytes: usize) -> Result<Reservation, Busy> {
        if bytes == 0 {
            return Ok(Reservation(None));
        }
        // More than a pool holds can never be granted; u32 bounds what one
        // acquisition may ask (pools are far below 4 GiB).
        let n = u32::try_from(bytes).map_err(|_| Busy)?;
        match tokio::time::timeout(self.wait, pool.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Ok(Reservation(Some(permit))),
            // Timed out, or the pool is closed (never: it is never closed).
            _ => Err(Busy),
        }
    }

    /// Bytes of the read pool free now (tests and logs).
    pub fn reads_free(&self) -> usize {
        self.reads.available_permits()
    }

    /// Bytes of the body pool free now (tests and logs).
    pub fn bodies_free(&self) -> usize {
        self.bodies.available_permits()
    }
}

// === impl Reservation ===

impl Reservation {
    /// Keeps `bytes` of this share and gives the rest back now.
    pub fn shrink_to(&mut self, bytes: usize) {
        let Some(permit) = &mut self.0 else { return };
        if bytes < permit.num_permits() {
            let rest = permit.num_permits() - bytes;
            drop(permit.split(rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn shares_are_waited_for_then_refused_and_given_back() {
        let budget = Budget::with(100, 50, Duration::from_secs(1));
        let a = budget.body(60).await.unwrap();
        assert_eq!(budget.bodies_free(), 40);
        // Waits up to WAIT, then refused.
        assert_eq!(budget.body(60).await.unwrap_err(), Busy);
        // Granted as soon as room is given back.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.body(60).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(a);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert_eq!(budget.bodies_free(), 100);
        // A body above the pool takes all of it.
        let all = budget.body(1_000).await.unwrap();
        assert_eq!(budget.bodies_free(), 0);
        drop(all);
        // More than the read pool: never granted.
        assert_eq!(budget.read(51).await.unwrap_err(), Busy);
        assert_eq!(budget.read(u64::MAX).await.unwrap_err(), Busy);
        let mut r = budget.read(50).await.unwrap();
        r.shrink_to(10);
        assert_eq!(budget.reads_free(), 40);
        r.shrink_to(20);
        assert_eq!(budget.reads_free(), 40);
        drop(r);
        assert_eq!(budget.reads_free(), 50);
        assert!(budget.read(0).await.is_ok());
    }
}
