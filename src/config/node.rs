//! `credagent node`'s configuration: the listeners, the identity cache, the
//! per-source bounds and local token verification.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::refresh::RefreshPolicy;
use super::upstream::{check_fetch_url, refresh_policy, upstream_config, UpstreamConfig};
use crate::cli::NodeArgs;

/// Everything `credagent node` needs, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The upstream exchange.
    pub upstream: UpstreamConfig,
    /// Credentials listeners.
    pub listen: Vec<SocketAddr>,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// The identity cache's bounds and schedule.
    pub cache: CacheConfig,
    /// What one source address may use.
    pub sources: SourceLimits,
    /// Connections open at once, over every listener.
    pub max_connections: usize,
    /// Local token verification, if `--issuer` is given.
    pub verify: Option<VerifyConfig>,
}

/// How the identity cache behaves.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most identities held at once.
    pub max_identities: usize,
    /// Most upstream exchanges in flight at once.
    pub upstream_concurrency: usize,
    /// Identities unused for this long are dropped at their next refresh.
    pub idle_timeout: Duration,
    /// Most first exchanges waiting or running at once.
    pub max_pending_fills: usize,
    /// Longest a request waits for a first exchange.
    pub fill_wait: Duration,
    /// When to refresh, how to back off, how long to serve; its
    /// `denied_backoff` is how long a refused token is refused without
    /// asking again (`--negative-cache-ttl`).
    pub policy: RefreshPolicy,
}

/// The per-source bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceLimits {
    /// Connections open at once from one address.
    pub max_connections: usize,
    /// New tokens exchanged in a burst.
    pub miss_burst: f64,
    /// New tokens exchanged per second, sustained.
    pub miss_rate: f64,
    /// Extra cost of a refused token.
    pub refusal_cost: f64,
}

/// Local verification: the issuers to accept and the audience to require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// Each issuer, with its key-set URL when named.
    pub issuers: Vec<(String, Option<Uri>)>,
    /// The audience tokens must carry.
    pub audience: String,
}

// === impl NodeConfig ===

impl NodeConfig {
    /// Validates raw node arguments.
    pub fn from_args(args: &NodeArgs) -> Result<Self, ConfigError> {
        if args.listen.is_empty() {
            return Err(ConfigError::new(
                "--listen",
                "at least one address is required",
            ));
        }
        let positive = |flag: &'static str, n: usize| {
            if n == 0 {
                Err(ConfigError::new(flag, "must be > 0"))
            } else {
                Ok(n)
            }
        };
        positive("--max-identities", args.max_identities)?;
        positive("--max-connections", args.max_connections)?;
        positive(
            "--max-connections-per-source",
            args.max_connections_per_source,
        )?;
        positive("--upstream-concurrency", args.upstream_concurrency)?;
        positive("--max-pending-fills", args.max_pending_fills)?;
        positive("--source-miss-burst", args.source_miss_burst as usize)?;
        if !(args.source_miss_rate.is_finite() && args.source_miss_rate > 0.0) {
            return Err(ConfigError::new("--source-miss-rate", "must be > 0"));
        }
        let idle_timeout = parse_duration(&args.idle_timeout)
            .map_err(|e| ConfigError::new("--idle-timeout", e))?;
        let negative_ttl = parse_duration(&args.negative_cache_ttl)
            .map_err(|e| ConfigError::new("--negative-cache-ttl", e))?;
        let fill_wait =
            parse_duration(&args.fill_wait).map_err(|e| ConfigError::new("--fill-wait", e))?;
        if fill_wait.is_zero() {
            return Err(ConfigError::new("--fill-wait", "must be > 0"));
        }
        Ok(Self {
            upstream: upstream_config(&args.upstream, &args.tuning)?,
            listen: args.listen.clone(),
            admin_listen: args.admin_listen,
            max_connections: args.max_connections,
            cache: CacheConfig {
                max_identities: args.max_identities,
                upstream_concurrency: args.upstream_concurrency,
                idle_timeout,
                max_pending_fills: args.max_pending_fills,
                fill_wait,
                policy: RefreshPolicy {
                    denied_backoff: negative_ttl,
                    ..refresh_policy(&args.tuning)?
                },
            },
            sources: SourceLimits {
                max_connections: args.max_connections_per_source,
                miss_burst: f64::from(args.source_miss_burst),
                miss_rate: args.source_miss_rate,
                refusal_cost: f64::from(args.source_refusal_cost),
            },
            verify: verify_config(args)?,
        })
    }
}

fn verify_config(args: &NodeArgs) -> Result<Option<VerifyConfig>, ConfigError> {
    if args.issuers.is_empty() {
        if !args.jwks_urls.is_empty() {
            return Err(ConfigError::new(
                "--jwks-url",
                "names the key set of an --issuer; give the --issuer too",
            ));
        }
        return Ok(None);
    }
    if !args.jwks_urls.is_empty() && args.jwks_urls.len() != args.issuers.len() {
        return Err(ConfigError::new(
            "--jwks-url",
            "give one per --issuer, in the same order, or none (discovery)",
        ));
    }
    if args.audience.is_empty() {
        return Err(ConfigError::new("--audience", "must not be empty"));
    }
    let mut issuers = Vec::new();
    for (i, issuer) in args.issuers.iter().enumerate() {
        let uri: Uri = issuer
            .parse()
            .map_err(|e| ConfigError::new("--issuer", format!("not a URL ({e})")))?;
        check_fetch_url(&uri).map_err(|why| ConfigError::new("--issuer", why))?;
        let jwks = match args.jwks_urls.get(i) {
            None => None,
            Some(raw) => {
                let uri: Uri = raw
                    .parse()
                    .map_err(|e| ConfigError::new("--jwks-url", format!("not a URL ({e})")))?;
                check_fetch_url(&uri).map_err(|why| ConfigError::new("--jwks-url", why))?;
                Some(uri)
            }
        };
        issuers.push((issuer.clone(), jwks));
    }
    Ok(Some(VerifyConfig {
        issuers,
        audience: args.audience.clone(),
    }))
}
