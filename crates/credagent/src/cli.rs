//! The command-line surface: clap definitions shared by the subcommands.
//!
//! Every flag also reads a `CREDAGENT_*` environment variable. Parsing here
//! only checks shapes; [`crate::config`] turns these raw arguments into a
//! validated configuration before anything is bound or spawned.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default location of the projected service-account token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/tokens/oidc-token";
/// Default credentials listener (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8181";
/// Default admin listener (`/metrics`, `/healthz`, `/readyz`).
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9464";
/// Default path of the authorization token that callers must present.
pub const DEFAULT_AUTH_TOKEN_FILE: &str = "/var/run/credagent/auth-token";

/// credagent: exchanges a Pod's projected service-account token for temporary
/// S3 credentials ahead of time and serves them to every AWS SDK in the Pod.
#[derive(Debug, Parser)]
#[command(name = "credagent", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "CREDAGENT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter (tracing env-filter syntax, e.g. `info`, `credagent=debug`).
    #[arg(
        long,
        global = true,
        env = "CREDAGENT_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run in a workload Pod: watch the projected token, keep credentials fresh, serve them on loopback.
    Sidecar(SidecarArgs),
    /// Run on every node (DaemonSet): serve each Pod the credentials its own projected token obtains.
    Node(NodeArgs),
    /// Run the whole pipeline locally against a local stand-in upstream (no cluster needed).
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Print a running agent's credentials in the AWS credential_process format.
    CredentialProcess(CredentialProcessArgs),
    /// Exchange the projected token once and print what the upstream returns.
    Exchange(ExchangeArgs),
    /// Print the policy principal of a workload and an example access policy.
    Principal(PrincipalArgs),
    /// Check a sidecar set-up end to end and say how to fix what fails.
    Doctor(DoctorArgs),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines.
    Text,
}

/// Where the exchange happens: a full URL or an organization id.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct UpstreamArgs {
    /// Full temporary-credentials URL (https, or http to a loopback host).
    #[arg(long, env = "CREDAGENT_EXCHANGE_URL", value_name = "URL")]
    pub exchange_url: Option<String>,

    /// CoreWeave organization id; builds https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/ID.
    #[arg(long, env = "CREDAGENT_ORG_ID", value_name = "ID")]
    pub org_id: Option<String>,
}

/// Refresh and upstream tuning shared by the modes.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// Refresh once this fraction of the credentials' lifetime has passed.
    #[arg(
        long,
        env = "CREDAGENT_REFRESH_FRACTION",
        default_value = "0.5",
        value_name = "F"
    )]
    pub refresh_fraction: f64,

    /// ...but no later than this long before they expire (e.g. 20m).
    #[arg(
        long,
        env = "CREDAGENT_REFRESH_MARGIN",
        default_value = "20m",
        value_name = "DURATION"
    )]
    pub refresh_margin: String,

    /// Total time allowed for one upstream exchange (connect, TLS, answer).
    #[arg(
        long,
        env = "CREDAGENT_UPSTREAM_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub upstream_timeout: String,

    /// Time allowed to open the TCP connection to the upstream.
    #[arg(
        long,
        env = "CREDAGENT_CONNECT_TIMEOUT",
        default_value = "3s",
        value_name = "DURATION"
    )]
    pub connect_timeout: String,

    /// Extra PEM root certificates for the upstream (private CA, tests).
    #[arg(long, env = "CREDAGENT_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
}

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

    /// Region the IMDS emulation reports at /latest/meta-data/placement/region.
    #[arg(long, env = "CREDAGENT_REGION", value_name = "REGION")]
    pub region: Option<String>,

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

    #[command(flatten)]
    pub serving: ServingArgs,
}

/// What the long-running modes (sidecar, node) share about serving.
#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Most connections served at once per listener (more wait until one closes).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "4096",
        value_name = "N"
    )]
    pub max_connections: usize,

    /// Validate the configuration (flags and environment), print it, and exit.
    #[arg(long)]
    pub check_config: bool,
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

/// Default node-mode listeners: the EKS Pod Identity addresses every current
/// SDK accepts for plain http.
pub const DEFAULT_NODE_LISTEN: [&str; 2] = ["169.254.170.23:80", "[fd00:ec2::23]:80"];

