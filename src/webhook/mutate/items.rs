//! The JSON of every item the injector adds: the sidecar container (with its
//! proxy env, when configured), the two volumes, and the env vars and mount
//! for the app containers.
//!
//! Pure functions of the configuration and the Pod's settings; whether each
//! item is needed (and where it goes) is decided in [`super::inject`].

use serde_json::{json, Map, Value};

use super::annotations::{Mode, PodSettings};
use super::argv::{sidecar_args, sidecar_url};
use super::names;
use crate::cli::InjectArgs;
use crate::config::{Quantity, HTTPS_PROXY_VARS, NO_PROXY_VARS};

/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
pub const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
pub const AUTH_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// `AWS_CONFIG_FILE`.
pub const CONFIG_FILE: &str = "AWS_CONFIG_FILE";
/// `AWS_ENDPOINT_URL_S3`.
pub const ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// The region variables; set as a pair, and only if neither is set.
pub const REGION_VARS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
/// Endpoint variables that `AWS_ENDPOINT_URL_S3` would override.
pub const ENDPOINT_VARS: [&str; 2] = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"];
/// Variables that mean "this container already has its own credentials":
/// each outranks the container provider, or is another container provider.
pub const CREDENTIAL_VARS: [&str; 11] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    FULL_URI,
    AUTH_TOKEN_FILE,
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// One env var to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub name: &'static str,
    /// Its literal value.
    pub value: String,
}

