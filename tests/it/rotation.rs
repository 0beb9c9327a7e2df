//! The token source against kubelet's exact swap sequence.

use std::sync::Arc;
use std::time::Duration;

use credagent::clock;
use credagent::metrics::{Metrics, TokenMetrics};
use credagent::token::{self, Token, TokenSourceConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::support::{kubelet_swap, metric, mint, rs256_issuer, until};

struct Source {
    rx: watch::Receiver<Option<Arc<Token>>>,
    metrics: Metrics,
    token_metrics: TokenMetrics,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

impl Source {
    fn start(configure: impl FnOnce(&mut TokenSourceConfig), first: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = first {
            kubelet_swap(&dir.path().join("tokens"), t);
        }
        let mut config = TokenSourceConfig::new(dir.path().join("tokens/oidc-token"));
        config.debounce = Duration::from_millis(20);
        config.missing_interval = Duration::from_millis(50);
        // Long poll: rotations must be seen through inotify alone unless a
        // test says otherwise.
        config.poll_interval = Some(Duration::from_secs(3600));
        configure(&mut config);
        let metrics = Metrics::new().unwrap();
        let token_metrics = TokenMetrics::register(&metrics).unwrap();
        let shutdown = CancellationToken::new();
        let rx = token::spawn(
            config,
            clock::system(),
            token_metrics.clone(),
            shutdown.clone(),
        );
        Self {
            rx,
            metrics,
            token_metrics,
            shutdown,
            dir,
        }
    }

    fn volume(&self) -> std::path::PathBuf {
        self.dir.path().join("tokens")
    }

    fn current(&self) -> Option<String> {
        self.rx.borrow().as_ref().map(|t| t.raw.expose().to_owned())
    }

    /// Waits until the published token is `want`.
    async fn until_token(&mut self, want: &str) {
        let wait = self
            .rx
            .wait_for(|t| t.as_ref().is_some_and(|t| t.raw.expose() == want));
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("token published in time")
            .expect("source alive");
    }

    fn reloads(&self, result: &str) -> u64 {
        self.token_metrics
            .reloads
            .with_label_values(&[result])
            .get()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn three_kubelet_rotations_are_each_seen_through_inotify() {
    let issuer = rs256_issuer();
    let first = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(|_| {}, Some(&first));
    s.until_token(&first).await;
    // The third rotation is the one a watch on the file itself would miss.
    for _ in 0..3 {
        let next = mint(&issuer, "app", Duration::from_secs(3600));
        kubelet_swap(&s.volume(), &next);
        s.until_token(&next).await;
    }
    assert_eq!(s.reloads("updated"), 4);
    let claims = s.rx.borrow().as_ref().unwrap().claims.clone();
    assert_eq!(
        claims.sub.as_deref(),
        Some("system:serviceaccount:default:app")
    );
    assert_eq!(claims.aud, [crate::support::AUDIENCE]);
    let gauge = s.token_metrics.expiry.get();
    assert_eq!(gauge as i64, claims.exp.unwrap());
}

#[tokio::test]
async fn back_to_back_rotations_end_on_the_last_token() {
    let issuer = rs256_issuer();
    let mut s = Source::start(
        |_| {},
        Some(&mint(&issuer, "app", Duration::from_secs(3600))),
    );
    let mut last = String::new();
    for _ in 0..200 {
        last = mint(&issuer, "app", Duration::from_secs(3600));
        credagent_testkit::kubelet::atomic_write(&s.volume(), "oidc-token", last.as_bytes(), 0o644)
            .unwrap();
    }
    s.until_token(&last).await;
    assert!(
        s.reloads("updated") < 200,
        "debounced: {} reads published",
        s.reloads("updated")
    );
    // Exactly one timestamped directory remains.
    let hidden = std::fs::read_dir(s.volume())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("..2")
        })
        .count();
    assert_eq!(hidden, 1);
}

#[tokio::test]
async fn an_unchanged_remount_publishes_nothing() {
    let issuer = rs256_issuer();
    let token = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(|_| {}, Some(&token));
    s.until_token(&token).await;
    s.rx.mark_unchanged();
    // kubelet's no-op remount: same bytes; creates a file event via our own
    // touch of the directory so the source re-reads.
    kubelet_swap(&s.volume(), &token);
    std::fs::write(s.volume().join(".nudge"), b"x").unwrap();
    until("an unchanged re-read", || s.reloads("unchanged") >= 1).await;
    assert!(!s.rx.has_changed().unwrap());
    assert_eq!(s.reloads("updated"), 1);
}

#[tokio::test]
async fn poll_only_still_sees_rotations() {
    let issuer = rs256_issuer();
    let first = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(
        |c| {
            c.watch = false;
            c.poll_interval = Some(Duration::from_millis(100));
        },
        Some(&first),
    );
    s.until_token(&first).await;
    let next = mint(&issuer, "app", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &next);
    s.until_token(&next).await;
}

#[tokio::test]
async fn a_token_that_appears_later_is_picked_up() {
    let mut s = Source::start(|_| {}, None);
    until("a missing read", || s.reloads("missing") >= 1).await;
    assert!(s.current().is_none());
    let token = mint(&rs256_issuer(), "late", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &token);
    s.until_token(&token).await;
}

#[tokio::test]
async fn bad_tokens_are_rejected_and_the_last_good_one_is_kept() {
    let issuer = rs256_issuer();
    let good = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(
        |c| c.poll_interval = Some(Duration::from_millis(50)),
        Some(&good),
    );
    s.until_token(&good).await;

    kubelet_swap(&s.volume(), &"A".repeat(20 * 1024));
    until("too_large", || s.reloads("too_large") >= 1).await;
    kubelet_swap(&s.volume(), "not a jwt");
    until("malformed", || s.reloads("malformed") >= 1).await;
    kubelet_swap(&s.volume(), "");
    until("empty", || s.reloads("empty") >= 1).await;
    assert_eq!(s.current().as_deref(), Some(good.as_str()));

    // Transient ENOENT: the volume's ..data link vanishes for a moment.
    let data = s.volume().join("..data");
    let good2 = mint(&issuer, "app", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &good2);
    s.until_token(&good2).await;
    std::fs::rename(&data, s.volume().join("..data.bak")).unwrap();
    until("missing", || s.reloads("missing") >= 1).await;
    assert_eq!(s.current().as_deref(), Some(good2.as_str()));
    std::fs::rename(s.volume().join("..data.bak"), &data).unwrap();

    // A token with a trailing newline (hand-made files) is accepted, trimmed.
    let good3 = mint(&issuer, "app", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &format!("{good3}\n"));
    s.until_token(&good3).await;
}

#[tokio::test]
async fn metrics_text_reports_token_reloads() {
    let token = mint(&rs256_issuer(), "app", Duration::from_secs(3600));
    let mut s = Source::start(|_| {}, Some(&token));
    s.until_token(&token).await;
    let text = String::from_utf8(s.metrics.encode()).unwrap();
    assert_eq!(
        metric(&text, "credagent_token_reloads_total{result=\"updated\"}"),
        Some(1.0)
    );
    assert!(!text.contains(&token[..40]));
}

#[tokio::test]
async fn a_one_mebibyte_token_is_rejected_without_reading_it_all() {
    let issuer = rs256_issuer();
    let good = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(
        |c| c.poll_interval = Some(Duration::from_millis(50)),
        Some(&good),
    );
    s.until_token(&good).await;
    kubelet_swap(&s.volume(), &"e".repeat(1024 * 1024));
    until("too_large", || s.reloads("too_large") >= 1).await;
    assert_eq!(s.current().as_deref(), Some(good.as_str()));
}

#[tokio::test]
async fn an_unreadable_token_keeps_the_last_good_one() {
    let issuer = rs256_issuer();
    let good = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(
        |c| c.poll_interval = Some(Duration::from_millis(50)),
        Some(&good),
    );
    s.until_token(&good).await;
    // Publish a payload directory whose "file" cannot be read (a directory:
    // EISDIR; as root, modes cannot make a file unreadable).
    let ts = s.volume().join("..broken");
    std::fs::create_dir_all(ts.join("oidc-token")).unwrap();
    std::os::unix::fs::symlink("..broken", s.volume().join("..data_tmp")).unwrap();
    std::fs::rename(s.volume().join("..data_tmp"), s.volume().join("..data")).unwrap();
    until("unreadable", || s.reloads("unreadable") >= 1).await;
    assert_eq!(s.current().as_deref(), Some(good.as_str()));
    let next = mint(&issuer, "app", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &next);
    s.until_token(&next).await;
}

#[tokio::test]
async fn a_volume_deleted_and_recreated_is_followed() {
    let issuer = rs256_issuer();
    let good = mint(&issuer, "app", Duration::from_secs(3600));
    // The degraded-mode poll every 100 ms rather than 5 s: in real time, as
    // the watch's events come from inotify's own thread.
    let mut s = Source::start(
        |c| c.degraded_interval = Duration::from_millis(100),
        Some(&good),
    );
    s.until_token(&good).await;
    std::fs::remove_dir_all(s.volume()).unwrap();
    until("missing", || s.reloads("missing") >= 1).await;
    assert_eq!(
        s.current().as_deref(),
        Some(good.as_str()),
        "last good kept"
    );
    let next = mint(&issuer, "app", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &next);
    // Seen by the degraded-mode poll or a re-established watch.
    s.until_token(&next).await;
}

/// A failed read (here `EISDIR`; in production `EMFILE` under a descriptor
/// flood, or a transient `EACCES`) is retried within seconds, not at the
/// next poll a minute later: nothing else announces the recovery when no
/// inotify event comes.
#[tokio::test(start_paused = true)]
async fn a_failed_read_is_retried_within_seconds_not_at_the_next_poll() {
    let issuer = rs256_issuer();
    let good = mint(&issuer, "app", Duration::from_secs(3600));
    let mut s = Source::start(
        |c| {
            c.watch = false;
            c.poll_interval = Some(Duration::from_secs(60));
        },
        Some(&good),
    );
    s.until_token(&good).await;
    let ts = s.volume().join("..broken");
    std::fs::create_dir_all(ts.join("oidc-token")).unwrap();
    std::os::unix::fs::symlink("..broken", s.volume().join("..data_tmp")).unwrap();
    std::fs::rename(s.volume().join("..data_tmp"), s.volume().join("..data")).unwrap();
    let wait = tokio::time::timeout(Duration::from_secs(120), async {
        while s.reloads("unreadable") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    wait.await.expect("the poll reads the broken file");
    let failed_at = tokio::time::Instant::now();
    let next = mint(&issuer, "app", Duration::from_secs(3600));
    kubelet_swap(&s.volume(), &next);
    s.until_token(&next).await;
    let after = failed_at.elapsed();
    assert!(
        after <= Duration::from_secs(2),
        "recovered {after:?} after the failure (the poll is 60 s)"
    );
    // Failing again and again backs off.
    std::fs::create_dir_all(s.volume().join("..broken2/oidc-token")).unwrap();
    std::os::unix::fs::symlink("..broken2", s.volume().join("..data_tmp")).unwrap();
    std::fs::rename(s.volume().join("..data_tmp"), s.volume().join("..data")).unwrap();
    let until_failures = |n: u64| {
        let s = &s;
        async move {
            while s.reloads("unreadable") < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::Instant::now()
        }
    };
    // (The counter holds the first episode's failure too.) This episode's
    // first failure comes with the next 60 s poll; the retries after its
    // second wait 1, 2, 4, 8 and 8 s (each read also retries for 310 ms):
    // backing off, never past the schedule's last step.
    let second = until_failures(3).await;
    let seventh = until_failures(8).await;
    let took = seventh - second;
    assert!(
        took > Duration::from_secs(23) && took < Duration::from_secs(26),
        "{took:?} from the second failed read to the seventh"
    );
    assert_eq!(
        s.current().as_deref(),
        Some(next.as_str()),
        "last good kept"
    );
}
