//! `credagent node` and `credagent node setup-link`.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use super::shared::{
    ServingArgs, TuningArgs, UpstreamArgs, DEFAULT_ADMIN_LISTEN, DEFAULT_AUDIENCE,
};

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
        default_value = "32",
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

    /// How long a token the upstream (or local verification) refused is refused without asking again.
    #[arg(
        long,
        env = "CREDAGENT_NEGATIVE_CACHE_TTL",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub negative_cache_ttl: String,

    /// Most connections open at once, over every listener (sized to the memory limit: docs/deploy.md).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "2048",
        value_name = "N"
    )]
    pub max_connections: usize,

    /// Most connections open at once from one source address (one Pod).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS_PER_SOURCE",
        default_value = "512",
        value_name = "N"
    )]
    pub max_connections_per_source: usize,

    /// Longest a request waits for its token's first exchange before a 503 with Retry-After (the exchange goes on).
    #[arg(
        long,
        env = "CREDAGENT_FILL_WAIT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub fill_wait: String,

    /// Most first exchanges (of tokens not yet cached) waiting or running at once.
    #[arg(
        long,
        env = "CREDAGENT_MAX_PENDING_FILLS",
        default_value = "1024",
        value_name = "N"
    )]
    pub max_pending_fills: usize,

    /// New tokens one source address may have exchanged in a burst.
    #[arg(
        long,
        env = "CREDAGENT_SOURCE_MISS_BURST",
        default_value = "1024",
        value_name = "N"
    )]
    pub source_miss_burst: u32,

    /// New tokens per second one source address may have exchanged, sustained.
    #[arg(
        long,
        env = "CREDAGENT_SOURCE_MISS_RATE",
        default_value = "128",
        value_name = "PER_SECOND"
    )]
    pub source_miss_rate: f64,

    /// What a refused token (by the upstream or local verification) costs its source, in new-token exchanges.
    #[arg(
        long,
        env = "CREDAGENT_SOURCE_REFUSAL_COST",
        default_value = "32",
        value_name = "N"
    )]
    pub source_refusal_cost: u32,

    /// Verify tokens locally: accept only this issuer's (repeat for several); keys from its OIDC discovery document.
    #[arg(
        long = "issuer",
        env = "CREDAGENT_ISSUER",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub issuers: Vec<String>,

    /// The key set of the --issuer at the same position, instead of discovery (https, or http to loopback).
    #[arg(
        long = "jwks-url",
        env = "CREDAGENT_JWKS_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub jwks_urls: Vec<String>,

    /// The audience verified tokens must carry.
    #[arg(
        long,
        env = "CREDAGENT_AUDIENCE",
        default_value = DEFAULT_AUDIENCE,
        value_name = "AUD"
    )]
    pub audience: String,

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
