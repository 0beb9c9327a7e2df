//! The other serving surfaces, each proven with botocore's own provider:
//! IMDSv2 emulation, credential_process, and the shared credentials file.

use std::time::Duration;

use credagent::config::FileSinkConfig;
use credagent::config::ImdsConfig;

use crate::paused::off_clock;
use crate::support::{
    botocore_json, request, until, Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY,
};
use crate::tools::{self, require};

const PRINT_CREDENTIALS: &str = r#"
import json, botocore.session
c = botocore.session.get_session().get_credentials()
f = c.get_frozen_credentials()
print(json.dumps({"method": c.method, "access_key": f.access_key, "secret_key": f.secret_key, "token": f.token}))
"#;

fn imds_options(allow_v1: bool) -> RigOptions {
    RigOptions {
        imds: Some((
            "127.0.0.1:0".parse().unwrap(),
            ImdsConfig {
                allow_v1,
                region: Some("US-EAST-04A".into()),
            },
        )),
        ..RigOptions::default()
    }
}

/// On a paused clock (the session tokens' TTL is on it), requests off it.
#[tokio::test(start_paused = true)]
async fn imds_v2_protocol() {
    let rig = Rig::start(RigOptions {
        paused: true,
        ..imds_options(false)
    })
    .await;
    rig.sidecar.store.wait_servable().await;
    let addr = rig.sidecar.imds_addr.expect("imds listener");
    let get = |path: &'static str, headers: Vec<(&'static str, String)>| {
        off_clock(async move {
            let host = addr.to_string();
            let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.push(("host", &host));
            let method = if path == "/latest/api/token" {
                "PUT"
            } else {
                "GET"
            };
            request(addr, None, method, path, &h, "").await.unwrap()
        })
    };
    // No TTL header, a zero TTL or one over 6 h: 400.
    for ttl in [None, Some("0"), Some("21601"), Some("x")] {
        let headers = ttl
            .map(|t| vec![("x-aws-ec2-metadata-token-ttl-seconds", t.to_owned())])
            .unwrap_or_default();
        assert_eq!(
            get("/latest/api/token", headers).await.status,
            400,
            "{ttl:?}"
        );
    }
    let token = get(
        "/latest/api/token",
        vec![("x-aws-ec2-metadata-token-ttl-seconds", "60".into())],
    )
    .await;
    assert_eq!(token.status, 200);
    assert_eq!(token.headers["x-aws-ec2-metadata-token-ttl-seconds"], "60");
    let session = vec![("x-aws-ec2-metadata-token", token.body.clone())];
    // IMDSv1 (no token) and a wrong token are refused.
    assert_eq!(
        get("/latest/meta-data/iam/security-credentials/", vec![])
            .await
            .status,
        401
    );
    assert_eq!(
        get(
            "/latest/meta-data/iam/security-credentials/",
            vec![("x-aws-ec2-metadata-token", "nope".into())]
        )
        .await
        .status,
        401
    );
    let role = get(
        "/latest/meta-data/iam/security-credentials/",
        session.clone(),
    )
    .await;
    assert_eq!((role.status, role.body.as_str()), (200, "credagent"));
    let creds = get(
        "/latest/meta-data/iam/security-credentials/credagent",
        session.clone(),
    )
    .await;
    assert_eq!(creds.status, 200);
    let v = creds.json();
    assert_eq!(v["Code"], "Success");
    assert_eq!(v["Type"], "AWS-HMAC");
    assert_eq!(v["AccessKeyId"], ACCESS_KEY_ID);
    assert_eq!(v["SecretAccessKey"], SECRET_ACCESS_KEY);
    assert!(v["LastUpdated"].as_str().unwrap().ends_with('Z'));
    assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));
    let region = get("/latest/meta-data/placement/region", session.clone()).await;
    assert_eq!((region.status, region.body.as_str()), (200, "US-EAST-04A"));
    assert_eq!(
        get(
            "/latest/meta-data/iam/security-credentials/other",
            session.clone()
        )
        .await
        .status,
        404
    );
    // X-Forwarded-For is refused, token or not.
    let mut forwarded = session.clone();
    forwarded.push(("x-forwarded-for", "203.0.113.9".into()));
    assert_eq!(
        get("/latest/meta-data/iam/security-credentials/", forwarded)
            .await
            .status,
        403
    );
    let mut forwarded_put = vec![("x-aws-ec2-metadata-token-ttl-seconds", "60".to_owned())];
    forwarded_put.push(("x-forwarded-for", "203.0.113.9".into()));
    assert_eq!(get("/latest/api/token", forwarded_put).await.status, 403);
    // The TTL is honoured (a 1 s token expires).
    let short = get(
        "/latest/api/token",
        vec![("x-aws-ec2-metadata-token-ttl-seconds", "1".into())],
    )
    .await;
    let short = vec![("x-aws-ec2-metadata-token", short.body)];
    assert_eq!(
        get("/latest/meta-data/placement/region", short.clone())
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get("/latest/meta-data/placement/region", short)
            .await
            .status,
        401
    );
    rig.stop().await;
}

