//! `credagent node` and `credagent node setup-link`: their flags, node
//! mode's cross-flag rules, and what they resolve to.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::shared::{ServingArgs, TuningArgs, DEFAULT_ADMIN_LISTEN, DEFAULT_AUDIENCE};
use crate::config::flag::{checked, positive, positive_rate};
use crate::config::{
    parse_duration, positive_duration, CacheConfig, ConfigError, HttpsUrl, NodeConfig,
    RefreshPolicy, SourceLimits, Upstream, VerifyConfig,
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

    /// The upstream (absent only under `setup-link`, which needs none).
    #[command(flatten)]
    pub upstream: Option<Upstream>,

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
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub max_identities: usize,

    /// Most upstream exchanges in flight at once.
    #[arg(
        long,
        env = "CREDAGENT_UPSTREAM_CONCURRENCY",
        default_value = "32",
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub upstream_concurrency: usize,

    /// Drop an identity not requested for this long (checked at its next refresh).
    #[arg(
        long,
        env = "CREDAGENT_IDLE_TIMEOUT",
        default_value = "1h",
        value_name = "DURATION",
        value_parser = checked(parse_duration)
    )]
    pub idle_timeout: Duration,

    /// How long a token the upstream (or local verification) refused is refused without asking again.
    #[arg(
        long,
        env = "CREDAGENT_NEGATIVE_CACHE_TTL",
        default_value = "5s",
        value_name = "DURATION",
        value_parser = checked(parse_duration)
    )]
    pub negative_cache_ttl: Duration,

    /// Most connections open at once, over every listener (sized to the memory limit: docs/deploy.md).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "2048",
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub max_connections: usize,

    /// Most connections open at once from one source address (one Pod).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS_PER_SOURCE",
        default_value = "512",
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub max_connections_per_source: usize,

    /// Longest a request waits for its token's first exchange before a 503 with Retry-After (the exchange goes on).
    #[arg(
        long,
        env = "CREDAGENT_FILL_WAIT",
        default_value = "5s",
        value_name = "DURATION",
        value_parser = checked(positive_duration)
    )]
    pub fill_wait: Duration,

    /// Most first exchanges (of tokens not yet cached) waiting or running at once.
    #[arg(
        long,
        env = "CREDAGENT_MAX_PENDING_FILLS",
        default_value = "1024",
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub max_pending_fills: usize,

    /// New tokens one source address may have exchanged in a burst.
    #[arg(
        long,
        env = "CREDAGENT_SOURCE_MISS_BURST",
        default_value = "1024",
        value_name = "N",
        value_parser = checked(positive::<u32>)
    )]
    pub source_miss_burst: u32,

    /// New tokens per second one source address may have exchanged, sustained.
    #[arg(
        long,
        env = "CREDAGENT_SOURCE_MISS_RATE",
        default_value = "128",
        value_name = "PER_SECOND",
        value_parser = checked(positive_rate)
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
    pub issuers: Vec<HttpsUrl>,

    /// The key set of the --issuer at the same position, instead of discovery (https, or http to loopback).
    #[arg(
        long = "jwks-url",
        env = "CREDAGENT_JWKS_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub jwks_urls: Vec<HttpsUrl>,

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

// === impl NodeArgs ===

impl NodeArgs {
    /// Node mode's cross-flag rules (clap checks the rest as it parses).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tuning.validate()?;
        if self.listen.is_empty() {
            return Err(ConfigError::new(
                "--listen",
                "at least one address is required",
            ));
        }
        if self.issuers.is_empty() {
            if !self.jwks_urls.is_empty() {
                return Err(ConfigError::new(
                    "--jwks-url",
                    "names the key set of an --issuer; give the --issuer too",
                ));
            }
            return Ok(());
        }
        if !self.jwks_urls.is_empty() && self.jwks_urls.len() != self.issuers.len() {
            return Err(ConfigError::new(
                "--jwks-url",
                "give one per --issuer, in the same order, or none (discovery)",
            ));
        }
        if self.audience.is_empty() {
            return Err(ConfigError::new("--audience", "must not be empty"));
        }
        Ok(())
    }

    /// Everything node mode needs: the rules checked, the upstream's roots
    /// and proxy read, the settings grouped by the part that uses them.
    pub fn config(&self) -> Result<NodeConfig, ConfigError> {
        self.validate()?;
        let upstream = self.upstream.as_ref().ok_or_else(|| {
            ConfigError::new("--org-id", "one of --org-id or --exchange-url is required")
        })?;
        let verify = (!self.issuers.is_empty()).then(|| VerifyConfig {
            issuers: self
                .issuers
                .iter()
                .enumerate()
                .map(|(i, issuer)| {
                    let jwks = self.jwks_urls.get(i).map(|u| u.uri().clone());
                    (issuer.as_str().to_owned(), jwks)
                })
                .collect(),
            audience: self.audience.clone(),
        });
        Ok(NodeConfig {
            upstream: self.tuning.upstream_config(upstream)?,
            listen: self.listen.clone(),
            admin_listen: self.admin_listen,
            max_connections: self.max_connections,
            cache: CacheConfig {
                max_identities: self.max_identities,
                upstream_concurrency: self.upstream_concurrency,
                idle_timeout: self.idle_timeout,
                max_pending_fills: self.max_pending_fills,
                fill_wait: self.fill_wait,
                policy: RefreshPolicy {
                    denied_backoff: self.negative_cache_ttl,
                    ..self.tuning.refresh_policy()
                },
            },
            sources: SourceLimits {
                max_connections: self.max_connections_per_source,
                miss_burst: f64::from(self.source_miss_burst),
                miss_rate: self.source_miss_rate,
                refusal_cost: f64::from(self.source_refusal_cost),
            },
            verify,
        })
    }
}
