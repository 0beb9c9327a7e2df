//! Log hygiene, through the binary: a token's unverified claims cannot
//! forge a log line or an escape code in either log format, and no log
//! line shows the user-info of a URL.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::process::Command;

use crate::support::{free_port, kubelet_swap, metric, request, rs256_issuer, AUDIENCE};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");
const FORGED: &str = "app\n{\"level\":\"ERROR\",\"message\":\"pwned\"}\u{1b}[31m";
const PASSWORD: &str = "pA55w0rd-in-the-url";

/// Runs a sidecar in `format` on a token whose `sub` is [`FORGED`], until
/// it has loaded the token; returns what it logged.
async fn logs_of_a_forged_token(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = rs256_issuer()
        .mint(&json!({
            "iss": "https://issuer.example\r\nforged: yes",
            "sub": FORGED,
            "aud": [AUDIENCE],
            "iat": now,
            "exp": now + 3600,
        }))
        .unwrap();
    kubelet_swap(&dir.path().join("tokens"), &token);
    let admin = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .args(["--log-format", format, "sidecar", "--token-file"])
        .arg(dir.path().join("tokens/oidc-token"))
        .arg("--exchange-url")
        .arg(format!("http://user:{PASSWORD}@127.0.0.1:{}/", free_port()))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &admin])
        .arg("--auth-token-file")
        .arg(dir.path().join("auth-token"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = admin.parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = request(addr, None, "GET", "/metrics", &[], "").await {
            if metric(
                &r.body,
                r#"credagent_token_reloads_total{result="updated"}"#,
            ) == Some(1.0)
            {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "token never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn one_line_with_visible_escapes(format: &str, newline: &str, escape: &str) {
    let logs = logs_of_a_forged_token(format).await;
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("pwned")).collect();
    assert_eq!(lines.len(), 1, "{format}: {logs}");
    let line = lines[0];
    assert!(line.contains("projected token loaded"), "{line}");
    assert!(
        line.contains(&format!("app{newline}{{")) && line.contains(&format!("}}{escape}[31m")),
        "{format}: the escapes are not visible in {line:?}"
    );
    // (The text format colours its own output; the forged code is not.)
    assert!(
        !line.contains("}\u{1b}[31m"),
        "{format}: the raw escape code in {line:?}"
    );
    assert!(
        !logs.lines().any(|l| l.starts_with("forged")),
        "{format}: {logs}"
    );
    assert!(!logs.contains(PASSWORD), "{format}: {logs}");
    assert!(logs.contains("***@127.0.0.1"), "{format}: {logs}");
}

#[tokio::test]
async fn a_forged_sub_is_one_escaped_line_in_text_logs() {
    one_line_with_visible_escapes("text", r"\n", r"\x1b").await;
}

#[tokio::test]
async fn a_forged_sub_is_one_escaped_line_in_json_logs() {
    // JSON escapes the backslash of the escape once more.
    one_line_with_visible_escapes("json", r"\\n", r"\\x1b").await;
}
