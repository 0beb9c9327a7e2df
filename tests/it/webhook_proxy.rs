//! The proxy the webhook gives injected sidecars (`--sidecar-https-proxy`,
//! `--sidecar-no-proxy`), end to end: a Pod admitted over HTTPS, its
//! sidecar run as the binary with exactly the injected arguments and
//! environment (nothing inherited), reaching a stand-in that only the
//! proxy can resolve (tinyproxy, see `tinyproxy.rs`); the apps get no
//! proxy variable. And the binary's `webhook --check-config`: it reports
//! the setting, and refuses a URL with credentials without repeating them.

use std::process::Command;
use std::time::Duration;

use credagent_testkit::StandIn;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{
    free_port, kubelet_swap, mint, request, rs256_issuer, standin_config, test_pki_for,
};
use crate::tinyproxy::{ProxyOptions, Tinyproxy, STANDIN_HOST};
use crate::tools::{self, require};
use crate::webhook::{env_of, fixture, injected_args, patched, WebhookRig};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");
const NO_PROXY: &str = ".svc,.cluster.local,10.96.0.0/12";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injected_sidecar_reaches_the_upstream_through_the_configured_proxy() {
    require!(tools::tinyproxy());
    let proxy = Tinyproxy::start(ProxyOptions::default()).await;
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let pki = test_pki_for(&[STANDIN_HOST]);
    let standin = StandIn::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        standin_config(&issuer, Duration::from_secs(3600), ""),
        Some(pki.server.clone()),
        shutdown.child_token(),
    )
    .unwrap();
    // A name only the proxy resolves: reaching it proves the proxy was used.
    let upstream = standin.url().replacen("127.0.0.1", STANDIN_HOST, 1);
    let target = format!("{STANDIN_HOST}:{}", standin.local_addr().port());
    let (port, admin_port) = (free_port(), free_port());
    let rig = WebhookRig::start(
        &[
            "--sidecar-image",
            "registry.example.com/credagent:test",
            "--exchange-url",
            &upstream,
            "--sidecar-https-proxy",
            &proxy.url(),
            // Spaces around entries are dropped, as the sidecar drops them.
            "--sidecar-no-proxy",
            " .svc, .cluster.local ,10.96.0.0/12",
            "--sidecar-port",
            &port.to_string(),
            "--sidecar-admin-port",
            &admin_port.to_string(),
        ],
        None,
    )
    .await;
    let review = fixture("deployment-pod.json");
    let answer = rig.client().await.review(review.clone()).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let pod = patched(&review, &answer);

    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "credagent");
    let proxy_url = proxy.url();
    assert_eq!(
        env_of(sidecar),
        [
            ("HTTPS_PROXY".to_owned(), proxy_url.clone()),
            ("NO_PROXY".to_owned(), NO_PROXY.to_owned()),
        ]
    );
    let others = pod["spec"]["initContainers"].as_array().unwrap()[1..]
        .iter()
        .chain(pod["spec"]["containers"].as_array().unwrap());
    for c in others {
        let names: Vec<String> = env_of(c).into_iter().map(|(k, _)| k).collect();
        assert!(names.iter().any(|k| k.starts_with("AWS_CONTAINER_")), "{c}");
        assert!(
            !names
                .iter()
                .any(|k| k.to_ascii_uppercase().ends_with("_PROXY")),
            "{}: {names:?}",
            c["name"]
        );
    }

    // The sidecar as kubelet would run it: its args and env only, the two
    // volumes mapped to directories here, and the test CA for the stand-in.
    let token_dir = rig.dir.path().join("pod/token");
    let auth_dir = rig.dir.path().join("pod/auth");
    std::fs::create_dir_all(&auth_dir).unwrap();
    kubelet_swap(
        &token_dir,
        &mint(&issuer, "trainer", Duration::from_secs(3600)),
    );
    let ca_file = rig.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let dirs = [
        ("/var/run/secrets/credagent", token_dir.as_path()),
        ("/var/run/credagent", auth_dir.as_path()),
    ];
    let args = injected_args(sidecar, &dirs);
    let log = rig.dir.path().join("sidecar.log");
    let mut child = tokio::process::Command::new(BIN)
        .args(&args)
        .env_clear()
        .envs(env_of(sidecar))
        .env("CREDAGENT_CA_FILE", &ca_file)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the sidecar starts");
    let probe = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !request(probe, None, "GET", "/readyz", &[], "")
        .await
        .is_ok_and(|r| r.status == 200)
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the sidecar exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(proxy.connects(), [target], "{}", proxy.log());
    assert_eq!(standin.successes(), 1, "one exchange, through the proxy");

    child.kill().await.unwrap();
    rig.stop().await;
    shutdown.cancel();
}

fn webhook(env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["webhook", "--sidecar-image", "credagent:1", "--org-id", "o"])
        .arg("--check-config")
        .env_remove("CREDAGENT_SIDECAR_HTTPS_PROXY")
        .env_remove("CREDAGENT_SIDECAR_NO_PROXY")
        .envs(env.iter().copied());
    let out = cmd.output().expect("run credagent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_reports_the_sidecar_proxy_and_refuses_credentials_unrepeated() {
    let (code, out, err) = webhook(&[
        ("CREDAGENT_SIDECAR_HTTPS_PROXY", "proxy.corp.example:3128"),
        ("CREDAGENT_SIDECAR_NO_PROXY", ".svc, 10.96.0.0/12"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configuration ok"), "{out}");
    for want in [
        r#"sidecar_https_proxy: Some("http://proxy.corp.example:3128")"#,
        r#"sidecar_no_proxy: Some(".svc,10.96.0.0/12")"#,
    ] {
        assert!(out.contains(want), "{want} not in {out}");
    }
    let (code, out, _) = webhook(&[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("sidecar_https_proxy: None, sidecar_no_proxy: None"),
        "{out}"
    );

    for (env, flag, why) in [
        (
            (
                "CREDAGENT_SIDECAR_HTTPS_PROXY",
                "http://egress:S3cr3t-Pr0xy@proxy:3128",
            ),
            "--sidecar-https-proxy",
            "readable by anyone who can read Pods",
        ),
        (
            (
                "CREDAGENT_SIDECAR_HTTPS_PROXY",
                "https://egress:S3cr3t-Pr0xy@proxy",
            ),
            "--sidecar-https-proxy",
            "TLS to the proxy",
        ),
        (
            ("CREDAGENT_SIDECAR_NO_PROXY", ".svc,internal corp"),
            "--sidecar-no-proxy",
            "entry 2 contains ' '",
        ),
    ] {
        let (code, out, err) = webhook(&[env]);
        assert_eq!(code, 2, "{env:?}: {err}");
        assert!(out.is_empty(), "{env:?}: {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            err.starts_with(&format!("error: invalid value for {flag}: ")),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("S3cr3t-Pr0xy"), "{err}");
    }
}
