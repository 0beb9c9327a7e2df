//! The refresh schedule under paused time: a scripted exchange, a fixed wall
//! clock, and the real Refresher and Store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use credagent::clock::Clock;
use credagent::config::RefreshPolicy;
use credagent::credentials::Credentials;
use credagent::exchange::{BoxFuture, Exchange, ExchangeError};
use credagent::jwt;
use credagent::metrics::{Metrics, RefreshMetrics, SidecarMetrics};
use credagent::refresh::{Engine, Refresher};
use credagent::secret::Secret;
use credagent::store::Store;
use credagent::token::Token;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MIN: Duration = Duration::from_secs(60);

/// A wall clock frozen at one instant: the upstream's `Date` decides lifetimes.
struct Frozen(SystemTime);
impl Clock for Frozen {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// What the scripted upstream answers.
#[derive(Clone)]
enum Answer {
    Ok(Duration),
    Err(ExchangeError),
}

/// An exchange that answers from a script (the last answer repeats) and
/// records when it was called and with which token.
struct Scripted {
    answers: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<(Instant, String)>>,
    called: Notify,
    now: SystemTime,
}

impl Scripted {
    fn new(answers: Vec<Answer>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into()),
            calls: Mutex::new(Vec::new()),
            called: Notify::new(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        })
    }

    fn calls(&self) -> Vec<(Instant, String)> {
        self.calls.lock().unwrap().clone()
    }

    async fn wait_calls(&self, n: usize) -> Vec<(Instant, String)> {
        loop {
            let notified = self.called.notified();
            if self.calls.lock().unwrap().len() >= n {
                return self.calls();
            }
            notified.await;
        }
    }
}

impl Exchange for Scripted {
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>> {
        let answer = {
            let mut q = self.answers.lock().unwrap();
            if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().cloned()
            }
        };
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now(), token.expose().to_owned()));
        self.called.notify_waiters();
        let now = self.now;
        Box::pin(async move {
            match answer.expect("script not empty") {
                Answer::Ok(lifetime) => Ok(Credentials {
                    access_key_id: "AKID".into(),
                    secret_access_key: Secret::new("SK"),
                    session_token: Secret::new(""),
                    expiration: (now + lifetime).into(),
                    role: Some("role".into()),
                    account_id: None,
                    server_date: Some(now),
                }),
                Answer::Err(e) => Err(e),
            }
        })
    }
}

fn token(sub: &str) -> Arc<Token> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let raw = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"{sub}","exp":4000000000,"iat":3999996400}}"#
        ))
    );
    let claims = jwt::decode(&raw).unwrap();
    Arc::new(Token {
        raw: Secret::new(raw),
        claims,
    })
}

struct Harness {
    exchange: Arc<Scripted>,
    store: Store,
    tokens: watch::Sender<Option<Arc<Token>>>,
    refresh: RefreshMetrics,
    sidecar: SidecarMetrics,
    shutdown: CancellationToken,
    start: Instant,
}

fn start(answers: Vec<Answer>, jitter: f64) -> Harness {
    start_skewed(answers, jitter, 0)
}

/// Like `start`, with the local wall clock `skew_s` seconds off the
/// upstream's (positive: ahead).
fn start_skewed(answers: Vec<Answer>, jitter: f64, skew_s: i64) -> Harness {
    let exchange = Scripted::new(answers);
    let local = if skew_s >= 0 {
        exchange.now + Duration::from_secs(skew_s as u64)
    } else {
        exchange.now - Duration::from_secs(skew_s.unsigned_abs())
    };
    let store = Store::new();
    let (tx, rx) = watch::channel(Some(token("a")));
    let registry = Metrics::new().unwrap();
    let refresh = RefreshMetrics::register(&registry).unwrap();
    let sidecar = SidecarMetrics::register(&registry).unwrap();
    let shutdown = CancellationToken::new();
    let engine = Engine::new(
        exchange.clone(),
        RefreshPolicy::default(),
        Arc::new(Frozen(local)),
        refresh.clone(),
    )
    .with_jitter(Arc::new(move || jitter));
    let refresher = Refresher::new(engine, rx, store.clone(), sidecar.clone());
    tokio::spawn(refresher.run(shutdown.clone()));
    Harness {
        exchange,
        store,
        tokens: tx,
        refresh,
        sidecar,
        shutdown,
        start: Instant::now(),
    }
}

