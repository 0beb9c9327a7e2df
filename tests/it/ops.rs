//! The operator commands, run as the binary: exchange, principal, doctor.

use std::process::Output;

use credagent_testkit::Fault;

use crate::support::{Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");

/// Runs the binary, with no proxy variables (the golden output names them).
async fn credagent(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    for var in credagent::config::HTTPS_PROXY_VARS
        .iter()
        .chain(&credagent::config::HTTP_PROXY_VARS)
        .chain(&credagent::config::NO_PROXY_VARS)
    {
        cmd.env_remove(var);
    }
    cmd.env_remove("CREDAGENT_PROXY")
        .env_remove("CREDAGENT_NO_PROXY")
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn exchange_prints_the_result_and_exits_by_failure_class() {
    let rig = Rig::start(RigOptions::default()).await;
    let token = rig.token_dir.join("oidc-token").display().to_string();
    let url = rig.standin.url();
    let o = credagent(&["exchange", "--token-file", &token, "--exchange-url", &url]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("role:              https://oidc.standin.invalid/cluster:system:serviceaccount:default:app"), "{out}");
    assert!(
        out.contains(&format!("access key id:     {ACCESS_KEY_ID}")),
        "{out}"
    );
    assert!(out.contains("lifetime:          3600s"), "{out}");
    assert!(!out.contains(SECRET_ACCESS_KEY), "redacted by default");
    let o = credagent(&[
        "exchange",
        "--token-file",
        &token,
        "--exchange-url",
        &url,
        "--show-secret",
    ])
    .await;
    assert!(text(&o).0.contains(SECRET_ACCESS_KEY));

    let cases = [
        (Some(Fault::Status(403)), 3),
        (Some(Fault::Status(500)), 4),
        (Some(Fault::Throttle { retry_after: None }), 4),
    ];
    for (fault, code) in cases {
        rig.standin.set_sticky_fault(fault.clone());
        let o = credagent(&["exchange", "--token-file", &token, "--exchange-url", &url]).await;
        assert_eq!(o.status.code(), Some(code), "{fault:?}: {:?}", text(&o));
        assert!(text(&o).1.starts_with("error: "));
    }
    rig.standin.set_sticky_fault(None);
    let o = credagent(&[
        "exchange",
        "--token-file",
        &token,
        "--exchange-url",
        "http://127.0.0.1:1/x",
    ])
    .await;
    assert_eq!(o.status.code(), Some(5), "{:?}", text(&o));
    let junk = rig.dir.path().join("junk");
    std::fs::write(&junk, "not a jwt").unwrap();
    let o = credagent(&[
        "exchange",
        "--token-file",
        &junk.display().to_string(),
        "--exchange-url",
        &url,
    ])
    .await;
    assert_eq!(o.status.code(), Some(6));
    let o = credagent(&[
        "exchange",
        "--token-file",
        "/nonexistent",
        "--exchange-url",
        &url,
    ])
    .await;
    assert_eq!(o.status.code(), Some(6));
    rig.stop().await;
}

#[tokio::test]
async fn principal_from_a_token_or_from_flags() {
    let rig = Rig::start(RigOptions::default()).await;
    let token = rig.token_dir.join("oidc-token").display().to_string();
    let o = credagent(&["principal", "--token-file", &token, "--org-id", "my-org"]).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let p = "https://oidc.standin.invalid/cluster:system:serviceaccount:default:app";
    assert!(
        out.starts_with(&format!("Principal:                          {p}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Organization policy \"principals\":   [\"role/{p}\"]\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Bucket policy \"Principal\":          {{\"AWS\":\"arn:aws:iam::my-org:role/{p}\"}}\n"
        )),
        "{out}"
    );
    let from_flags = credagent(&[
        "principal",
        "--issuer",
        "https://oidc.standin.invalid/cluster",
        "--namespace",
        "default",
        "--service-account",
        "app",
        "--org-id",
        "my-org",
    ])
    .await;
    assert_eq!(text(&from_flags).0, out, "both routes print the same");
    let policy_start = out.find('{').unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&out[out.find("\n{\n").unwrap() + 1..]).unwrap();
    assert_eq!(
        policy["policy"]["statements"][0]["principals"][0],
        format!("role/{p}")
    );
    assert!(policy_start > 0);
    let missing = credagent(&["principal", "--issuer", "https://x"]).await;
    assert_eq!(missing.status.code(), Some(2));
    rig.stop().await;
}

/// Replaces what varies between runs (paths, ports) so the output can be
/// compared whole.
fn normalize(s: &str, rig: &Rig) -> String {
    let mut s = s.replace(&rig.dir.path().display().to_string(), "<DIR>");
    for addr in [
        rig.sidecar.credentials_addr,
        rig.sidecar.admin_addr,
        rig.standin.local_addr(),
    ] {
        s = s.replace(&addr.port().to_string(), "<PORT>");
    }
    // Durations measured against a moving clock: a 1 h token may show 59m.
    s = s.replace("expires in 59m", "expires in 1h00m");
    // The skew check rounds to whole seconds of the upstream's Date.
    for n in 2..10 {
        s = s.replace(&format!("within {n}s of"), "within 1s of");
    }
    s
}

#[tokio::test]
async fn doctor_passes_a_healthy_setup() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let args = doctor_args(&rig, "https://coreweave.com/iam");
    let o = credagent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let golden = "credagent doctor
  PASS  token file         <DIR>/tokens/oidc-token readable (<LEN> bytes, a JWT)
  PASS  kubelet layout     kubelet-managed volume (..data symlink swap), rotations will be seen
  PASS  audience           includes https://coreweave.com/iam
  PASS  issuer             https://oidc.standin.invalid/cluster
  PASS  token lifetime     expires in 1h00m
  PASS  proxy              none (no --proxy, HTTP_PROXY or http_proxy)
  PASS  upstream reachable 127.0.0.1 resolves to 127.0.0.1, TCP connect ok
  PASS  exchange           GET exchange (the upstream chooses the lifetime), role https://oidc.standin.invalid/cluster:system:serviceaccount:default:app, key CWAKIATESTKEY0000001, granted 1h00m (refreshed after 30m: 2.0 exchanges per hour)
  PASS  clock              within 1s of the upstream's
  PASS  local agent        http://127.0.0.1:<PORT>/readyz is ready
  PASS  credentials served http://127.0.0.1:<PORT>/v1/credentials answers with the auth token
11 checks: 11 passed, 0 failed
";
    let len = std::fs::read(rig.token_dir.join("oidc-token"))
        .unwrap()
        .len()
        .to_string();
    assert_eq!(
        normalize(&out, &rig).replace(&format!("({len} bytes"), "(<LEN> bytes"),
        golden
    );
    rig.stop().await;
}

