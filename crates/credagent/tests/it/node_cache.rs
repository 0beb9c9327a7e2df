//! The identity cache under paused time: single-flight, the upstream
//! concurrency bound, refresh-ahead, idle and token-expiry eviction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use credagent::clock::Clock;
use credagent::exchange::{BoxFuture, Credentials, Exchange, ExchangeError};
use credagent::metrics::{Metrics, NodeMetrics};
use credagent::node::cache::{digest, CacheConfig, FetchError, IdentityCache, Lookup};
use credagent::refresh::RefreshPolicy;
use credagent::secret::Secret;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MIN: Duration = Duration::from_secs(60);

/// Wall time that moves with tokio's (paused) clock.
struct TokioClock {
    base: SystemTime,
    start: Instant,
}
impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// An upstream that takes `delay`, grants `lifetime`, fails tokens that
/// start with "fail", and records concurrency.
struct Upstream {
    delay: Duration,
    lifetime: Duration,
    clock: Arc<TokioClock>,
    calls: Mutex<Vec<(Instant, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// While set, every exchange fails with a 503.
    down: std::sync::atomic::AtomicBool,
}

impl Exchange for Upstream {
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), token.expose().to_owned()));
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if token.expose().starts_with("fail") || self.down.load(Ordering::SeqCst) {
                return Err(ExchangeError::Upstream { status: 503 });
            }
            let now = self.clock.now();
            Ok(Credentials {
                access_key_id: "AKID".into(),
                secret_access_key: Secret::new("SK"),
                session_token: Secret::new(""),
                expiration: (now + self.lifetime).into(),
                role: None,
                account_id: None,
                server_date: Some(now),
            })
        })
    }
}

struct Rig {
    cache: IdentityCache,
    upstream: Arc<Upstream>,
    metrics: NodeMetrics,
    registry: Metrics,
    clock: Arc<TokioClock>,
    _shutdown: tokio_util::sync::DropGuard,
}

