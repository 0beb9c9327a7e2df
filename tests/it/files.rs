//! The files the agent is given, as an attacker (or a typo) would give
//! them: a FIFO, `/dev/zero`, a directory, a file of megabytes. Each is
//! refused at once with a message naming what it is, and SIGTERM still
//! ends the process (before, a FIFO hung start-up or the exit forever and
//! `/dev/zero` grew the process by gigabytes).
//!
//! Every child runs under a 2 GiB address-space limit, so the old
//! unbounded reads fail fast here instead of taking the machine's memory.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::support::{free_port, metric, request};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");

/// Longer than any of these processes needs (they answer in well under a
/// second); only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

/// `credagent ARGS` under `ulimit -v` (2 GiB).
fn credagent(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn mkfifo(path: &Path) -> PathBuf {
    assert!(std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success());
    path.to_owned()
}

async fn exits(child: Child) -> Output {
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("exits without hanging")
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The hostile files, each with the words the refusal must use.
fn hostile(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let big = dir.join("big");
    std::fs::write(&big, "x".repeat(64 * 1024)).unwrap();
    vec![
        (mkfifo(&dir.join("fifo")), "is a FIFO, not a regular file"),
        (
            "/dev/zero".into(),
            "is a character device, not a regular file",
        ),
        (dir.to_owned(), "is a directory, not a regular file"),
        (big, "is over the 4096-byte limit for an auth token"),
    ]
}

fn sidecar_args(token: &Path, auth: &Path) -> Vec<String> {
    let upstream = format!("http://127.0.0.1:{}/", free_port());
    vec![
        "sidecar".into(),
        "--token-file".into(),
        token.display().to_string(),
        "--exchange-url".into(),
        upstream,
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--admin-listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--auth-token-file".into(),
        auth.display().to_string(),
    ]
}

#[tokio::test]
async fn the_sidecar_refuses_an_auth_token_file_that_is_not_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    for (auth, why) in hostile(dir.path()) {
        let args = sidecar_args(&dir.path().join("token"), &auth);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = exits(credagent(&args).spawn().unwrap()).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", auth.display());
        assert!(
            err.contains(&format!("{} {why}", auth.display())),
            "{}: {err}",
            auth.display()
        );
    }
}

#[tokio::test]
async fn credential_process_refuses_them_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/v1/credentials", free_port());
    for (auth, why) in hostile(dir.path()) {
        let auth_arg = auth.display().to_string();
        let child = credagent(&[
            "credential-process",
            "--url",
            &url,
            "--auth-token-file",
            &auth_arg,
        ])
        .spawn()
        .unwrap();
        let out = exits(child).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{auth_arg}: {err}");
        assert!(err.contains(why), "{auth_arg}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// Waits until `GET /healthz` on `admin` answers 200.
async fn until_live(admin: &str, child: &mut Child) {
    let addr = admin.parse().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = request(addr, None, "GET", "/healthz", &[], "").await {
            if r.status == 200 {
                return;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        assert!(tokio::time::Instant::now() < deadline, "never live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigterm(child: Child) -> Output {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    exits(child).await
}

#[tokio::test]
async fn sigterm_ends_a_sidecar_whose_token_file_is_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let token = mkfifo(&dir.path().join("oidc-token"));
    let args = sidecar_args(&token, &dir.path().join("auth-token"));
    let admin = args[8].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = credagent(&args).spawn().unwrap();
    until_live(&admin, &mut child).await;
    // The source has given up on the FIFO (and logged why).
    let unreadable = r#"credagent_token_reloads_total{result="unreadable"}"#;
    let addr = admin.parse().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = request(addr, None, "GET", "/metrics", &[], "")
            .await
            .unwrap()
            .body;
        if metric(&text, unreadable).is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = sigterm(child).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
}

#[tokio::test]
async fn sigterm_ends_a_webhook_whose_certificate_is_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let cert = mkfifo(&dir.path().join("tls.crt"));
    let key = mkfifo(&dir.path().join("tls.key"));
    let admin = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut child = credagent(&[
        "webhook",
        "--sidecar-image",
        "example.com/credagent:1",
        "--org-id",
        "o",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--listen",
        &listen,
        "--admin-listen",
        &admin,
        "--shutdown-delay",
        "0s",
    ])
    .spawn()
    .unwrap();
    until_live(&admin, &mut child).await;
    let out = sigterm(child).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{cert} is a FIFO, not a regular file")),
        "{err}"
    );
}

/// `credential-process --url` to a plain-http host off loopback would send
/// the auth token in clear: refused as a bad flag (exit 2) before the
/// token file is even read, as the agent's own URLs are.
#[tokio::test]
async fn credential_process_sends_the_token_only_to_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth-token");
    std::fs::write(&auth, "Xq3vKZ0dM1pW-8sYtR6cHe_L2nJ9uBfA4gVx7oEiQkU").unwrap();
    let auth = auth.display().to_string();
    for url in [
        "http://10.1.2.3:8181/v1/credentials",
        "http://agent.example:8181/v1/credentials",
    ] {
        let child = credagent(&[
            "credential-process",
            "--url",
            url,
            "--auth-token-file",
            &auth,
        ])
        .spawn()
        .unwrap();
        let out = exits(child).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("--url") && err.contains("only to a loopback host"),
            "{url}: {err}"
        );
    }
}
