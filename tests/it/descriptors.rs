//! Issue 21, item 6: out of file descriptors. The binary raises its soft
//! open-file limit to the hard one at start; when even that runs out,
//! failed accepts are counted, backed off (not a spinning core, not a log
//! line each) and serving resumes once descriptors free up. Run as child
//! processes under `ulimit`, which the test process must not change for
//! the other tests.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::support::{free_port, metric, request};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");

/// `credagent node` on loopback ports, under `ulimit` (a `sh` prefix such
/// as `ulimit -n 48`), its log in `log`.
fn node(ulimit: &str, log: &std::path::Path) -> (Child, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let script = format!(
        "{ulimit} && exec \"$0\" --log-format text node --exchange-url http://127.0.0.1:9/x --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:{admin}"
    );
    let child = Command::new("sh")
        .args(["-c", &script, BIN])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, port, admin)
}

/// The admin listener's answer to `path`, once it answers (within 10 s).
async fn admin_get(admin: u16, path: &str) -> String {
    let addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = tokio::time::timeout(
            Duration::from_secs(1),
            request(addr, None, "GET", path, &[], ""),
        )
        .await;
        if let Ok(Ok(r)) = answer {
            if r.status == 200 {
                return r.body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `Max open files` soft and hard limits of `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut f = line["Max open files".len()..].split_whitespace();
    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
}

#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (child, _, admin) = node("ulimit -S -n 100", &log);
    admin_get(admin, "/healthz").await;
    let (soft, hard) = open_file_limits(child.id().unwrap());
    if hard == "unlimited" {
        assert_eq!(soft, "1048576");
    } else {
        assert_eq!(soft, hard);
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("raised the open-file limit"), "{log}");
}

#[tokio::test]
async fn accept_errors_back_off_are_counted_and_service_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log");
    // Soft and hard: nothing to raise to.
    let (child, port, admin) = node("ulimit -n 48", &log_path);
    admin_get(admin, "/healthz").await;
    let metrics = admin_get(admin, "/metrics").await;
    let series = r#"credagent_accept_errors_total{listener="credentials"}"#;
    assert_eq!(metric(&metrics, series), Some(0.0), "initialised at 0");
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", child.id().unwrap()))
            .unwrap()
            .count()
    };
    // More connections than it has descriptors left: accepts fail.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut flood = Vec::new();
    for _ in 0..60 {
        flood.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(10);
    while fds() < 48 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "descriptors never ran out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Out of descriptors for a while (less than the 5 s head timeout that
    // would free them).
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(flood);
    let held = started.elapsed().as_secs_f64();
    let metrics = admin_get(admin, "/metrics").await;
    let errors = metric(&metrics, series).unwrap();
    assert!(errors >= 1.0, "no accept error counted");
    // Backing off (5 ms doubling to 1 s): about 8 tries in the first
    // 1.3 s, one a second after that; a fixed short retry makes dozens.
    assert!(
        errors <= 10.0 + 2.0 * held,
        "{errors} accept errors in {held:.1} s: not backing off"
    );
    // Served again.
    let host = format!("127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(1),
            request(addr, None, "GET", "/v1/credentials", &[("host", &host)], ""),
        )
        .await;
        if matches!(r, Ok(Ok(ref r)) if r.status == 401) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never served again: {r:?}"
        );
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines = log
        .lines()
        .filter(|l| l.contains("cannot accept connections") && l.contains("credentials"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} accept-error lines for {errors} errors:\n{log}"
    );
    assert!(log.contains("accepting connections again"), "{log}");
}
