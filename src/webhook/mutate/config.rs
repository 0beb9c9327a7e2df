//! The injector's own configuration: what every injected Pod gets.
//!
//! The sidecar image and the upstream come from here only; no Pod annotation
//! can choose them (a Pod that could pick the image could run any code with
//! the credentials, and one that could pick the upstream could send its
//! token anywhere). The per-Pod annotations ([`super::annotations`]) tune
//! the rest within limits.
//!
//! The struct deserialises from JSON (`snake_case` keys, unknown keys
//! refused); everything but `image` and `upstream` has a default.

use serde::Deserialize;

use super::names;
use crate::config;
use crate::config::quantity;

/// Default token audience (what CoreWeave's guide recommends).
pub const DEFAULT_AUDIENCE: &str = "https://coreweave.com/iam";
/// Default projected-token lifetime, seconds (the Kubernetes default).
pub const DEFAULT_TOKEN_EXPIRATION: u32 = 3600;
/// Shortest projected-token lifetime Kubernetes accepts, seconds.
pub const MIN_TOKEN_EXPIRATION: u32 = 600;
/// Longest projected-token lifetime the injector asks for, seconds (24 h:
/// EKS's default and a bound on how long a stolen token stays useful).
pub const MAX_TOKEN_EXPIRATION: u32 = 86_400;
/// Default sidecar credentials port (on 127.0.0.1).
pub const DEFAULT_SIDECAR_PORT: u16 = 8181;
/// Default sidecar admin port (`/metrics`, `/healthz`, `/readyz`).
pub const DEFAULT_ADMIN_PORT: u16 = 9464;
/// Default node-mode credentials URL (the EKS Pod Identity address).
pub const DEFAULT_NODE_URL: &str = "http://169.254.170.23/v1/credentials";
/// Default startupProbe failureThreshold at one probe a second: how long an
/// app may wait for its first credentials before kubelet restarts the
/// sidecar. 300 s, as in `manifests/sidecar`: a restart fixes neither an
/// upstream outage nor a rejected token, so it should be rare.
pub const DEFAULT_STARTUP_FAILURE_THRESHOLD: u32 = 300;

/// How the injector is configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectConfig {
    /// The credagent image for the sidecar.
    pub image: String,
    /// The sidecar's `imagePullPolicy`. Default `IfNotPresent`.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Where the sidecar exchanges tokens.
    pub upstream: Upstream,
    /// Token audience unless the Pod's `credagent.io/audience` says otherwise.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Token lifetime unless the Pod's `credagent.io/token-expiration` says
    /// otherwise. Default 3600.
    #[serde(default = "default_token_expiration")]
    pub token_expiration: u32,
    /// Sidecar credentials port on 127.0.0.1. Default 8181.
    #[serde(default = "default_sidecar_port")]
    pub sidecar_port: u16,
    /// Sidecar admin port on 0.0.0.0. Default 9464.
    #[serde(default = "default_admin_port")]
    pub admin_port: u16,
    /// Sidecar resources unless the Pod's annotations say otherwise.
    #[serde(default)]
    pub resources: Resources,
    /// `AWS_REGION`/`AWS_DEFAULT_REGION` for the apps and `--region` for the
    /// sidecar. Default none.
    #[serde(default)]
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL_S3` for the apps (e.g. `http://cwlota.com`).
    /// Default none.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// Node-mode credentials URL. Default `http://169.254.170.23/v1/credentials`.
    #[serde(default = "default_node_url")]
    pub node_url: String,
    /// Also inject Pods whose ServiceAccount has
    /// `caios.coreweave.com/inject: "true"`. Default off.
    #[serde(default)]
    pub coreweave_compat: bool,
    /// The sidecar startupProbe's failureThreshold (one probe a second).
    /// Default 300.
    #[serde(default = "default_startup_failure_threshold")]
    pub startup_failure_threshold: u32,
    /// The sidecar's `HTTPS_PROXY` (never the apps'): `http://HOST[:PORT]`,
    /// no credentials (they would be readable in every Pod spec). Default none.
    #[serde(default)]
    pub sidecar_https_proxy: Option<String>,
    /// The sidecar's `NO_PROXY` (never the apps'). Default none.
    #[serde(default)]
    pub sidecar_no_proxy: Option<String>,
}