#[tokio::test]
async fn imds_v1_only_when_allowed() {
    let rig = Rig::start(imds_options(true)).await;
    rig.sidecar.store.wait_servable().await;
    let addr = rig.sidecar.imds_addr.unwrap();
    let rsp = request(
        addr,
        None,
        "GET",
        "/latest/meta-data/iam/security-credentials/credagent",
        &[("host", &addr.to_string())],
        "",
    )
    .await
    .unwrap();
    assert_eq!(rsp.status, 200);
    rig.stop().await;
}

#[tokio::test]
async fn botocore_instance_metadata_provider() {
    require!(tools::python());
    let rig = Rig::start(imds_options(false)).await;
    rig.sidecar.store.wait_servable().await;
    let endpoint = format!("http://{}/", rig.sidecar.imds_addr.unwrap());
    let v = botocore_json(
        PRINT_CREDENTIALS,
        rig.dir.path(),
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)],
    )
    .await;
    assert_eq!(v["method"], "iam-role", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    assert_eq!(v["secret_key"], SECRET_ACCESS_KEY);
    rig.stop().await;
}

#[tokio::test]
async fn botocore_credential_process_profile() {
    require!(tools::python());
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let config = rig.dir.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[default]\ncredential_process = {} credential-process --url http://{}/v1/credentials --auth-token-file {}\n",
            env!("CARGO_BIN_EXE_credagent"),
            rig.sidecar.credentials_addr,
            rig.auth_file.display()
        ),
    )
    .unwrap();
    let v = botocore_json(
        PRINT_CREDENTIALS,
        rig.dir.path(),
        &[("AWS_CONFIG_FILE", config.display().to_string())],
    )
    .await;
    assert_eq!(v["method"], "custom-process", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    assert_eq!(v["secret_key"], SECRET_ACCESS_KEY);

    // Direct: the JSON shape, and one stderr line with status 1 on failure.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
        .args([
            "credential-process",
            "--url",
            &format!("http://{}/v1/credentials", rig.sidecar.credentials_addr),
        ])
        .arg("--auth-token-file")
        .arg(&rig.auth_file)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Version",
            "AccessKeyId",
            "SecretAccessKey",
            "SessionToken",
            "Expiration"
        ]
    );
    assert_eq!(v["Version"], 1);
    let wrong = rig.dir.path().join("wrong");
    std::fs::write(&wrong, "nope").unwrap();
    for (url, auth, want) in [
        (
            format!("http://{}/v1/credentials", rig.sidecar.credentials_addr),
            &wrong,
            "401",
        ),
        (
            "http://127.0.0.1:1/v1/credentials".to_owned(),
            &rig.auth_file,
            "cannot reach",
        ),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
            .args(["credential-process", "--url", &url, "--auth-token-file"])
            .arg(auth)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
        assert!(out.stdout.is_empty());
    }
    rig.stop().await;
}

/// On a paused clock: the refresh after 1 s takes no time; botocore runs
/// off that clock.
#[tokio::test(start_paused = true)]
async fn botocore_shared_file_provider_follows_refreshes() {
    require!(tools::python());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aws/credentials");
    let rig = Rig::start(RigOptions {
        paused: true,
        lifetime: Duration::from_secs(4),
        credentials_file: Some(FileSinkConfig {
            path: file.clone(),
            profile: "app".into(),
        }),
        credential_process_dir: None,
        ..RigOptions::default()
    })
    .await;
    rig.sidecar.store.wait_servable().await;
    until("the credentials file", || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.contains(ACCESS_KEY_ID))
    })
    .await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let env = [
        ("AWS_SHARED_CREDENTIALS_FILE", file.display().to_string()),
        ("AWS_PROFILE", "app".to_owned()),
    ];
    let v = botocore_json(PRINT_CREDENTIALS, dir.path(), &env).await;
    assert_eq!(v["method"], "shared-credentials-file", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    // The upstream rotates keys; the next refresh rewrites the file.
    rig.standin
        .set_keys("CWAKIAROTATED0000002", "rotated-secret", "");
    until("the rotated keys in the file", || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.contains("CWAKIAROTATED0000002"))
    })
    .await;
    let v = botocore_json(PRINT_CREDENTIALS, dir.path(), &env).await;
    assert_eq!(v["access_key"], "CWAKIAROTATED0000002");
    assert_eq!(v["secret_key"], "rotated-secret");
    // Only the file itself remains in its directory: no temporary files.
    assert_eq!(
        std::fs::read_dir(file.parent().unwrap()).unwrap().count(),
        1
    );
    rig.stop().await;
}

