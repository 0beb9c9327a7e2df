//! `credagent webhook`: the admission webhook that injects credagent into
//! Pods (docs/webhook.md).
//!
//! Its own flags only: what it serves on, its TLS files, and the defaults of
//! what it injects. The upstream flags are the shared ones, naming the
//! upstream the *injected* sidecars use (the webhook never calls it).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::shared::{UpstreamArgs, DEFAULT_ADMIN_LISTEN, DEFAULT_AUDIENCE};

/// Default HTTPS listener of the webhook (the Service's target port).
pub const DEFAULT_WEBHOOK_LISTEN: &str = "0.0.0.0:8443";
/// Default serving certificate chain (PEM), as cert-manager names it in its Secret.
pub const DEFAULT_TLS_CERT_FILE: &str = "/etc/credagent/tls/tls.crt";
/// Default serving private key (PEM), as cert-manager names it in its Secret.
pub const DEFAULT_TLS_KEY_FILE: &str = "/etc/credagent/tls/tls.key";
/// Default bound on an AdmissionReview body: 3 MiB, the API server's own
/// limit on a request body, so any Pod it accepts fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// `credagent webhook`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// HTTPS listener for POST /mutate (the API server calls it through the Service).
    #[arg(long, env = "CREDAGENT_LISTEN", default_value = DEFAULT_WEBHOOK_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Serving certificate chain, PEM (leaf first); reloaded when it changes.
    #[arg(long, env = "CREDAGENT_TLS_CERT_FILE", default_value = DEFAULT_TLS_CERT_FILE, value_name = "PATH")]
    pub tls_cert_file: PathBuf,

    /// Serving private key, PEM (PKCS#8, PKCS#1 or SEC1); reloaded when it changes.
    #[arg(long, env = "CREDAGENT_TLS_KEY_FILE", default_value = DEFAULT_TLS_KEY_FILE, value_name = "PATH")]
    pub tls_key_file: PathBuf,

    /// Admin listener address for /metrics, /healthz and /readyz (plain HTTP).
    #[arg(long, env = "CREDAGENT_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: SocketAddr,

    /// The credagent image injected sidecars run (e.g. registry.example.com/credagent:0.1.0).
    #[arg(long, env = "CREDAGENT_SIDECAR_IMAGE", value_name = "IMAGE")]
    pub sidecar_image: String,

    /// The injected sidecars' imagePullPolicy.
    #[arg(
        long,
        env = "CREDAGENT_IMAGE_PULL_POLICY",
        value_enum,
        default_value = "IfNotPresent"
    )]
    pub image_pull_policy: PullPolicyArg,

    /// The upstream the injected sidecars exchange tokens with.
    #[command(flatten)]
    pub upstream: UpstreamArgs,

    /// Audience of the injected projected token (a Pod's credagent.io/audience overrides it).
    #[arg(long, env = "CREDAGENT_AUDIENCE", default_value = DEFAULT_AUDIENCE, value_name = "AUDIENCE")]
    pub audience: String,

    /// Lifetime of the injected projected token, 10m to 24h (credagent.io/token-expiration overrides it).
    #[arg(
        long,
        env = "CREDAGENT_TOKEN_EXPIRATION",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub token_expiration: String,

    /// Port of the injected sidecar's credentials listener, on 127.0.0.1.
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_PORT",
        default_value = "8181",
        value_name = "PORT"
    )]
    pub sidecar_port: u16,

    /// Port of the injected sidecar's admin listener (probes, /metrics).
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_ADMIN_PORT",
        default_value = "9464",
        value_name = "PORT"
    )]
    pub sidecar_admin_port: u16,

    /// The injected sidecar's CPU request ("" for none).
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_CPU_REQUEST",
        default_value = "5m",
        value_name = "QUANTITY"
    )]
    pub sidecar_cpu_request: String,

    /// The injected sidecar's CPU limit ("" for none).
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_CPU_LIMIT",
        default_value = "100m",
        value_name = "QUANTITY"
    )]
    pub sidecar_cpu_limit: String,

    /// The injected sidecar's memory request ("" for none).
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_MEMORY_REQUEST",
        default_value = "16Mi",
        value_name = "QUANTITY"
    )]
    pub sidecar_memory_request: String,

    /// The injected sidecar's memory limit ("" for none).
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_MEMORY_LIMIT",
        default_value = "32Mi",
        value_name = "QUANTITY"
    )]
    pub sidecar_memory_limit: String,

    /// AWS_REGION and AWS_DEFAULT_REGION for the apps (where neither is set), --region for the sidecar.
    #[arg(long, env = "CREDAGENT_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// AWS_ENDPOINT_URL_S3 for the apps (where no endpoint is set), e.g. http://cwlota.com.
    #[arg(long, env = "CREDAGENT_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// HTTPS_PROXY of the injected sidecars: the http:// proxy they reach the upstream through (no user:password@: it would be written into every Pod spec).
    #[arg(long, env = "CREDAGENT_SIDECAR_HTTPS_PROXY", value_name = "URL")]
    pub sidecar_https_proxy: Option<String>,

    /// NO_PROXY of the injected sidecars: comma-separated hosts, domains, addresses and CIDR ranges they reach directly.
    #[arg(long, env = "CREDAGENT_SIDECAR_NO_PROXY", value_name = "LIST")]
    pub sidecar_no_proxy: Option<String>,

    /// Credentials URL of the node agent, for Pods in node mode (credagent.io/mode: node).
    #[arg(
        long,
        env = "CREDAGENT_NODE_URL",
        default_value = "http://169.254.170.23/v1/credentials",
        value_name = "URL"
    )]
    pub node_url: String,

    /// Also inject Pods whose ServiceAccount has caios.coreweave.com/inject: "true" (reads ServiceAccounts from the API).
    #[arg(long, env = "CREDAGENT_COREWEAVE_COMPAT")]
    pub coreweave_compat: bool,

    /// Largest AdmissionReview body accepted, in bytes (larger gets 413).
    #[arg(long, env = "CREDAGENT_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body_bytes: usize,

    /// Time allowed to receive a whole AdmissionReview body once its head has arrived.
    #[arg(
        long,
        env = "CREDAGENT_BODY_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub body_timeout: String,

    /// Most connections open at once on the HTTPS listener (more wait until one closes).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "1024",
        value_name = "N"
    )]
    pub max_connections: usize,

    /// After SIGTERM, keep serving this long (while the endpoint leaves the Service), then drain.
    #[arg(
        long,
        env = "CREDAGENT_SHUTDOWN_DELAY",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub shutdown_delay: String,

    /// Validate the configuration (flags and environment), print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// A container `imagePullPolicy`, spelt as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicyArg {
    /// `Always`.
    #[value(name = "Always")]
    Always,
    /// `IfNotPresent`.
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    /// `Never`.
    #[value(name = "Never")]
    Never,
}
