//! The node agent's logic under paused time, through `node::Service` with a
//! scripted upstream: fills that outlive their callers, single-flight, the
//! upstream bound and its fair share between Pods, refresh-ahead, idle and
//! token-expiry eviction, per-identity backoff for every failure class, and
//! a hostile neighbour that cannot displace or delay the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credagent::clock::Clock;
use credagent::config::NodeConfig;
use credagent::credentials::Credentials;
use credagent::exchange::{BoxFuture, Exchange, ExchangeError};
use credagent::node::resolve::Resolution;
use credagent::node::Service;
use credagent::secret::Secret;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::metric;

const MIN: Duration = Duration::from_secs(60);
const BASE_UNIX: u64 = 1_800_000_000;

/// Wall time that moves with tokio's (paused) clock.
struct TokioClock {
    start: Instant,
}
impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(BASE_UNIX) + self.start.elapsed()
    }
}

/// An upstream that takes `delay`, grants an hour, answers a token whose
/// `sub` starts with `status-NNN` with that status, and records calls and
/// concurrency.
struct Upstream {
    delay: Mutex<Duration>,
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
            let sub = credagent::jwt::decode(token.expose())
                .ok()
                .and_then(|c| c.sub)
                .unwrap_or_default();
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), sub.clone()));
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(n, Ordering::SeqCst);
            let delay = *self.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(ExchangeError::Upstream { status: 503 });
            }
            if let Some(code) = sub.strip_prefix("status-") {
                let status: u16 = code[..3].parse().unwrap();
                return Err(match status {
                    401 | 403 => ExchangeError::AuthRejected { status },
                    429 => ExchangeError::Throttled {
                        retry_after: Some(Duration::from_secs(30)),
                    },
                    500..=599 => ExchangeError::Upstream { status },
                    _ => ExchangeError::UnexpectedStatus { status },
                });
            }
            let now = self.clock.now();
            Ok(Credentials {
                access_key_id: format!("AK-{sub}"),
                secret_access_key: Secret::new("SK"),
                session_token: Secret::new(""),
                expiration: (now + 60 * MIN).into(),
                role: None,
                account_id: None,
                server_date: Some(now),
            })
        })
    }
}

struct Rig {
    service: Service,
    upstream: Arc<Upstream>,
    clock: Arc<TokioClock>,
    _shutdown: tokio_util::sync::DropGuard,
}

/// The node configuration `credagent node` builds from these flags.
fn config(flags: &[&str]) -> NodeConfig {
    let mut argv = vec!["--exchange-url", "http://127.0.0.1:1/unused"];
    argv.extend_from_slice(flags);
    crate::support::node_config(&argv)
}

fn rig(delay: Duration, flags: &[&str]) -> Rig {
    let clock = Arc::new(TokioClock {
        start: Instant::now(),
    });
    let upstream = Arc::new(Upstream {
        delay: Mutex::new(delay),
        clock: clock.clone(),
        calls: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        down: Default::default(),
    });
    let shutdown = CancellationToken::new();
    let service = Service::new(
        &config(flags),
        Some(upstream.clone()),
        Some(clock.clone()),
        Some(Arc::new(|| 0.0)),
        shutdown.clone(),
    )
    .expect("service builds");
    Rig {
        service,
        upstream,
        clock,
        _shutdown: shutdown.drop_guard(),
    }
}

/// A token shaped like a projected one (the scripted upstream does not
/// check signatures) for `sub`, expiring `ttl` after the rig's clock.
fn token_for(rig: &Rig, sub: &str, ttl: Duration) -> String {
    let exp = rig
        .clock
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        + ttl;
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"{sub}","iss":"https://oidc.test","exp":{},"kubernetes.io":{{"namespace":"ns","pod":{{"name":"{sub}-pod"}}}}}}"#,
            exp.as_secs()
        ))
    )
}

fn pod(n: u8) -> IpAddr {
    IpAddr::from([10, 1, 0, n])
}

impl Rig {
    fn token(&self, sub: &str) -> String {
        token_for(self, sub, 24 * 60 * MIN)
    }

    async fn get(&self, token: &str) -> Resolution {
        self.service.resolver.resolve(token, pod(1)).await
    }

    async fn get_from(&self, token: &str, source: IpAddr) -> Resolution {
        self.service.resolver.resolve(token, source).await
    }

    fn calls(&self) -> usize {
        self.upstream.calls.lock().unwrap().len()
    }