fn rig(delay: Duration, configure: impl FnOnce(&mut CacheConfig)) -> Rig {
    let clock = Arc::new(TokioClock {
        base: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        start: Instant::now(),
    });
    let upstream = Arc::new(Upstream {
        delay,
        lifetime: 60 * MIN,
        clock: clock.clone(),
        calls: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        down: Default::default(),
    });
    let registry = Metrics::new().unwrap();
    let metrics = NodeMetrics::register(registry.registry()).unwrap();
    let mut config = CacheConfig {
        max_identities: 100,
        upstream_concurrency: 4,
        idle_timeout: 45 * MIN,
        negative_ttl: Duration::from_secs(5),
        policy: RefreshPolicy::default(),
    };
    configure(&mut config);
    let shutdown = CancellationToken::new();
    let cache = IdentityCache::new(
        upstream.clone(),
        config,
        clock.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    Rig {
        cache,
        upstream,
        metrics,
        registry,
        clock,
        _shutdown: shutdown.drop_guard(),
    }
}

impl Rig {
    fn far_exp(&self) -> i64 {
        credagent::clock::unix_seconds(self.clock.now()) as i64 + 24 * 3600
    }

    async fn fetch(&self, token: &str, exp: i64) -> Result<(), FetchError> {
        self.cache
            .fetch(digest(token), token, exp)
            .await
            .map(|_| ())
    }

    fn calls(&self) -> usize {
        self.upstream.calls.lock().unwrap().len()
    }
}

#[tokio::test(start_paused = true)]
async fn refreshes_ahead_while_used_and_drops_idle_identities() {
    let r = rig(Duration::from_millis(100), |_| {});
    let start = Instant::now();
    r.fetch("pod-a", r.far_exp()).await.unwrap();
    assert_eq!(r.calls(), 1);
    // Used once more at 20 min, so still in use at the first refresh.
    tokio::time::sleep(20 * MIN).await;
    assert!(matches!(r.cache.lookup(&digest("pod-a")), Lookup::Hit(_)));
    tokio::time::sleep(11 * MIN).await;
    assert_eq!(r.calls(), 2, "refreshed ahead at about half-life");
    let at = r.upstream.calls.lock().unwrap()[1].0 - start;
    assert!(at >= 27 * MIN && at <= 30 * MIN, "{at:?}");
    assert_eq!(r.metrics.refresh_ahead.with_label_values(&["ok"]).get(), 1);
    // Unused since 20 min: at the next refresh (~60 min) it has idled 40 min
    // (< 45), so it is refreshed once more, then dropped at ~90 min.
    tokio::time::sleep(70 * MIN).await;
    assert_eq!(r.calls(), 3);
    assert!(r.cache.is_empty());
    assert_eq!(r.metrics.evictions.with_label_values(&["idle"]).get(), 1);
    assert_eq!(r.metrics.identities.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn stops_refreshing_when_the_token_expires() {
    let r = rig(Duration::from_millis(100), |c| {
        c.idle_timeout = 24 * 60 * MIN
    });
    let exp = credagent::clock::unix_seconds(r.clock.now()) as i64 + 40 * 60;
    r.fetch("pod-a", exp).await.unwrap();
    tokio::time::sleep(31 * MIN).await;
    assert_eq!(r.calls(), 2, "refreshed while the token is valid");
    tokio::time::sleep(60 * MIN).await;
    assert_eq!(r.calls(), 2, "not refreshed with an expired token");
    assert!(r.cache.is_empty());
    assert_eq!(
        r.metrics
            .evictions
            .with_label_values(&["token_expired"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_one_exchange_even_when_it_fails() {
    let r = Arc::new(rig(Duration::from_secs(1), |_| {}));
    let exp = r.far_exp();
    let mut set = tokio::task::JoinSet::new();
    for token in ["pod-a", "fail-b"] {
        for _ in 0..10 {
            let r = r.clone();
            set.spawn(async move { (token, r.fetch(token, exp).await) });
        }
    }
    let results = set.join_all().await;
    assert_eq!(r.calls(), 2, "one exchange per token");
    for (token, result) in results {
        match token {
            "pod-a" => assert!(result.is_ok()),
            _ => assert!(matches!(result, Err(FetchError::Unavailable(_)))),
        }
    }
    assert_eq!(r.metrics.joins.get(), 18);
    assert!(String::from_utf8(r.registry.encode())
        .unwrap()
        .contains("credagent_node_singleflight_joins_total 18"));
}

#[tokio::test(start_paused = true)]
async fn upstream_concurrency_is_bounded() {
    let r = Arc::new(rig(Duration::from_secs(1), |c| c.upstream_concurrency = 4));
    let exp = r.far_exp();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let r = r.clone();
        set.spawn(async move { r.fetch(&format!("pod-{i}"), exp).await });
    }
    for result in set.join_all().await {
        result.unwrap();
    }
    assert_eq!(r.calls(), 50);
    assert_eq!(r.upstream.max_in_flight.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_distinct_tokens_cannot_grow_the_cache_past_its_bound() {
    let r = Arc::new(rig(Duration::from_millis(1), |c| c.max_identities = 64));
    let exp = r.far_exp();
    for i in 0..=1000 {
        let token = if i % 2 == 0 {
            format!("pod-{i}")
        } else {
            format!("fail-{i}")
        };
        let _ = r.fetch(&token, exp).await;
        assert!(r.cache.len() <= 64);
    }
    assert_eq!(r.cache.len(), 64);
    assert_eq!(r.metrics.identities.get(), 64);
    assert!(r.metrics.evictions.with_label_values(&["lru"]).get() >= 500 - 64);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_outage_keeps_cached_identities_served_until_stale() {
    let r = rig(Duration::from_millis(100), |c| {
        c.idle_timeout = 24 * 60 * MIN
    });
    let token = "pod-a";
    r.fetch(token, r.far_exp()).await.unwrap();
    r.upstream.down.store(true, Ordering::SeqCst);
    // Refresh-ahead at ~30 min fails and retries with backoff; the cached
    // credentials are still a hit until 5 minutes before they expire.
    tokio::time::sleep(54 * MIN).await;
    assert!(matches!(r.cache.lookup(&digest(token)), Lookup::Hit(_)));
    assert!(
        r.metrics
            .refresh_ahead
            .with_label_values(&["upstream_error"])
            .get()
            >= 5
    );
    tokio::time::sleep(2 * MIN).await;
    assert!(matches!(r.cache.lookup(&digest(token)), Lookup::Miss));
    // A request now is a miss that fails fast with the upstream's error...
    assert!(matches!(
        r.fetch(token, r.far_exp()).await,
        Err(FetchError::Unavailable(_))
    ));
    // ...and recovers once the upstream does.
    r.upstream.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(2 * MIN).await;
    r.fetch(token, r.far_exp()).await.unwrap();
    assert!(matches!(r.cache.lookup(&digest(token)), Lookup::Hit(_)));
}
