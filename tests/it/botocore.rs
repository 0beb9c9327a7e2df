//! A real AWS SDK (botocore's container provider) resolves credentials from
//! the sidecar through AWS_CONTAINER_CREDENTIALS_FULL_URI and
//! AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
//!
//! The Python venv comes from `CREDAGENT_TEST_PYTHON` (the test script sets
//! it up) or is created under `target/test-venv` on first use.

use std::path::{Path, PathBuf};

use crate::support::{Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CREDAGENT_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/test-venv");
    let py = venv.join("bin/python");
    let ready = venv.join(".installed");
    if !ready.exists() {
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv")
            .success();
        assert!(ok, "cannot create a venv");
        let ok = std::process::Command::new(&py)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(root.join("tests/requirements.txt"))
            .status()
            .expect("pip")
            .success();
        assert!(ok, "pip install failed");
        std::fs::write(&ready, b"").unwrap();
    }
    py
}

const SCRIPT: &str = r#"
import json, sys, botocore.session
from botocore.exceptions import CredentialRetrievalError
s = botocore.session.get_session()
try:
    c = s.get_credentials()
    f = c.get_frozen_credentials()
    print(json.dumps({"method": c.method, "access_key": f.access_key, "secret_ok": f.secret_key == sys.argv[1], "token": f.token}))
except CredentialRetrievalError as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"#;

async fn botocore(rig: &Rig, token_file: &Path) -> serde_json::Value {
    let out = tokio::process::Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(SECRET_ACCESS_KEY)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", rig.dir.path())
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{}/v1/credentials", rig.sidecar.credentials_addr),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", rig.dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", rig.dir.path().join("none"))
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("bad output: {stdout}"))
}

#[tokio::test]
async fn botocore_container_provider_gets_the_credentials() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let v = botocore(&rig, &rig.auth_file).await;
    assert_eq!(v["method"], "container-role", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    assert_eq!(v["secret_ok"], true);
    assert_eq!(v["token"], "", "the upstream's empty session token");

    // A wrong auth token is a credential error the user can read, not a hang.
    let wrong = rig.dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let v = botocore(&rig, &wrong).await;
    assert_eq!(v["error"], "CredentialRetrievalError", "{v}");
    assert!(v["message"].as_str().unwrap().contains("401"), "{v}");
    rig.stop().await;
}
