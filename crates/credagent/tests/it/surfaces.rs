//! The other serving surfaces, each proven with botocore's own provider:
//! IMDSv2 emulation, credential_process, and the shared credentials file.

use std::time::Duration;

use credagent::config::FileSinkConfig;
use credagent::config::ImdsConfig;

use crate::support::{
    botocore_json, request, until, Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY,
};

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

#[tokio::test]
async fn imds_v2_protocol() {
    let rig = Rig::start(imds_options(false)).await;
    rig.sidecar.store.wait_servable().await;
    let addr = rig.sidecar.imds_addr.expect("imds listener");
    let get = |path: &'static str, headers: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(
            addr,
            None,
            if path == "/latest/api/token" {
                "PUT"
            } else {
                "GET"
            },
            path,
            &h,
            "",
        )
        .await
        .unwrap()
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
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(rsp.status, 200);
    rig.stop().await;
}

#[tokio::test]
async fn botocore_instance_metadata_provider() {
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

#[tokio::test]
async fn botocore_shared_file_provider_follows_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aws/credentials");
    let rig = Rig::start(RigOptions {
        lifetime: Duration::from_secs(4),
        credentials_file: Some(FileSinkConfig {
            path: file.clone(),
            profile: "app".into(),
        }),
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
