//! CoreWeave compatibility's ServiceAccount cache: for every ServiceAccount
//! in the cluster, whether it carries `caios.coreweave.com/inject: "true"`,
//! kept current by a watch.
//!
//! ```text
//!  LIST (pages) ──▶ replace the map ──▶ WATCH from its resourceVersion ──▶ apply events
//!       ▲                                   │ 410 Gone / error: back off, list again
//!       └───────────────────────────────────┘ stream ended: watch again from the last version
//! ```
//!
//! Only `namespace/name → bool` is held, so memory is bounded by the number
//! of ServiceAccounts, not their size. A name the cache does not know (a
//! ServiceAccount created a moment before its first Pod, ahead of its watch
//! event: the EKS webhook's bug #174) is read with a live GET instead of
//! being taken as "not opted in".

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rand::Rng as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::kube::KubeClient;
use super::kube_wire::{AccountState, KubeError, WatchEvent};
use crate::logsafe::Untrusted;
use crate::metrics::WebhookMetrics;
use crate::webhook::mutate::ServiceAccountRef;

/// How long the API server keeps one watch open (it then ends the stream
/// and the watch starts again from the last version).
pub const WATCH_TIMEOUT_SECS: u64 = 300;
/// A watch silent for this long (no event, no bookmark) is restarted.
pub const WATCH_IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS + 60);
/// Backoff between failed lists or watches: from 1 s, doubling, up to 30 s.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where the webhook learns whether a Pod's ServiceAccount opted in.
pub trait ServiceAccounts: Send + Sync + 'static {
    /// `Ok(Some(opted_in))`, `Ok(None)` if the ServiceAccount does not
    /// exist, `Err` if it could not be found out.
    fn lookup<'a>(
        &'a self,
        sa: &'a ServiceAccountRef,
    ) -> Pin<Box<dyn Future<Output = Result<Option<bool>, KubeError>> + Send + 'a>>;

    /// Returns true once lookups are answered from a complete cache.
    fn synced(&self) -> bool;
}

/// The cache.
#[derive(Debug)]
pub struct SaCache {
    accounts: RwLock<HashMap<String, bool>>,
    synced: AtomicBool,
    metrics: WebhookMetrics,
}

/// The cache and the live GET behind it.
#[derive(Debug, Clone)]
pub struct CachedServiceAccounts {
    /// The cache the reflector fills.
    pub cache: Arc<SaCache>,
    /// The client for GETs on a miss.
    pub client: KubeClient,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

// === impl SaCache ===

impl SaCache {
    /// An empty, unsynced cache.
    pub fn new(metrics: WebhookMetrics) -> Self {
        Self {
            accounts: RwLock::new(HashMap::new()),
            synced: AtomicBool::new(false),
            metrics,
        }
    }

    /// What the cache knows: `None` if it has no entry (or is not synced).
    pub fn get(&self, namespace: &str, name: &str) -> Option<bool> {
        if !self.synced.load(Ordering::Acquire) {
            return None;
        }
        self.accounts.read().get(&key(namespace, name)).copied()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.accounts.read().len()
    }

    /// Returns true if and only if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn replace(&self, items: Vec<AccountState>) {
        let map: HashMap<String, bool> = items
            .into_iter()
            .map(|a| (key(&a.namespace, &a.name), a.opted_in))
            .collect();
        let n = map.len();
        *self.accounts.write() = map;
        self.synced.store(true, Ordering::Release);
        self.metrics.cached.set(n as i64);
    }

    fn apply(&self, event: &WatchEvent) {
        let mut accounts = self.accounts.write();
        match event {
            WatchEvent::Upsert(a, _) => {
                accounts.insert(key(&a.namespace, &a.name), a.opted_in);
            }
            WatchEvent::Delete(a, _) => {
                accounts.remove(&key(&a.namespace, &a.name));
            }
            WatchEvent::Bookmark(_) => {}
        }
        self.metrics.cached.set(accounts.len() as i64);
    }
}

impl ServiceAccounts for CachedServiceAccounts {
    fn lookup<'a>(
        &'a self,
        sa: &'a ServiceAccountRef,
    ) -> Pin<Box<dyn Future<Output = Result<Option<bool>, KubeError>> + Send + 'a>> {
        Box::pin(async move {
            let lookups = &self.cache.metrics.lookups;
            if let Some(opted_in) = self.cache.get(&sa.namespace, &sa.name) {
                lookups.with_label_values(&["cache"]).inc();
                return Ok(Some(opted_in));
            }
            // Not (yet) in the cache: ask the API server. Not stored: the
            // watch brings it in order with its later changes.
            match self
                .client
                .get_service_account(&sa.namespace, &sa.name)
                .await
            {
                Ok(found) => {
                    lookups.with_label_values(&["api"]).inc();
                    debug!(namespace = %Untrusted::new(&sa.namespace), service_account = %Untrusted::new(&sa.name), found = found.is_some(), "ServiceAccount read from the API (cache miss)");
                    Ok(found.map(|a| a.opted_in))
                }
                Err(e) => {
                    lookups.with_label_values(&["error"]).inc();
                    Err(e)
                }
            }
        })
    }

    fn synced(&self) -> bool {
        self.cache.synced.load(Ordering::Acquire)
    }
}

