//! The `credagent` binary itself: CLI contract, exit codes, signals, and a
//! whole run at trace level checked for leaked secrets.

use std::process::{Command, Stdio};
use std::time::Duration;

use credagent_testkit::{Fault, StandIn};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{
    free_port, kubelet_swap, metric, mint, request, rs256_issuer, SECRET_ACCESS_KEY,
};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run credagent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_flag() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for word in ["sidecar", "demo", "--log-format"] {
        assert!(out.contains(word), "{word} missing from:\n{out}");
    }
    assert!(
        !out.lines().any(|l| l.trim_start().starts_with("stand-in")),
        "the test tool stays hidden"
    );
    let (code, out, _) = run(&["sidecar", "--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--token-file",
        "CREDAGENT_TOKEN_FILE",
        "--exchange-url",
        "CREDAGENT_EXCHANGE_URL",
        "--org-id",
        "CREDAGENT_ORG_ID",
        "--listen",
        "CREDAGENT_LISTEN",
        "--admin-listen",
        "CREDAGENT_ADMIN_LISTEN",
        "--auth-token-file",
        "CREDAGENT_AUTH_TOKEN_FILE",
        "--ca-file",
        "--log-format",
        "/var/run/secrets/tokens/oidc-token",
        "127.0.0.1:8181",
        "0.0.0.0:9464",
        "/var/run/credagent/auth-token",
    ] {
        assert!(
            out.contains(flag),
            "{flag} missing from sidecar --help:\n{out}"
        );
    }
    let (code, out, _) = run(&["demo", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("--listen"));
}

#[test]
fn invalid_config_exits_2_with_one_line_naming_the_flag() {
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec!["sidecar"], vec![], "--exchange-url"),
        (
            vec!["sidecar", "--org-id", "o", "--listen", "nope"],
            vec![],
            "--listen",
        ),
        (
            vec!["sidecar", "--org-id", "o", "--admin-listen", "1.2.3.4"],
            vec![],
            "--admin-listen",
        ),
        (
            vec!["sidecar", "--exchange-url", "http://api.example.com/x"],
            vec![],
            "--exchange-url",
        ),
        (
            vec!["sidecar", "--exchange-url", "not a url"],
            vec![],
            "--exchange-url",
        ),
        (vec!["sidecar", "--org-id", "a/b"], vec![], "--org-id"),
        (
            vec!["sidecar", "--org-id", "o", "--exchange-url", "https://a/b"],
            vec![],
            "--org-id",
        ),
        (
            vec!["sidecar", "--org-id", "o", "--refresh-fraction", "2"],
            vec![],
            "--refresh-fraction",
        ),
        (
            vec!["sidecar", "--org-id", "o", "--refresh-margin", "soon"],
            vec![],
            "--refresh-margin",
        ),
        (
            vec![
                "sidecar",
                "--org-id",
                "o",
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
            vec![],
            "--ca-file",
        ),
        (
            vec!["sidecar", "--org-id", "o", "--log-format", "xml"],
            vec![],
            "--log-format",
        ),
        (
            vec!["sidecar", "--org-id", "o"],
            vec![("CREDAGENT_LISTEN", "bad")],
            "--listen",
        ),
        (
            vec!["sidecar"],
            vec![("CREDAGENT_EXCHANGE_URL", "ftp://x/y")],
            "--exchange-url",
        ),
        (vec!["sidecar", "--no-such-flag"], vec![], "--no-such-flag"),
        (
            vec!["demo", "--rotate-every", "0s"],
            vec![],
            "--rotate-every",
        ),
    ];
    for (args, env, flag) in cases {
        let (code, out, err) = run(&args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {err}");
        assert!(out.is_empty(), "{args:?}: stdout {out}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got:\n{err}"
        );
        assert!(err.contains(flag), "{args:?}: {flag} not named in: {err}");
    }
}

#[test]
fn env_vars_configure_the_sidecar() {
    // A valid configuration entirely from the environment gets past
    // validation (and then fails to bind a taken port, with status 1).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth").display().to_string();
    let (code, _, err) = run(
        &["sidecar"],
        &[
            ("CREDAGENT_ORG_ID", "my-org"),
            ("CREDAGENT_LISTEN", &port),
            ("CREDAGENT_AUTH_TOKEN_FILE", &auth),
            ("CREDAGENT_LOG_FORMAT", "text"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&port) && err.contains("--listen"), "{err}");
}

#[tokio::test]
async fn a_full_run_leaks_no_secret_and_stops_cleanly_on_sigterm() {
    const SESSION: &str = "SeSsIoN-ToKeN-ThAt-MuSt-NoT-LeAk";
    let issuer = rs256_issuer();
    let shutdown = CancellationToken::new();
    let standin = StandIn::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        // 4 s: refreshed after 1 s, the least the agent waits (it is a real
        // process, in real time).
        crate::support::standin_config(&issuer, Duration::from_secs(4), SESSION),
        None,
        shutdown.clone(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("tokens");
    let mut tokens = vec![mint(&issuer, "app", Duration::from_secs(3600))];
    kubelet_swap(&volume, &tokens[0]);
    let auth_file = dir.path().join("auth-token");
    let (port, admin_port) = (free_port(), free_port());
    let child = tokio::process::Command::new(BIN)
        .args(["--log-level", "trace", "sidecar"])
        .arg("--token-file")
        .arg(volume.join("oidc-token"))
        .arg("--exchange-url")
        .arg(standin.url())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--auth-token-file")
        .arg(&auth_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let creds_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let admin_addr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let get = |addr, path: &'static str, auth: Option<String>| async move {
        let headers: Vec<(&str, String)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(addr, None, "GET", path, &headers, "").await
    };
    // Ready once the first exchange is done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = get(admin_addr, "/readyz", None).await {
            if r.status == 200 {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecar never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let auth = std::fs::read_to_string(&auth_file).unwrap();
    let mut seen = String::new();
    let ok = get(creds_addr, "/v1/credentials", Some(auth.clone()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["Token"], SESSION);
    for r in [
        get(creds_addr, "/v1/credentials", None).await.unwrap(),
        get(creds_addr, "/v1/credentials", Some(format!("{auth}0")))
            .await
            .unwrap(),
        get(creds_addr, "/other", Some(auth.clone())).await.unwrap(),
    ] {
        seen.push_str(&r.body);
    }
    // The upstream turns hostile: an answer that embeds the secret key in a
    // wrong-typed field, then rejections; the token rotates meanwhile.
    standin.set_sticky_fault(Some(Fault::Body {
        status: 200,
        body: format!(r#"{{"AccessKeyId":"A","SecretAccessKey":["{SECRET_ACCESS_KEY}"],"Token":"{SESSION}","Expiration":"x"}}"#),
    }));
    let calls = standin.calls();
    standin.wait_for_calls(calls + 1).await;
    standin.set_sticky_fault(Some(Fault::Status(401)));
    tokens.push(mint(&issuer, "app", Duration::from_secs(3600)));
    kubelet_swap(&volume, &tokens[1]);
    standin.wait_for_calls(calls + 3).await;
    standin.set_sticky_fault(None);
    let metrics = get(admin_addr, "/metrics", None).await.unwrap().body;
    assert!(
        metric(&metrics, r#"credagent_refreshes_total{result="malformed"}"#).unwrap() >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            r#"credagent_refreshes_total{result="auth_rejected"}"#
        )
        .unwrap()
            >= 1.0,
        "{metrics}"
    );
    seen.push_str(&metrics);

    // SIGTERM: drain, exit 0.
    assert!(crate::support::sigterm(child.id().unwrap()));
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits within the drain grace")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "exit status after SIGTERM");
    let logs =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("credentials refreshed"), "{logs}");
    assert!(
        logs.contains(
            r#""role":"https://oidc.standin.invalid/cluster:system:serviceaccount:default:app""#
        ),
        "{logs}"
    );
    assert!(logs.contains("projected token rotated"));
    for line in logs.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "JSON lines only: {line}"
        );
    }
    seen.push_str(&logs);
    let mut secrets: Vec<&str> = vec![SECRET_ACCESS_KEY, SESSION, auth.as_str()];
    secrets.extend(tokens.iter().map(String::as_str));
    // Also look for a distinctive slice of each token (its signature).
    let sigs: Vec<&str> = tokens
        .iter()
        .map(|t| t.rsplit('.').next().unwrap())
        .collect();
    secrets.extend(sigs);
    for s in secrets {
        assert!(
            !seen.contains(s),
            "secret leaked ({} bytes) into logs, metrics or error bodies",
            s.len()
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn the_demo_runs_refreshes_and_exits_cleanly() {
    let out = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--credential-lifetime",
            "4s",
            "--rotate-every",
            "1s",
            "--duration",
            // Two refresh periods: the least that shows a refresh and a
            // rotation (the demo is a real process, in real time).
            "2s",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("LOCAL STAND-IN"), "{stdout}");
    assert!(
        stdout.contains("export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="),
        "{stdout}"
    );
    assert!(stderr.contains("projected token rotated"), "{stderr}");
    // The POST exchange, keys tagged with the demo's Pod, each one audited.
    assert!(
        stdout.contains("exchange            POST, asking for 1h00m keys"),
        "{stdout}"
    );
    assert!(
        stdout.contains("k8s-service-account=demo-app") && stdout.contains("name=default/"),
        "{stdout}"
    );
    assert!(stderr.contains("access key issued"), "{stderr}");
    // 4 s credentials refresh every second or so: several exchanges in 2 s.
    let exchanges: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("credagent demo stopped; "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("summary line");
    assert!(exchanges >= 2, "{stdout}");
}

/// Issue 21: `--check-config` printed a password embedded in
/// `--exchange-url` (or a proxy URL); every URL's user-info is redacted.
#[test]
fn check_config_redacts_url_credentials() {
    for mode in ["sidecar", "node"] {
        let (code, out, err) = run(
            &[
                mode,
                "--exchange-url",
                "https://user:s3cretpw@api.example/v1/x/oidc/org",
                "--proxy",
                "http://proxyuser:pr0xypw@proxy.example:3128",
                "--check-config",
            ],
            &[],
        );
        assert_eq!(code, 0, "{mode}: {err}");
        assert!(
            !out.contains("s3cretpw") && !out.contains("pr0xypw"),
            "{mode}: {out}"
        );
        assert!(out.contains("***@api.example"), "{mode}: {out}");
    }
}

#[test]
fn key_lifetime_chooses_the_post_exchange_in_both_modes() {
    let (code, out, err) = run(
        &[
            "sidecar",
            "--org-id",
            "my-org",
            "--key-lifetime",
            "1h",
            "--key-attribute",
            "cluster=prod-1",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("url: \"https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc\"")
            && out.contains("method: Post { org_id: \"my-org\"")
            && out.contains("lifetime: 3600s")
            && out.contains("name: \"cluster\", value: \"prod-1\""),
        "{out}"
    );
    // The variables, a comma-separated list of attributes, and node mode;
    // an --exchange-url in the GET's form loses its final /ORG.
    let (code, out, err) = run(
        &["node", "--check-config"],
        &[
            (
                "CREDAGENT_EXCHANGE_URL",
                "https://cw.example/v1/x/oidc/org-2",
            ),
            ("CREDAGENT_KEY_LIFETIME", "12h"),
            ("CREDAGENT_KEY_ATTRIBUTE", "a=1,b=2"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("url: \"https://cw.example/v1/x/oidc\"")
            && out.contains("org_id: \"org-2\"")
            && out.contains("lifetime: 43200s")
            && out.contains("name: \"b\", value: \"2\""),
        "{out}"
    );
    // Without --key-lifetime: the GET, as before.
    let (_, out, _) = run(&["sidecar", "--org-id", "o", "--check-config"], &[]);
    assert!(
        out.contains("method: Get") && out.contains("oidc/o\""),
        "{out}"
    );
    for (args, flag) in [
        (&["--key-lifetime", "5m"][..], "--key-lifetime"),
        (&["--key-lifetime", "13h"], "--key-lifetime"),
        (&["--key-attribute", "a=b"], "--key-lifetime"),
        (
            &["--key-lifetime", "1h", "--key-attribute", "k8s-pod=x"],
            "--key-attribute",
        ),
        (
            &[
                "--key-lifetime",
                "1h",
                "--key-attribute",
                "a=1",
                "--key-attribute",
                "a=2",
            ],
            "--key-attribute",
        ),
    ] {
        let mut argv = vec!["sidecar", "--org-id", "o", "--check-config"];
        argv.extend_from_slice(args);
        let (code, _, err) = run(&argv, &[]);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.contains(flag) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let (code, _, err) = run(
        &[
            "sidecar",
            "--exchange-url",
            "https://h/org",
            "--key-lifetime",
            "1h",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--exchange-url") && err.contains("/ORG-ID"),
        "{err}"
    );
}

#[test]
fn check_config_validates_and_exits() {
    let (code, out, err) = run(&["sidecar", "--org-id", "my-org", "--check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("configuration ok") && out.contains("oidc/my-org"),
        "{out}"
    );
    let (code, out, _) = run(
        &["node", "--check-config"],
        &[
            ("CREDAGENT_ORG_ID", "my-org"),
            ("CREDAGENT_LISTEN", "169.254.170.23:80,[fd00:ec2::23]:80"),
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("[fd00:ec2::23]:80"), "{out}");
    let (code, _, err) = run(
        &[
            "node",
            "--org-id",
            "o",
            "--max-identities",
            "0",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--max-identities"), "{err}");
}

/// The commands `credagent demo` prints work as printed, with what a
/// newcomer has: curl, boto3 and the AWS CLI v1 as pip installs them.
#[tokio::test]
async fn the_demos_printed_commands_work() {
    use crate::tools::{self, require};
    use tokio::io::{AsyncBufReadExt, BufReader};
    let python = require!(tools::python());
    let curl_bin = require!(tools::curl());
    let venv_bin = python.parent().expect("venv bin").to_owned();
    let curl_dir = curl_bin.parent().expect("curl's directory").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut demo = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--duration", "60s", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut akid = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the demo prints its instructions")
        .unwrap()
    {
        if let Some(rest) = line.split("AccessKeyId=").nth(1) {
            akid = rest.split(',').next().map(str::to_owned);
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        printed.push(line);
    }
    let akid = akid.expect("the first credentials line");
    let block: Vec<&str> = printed
        .iter()
        .skip_while(|l| !l.starts_with("In another terminal"))
        .skip(1)
        .map(|l| l.as_str())
        .take_while(|l| l.is_empty() || l.starts_with("  "))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(block.len() >= 5, "{printed:#?}");
    let script = block
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n");
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/bin:/bin",
                venv_bin.display(),
                curl_dir.display()
            ),
        )
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{stdout}\n{stderr}");
    let mut outputs = stdout.lines();
    let curl: serde_json::Value =
        serde_json::from_str(outputs.next().unwrap_or("")).expect("curl prints the ECS JSON");
    assert_eq!(curl["AccessKeyId"], akid.as_str());
    assert_eq!(
        outputs.next(),
        Some(format!("container-role {akid}").as_str()),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("access_key") && l.contains("container-role")),
        "{stdout}"
    );
    let _ = demo.kill().await;
}