fn offsets(h: &Harness, calls: &[(Instant, String)]) -> Vec<Duration> {
    calls.iter().map(|(t, _)| *t - h.start).collect()
}

fn count(h: &Harness, result: &str) -> u64 {
    h.refresh.refreshes.with_label_values(&[result]).get()
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_half_life_and_keeps_serving() {
    let h = start(vec![Answer::Ok(60 * MIN)], 0.0);
    let calls = h.exchange.wait_calls(3).await;
    assert_eq!(offsets(&h, &calls), [Duration::ZERO, 30 * MIN, 60 * MIN]);
    assert!(h.store.servable(Instant::now()).is_some());
    assert_eq!(count(&h, "ok"), 3);
    assert_eq!(h.sidecar.ready.get(), 1);
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn keeps_fifteen_minutes_of_life_when_granted_forty() {
    let h = start(vec![Answer::Ok(40 * MIN)], 0.999);
    let calls = h.exchange.wait_calls(2).await;
    let gap = calls[1].0 - calls[0].0;
    assert!(gap <= 20 * MIN && gap >= 18 * MIN, "{gap:?}");
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_last_good_is_served_until_shortly_before_expiry() {
    let upstream = Answer::Err(ExchangeError::Upstream { status: 503 });
    let h = start(vec![Answer::Ok(60 * MIN), upstream], 0.999_999);
    // First success, then failures from the scheduled refresh at 30 min on.
    let calls = h.exchange.wait_calls(9).await;
    let gaps: Vec<u64> = calls
        .windows(2)
        .skip(1)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64().round() as u64)
        .collect();
    assert_eq!(gaps, [1, 2, 4, 8, 16, 32, 60]);
    // Still serving the last good credentials...
    assert!(h.store.servable(Instant::now()).is_some());
    // ...until 5 minutes before they expire, then not.
    let snapshot = h.store.load().unwrap();
    assert_eq!(snapshot.serve_until - snapshot.obtained_at, 55 * MIN);
    tokio::time::sleep_until(snapshot.serve_until).await;
    tokio::task::yield_now().await;
    assert!(h.store.servable(Instant::now()).is_none());
    assert_eq!(h.sidecar.ready.get(), 0);
    assert!(count(&h, "upstream_error") >= 8);
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let throttled = Answer::Err(ExchangeError::Throttled {
        retry_after: Some(Duration::from_secs(42)),
    });
    let h = start(vec![throttled, Answer::Ok(60 * MIN)], 0.0);
    let calls = h.exchange.wait_calls(2).await;
    assert_eq!(
        offsets(&h, &calls),
        [Duration::ZERO, Duration::from_secs(42)]
    );
    assert!(h.store.servable(Instant::now()).is_some());
    assert_eq!(count(&h, "throttled"), 1);
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_new_token_after_an_auth_failure_is_tried_at_once() {
    let rejected = Answer::Err(ExchangeError::AuthRejected { status: 403 });
    // Two rejections so the backoff is already a few seconds long.
    let h = start(
        vec![rejected.clone(), rejected, Answer::Ok(60 * MIN)],
        0.999,
    );
    h.exchange.wait_calls(2).await;
    assert!(h.store.load().is_none(), "not ready before any success");
    // Past the one-second spacing, well before the next retry (~2 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = Instant::now();
    h.tokens.send_replace(Some(token("b")));
    let calls = h.exchange.wait_calls(3).await;
    assert_eq!(calls[2].0, t, "retried without waiting for the backoff");
    assert!(
        calls[2].1.contains('.') && calls[2].1 != calls[0].1,
        "used the new token"
    );
    h.store.wait_servable().await;
    assert_eq!(count(&h, "auth_rejected"), 2);
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_rotated_token_is_exchanged_at_once_and_restarts_the_schedule() {
    let h = start(vec![Answer::Ok(60 * MIN)], 0.0);
    h.exchange.wait_calls(1).await;
    tokio::time::sleep(10 * MIN).await;
    h.tokens.send_replace(Some(token("b")));
    let calls = h.exchange.wait_calls(2).await;
    assert_eq!(
        offsets(&h, &calls)[1],
        10 * MIN,
        "not at the 30 min schedule"
    );
    assert_ne!(calls[1].1, calls[0].1, "with the new token");
    // The next one is half the new credentials' life after the exchange.
    let calls = h.exchange.wait_calls(3).await;
    assert_eq!(offsets(&h, &calls)[2], 40 * MIN);
    assert_eq!(count(&h, "ok"), 3);
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_token_rewritten_in_a_loop_is_exchanged_at_most_once_a_second() {
    let h = start(vec![Answer::Ok(60 * MIN)], 0.0);
    h.exchange.wait_calls(1).await;
    for i in 0..50 {
        h.tokens.send_replace(Some(token(&format!("loop-{i}"))));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = h.exchange.calls();
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        (4..=6).contains(&gaps.len()),
        "{} exchanges in 5 s",
        calls.len()
    );
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_secs(1)),
        "{gaps:?}"
    );
    // The last token written is the one in use once the spacing allows.
    let last = token("loop-49");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.exchange.calls().last().unwrap().1,
        last.raw.expose(),
        "ends on the last token"
    );
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_new_token_does_not_cut_short_an_upstream_backoff() {
    let upstream = Answer::Err(ExchangeError::Upstream { status: 503 });
    let h = start(vec![Answer::Ok(60 * MIN), upstream], 0.999_999);
    // The scheduled refresh at 30 min fails, and the retry 1 s later too.
    let calls = h.exchange.wait_calls(3).await;
    let t = Instant::now();
    h.tokens.send_replace(Some(token("b")));
    let calls_after = h.exchange.wait_calls(4).await;
    // The third retry waits its full backoff (~2 s), then uses the new token.
    let waited = calls_after[3].0 - calls[2].0;
    assert!(
        waited >= Duration::from_millis(1900),
        "{waited:?} after {t:?}"
    );
    assert_ne!(calls_after[3].1, calls[0].1, "with the new token");
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn already_expired_credentials_are_not_served() {
    let h = start(vec![Answer::Ok(Duration::ZERO), Answer::Ok(60 * MIN)], 0.0);
    let calls = h.exchange.wait_calls(2).await;
    assert_eq!(offsets(&h, &calls)[1], Duration::from_secs(1));
    assert_eq!(count(&h, "expired"), 1);
    h.store.wait_servable().await;
    h.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_token_before_exchanging() {
    let exchange = Scripted::new(vec![Answer::Ok(60 * MIN)]);
    let (tx, rx) = watch::channel(None);
    let store = Store::new();
    let shutdown = CancellationToken::new();
    let registry = Metrics::new().unwrap();
    let engine = Engine::new(
        exchange.clone(),
        RefreshPolicy::default(),
        Arc::new(Frozen(exchange.now)),
        RefreshMetrics::register(&registry).unwrap(),
    );
    let refresher = Refresher::new(
        engine,
        rx,
        store.clone(),
        SidecarMetrics::register(&registry).unwrap(),
    );
    tokio::spawn(refresher.run(shutdown.clone()));
    tokio::time::sleep(10 * MIN).await;
    assert!(exchange.calls().is_empty());
    tx.send_replace(Some(token("late")));
    store.wait_servable().await;
    assert_eq!(exchange.calls().len(), 1);
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_skewed_local_clock_does_not_move_the_schedule() {
    // Ten minutes ahead of, or behind, the upstream's Date: the lifetime is
    // measured on the upstream's clock and the schedule on the monotonic one.
    for skew in [600, -600, 50 * 60] {
        let h = start_skewed(vec![Answer::Ok(60 * MIN)], 0.0, skew);
        let calls = h.exchange.wait_calls(2).await;
        assert_eq!(
            offsets(&h, &calls),
            [Duration::ZERO, 30 * MIN],
            "skew {skew}s"
        );
        let snapshot = h.store.load().unwrap();
        assert_eq!(snapshot.lifetime, 60 * MIN, "skew {skew}s");
        assert_eq!(
            snapshot.serve_until - snapshot.obtained_at,
            55 * MIN,
            "skew {skew}s"
        );
        h.shutdown.cancel();
    }
}
