//! The current credentials of one identity, as an immutable snapshot with
//! the bodies it is served in already rendered.
//!
//! One writer per store (the sidecar's refresher, or a node identity's
//! task) publishes; servers read lock-free through `ArcSwap` and never wait
//! on the upstream. A store renders only the surfaces it is created for:
//! every store the ECS body, the sidecar's also the IMDS body when the IMDS
//! emulation is on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::credentials::Credentials;
use crate::wire;

/// One set of credentials and everything derived from them.
pub struct Snapshot {
    /// The credentials as the upstream issued them.
    pub credentials: Credentials,
    /// The ECS container-credentials response body, rendered once.
    pub body: Bytes,
    /// The EC2 instance-metadata (IMDS) body, if this store serves IMDS.
    pub imds_body: Option<Bytes>,
    /// When they were obtained (monotonic).
    pub obtained_at: Instant,
    /// How long the upstream granted them for, on the upstream's clock.
    pub lifetime: Duration,
    /// Until when they may be served: shortly before they expire.
    pub serve_until: Instant,
}

/// The single place one identity's current credentials live. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    current: Arc<ArcSwapOption<Snapshot>>,
    /// Bumped on every publish, for the few callers that wait (the file
    /// sink, the demo, tests); servers never wait.
    published: Arc<watch::Sender<u64>>,
    imds: bool,
}

// === impl Snapshot ===

impl Snapshot {
    /// Returns true if and only if these credentials may still be served at `now`.
    pub fn is_servable(&self, now: Instant) -> bool {
        now < self.serve_until
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("credentials", &self.credentials)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

// === impl Store ===

impl Store {
    /// An empty store that renders the ECS body.
    pub fn new() -> Self {
        Self {
            current: Arc::default(),
            published: Arc::new(watch::Sender::new(0)),
            imds: false,
        }
    }

    /// An empty store that also renders the IMDS body.
    pub fn with_imds() -> Self {
        Self {
            imds: true,
            ..Self::new()
        }
    }

    /// Replaces the current snapshot with `credentials`, obtained at
    /// `obtained_at` and valid for `lifetime`, served until `stale_margin`
    /// before they expire; returns the snapshot. Only the store's one
    /// writer calls this.
    pub fn publish(
        &self,
        credentials: Credentials,
        obtained_at: Instant,
        lifetime: Duration,
        stale_margin: Duration,
    ) -> Arc<Snapshot> {
        let snapshot = Arc::new(Snapshot {
            body: wire::ecs_body(&credentials),
            imds_body: self.imds.then(|| wire::imds_body(&credentials, lifetime)),
            serve_until: obtained_at + lifetime - stale_margin.min(lifetime),
            credentials,
            obtained_at,
            lifetime,
        });
        self.current.store(Some(snapshot.clone()));
        self.published.send_modify(|n| *n += 1);
        snapshot
    }

    /// A receiver that changes on every publish (for sinks that mirror the
    /// store, such as the credentials file).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Waits until the store holds servable credentials.
    pub async fn wait_servable(&self) -> Arc<Snapshot> {
        let mut rx = self.published.subscribe();
        loop {
            if let Some(s) = self.servable(Instant::now()) {
                return s;
            }
            // The sender lives as long as `self`, so this cannot fail.
            let _ = rx.changed().await;
        }
    }

    /// The current snapshot, servable or not.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The current snapshot if it may be served at `now`.
    pub fn servable(&self, now: Instant) -> Option<Arc<Snapshot>> {
        self.load().filter(|s| s.is_servable(now))
    }

    /// The ECS body of the current snapshot if it may be served at `now`:
    /// what the credentials route sends. It reads through a guard, so the
    /// snapshot's shared reference count is not touched; the only shared
    /// write per request is the body's own count.
    pub fn servable_body(&self, now: Instant) -> Option<Bytes> {
        let current = self.current.load();
        current
            .as_deref()
            .filter(|s| s.is_servable(now))
            .map(|s| s.body.clone())
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("current", &self.current.load().as_deref())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::sample as creds;

    #[tokio::test(start_paused = true)]
    async fn servable_until_margin_before_expiry() {
        let store = Store::new();
        let now = Instant::now();
        assert!(store.servable(now).is_none());
        let hour = Duration::from_secs(3600);
        let snapshot = store.publish(creds(""), now, hour, Duration::from_secs(300));
        assert!(snapshot.imds_body.is_none(), "renders only what it serves");
        assert!(store.servable(now + Duration::from_secs(3299)).is_some());
        assert!(store.servable(now + Duration::from_secs(3300)).is_none());
        assert_eq!(
            store.servable_body(now + Duration::from_secs(3299)),
            Some(wire::ecs_body(&creds("")))
        );
        assert!(store
            .servable_body(now + Duration::from_secs(3300))
            .is_none());
        assert!(store.load().is_some());
        let imds = Store::with_imds().publish(creds(""), now, hour, Duration::ZERO);
        assert_eq!(imds.imds_body, Some(wire::imds_body(&creds(""), hour)));
    }

    #[test]
    fn debug_has_no_secrets() {
        let store = Store::with_imds();
        let snap = store.publish(
            creds("sessiontok"),
            Instant::now(),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        let out = format!("{store:?}") + &format!("{snap:?}");
        assert!(
            !out.contains("s3cr3t") && !out.contains("sessiontok"),
            "{out}"
        );
    }
}
