//! The key lifetime the webhook injects (`--key-lifetime`, `--key-attribute`,
//! a Pod's `credagent.io/key-lifetime`), end to end: Pods admitted over
//! HTTPS, each injected sidecar run as the binary with exactly its injected
//! arguments and environment, and what it asks the stand-in for: the POST
//! with the Pod's lifetime and the webhook's attributes, or (`off`) the GET.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::{free_port, kubelet_swap, mint, request, rs256_issuer, ACCESS_KEY_ID};
use crate::webhook::{env_of, fixture, injected_args, patched, WebhookRig};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_sidecars_ask_for_the_pods_key_lifetime() {
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let standin = crate::support::hour_standin(&issuer, &shutdown).await;
    let (port, admin_port) = (free_port(), free_port());
    let rig = WebhookRig::start(
        &[
            "--sidecar-image",
            "registry.example.com/credagent:test",
            // The GET's form: the POST goes to it without the final /ORG.
            "--exchange-url",
            &standin.url(),
            "--key-lifetime",
            "1h",
            "--key-attribute",
            "cluster=prod-1",
            "--sidecar-port",
            &port.to_string(),
            "--sidecar-admin-port",
            &admin_port.to_string(),
        ],
        None,
    )
    .await;

    // credagent.io/key-lifetime: "90m" over the webhook's 1h.
    let pod = admit(&rig, "key-lifetime.json").await;
    run_sidecar(
        &rig,
        &pod,
        &mint(&issuer, "keys", Duration::from_secs(3600)),
        "post",
    )
    .await;
    assert_eq!((standin.calls_post(), standin.calls_get()), (1, 0));
    let asked = standin.last_post().expect("a well-formed POST");
    assert_eq!(asked.duration_seconds, 5400);
    assert_eq!(asked.org_id, "org");
    assert_eq!(asked.attributes["cluster"], "prod-1");
    assert_eq!(asked.attributes["k8s-service-account"], "keys");

    // credagent.io/key-lifetime: "off": the GET, no attributes.
    let pod = admit(&rig, "key-lifetime-off.json").await;
    run_sidecar(
        &rig,
        &pod,
        &mint(&issuer, "get", Duration::from_secs(3600)),
        "get",
    )
    .await;
    assert_eq!((standin.calls_post(), standin.calls_get()), (1, 1));
    assert_eq!(standin.successes(), 2);

    rig.stop().await;
    shutdown.cancel();
}

/// The fixture's Pod, patched with the webhook's answer.
async fn admit(rig: &WebhookRig, name: &str) -> Value {
    let review = fixture(name);
    let answer = rig.client().await.review(review.clone()).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    patched(&review, &answer)
}

/// Runs the Pod's injected sidecar as kubelet would (its args and env only,
/// its two volumes mapped to directories under `tag`) until its startupProbe
/// passes, then asks it for credentials and stops it.
async fn run_sidecar(rig: &WebhookRig, pod: &Value, token: &str, tag: &str) {
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "credagent");
    let token_dir = rig.dir.path().join(tag).join("token");
    let auth_dir = rig.dir.path().join(tag).join("auth");
    std::fs::create_dir_all(&auth_dir).unwrap();
    kubelet_swap(&token_dir, token);
    let dirs = [
        ("/var/run/secrets/credagent", token_dir.as_path()),
        ("/var/run/credagent", auth_dir.as_path()),
    ];
    let args = injected_args(sidecar, &dirs);
    let log = rig.dir.path().join(format!("{tag}.log"));
    let mut child = tokio::process::Command::new(BIN)
        .args(&args)
        .env_clear()
        .envs(env_of(sidecar))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the sidecar starts");
    let probe = &sidecar["startupProbe"]["httpGet"];
    let admin = format!("127.0.0.1:{}", probe["port"]).parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !request(admin, None, "GET", "/readyz", &[], "")
        .await
        .is_ok_and(|r| r.status == 200)
    {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{tag}: the sidecar exited ({status}) with {args:?}: {log}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tag}: never ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the apps get, with the auth token the sidecar wrote.
    let url: http::Uri = env_of(&pod["spec"]["containers"][0])
        .into_iter()
        .find(|(k, _)| k == "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .map(|(_, v)| v.parse().unwrap())
        .expect("the app's credentials URL");
    let auth = std::fs::read_to_string(auth_dir.join("auth-token")).unwrap();
    let addr = url.authority().unwrap().as_str().parse().unwrap();
    let rsp = request(
        addr,
        None,
        "GET",
        url.path(),
        &[("authorization", &auth)],
        "",
    )
    .await
    .expect("an answer");
    assert_eq!(rsp.status, 200, "{tag}");
    assert!(rsp.body.contains(ACCESS_KEY_ID), "{tag}: {}", rsp.body);
    child.kill().await.unwrap();
}

/// `credagent webhook --check-config` with the variables: what it will
/// inject, or one line naming the flag.
#[test]
fn check_config_reads_the_variables() {
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(BIN)
            .args(["webhook", "--sidecar-image", "credagent:1", "--org-id", "o"])
            .arg("--check-config")
            .env_remove("CREDAGENT_KEY_LIFETIME")
            .env_remove("CREDAGENT_KEY_ATTRIBUTE")
            .envs(env.iter().copied())
            .output()
            .expect("run credagent");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        ("CREDAGENT_KEY_LIFETIME", "2h"),
        ("CREDAGENT_KEY_ATTRIBUTE", "cluster=prod-1,team=ml"),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(r#"key_lifetime: Some(7200s), key_attributes: [KeyAttribute { name: "cluster", value: "prod-1" }, KeyAttribute { name: "team", value: "ml" }]"#),
        "{out}"
    );
    let (code, out, _) = run(&[]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("key_lifetime: None, key_attributes: []"),
        "{out}"
    );
    for (env, flag) in [
        (("CREDAGENT_KEY_LIFETIME", "13h"), "--key-lifetime"),
        (("CREDAGENT_KEY_ATTRIBUTE", "k8s-pod=x"), "--key-attribute"),
    ] {
        let (code, out, err) = run(&[env]);
        assert_eq!(code, Some(2), "{env:?}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: invalid value for {flag}")),
            "{err}"
        );
    }
}