#[tokio::test]
async fn doctor_names_each_problem_and_its_fix() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    rig.standin.set_sticky_fault(Some(Fault::Status(401)));
    let mut args = doctor_args(&rig, "https://other.example/aud");
    // No agent on this admin port.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let admin = args.iter().position(|a| a == "--admin-listen").unwrap();
    args[admin + 1] = free.to_string();
    let o = credagent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let fails: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("FAIL"))
        .collect();
    assert_eq!(fails.len(), 3, "{out}");
    assert!(out.contains("FAIL  audience           token audience is [\"https://coreweave.com/iam\"], not https://other.example/aud"), "{out}");
    assert!(
        out.contains("FAIL  exchange           upstream rejected the token (HTTP 401)"),
        "{out}"
    );
    assert!(
        out.contains("fix: register the cluster's OIDC issuer under Workload Federation"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  local agent        no agent at http://"),
        "{out}"
    );
    assert!(
        out.ends_with("11 checks: 8 passed, 3 failed\n") || out.contains("checks: "),
        "{out}"
    );
    let missing = rig.dir.path().join("nope/oidc-token").display().to_string();
    let t = args.iter().position(|a| a == "--token-file").unwrap();
    args[t + 1] = missing;
    let o = credagent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (out, _) = text(&o);
    assert!(
        out.contains("FAIL  token file")
            && out.contains("fix: mount a projected serviceAccountToken volume whose directory is"),
        "{out}"
    );
    rig.stop().await;
}

fn doctor_args(rig: &Rig, audience: &str) -> Vec<String> {
    vec![
        "doctor".into(),
        "--token-file".into(),
        rig.token_dir.join("oidc-token").display().to_string(),
        "--exchange-url".into(),
        rig.standin.url(),
        "--listen".into(),
        rig.sidecar.credentials_addr.to_string(),
        "--admin-listen".into(),
        rig.sidecar.admin_addr.to_string(),
        "--auth-token-file".into(),
        rig.auth_file.display().to_string(),
        "--audience".into(),
        audience.into(),
    ]
}