/// `credagent node`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct NodeArgs {
    /// Node set-up steps.
    #[command(subcommand)]
    pub command: Option<NodeCommand>,

    #[command(flatten)]
    pub upstream: UpstreamArgs,

    /// Credentials listener address; repeat (or comma-separate) for several.
    #[arg(long, env = "CREDAGENT_LISTEN", value_name = "ADDR", value_delimiter = ',', default_values = DEFAULT_NODE_LISTEN)]
    pub listen: Vec<SocketAddr>,

    /// Admin listener address for /metrics, /healthz and /readyz.
    #[arg(long, env = "CREDAGENT_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: SocketAddr,

    /// Most identities (distinct Pod tokens) cached; the least recently used go first.
    #[arg(
        long,
        env = "CREDAGENT_MAX_IDENTITIES",
        default_value = "4096",
        value_name = "N"
    )]
    pub max_identities: usize,

    /// Most upstream exchanges in flight at once.
    #[arg(
        long,
        env = "CREDAGENT_UPSTREAM_CONCURRENCY",
        default_value = "16",
        value_name = "N"
    )]
    pub upstream_concurrency: usize,

    /// Drop an identity not requested for this long (checked at its next refresh).
    #[arg(
        long,
        env = "CREDAGENT_IDLE_TIMEOUT",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub idle_timeout: String,

    /// How long a token the upstream rejected is refused without asking again.
    #[arg(
        long,
        env = "CREDAGENT_NEGATIVE_CACHE_TTL",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub negative_cache_ttl: String,

    #[command(flatten)]
    pub tuning: TuningArgs,

    #[command(flatten)]
    pub serving: ServingArgs,
}

/// `credagent node <step>`.
#[derive(Debug, Clone, Subcommand)]
pub enum NodeCommand {
    /// Create the link-local addresses (169.254.170.23/32, fd00:ec2::23/128) on a dummy link, then exit.
    SetupLink(SetupLinkArgs),
}

/// `credagent node setup-link`.
#[derive(Debug, Clone, Args)]
pub struct SetupLinkArgs {
    /// Name of the dummy link to create (falls back to `lo` where the kernel has no dummy type).
    #[arg(
        long,
        env = "CREDAGENT_LINK_NAME",
        default_value = "credagent0",
        value_name = "NAME"
    )]
    pub link_name: String,
}

/// `credagent credential-process`.
#[derive(Debug, Clone, Args)]
pub struct CredentialProcessArgs {
    /// The agent's credentials URL.
    #[arg(
        long,
        env = "CREDAGENT_URL",
        default_value = "http://127.0.0.1:8181/v1/credentials",
        value_name = "URL"
    )]
    pub url: String,

    /// The agent's auth token file.
    #[arg(long, env = "CREDAGENT_AUTH_TOKEN_FILE", default_value = DEFAULT_AUTH_TOKEN_FILE, value_name = "PATH")]
    pub auth_token_file: PathBuf,
}

/// `credagent exchange`.
#[derive(Debug, Clone, Args)]
pub struct ExchangeArgs {
    /// The projected service-account token to exchange.
    #[arg(long, env = "CREDAGENT_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE, value_name = "PATH")]
    pub token_file: PathBuf,

    #[command(flatten)]
    pub upstream: UpstreamArgs,

    /// Print the secret access key and session token instead of redacting them.
    #[arg(long)]
    pub show_secret: bool,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `credagent principal`.
#[derive(Debug, Clone, Args)]
pub struct PrincipalArgs {
    /// Read issuer and subject from this projected token.
    #[arg(long, env = "CREDAGENT_TOKEN_FILE", value_name = "PATH", conflicts_with_all = ["issuer", "namespace", "service_account"])]
    pub token_file: Option<PathBuf>,

    /// The cluster's OIDC issuer URL (instead of a token).
    #[arg(long, value_name = "URL", requires_all = ["namespace", "service_account"])]
    pub issuer: Option<String>,

    /// The workload's namespace (with --issuer).
    #[arg(long, value_name = "NS", requires = "issuer")]
    pub namespace: Option<String>,

    /// The workload's service account (with --issuer).
    #[arg(long, value_name = "SA", requires = "issuer")]
    pub service_account: Option<String>,

    /// CoreWeave organization id, for the bucket-policy principal.
    #[arg(long, env = "CREDAGENT_ORG_ID", value_name = "ID")]
    pub org_id: Option<String>,
}

/// `credagent doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub sidecar: SidecarArgs,

    /// The audience the OIDC configuration expects in tokens.
    #[arg(
        long,
        env = "CREDAGENT_AUDIENCE",
        default_value = "https://coreweave.com/iam",
        value_name = "AUD"
    )]
    pub audience: String,
}
