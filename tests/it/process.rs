//! Whole processes: node mode at trace level searched for secrets, file
//! descriptors and watches after 200 kubelet swaps, a subPath mount warned
//! about once, SIGTERM under load, and a restart.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use credagent_testkit::{Fault, Issuer, StandIn};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::support::{
    free_port, kubelet_swap, metric, mint, request, rs256_issuer, SECRET_ACCESS_KEY,
};
use crate::tools::{self, require};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");
const SESSION: &str = "SeSsIoN-ToKeN-node-MuSt-NoT-LeAk";

async fn standin(issuer: &Issuer, shutdown: &CancellationToken) -> StandIn {
    StandIn::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        crate::support::standin_config(issuer, Duration::from_secs(3600), SESSION),
        None,
        shutdown.child_token(),
    )
    .unwrap()
}

/// Waits until `GET /readyz` on `admin` answers 200.
async fn until_ready(admin: u16, child: &mut Child) {
    let addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = request(addr, None, "GET", "/readyz", &[], "").await {
            if r.status == 200 {
                return;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "credagent exited early"
        );
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigterm_and_collect(child: Child) -> (Option<i32>, String) {
    assert!(crate::support::sigterm(child.id().unwrap()));
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    let logs =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), logs)
}

#[tokio::test]
async fn node_mode_at_trace_level_leaks_nothing() {
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let up = standin(&issuer, &shutdown).await;
    let (port, admin) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .args(["--log-level", "trace", "node", "--exchange-url", &up.url()])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    until_ready(admin, &mut child).await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let host = format!("127.0.0.1:{port}");
    let good = mint(&issuer, "app", Duration::from_secs(3600));
    let forged = mint(
        &Issuer::generate_es256("evil").unwrap(),
        "app",
        Duration::from_secs(3600),
    );
    let get = |token: String| {
        let host = host.clone();
        async move {
            request(
                addr,
                None,
                "GET",
                "/v1/credentials",
                &[("host", host.as_str()), ("authorization", token.as_str())],
                "",
            )
            .await
            .unwrap()
        }
    };
    let mut seen = String::new();
    let ok = get(good.clone()).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["Token"], SESSION);
    for (token, status) in [(forged.clone(), 403), ("junk".to_owned(), 400)] {
        let r = get(token).await;
        assert_eq!(r.status, status);
        seen.push_str(&r.body);
    }
    up.set_sticky_fault(Some(Fault::Body { status: 200, body: format!(r#"{{"AccessKeyId":"A","SecretAccessKey":{{"x":"{SECRET_ACCESS_KEY}"}},"Token":"{SESSION}","Expiration":"x"}}"#) }));
    let other = mint(&issuer, "other", Duration::from_secs(3600));
    let r = get(other.clone()).await;
    assert_eq!(r.status, 503);
    seen.push_str(&r.body);
    let metrics = request(
        format!("127.0.0.1:{admin}").parse().unwrap(),
        None,
        "GET",
        "/metrics",
        &[],
        "",
    )
    .await
    .unwrap()
    .body;
    assert_eq!(
        metric(&metrics, r#"credagent_refreshes_total{result="malformed"}"#),
        Some(1.0)
    );
    seen.push_str(&metrics);
    let (code, logs) = sigterm_and_collect(child).await;
    assert_eq!(code, Some(0));
    assert!(logs.contains("credagent node starting"), "{logs}");
    seen.push_str(&logs);
    for token in [&good, &forged, &other] {
        let sig = token.rsplit('.').next().unwrap();
        assert!(
            !seen.contains(token.as_str()) && !seen.contains(sig),
            "a token leaked"
        );
    }
    assert!(
        !seen.contains(SECRET_ACCESS_KEY) && !seen.contains(SESSION),
        "a secret leaked"
    );
    shutdown.cancel();
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// inotify watches held by `pid`, from /proc/PID/fdinfo.
fn inotify_watches(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

async fn sidecar(token_file: &Path, url: &str, dir: &Path, port: u16, admin: u16) -> Child {
    Command::new(BIN)
        .args([
            "sidecar",
            "--exchange-url",
            url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .arg("--token-file")
        .arg(token_file)
        .arg("--auth-token-file")
        .arg(dir.join("auth-token"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn two_hundred_swaps_leak_no_descriptor_or_watch() {
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let up = standin(&issuer, &shutdown).await;
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("tokens");
    kubelet_swap(&volume, &mint(&issuer, "app", Duration::from_secs(3600)));
    let (port, admin) = (free_port(), free_port());
    let mut child = sidecar(
        &volume.join("oidc-token"),
        &up.url(),
        dir.path(),
        port,
        admin,
    )
    .await;
    until_ready(admin, &mut child).await;
    let pid = child.id().unwrap();
    let (fds, watches) = (fd_count(pid), inotify_watches(pid));
    assert_eq!(watches, 1, "one watch, on the token's directory");
    let mut last = String::new();
    for _ in 0..200 {
        last = mint(&issuer, "app", Duration::from_secs(3600));
        credagent_testkit::kubelet::atomic_write(&volume, "oidc-token", last.as_bytes(), 0o644)
            .unwrap();
    }
    // Wait until the agent has read the last token: it logs each rotation;
    // the metric of updates stops moving once the last bytes are published.
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut previous = -1.0;
    loop {
        let m = request(admin_addr, None, "GET", "/metrics", &[], "")
            .await
            .unwrap()
            .body;
        let updated =
            metric(&m, r#"credagent_token_reloads_total{result="updated"}"#).unwrap_or(0.0);
        let expiry = metric(&m, "credagent_token_expiry_timestamp_seconds").unwrap_or(0.0);
        let last_exp = credagent::jwt::decode(&last).unwrap().exp.unwrap() as f64;
        if updated == previous && expiry == last_exp {
            break;
        }
        previous = updated;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last token was never published"
        );
        // Quiet for five times the token source's 20 ms debounce: stopped.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fd_count(pid), fds, "file descriptors after 200 swaps");
    assert_eq!(inotify_watches(pid), 1, "watches after 200 swaps");
    let (code, _) = sigterm_and_collect(child).await;
    assert_eq!(code, Some(0));
    shutdown.cancel();
}

#[tokio::test]
async fn sigterm_under_load_drains_and_a_restart_is_ready_after_one_exchange() {
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let up = standin(&issuer, &shutdown).await;
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("tokens");
    kubelet_swap(&volume, &mint(&issuer, "app", Duration::from_secs(3600)));
    let (port, admin) = (free_port(), free_port());
    let mut child = sidecar(
        &volume.join("oidc-token"),
        &up.url(),
        dir.path(),
        port,
        admin,
    )
    .await;
    until_ready(admin, &mut child).await;
    let auth = std::fs::read_to_string(dir.path().join("auth-token")).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stop = CancellationToken::new();
    let terminating = CancellationToken::new();
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (auth, stop, terminating) = (auth.clone(), stop.clone(), terminating.clone());
        load.spawn(async move {
            let (mut ok, mut other) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                match request(
                    addr,
                    None,
                    "GET",
                    "/v1/credentials",
                    &[("authorization", auth.as_str())],
                    "",
                )
                .await
                {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => other.push(r.status.to_string()),
                    // Once SIGTERM is sent, a connection the server had not
                    // yet accepted may be refused or closed unanswered: the
                    // listener is going away. Never before.
                    Err(_) if terminating.is_cancelled() => break,
                    Err(e) => other.push(e),
                }
            }
            (ok, other)
        });
    }
    while up.calls() == 0 {
        tokio::task::yield_now().await;
    }
    // Let the load run until at least a few hundred requests were answered.
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    loop {
        let m = request(admin_addr, None, "GET", "/metrics", &[], "")
            .await
            .unwrap()
            .body;
        if metric(
            &m,
            r#"credagent_requests_total{route="credentials",status="200"}"#,
        )
        .unwrap_or(0.0)
            >= 300.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminating.cancel();
    let (code, logs) = sigterm_and_collect(child).await;
    stop.cancel();
    assert_eq!(code, Some(0), "{logs}");
    let mut total = 0;
    for (ok, other) in load.join_all().await {
        total += ok;
        assert!(
            other.is_empty(),
            "requests failed during shutdown: {other:?}"
        );
    }
    assert!(total >= 300);
    // Restart: same auth token file, ready after one exchange.
    let calls = up.calls();
    let mut child = sidecar(
        &volume.join("oidc-token"),
        &up.url(),
        dir.path(),
        port,
        admin,
    )
    .await;
    until_ready(admin, &mut child).await;
    assert_eq!(up.calls(), calls + 1, "one exchange to become ready");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("auth-token")).unwrap(),
        auth,
        "apps keep their auth token"
    );
    let (code, _) = sigterm_and_collect(child).await;
    assert_eq!(code, Some(0));
    shutdown.cancel();
}

#[tokio::test]
async fn a_subpath_mount_is_warned_about_once() {
    let unshare = require!(tools::mount_namespace());
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let up = standin(&issuer, &shutdown).await;
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("tokens");
    kubelet_swap(&volume, &mint(&issuer, "app", Duration::from_secs(3600)));
    // What a subPath mount is: the resolved file bind-mounted on its own.
    let target = dir.path().join("subpath-token");
    std::fs::write(&target, b"").unwrap();
    let (port, admin) = (free_port(), free_port());
    let script = format!(
        "mount --bind {src} {dst} && exec {BIN} sidecar --exchange-url {url} --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:{admin} --token-file {dst} --auth-token-file {auth}",
        src = volume.join("oidc-token").display(),
        dst = target.display(),
        url = up.url(),
        auth = dir.path().join("auth-token").display(),
    );
    let mut child = Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("unshare (util-linux) runs; these tests need root");
    until_ready(admin, &mut child).await;
    let (code, logs) = sigterm_and_collect(child).await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(logs.matches("subPath").count(), 1, "{logs}");
    shutdown.cancel();
}