/// `--credential-process-dir`: the binary copy and the profile are in place
/// before the agent is ready, botocore configured by nothing but
/// `AWS_CONFIG_FILE` gets the credentials through them, and they come back
/// when removed.
#[tokio::test]
async fn credential_process_dir_serves_a_profile_only_client() {
    require!(tools::python());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let issuer = crate::support::rs256_issuer();
    let standin = crate::support::hour_standin(&issuer, &shutdown).await;
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    crate::support::kubelet_swap(
        &tokens,
        &crate::support::mint(&issuer, "app", Duration::from_secs(3600)),
    );
    let shared = tmp.path().join("shared");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, admin) = (free(), free());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
        .args(["sidecar", "--exchange-url", &standin.url()])
        .arg("--token-file")
        .arg(tokens.join("oidc-token"))
        .arg("--auth-token-file")
        .arg(shared.join("auth-token"))
        .arg("--credential-process-dir")
        .arg(&shared)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args([
            "--region",
            "US-EAST-04A",
            "--endpoint-url",
            "http://cwlota.com",
        ])
        .args(["--s3-addressing-style", "virtual"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    crate::support::until("the sidecar is ready", || {
        std::net::TcpStream::connect(admin_addr).is_ok()
    })
    .await;
    loop {
        let ready = request(admin_addr, None, "GET", "/readyz", &[], "").await;
        if ready.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the sidecar exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config = shared.join("aws-config");
    let copy = shared.join("credagent");
    let text = std::fs::read_to_string(&config).expect("aws-config written before ready");
    assert!(text.contains(&format!(
        "credential_process = {} credential-process --url http://127.0.0.1:{port}/v1/credentials --auth-token-file {}",
        copy.display(),
        shared.join("auth-token").display()
    )), "{text}");
    for line in [
        "region = US-EAST-04A",
        "endpoint_url = http://cwlota.com/",
        "    addressing_style = virtual",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    let v = botocore_json(
        "import botocore.session, json\ns = botocore.session.get_session()\nc = s.get_credentials()\nprint(json.dumps({'method': c.method, 'access_key': c.access_key, 'region': s.get_config_variable('region')}))",
        tmp.path(),
        &[("AWS_CONFIG_FILE", config.display().to_string())],
    )
    .await;
    assert_eq!(v["method"], "custom-process", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    assert_eq!(v["region"], "US-EAST-04A");
    // Removed (a cleanup script, an init container): written again.
    std::fs::remove_file(&config).unwrap();
    std::fs::remove_file(&copy).unwrap();
    crate::support::until("the files come back", || config.exists() && copy.exists()).await;
    let out = tokio::process::Command::new(&copy)
        .args([
            "credential-process",
            "--url",
            &format!("http://127.0.0.1:{port}/v1/credentials"),
        ])
        .arg("--auth-token-file")
        .arg(shared.join("auth-token"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = child.kill().await;
    shutdown.cancel();
}

/// A `--credential-process-dir` the agent cannot write stops it at start,
/// with one line saying what to fix.
#[test]
fn an_unwritable_credential_process_dir_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
        .args(["sidecar", "--exchange-url", "http://127.0.0.1:1/x"])
        .arg("--auth-token-file")
        .arg(tmp.path().join("auth-token"))
        .arg("--credential-process-dir")
        .arg(not_a_dir.join("sub"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--credential-process-dir") && stderr.contains("cannot write"),
        "{stderr}"
    );
    let relative = std::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
        .args([
            "sidecar",
            "--org-id",
            "o",
            "--credential-process-dir",
            "rel/dir",
            "--check-config",
        ])
        .output()
        .unwrap();
    assert_eq!(relative.status.code(), Some(2));
}
