//! `credagent node`'s runtime configuration: the listeners, the identity
//! cache, the per-source bounds and local token verification, grouped by
//! the part of node mode that consumes each (what `cli::NodeArgs` resolves
//! to once the upstream's roots and proxy are read).

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use super::refresh::RefreshPolicy;
use super::upstream::UpstreamConfig;

/// Everything `credagent node` needs, resolved.
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