/// What every injected app container gets, before per-container checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    /// The two credential-provider variables.
    pub credentials: [EnvVar; 2],
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`, when a region is configured.
    pub region: Option<[EnvVar; 2]>,
    /// `AWS_ENDPOINT_URL_S3`, when an endpoint is configured.
    pub endpoint: Option<EnvVar>,
    /// `AWS_CONFIG_FILE`, in credential-process mode.
    pub config_file: Option<EnvVar>,
    /// The read-only mount: (volume, path).
    pub mount: (&'static str, &'static str),
}

/// The plan for app containers in this mode.
pub fn app_plan(config: &InjectArgs, settings: &PodSettings) -> AppPlan {
    let var = |name, value: &str| EnvVar {
        name,
        value: value.to_owned(),
    };
    let (url, token, mount) = match settings.mode {
        Mode::Sidecar => (
            sidecar_url(config),
            names::AUTH_TOKEN_PATH,
            (names::AUTH_VOLUME, names::AUTH_DIR),
        ),
        Mode::Node => (
            config.node_url.as_str().to_owned(),
            names::TOKEN_PATH,
            (names::TOKEN_VOLUME, names::TOKEN_DIR),
        ),
    };
    AppPlan {
        credentials: [var(FULL_URI, &url), var(AUTH_TOKEN_FILE, token)],
        region: config
            .region
            .as_ref()
            .map(|r| REGION_VARS.map(|name| var(name, r.as_str()))),
        endpoint: config
            .s3_endpoint
            .as_ref()
            .map(|e| var(ENDPOINT_URL_S3, e.as_str())),
        config_file: settings
            .credential_process
            .then(|| var(CONFIG_FILE, names::AWS_CONFIG_PATH)),
        mount,
    }
}

/// An env entry.
pub fn env_entry(var: &EnvVar) -> Value {
    json!({"name": var.name, "value": var.value})
}

/// A read-only volume mount.
pub fn read_only_mount((volume, path): (&str, &str)) -> Value {
    json!({"name": volume, "mountPath": path, "readOnly": true})
}

/// The projected service-account token volume.
pub fn token_volume(settings: &PodSettings) -> Value {
    json!({
        "name": names::TOKEN_VOLUME,
        "projected": {"sources": [{"serviceAccountToken": {
            "audience": settings.audience,
            "expirationSeconds": settings.token_expiration,
            "path": names::TOKEN_FILE_NAME,
        }}]},
    })
}

/// The in-memory volume for the auth token (and, in credential-process
/// mode, the copied binary of ~7 MB and the AWS config file).
pub fn auth_volume(settings: &PodSettings) -> Value {
    let size = if settings.credential_process {
        "32Mi"
    } else {
        "1Mi"
    };
    json!({"name": names::AUTH_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}})
}

/// The native sidecar container.
pub fn sidecar(config: &InjectArgs, settings: &PodSettings) -> Value {
    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": {"path": path, "port": config.sidecar_admin_port},
            "periodSeconds": period,
            "timeoutSeconds": 1,
            "failureThreshold": failures,
        })
    };
    let mut c = Map::new();
    c.insert("name".into(), json!(names::SIDECAR));
    c.insert("image".into(), json!(config.sidecar_image.as_str()));
    c.insert(
        "imagePullPolicy".into(),
        json!(config.image_pull_policy.as_str()),
    );
    c.insert("args".into(), json!(sidecar_args(config, settings)));
    let env = sidecar_env(config);
    if !env.is_empty() {
        c.insert("env".into(), Value::Array(env));
    }
    // A native sidecar (Kubernetes 1.29+): started before the next init
    // container and the apps, kept running beside them, stopped after them.
    c.insert("restartPolicy".into(), json!("Always"));
    c.insert(
        "ports".into(),
        json!([{"name": names::ADMIN_PORT_NAME, "containerPort": config.sidecar_admin_port, "protocol": "TCP"}]),
    );
    // The startupProbe holds back the following containers until credentials
    // are held. No readinessProbe: an upstream outage while the sidecar
    // still serves cached credentials must not take the Pod out of its
    // Services.
    c.insert(
        "startupProbe".into(),
        probe("/readyz", 1, names::STARTUP_FAILURE_THRESHOLD),
    );
    c.insert("livenessProbe".into(), probe("/healthz", 10, 3));
    let resources = resources(settings);
    if !resources.is_empty() {
        c.insert("resources".into(), Value::Object(resources));
    }
    c.insert(
        "securityContext".into(),
        json!({
            "runAsNonRoot": true,
            "runAsUser": names::SIDECAR_UID,
            "runAsGroup": names::SIDECAR_UID,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }),
    );
    // The sidecar prints one line naming the flag on a bad configuration.
    c.insert(
        "terminationMessagePolicy".into(),
        json!("FallbackToLogsOnError"),
    );
    c.insert(
        "volumeMounts".into(),
        json!([
            // The directory, never a subPath: kubelet only updates directory mounts.
            {"name": names::TOKEN_VOLUME, "mountPath": names::TOKEN_DIR, "readOnly": true},
            {"name": names::AUTH_VOLUME, "mountPath": names::AUTH_DIR},
        ]),
    );
    Value::Object(c)
}

/// The sidecar's own env: the proxy it reaches the upstream through, as the
/// variables it reads first (`HTTPS_PROXY`, `NO_PROXY`), each only when
/// configured. The apps never get these: they have their own proxy settings.
fn sidecar_env(config: &InjectArgs) -> Vec<Value> {
    [
        (
            HTTPS_PROXY_VARS[0],
            config.sidecar_https_proxy.as_ref().map(|p| p.as_str()),
        ),
        (
            NO_PROXY_VARS[0],
            config.sidecar_no_proxy.as_ref().map(|l| l.as_str()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| json!({"name": name, "value": v})))
    .collect()
}

fn resources(settings: &PodSettings) -> Map<String, Value> {
    let r = &settings.resources;
    let section = |cpu: &Option<Quantity>, memory: &Option<Quantity>| {
        let mut m = Map::new();
        if let Some(cpu) = cpu {
            m.insert("cpu".into(), json!(cpu.as_str()));
        }
        if let Some(memory) = memory {
            m.insert("memory".into(), json!(memory.as_str()));
        }
        m
    };
    let mut out = Map::new();
    for (key, m) in [
        ("requests", section(&r.cpu_request, &r.memory_request)),
        ("limits", section(&r.cpu_limit, &r.memory_limit)),
    ] {
        if !m.is_empty() {
            out.insert(key.into(), Value::Object(m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::mutate::annotations::settings;

    fn config(flags: &[&str]) -> InjectArgs {
        let base = ["--sidecar-image", "img:1", "--org-id", "org"];
        InjectArgs::from_flags(base.iter().chain(flags)).unwrap()
    }

    #[test]
    fn sidecar_shape() {
        let config = config(&[]);
        let s = settings(None, &config).unwrap();
        let c = sidecar(&config, &s);
        assert_eq!(c["restartPolicy"], "Always");
        assert_eq!(
            c["startupProbe"]["httpGet"],
            json!({"path": "/readyz", "port": 9464})
        );
        assert_eq!(c["startupProbe"]["failureThreshold"], 300);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert!(c.get("readinessProbe").is_none());
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}})
        );
        let bare = super::tests::config(&[
            "--sidecar-cpu-request",
            "",
            "--sidecar-memory-request",
            "",
            "--sidecar-cpu-limit",
            "",
            "--sidecar-memory-limit",
            "",
        ]);
        let s = settings(None, &bare).unwrap();
        assert!(sidecar(&bare, &s).get("resources").is_none());
        assert_eq!(auth_volume(&s)["emptyDir"]["sizeLimit"], "1Mi");
    }
}