/// The upstream the sidecar exchanges tokens with (exactly one of the
/// sidecar's `--org-id` and `--exchange-url`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Upstream {
    /// A CoreWeave organization id: `--org-id`.
    OrgId(String),
    /// A full temporary-credentials URL: `--exchange-url`.
    ExchangeUrl(String),
}

/// A container `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum PullPolicy {
    /// `Always`.
    Always,
    /// `IfNotPresent` (the default).
    #[default]
    IfNotPresent,
    /// `Never`.
    Never,
}

/// Sidecar resources as Kubernetes quantities; `None` leaves one unset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// `requests.cpu`. Default `5m`.
    pub cpu_request: Option<String>,
    /// `requests.memory`. Default `16Mi`.
    pub memory_request: Option<String>,
    /// `limits.cpu`. Default `100m`.
    pub cpu_limit: Option<String>,
    /// `limits.memory`. Default `32Mi` (7 MiB RSS measured, plus the ~7 MB
    /// binary copy that credential-process mode keeps in memory).
    pub memory_limit: Option<String>,
}

/// A configuration value the injector cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid webhook configuration: {field}: {reason}")]
pub struct InjectConfigError {
    /// The field, e.g. `upstream.org_id`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}
fn default_token_expiration() -> u32 {
    DEFAULT_TOKEN_EXPIRATION
}
fn default_sidecar_port() -> u16 {
    DEFAULT_SIDECAR_PORT
}
fn default_admin_port() -> u16 {
    DEFAULT_ADMIN_PORT
}
fn default_node_url() -> String {
    DEFAULT_NODE_URL.to_owned()
}
fn default_startup_failure_threshold() -> u32 {
    DEFAULT_STARTUP_FAILURE_THRESHOLD
}

// === impl InjectConfig ===

impl InjectConfig {
    /// A configuration with every default and the given image and upstream.
    pub fn new(image: impl Into<String>, upstream: Upstream) -> Self {
        Self {
            image: image.into(),
            image_pull_policy: PullPolicy::default(),
            upstream,
            audience: default_audience(),
            token_expiration: DEFAULT_TOKEN_EXPIRATION,
            sidecar_port: DEFAULT_SIDECAR_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            resources: Resources::default(),
            region: None,
            s3_endpoint: None,
            node_url: default_node_url(),
            coreweave_compat: false,
            startup_failure_threshold: DEFAULT_STARTUP_FAILURE_THRESHOLD,
            sidecar_https_proxy: None,
            sidecar_no_proxy: None,
        }
    }

