//! `credagent sidecar` and `credagent demo`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::shared::{
    ServingArgs, TuningArgs, UpstreamArgs, DEFAULT_ADMIN_LISTEN, DEFAULT_AUTH_TOKEN_FILE,
    DEFAULT_LISTEN, DEFAULT_TOKEN_FILE,
};

/// `credagent sidecar`.
#[derive(Debug, Clone, Args)]
pub struct SidecarArgs {
    /// Projected service-account token to exchange (the kubelet-managed path, not a subPath mount).
    #[arg(long, env = "CREDAGENT_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE, value_name = "PATH")]
    pub token_file: PathBuf,

    #[command(flatten)]
    pub upstream: UpstreamArgs,

    /// Credentials listener address (keep it on loopback).
    #[arg(long, env = "CREDAGENT_LISTEN", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Admin listener address for /metrics, /healthz and /readyz.
    #[arg(long, env = "CREDAGENT_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: SocketAddr,

    /// Authorization token callers must send; created (random, 256-bit) if missing or empty.
    #[arg(long, env = "CREDAGENT_AUTH_TOKEN_FILE", default_value = DEFAULT_AUTH_TOKEN_FILE, value_name = "PATH")]
    pub auth_token_file: PathBuf,

    #[command(flatten)]
    pub tuning: TuningArgs,

    /// Also serve an EC2 instance-metadata (IMDSv2) emulation here, e.g. 127.0.0.1:8182 (off by default).
    #[arg(long, env = "CREDAGENT_IMDS_LISTEN", value_name = "ADDR")]
    pub imds_listen: Option<SocketAddr>,

    /// Let the IMDS emulation answer requests without a session token (IMDSv1).
    #[arg(long, env = "CREDAGENT_IMDS_ALLOW_V1")]
    pub imds_allow_v1: bool,

    /// Region the IMDS emulation reports at /latest/meta-data/placement/region, and the credential-process profile's `region`.
    #[arg(long, env = "CREDAGENT_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// Also keep a copy of this binary and an AWS config whose [default] profile runs it as credential_process against this agent, in DIR (an emptyDir shared with the apps; they set AWS_CONFIG_FILE=DIR/aws-config).
    #[arg(long, env = "CREDAGENT_CREDENTIAL_PROCESS_DIR", value_name = "DIR")]
    pub credential_process_dir: Option<PathBuf>,

    /// The credential-process profile's `endpoint_url` (e.g. http://cwlota.com inside CKS, https://cwobject.com outside).
    #[arg(
        long,
        env = "CREDAGENT_ENDPOINT_URL",
        value_name = "URL",
        requires = "credential_process_dir"
    )]
    pub endpoint_url: Option<String>,

    /// The credential-process profile's S3 `addressing_style` (CoreWeave needs virtual).
    #[arg(
        long,
        env = "CREDAGENT_S3_ADDRESSING_STYLE",
        value_enum,
        value_name = "STYLE",
        requires = "credential_process_dir"
    )]
    pub s3_addressing_style: Option<AddressingStyleArg>,

    /// Also keep an AWS shared credentials file here, rewritten atomically on every refresh.
    #[arg(long, env = "CREDAGENT_CREDENTIALS_FILE", value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,

    /// Profile name in the credentials file.
    #[arg(
        long,
        env = "CREDAGENT_CREDENTIALS_PROFILE",
        default_value = "default",
        value_name = "NAME"
    )]
    pub credentials_profile: String,

    /// Most connections open at once on the credentials listener (more wait until one closes; sized to the memory limit: docs/deploy.md).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "256",
        value_name = "N"
    )]
    pub max_connections: usize,

    #[command(flatten)]
    pub serving: ServingArgs,
}

/// `credagent demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Credentials listener address.
    #[arg(long, env = "CREDAGENT_LISTEN", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Admin listener address (/metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "CREDAGENT_ADMIN_LISTEN",
        default_value = "127.0.0.1:9464",
        value_name = "ADDR"
    )]
    pub admin_listen: SocketAddr,

    /// Lifetime of the stand-in's credentials (short, so refreshes are visible).
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub credential_lifetime: String,

    /// How often the demo's fake kubelet rotates the projected token.
    #[arg(long, default_value = "45s", value_name = "DURATION")]
    pub rotate_every: String,

    /// Directory for the token volume and auth token (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Stop after this long instead of waiting for Ctrl-C (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
}

/// An S3 addressing style, as AWS config files spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AddressingStyleArg {
    /// `bucket.endpoint/key` (what CoreWeave AI Object Storage needs).
    Virtual,
    /// `endpoint/bucket/key`.
    Path,
    /// Let the SDK choose.
    Auto,
}
