//! A real AWS SDK (botocore's container provider) resolves credentials from
//! the sidecar through AWS_CONTAINER_CREDENTIALS_FULL_URI and
//! AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.

use std::path::Path;

use crate::support::{Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use crate::tools::{self, require};

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

async fn botocore(rig: &Rig, python: &Path, token_file: &Path) -> serde_json::Value {
    let out = tokio::process::Command::new(python)
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
    let python = require!(tools::python());
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let v = botocore(&rig, &python, &rig.auth_file).await;
    assert_eq!(v["method"], "container-role", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    assert_eq!(v["secret_ok"], true);
    assert_eq!(v["token"], "", "the upstream's empty session token");

    // A wrong auth token is a credential error the user can read, not a hang.
    let wrong = rig.dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let v = botocore(&rig, &python, &wrong).await;
    assert_eq!(v["error"], "CredentialRetrievalError", "{v}");
    assert!(v["message"].as_str().unwrap().contains("401"), "{v}");
    rig.stop().await;
}