    fn calls_for(&self, sub: &str) -> usize {
        self.upstream
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s == sub)
            .count()
    }

    fn metric(&self, series: &str) -> f64 {
        metric(
            &String::from_utf8(self.service.metrics.encode()).unwrap(),
            series,
        )
        .unwrap_or(0.0)
    }
}

fn is_credentials(r: &Resolution) -> bool {
    matches!(r, Resolution::Credentials(_))
}

fn later_reason(r: &Resolution) -> Option<&'static str> {
    match r {
        Resolution::Later { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn refreshes_ahead_while_used_and_drops_idle_identities() {
    let r = rig(Duration::from_millis(100), &["--idle-timeout", "45m"]);
    let start = Instant::now();
    let t = r.token("pod-a");
    assert!(is_credentials(&r.get(&t).await));
    assert_eq!(r.calls(), 1);
    // Used once more at 20 min, so still in use at the first refresh.
    tokio::time::sleep(20 * MIN).await;
    assert!(is_credentials(&r.get(&t).await));
    tokio::time::sleep(11 * MIN).await;
    assert_eq!(r.calls(), 2, "refreshed ahead at about half-life");
    let at = r.upstream.calls.lock().unwrap()[1].0 - start;
    assert!(at >= 27 * MIN && at <= 31 * MIN, "{at:?}");
    assert_eq!(r.metric(r#"credagent_refreshes_total{result="ok"}"#), 2.0);
    // Unused since 20 min: at the next refresh (~60 min) it has idled 40 min
    // (< 45), so it is refreshed once more, then dropped at ~90 min.
    tokio::time::sleep(70 * MIN).await;
    assert_eq!(r.calls(), 3);
    assert!(r.service.cache.is_empty());
    assert_eq!(
        r.metric(r#"credagent_node_cache_evictions_total{reason="idle"}"#),
        1.0
    );
    assert_eq!(r.metric("credagent_node_identities"), 0.0);
}

#[tokio::test(start_paused = true)]
async fn stops_refreshing_when_the_token_expires() {
    let r = rig(Duration::from_millis(100), &["--idle-timeout", "24h"]);
    let t = token_for(&r, "pod-a", 40 * MIN);
    assert!(is_credentials(&r.get(&t).await));
    tokio::time::sleep(31 * MIN).await;
    assert_eq!(r.calls(), 2, "refreshed while the token is valid");
    tokio::time::sleep(60 * MIN).await;
    assert_eq!(r.calls(), 2, "not refreshed with an expired token");
    assert!(r.service.cache.is_empty());
    assert_eq!(
        r.metric(r#"credagent_node_cache_evictions_total{reason="token_expired"}"#),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_one_exchange_even_when_it_fails() {
    let r = Arc::new(rig(Duration::from_millis(500), &[]));
    let (ok, failing) = (r.token("pod-a"), r.token("status-503-b"));
    let mut set = tokio::task::JoinSet::new();
    for token in [ok.clone(), failing.clone()] {
        for _ in 0..10 {
            let (r, token) = (r.clone(), token.clone());
            set.spawn(async move { (token.clone(), r.get(&token).await) });
        }
    }
    for (token, result) in set.join_all().await {
        if token == ok {
            assert!(is_credentials(&result), "{result:?}");
        } else {
            assert_eq!(
                later_reason(&result),
                Some("upstream_unavailable"),
                "{result:?}"
            );
        }
    }
    assert_eq!(r.calls(), 2, "one exchange per token");
    assert_eq!(r.metric("credagent_node_singleflight_joins_total"), 18.0);
}

#[tokio::test(start_paused = true)]
async fn upstream_concurrency_is_bounded() {
    let r = Arc::new(rig(
        Duration::from_millis(300),
        &["--upstream-concurrency", "4"],
    ));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let r = r.clone();
        set.spawn(async move {
            let t = r.token(&format!("pod-{i}"));
            // A client that retries until it has credentials.
            loop {
                if is_credentials(&r.get(&t).await) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    set.join_all().await;
    assert_eq!(r.calls(), 50);
    assert_eq!(r.upstream.max_in_flight.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_distinct_tokens_cannot_grow_the_cache_past_its_bound() {
    let r = rig(Duration::from_millis(1), &["--max-identities", "64"]);
    for i in 0..=1000 {
        let token = if i % 2 == 0 {
            r.token(&format!("pod-{i}"))
        } else {
            r.token(&format!("status-401-{i}"))
        };
        let _ = r.get_from(&token, pod((i % 200) as u8)).await;
        assert!(r.service.cache.len() <= 64);
    }
    assert_eq!(r.service.cache.len(), 64);
    assert_eq!(r.metric("credagent_node_identities"), 64.0);
    assert!(r.metric(r#"credagent_node_cache_evictions_total{reason="lru"}"#) >= 500.0 - 64.0);
}

/// Issue 13, measurement 1: 40 real identities cached with room for 64,
/// then one Pod sends 300 forged tokens; every forged one is refused, and
/// not one real identity is evicted or exchanged again.
#[tokio::test(start_paused = true)]
async fn forged_tokens_never_displace_proven_identities() {
    let r = rig(Duration::from_millis(20), &["--max-identities", "64"]);
    let real: Vec<String> = (0..40).map(|i| r.token(&format!("real-{i}"))).collect();
    for (i, t) in real.iter().enumerate() {
        assert!(is_credentials(&r.get_from(t, pod(i as u8)).await));
    }
    assert_eq!(r.calls(), 40);
    let hostile = pod(250);
    for i in 0..300 {
        let forged = r.token(&format!("status-401-forged-{i}"));
        let answer = r.get_from(&forged, hostile).await;
        assert!(!is_credentials(&answer), "{answer:?}");
    }
    assert_eq!(r.service.cache.len(), 40, "no real identity evicted");
    let calls_before = r.calls();
    for (i, t) in real.iter().enumerate() {
        assert!(is_credentials(&r.get_from(t, pod(i as u8)).await));
    }
    assert_eq!(
        r.calls(),
        calls_before,
        "the real identities were still cached"
    );
    assert_eq!(
        r.metric(r#"credagent_node_cache_evictions_total{reason="lru"}"#),
        0.0
    );
}

/// Issue 13, measurement 2: the upstream takes 3 s, the client gives up after
/// 1 s and retries 5 times: one exchange, and the client ends with
/// credentials.
#[tokio::test(start_paused = true)]
async fn a_fill_outlives_callers_that_give_up() {
    let r = rig(Duration::from_secs(3), &["--fill-wait", "5s"]);
    let t = r.token("slow");
    let mut got = false;
    for _ in 0..5 {
        match tokio::time::timeout(Duration::from_secs(1), r.get(&t)).await {
            Ok(answer) if is_credentials(&answer) => {
                got = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        got,
        "the fill finished and was cached for the caller's retry"
    );
    assert_eq!(
        r.calls(),
        1,
        "one exchange however often the caller gave up"
    );
}

/// A caller that waits longer than `--fill-wait` gets a 503 to retry, and
/// its retry joins the same fill.
#[tokio::test(start_paused = true)]
async fn waiting_is_bounded_and_the_retry_joins_the_fill() {
    let r = rig(Duration::from_millis(2500), &["--fill-wait", "1s"]);
    let t = r.token("slow");
    for _ in 0..2 {
        match r.get(&t).await {
            Resolution::Later { reason, after, .. } => {
                assert_eq!(reason, "fill_timeout");
                assert!(after >= Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
    }
    // The third wait sees the fill finish at 2.5 s.
    assert!(is_credentials(&r.get(&t).await));
    assert_eq!(r.calls(), 1);
}

/// Issue 13, measurement 3: an identity whose exchange answers 500, asked
/// 20 times in 2 s, costs a call per backoff window, not one per request;
/// callers in the window get 503 with Retry-After.
#[tokio::test(start_paused = true)]
async fn a_failing_identity_backs_off_instead_of_calling_on_every_request() {
    let r = rig(Duration::from_millis(10), &[]);
    let t = r.token("status-500-broken");
    let mut retry_afters = Vec::new();
    for _ in 0..20 {
        match r.get(&t).await {
            Resolution::Later { after, .. } => retry_afters.push(after),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(r.calls() <= 3, "{} upstream calls", r.calls());
    assert!(retry_afters.iter().all(|d| *d <= Duration::from_secs(60)));
    assert!(r.metric(r#"credagent_node_rejected_requests_total{reason="backing_off"}"#) >= 15.0);
}

#[tokio::test(start_paused = true)]
async fn throttling_honours_retry_after_per_identity() {
    let r = rig(Duration::from_millis(10), &[]);
    let t = r.token("status-429-busy");
    let first = r.get(&t).await;
    assert_eq!(later_reason(&first), Some("upstream_unavailable"));
    for _ in 0..29 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match r.get(&t).await {
            Resolution::Later { reason, after, .. } => {
                assert_eq!(reason, "backing_off");
                assert!(after <= Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(r.calls(), 1, "no call before the upstream's Retry-After");
    // Other identities are not held back by this one's backoff.
    assert!(is_credentials(&r.get(&r.token("other")).await));
}

#[tokio::test(start_paused = true)]
async fn refusals_of_every_kind_are_negatively_cached() {
    let r = rig(Duration::from_millis(10), &["--negative-cache-ttl", "5s"]);
    for status in [400, 401, 403, 404] {
        let t = r.token(&format!("status-{status}-x"));
        for _ in 0..5 {
            assert!(
                matches!(r.get(&t).await, Resolution::Refused(f) if f.status == 403),
                "{status}"
            );
        }
        assert_eq!(r.calls_for(&format!("status-{status}-x")), 1, "{status}");
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _ = r.get(&r.token("status-401-x")).await;
    assert_eq!(r.calls_for("status-401-x"), 2, "asked again after the TTL");
}

#[tokio::test(start_paused = true)]
async fn an_upstream_outage_keeps_cached_identities_served_until_stale() {
    let r = rig(Duration::from_millis(100), &["--idle-timeout", "24h"]);
    let t = r.token("pod-a");
    assert!(is_credentials(&r.get(&t).await));
    r.upstream.down.store(true, Ordering::SeqCst);
    // Refresh-ahead at ~30 min fails and retries with backoff; the cached
    // credentials are still served until 5 minutes before they expire.
    tokio::time::sleep(54 * MIN).await;
    assert!(is_credentials(&r.get(&t).await));
    assert!(r.metric(r#"credagent_refreshes_total{result="upstream_error"}"#) >= 5.0);
    tokio::time::sleep(2 * MIN).await;
    // Stale now: the identity's own task keeps trying; requests are told
    // when, and start no exchange of their own.
    let calls = r.calls();
    assert_eq!(later_reason(&r.get(&t).await), Some("backing_off"));
    assert_eq!(r.calls(), calls);
    // It recovers once the upstream does, without a new fill.
    r.upstream.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(2 * MIN).await;
    assert!(is_credentials(&r.get(&t).await));
}

/// One Pod floods misses; another Pod's miss is served in its turn, not
/// after the flood.
#[tokio::test(start_paused = true)]
async fn upstream_slots_are_shared_fairly_between_pods() {
    let r = Arc::new(rig(
        Duration::from_millis(100),
        &["--upstream-concurrency", "2", "--max-pending-fills", "4096"],
    ));
    let hostile = pod(66);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..200 {
        let r = r.clone();
        flood.spawn(async move {
            let t = r.token(&format!("status-401-flood-{i}"));
            r.get_from(&t, hostile).await
        });
    }
    // Let the flood queue up behind the two slots.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let real = r.token("real");
    assert!(is_credentials(&r.get_from(&real, pod(7)).await));
    let waited = started.elapsed();
    assert!(
        waited <= Duration::from_millis(400),
        "the real Pod waited {waited:?} behind the flood"
    );
    flood.join_all().await;
}

/// A source whose tokens keep being refused runs out of misses; other
/// sources keep theirs.
#[tokio::test(start_paused = true)]
async fn a_source_of_refused_tokens_is_rate_limited_alone() {
    let r = rig(
        Duration::from_millis(1),
        &[
            "--source-miss-burst",
            "20",
            "--source-miss-rate",
            "1",
            "--source-refusal-cost",
            "5",
        ],
    );
    let hostile = pod(99);
    let mut limited = 0;
    for i in 0..100 {
        let answer = r
            .get_from(&r.token(&format!("status-401-{i}")), hostile)
            .await;
        if later_reason(&answer) == Some("rate_limited") {
            limited += 1;
        }
    }
    assert!(limited >= 90, "{limited} of 100 forged misses limited");
    assert!(
        r.calls() <= 10,
        "{} upstream calls for the forged tokens",
        r.calls()
    );
    let mut answers = HashMap::new();
    for i in 0..20u8 {
        let answer = r.get_from(&r.token(&format!("pod-{i}")), pod(i)).await;
        *answers.entry(is_credentials(&answer)).or_insert(0) += 1;
    }
    assert_eq!(answers.get(&true), Some(&20), "{answers:?}");
}
