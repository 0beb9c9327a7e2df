//! Real I/O in tests that run on a paused clock.
//!
//! A test of timed behaviour (a refresh after 6 s, a backoff, a
//! `Retry-After`, a token's TTL) runs on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`): it waits for those in no time.
//! But a paused clock jumps to the next timer whenever the runtime has
//! nothing to do, I/O in flight included: a request to the agent, or the
//! agent's exchange with the stand-in, could see the upstream timeout fire
//! before the loopback answer is read.
//!
//! So such a test does all of its I/O through [`off_clock`], and its agent
//! exchanges through [`OffClock`]: the I/O runs on a runtime of its own
//! whose clock is real, from a blocking thread of the test's runtime, and
//! tokio does not auto-advance a paused clock while a blocking task runs
//! (`tokio::time::pause`, "Preventing auto-advance"). Every request then
//! completes at one instant of the paused clock, while the agent and the
//! stand-in serve it on the test's runtime as usual; between requests, the
//! clock moves only when the test waits.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use credagent::credentials::Credentials;
use credagent::exchange::{BoxFuture, Exchange, ExchangeError};
use credagent::secret::Secret;

/// Runs `io` to completion on the real-time runtime, from a blocking thread
/// of the caller's runtime (on an ordinary runtime, only a thread hop).
pub async fn off_clock<F>(io: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::task::spawn_blocking(move || real_time().block_on(io))
        .await
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("off-clock I/O: {e}"),
        })
}

/// The runtime [`off_clock`] runs I/O on (its clock is never paused; the
/// connections it opens live on it between calls).
fn real_time() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("off-clock")
            .enable_all()
            .build()
            .expect("the real-time runtime starts")
    })
}

/// An [`Exchange`] whose exchanges run through [`off_clock`]: the agent's
/// own HTTP client, against the real stand-in, at one instant of a paused
/// clock. Its timeouts are therefore real time.
pub struct OffClock(pub Arc<dyn Exchange>);

impl Exchange for OffClock {
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>> {
        let (inner, token) = (self.0.clone(), token.clone());
        Box::pin(off_clock(async move { inner.exchange(&token).await }))
    }
}