/// Keeps `cache` current until `shutdown`: list, then watch, relisting
/// after a 410 or an error, with backoff.
pub async fn run_reflector(client: KubeClient, cache: Arc<SaCache>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let listed = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = list_all(&client) => r,
        };
        let mut version = match listed {
            Ok((items, version)) => {
                info!(service_accounts = items.len(), resource_version = %version, "ServiceAccounts listed");
                cache.replace(items);
                backoff = BACKOFF_MIN;
                version
            }
            Err(e) => {
                warn!(error = %e, "cannot list ServiceAccounts; retrying");
                if sleep_or_stop(&mut backoff, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        // Watch until the version is gone or something fails.
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = watch_once(&client, &cache, &mut version) => r,
            };
            match outcome {
                Ok(()) => {
                    cache
                        .metrics
                        .watch_restarts
                        .with_label_values(&["ended"])
                        .inc();
                    debug!(resource_version = %version, "ServiceAccount watch ended; watching again");
                    if started.elapsed() < Duration::from_secs(1)
                        && sleep_or_stop(&mut backoff, &shutdown).await
                    {
                        return;
                    }
                    if started.elapsed() >= Duration::from_secs(1) {
                        backoff = BACKOFF_MIN;
                    }
                }
                Err(KubeError::Gone) => {
                    cache
                        .metrics
                        .watch_restarts
                        .with_label_values(&["gone"])
                        .inc();
                    info!("ServiceAccount watch expired (410 Gone); listing again");
                    break;
                }
                Err(e) => {
                    cache
                        .metrics
                        .watch_restarts
                        .with_label_values(&["error"])
                        .inc();
                    warn!(error = %e, "ServiceAccount watch failed; listing again");
                    if sleep_or_stop(&mut backoff, &shutdown).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

async fn list_all(client: &KubeClient) -> Result<(Vec<AccountState>, String), KubeError> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client.list_page(token.as_deref()).await?;
        items.extend(page.items);
        match page.continue_token {
            Some(next) => token = Some(next),
            None => return Ok((items, page.resource_version)),
        }
    }
}

async fn watch_once(
    client: &KubeClient,
    cache: &SaCache,
    version: &mut String,
) -> Result<(), KubeError> {
    let mut stream = client.watch(version, WATCH_TIMEOUT_SECS).await?;
    while let Some(event) = stream.next(WATCH_IDLE).await? {
        let rv = match &event {
            WatchEvent::Upsert(_, rv) | WatchEvent::Delete(_, rv) | WatchEvent::Bookmark(rv) => rv,
        };
        if !rv.is_empty() {
            version.clone_from(rv);
        }
        cache.apply(&event);
    }
    Ok(())
}

/// Sleeps the current backoff (full jitter) and doubles it; true if
/// `shutdown` came first.
async fn sleep_or_stop(backoff: &mut Duration, shutdown: &CancellationToken) -> bool {
    let ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
    let wait = Duration::from_millis(rand::rng().random_range(ms / 2..=ms));
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn account(ns: &str, name: &str, opted_in: bool) -> AccountState {
        AccountState {
            namespace: ns.into(),
            name: name.into(),
            opted_in,
        }
    }

    #[test]
    fn unsynced_knows_nothing_then_events_apply() {
        let registry = Metrics::new().unwrap();
        let cache = SaCache::new(WebhookMetrics::register(&registry).unwrap());
        assert_eq!(cache.get("a", "b"), None);
        cache.replace(vec![account("a", "b", true), account("a", "c", false)]);
        assert_eq!(cache.get("a", "b"), Some(true));
        assert_eq!(cache.get("a", "c"), Some(false));
        assert_eq!(cache.get("a", "d"), None);
        cache.apply(&WatchEvent::Upsert(account("a", "c", true), "2".into()));
        cache.apply(&WatchEvent::Delete(account("a", "b", true), "3".into()));
        cache.apply(&WatchEvent::Bookmark("4".into()));
        assert_eq!(
            (cache.get("a", "b"), cache.get("a", "c")),
            (None, Some(true))
        );
        assert_eq!(cache.len(), 1);
    }
}