    /// Checks every field, so that a bad configuration stops the webhook at
    /// start-up rather than producing Pods whose sidecar exits 2.
    pub fn validate(&self) -> Result<(), InjectConfigError> {
        let err = |field, reason: &str| {
            Err(InjectConfigError {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.image.is_empty() || !self.image.bytes().all(|b| b.is_ascii_graphic()) {
            return err(
                "image",
                "must be a non-empty image reference without spaces",
            );
        }
        match &self.upstream {
            Upstream::OrgId(org) => {
                if !config::valid_org_id(org) {
                    return err("upstream.org_id", config::ORG_ID_RULE);
                }
            }
            Upstream::ExchangeUrl(url) => {
                if !url_ok(url, true) {
                    return err(
                        "upstream.exchange_url",
                        "must be an https:// URL (or http:// to a loopback host)",
                    );
                }
            }
        }
        if !audience_ok(&self.audience) {
            return err(
                "audience",
                "must be 1-256 printable characters without spaces",
            );
        }
        if !(MIN_TOKEN_EXPIRATION..=MAX_TOKEN_EXPIRATION).contains(&self.token_expiration) {
            return err("token_expiration", "must be 600-86400 seconds");
        }
        if self.sidecar_port == 0 || self.admin_port == 0 || self.sidecar_port == self.admin_port {
            return err(
                "sidecar_port",
                "the two ports must be non-zero and different",
            );
        }
        if let Some(region) = &self.region {
            if !config::valid_region(region) {
                return err("region", config::REGION_RULE);
            }
        }
        if let Some(url) = &self.s3_endpoint {
            if !url_ok(url, false) {
                return err("s3_endpoint", "must be an http:// or https:// URL");
            }
        }
        if !url_ok(&self.node_url, false) {
            return err("node_url", "must be an http:// or https:// URL");
        }
        if self.startup_failure_threshold == 0 {
            return err("startup_failure_threshold", "must be > 0");
        }
        // As the sidecar reads them, and never with credentials in them.
        if let Some(url) = &self.sidecar_https_proxy {
            if let Err(e) = config::injected_https_proxy(url) {
                return err("sidecar_https_proxy", &e.to_string());
            }
        }
        if let Some(list) = &self.sidecar_no_proxy {
            if let Err(e) = config::injected_no_proxy(list) {
                return err("sidecar_no_proxy", &e.to_string());
            }
        }
        self.resources.validate()
    }

    /// The sidecar's arguments (after the image's `credagent` entrypoint).
    /// `credential_process` adds the fallback's flags.
    pub fn sidecar_args(&self, credential_process: bool) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "sidecar".into(),
            "--token-file".into(),
            names::TOKEN_PATH.into(),
        ];
        match &self.upstream {
            Upstream::OrgId(org) => args.extend(["--org-id".into(), org.clone()]),
            Upstream::ExchangeUrl(url) => args.extend(["--exchange-url".into(), url.clone()]),
        }
        args.extend([
            "--listen".into(),
            format!("127.0.0.1:{}", self.sidecar_port),
            "--admin-listen".into(),
            format!("0.0.0.0:{}", self.admin_port),
            "--auth-token-file".into(),
            names::AUTH_TOKEN_PATH.into(),
        ]);
        if let Some(region) = &self.region {
            args.extend(["--region".into(), region.clone()]);
        }
        if credential_process {
            args.extend(["--credential-process-dir".into(), names::AUTH_DIR.into()]);
            if let Some(endpoint) = &self.s3_endpoint {
                args.extend([
                    "--endpoint-url".into(),
                    endpoint.clone(),
                    "--s3-addressing-style".into(),
                    "virtual".into(),
                ]);
            }
        }
        args
    }

    /// What the apps' `AWS_CONTAINER_CREDENTIALS_FULL_URI` is in sidecar mode.
    pub fn sidecar_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/credentials", self.sidecar_port)
    }
}

// === impl Resources ===

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_request: Some("5m".into()),
            memory_request: Some("16Mi".into()),
            cpu_limit: Some("100m".into()),
            memory_limit: Some("32Mi".into()),
        }
    }
}

impl Resources {
    /// Checks each quantity, and that no request exceeds its limit.
    pub fn validate(&self) -> Result<(), InjectConfigError> {
        let fields = [
            ("resources.cpu_request", &self.cpu_request),
            ("resources.memory_request", &self.memory_request),
            ("resources.cpu_limit", &self.cpu_limit),
            ("resources.memory_limit", &self.memory_limit),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                quantity::parse(v).map_err(|e| InjectConfigError {
                    field,
                    reason: e.to_string(),
                })?;
            }
        }
        let over = |req: &Option<String>, lim: &Option<String>| match (req, lim) {
            (Some(r), Some(l)) => match (quantity::parse(r), quantity::parse(l)) {
                (Ok(r), Ok(l)) => r.exceeds(l),
                _ => false,
            },
            _ => false,
        };
        if over(&self.cpu_request, &self.cpu_limit) {
            return Err(InjectConfigError {
                field: "resources.cpu_request",
                reason: "exceeds resources.cpu_limit".into(),
            });
        }
        if over(&self.memory_request, &self.memory_limit) {
            return Err(InjectConfigError {
                field: "resources.memory_request",
                reason: "exceeds resources.memory_limit".into(),
            });
        }
        Ok(())
    }
}

// === impl PullPolicy ===

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// A token audience: printable ASCII, no spaces, 1-256 bytes.
pub fn audience_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// An http(s) URL with a host; plain http only to loopback when
/// `loopback_http_only`, as the sidecar's `--exchange-url` requires.
fn url_ok(raw: &str, loopback_http_only: bool) -> bool {
    let Ok(uri) = raw.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => !loopback_http_only || crate::config::is_loopback_host(host),
        _ => false,
    }
}
