//! `credagent node`: one agent per node (a DaemonSet on `hostNetwork`),
//! serving every Pod the credentials its own projected token obtains.
//!
//! ```text
//!  Pod's token (Authorization) ──▶ routes ──▶ IdentityCache ──(miss: single-flight)──▶ Exchange
//!                                             (digest → entry, LRU bound, refresh-ahead, negative cache)
//! ```
//!
//! Pods point `AWS_CONTAINER_CREDENTIALS_FULL_URI` at
//! `http://169.254.170.23/v1/credentials` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` at their own projected token;
//! `credagent node setup-link` puts that address on the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::{self, SharedClock};
use crate::config::NodeConfig;
use crate::exchange::{Exchange, HttpExchanger};
use crate::metrics::{Metrics, NodeMetrics};
use crate::server::{self, AdminRoutes, Readiness};
use crate::sidecar::StartError;

pub mod cache;
pub mod link;
pub mod routes;

use self::cache::IdentityCache;
use self::routes::NodeRoutes;

/// Overrides for tests; the defaults are production's.
#[derive(Default)]
pub struct NodeOptions {
    /// Use this exchange instead of the HTTPS client built from the config.
    pub exchange: Option<Arc<dyn Exchange>>,
    /// Use this wall clock instead of the system's.
    pub clock: Option<SharedClock>,
    /// Use these already-bound credentials listeners (the config's
    /// `listen` still names the accepted `Host` values).
    pub listeners: Option<Vec<TcpListener>>,
    /// Use this already-bound admin listener.
    pub admin_listener: Option<TcpListener>,
}

/// A running node agent.
#[derive(Debug)]
pub struct Node {
    /// Where credentials are served.
    pub addrs: Vec<SocketAddr>,
    /// Where /metrics, /healthz and /readyz are served.
    pub admin_addr: SocketAddr,
    /// The identity cache.
    pub cache: IdentityCache,
    /// The metrics registry.
    pub metrics: Metrics,
    tasks: JoinSet<()>,
}

// === impl Node ===

impl Node {
    /// Binds the listeners and starts serving until `shutdown`.
    pub async fn start(
        config: &NodeConfig,
        options: NodeOptions,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let node_metrics = NodeMetrics::register(metrics.registry())?;
        let clock = options.clock.unwrap_or_else(clock::system);
        let exchange: Arc<dyn Exchange> = match options.exchange {
            Some(e) => e,
            None => Arc::new(HttpExchanger::new(&config.upstream)?),
        };
        let listeners = match options.listeners {
            Some(l) => l,
            None => bind_all(&config.listen).await?,
        };
        let admin_listener = match options.admin_listener {
            Some(l) => l,
            None => server::bind(config.admin_listen, "--admin-listen").await?,
        };
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<Result<Vec<_>, _>>()?;
        let admin_addr = admin_listener.local_addr()?;
        let cache = IdentityCache::new(
            exchange,
            config.cache.clone(),
            clock.clone(),
            node_metrics.clone(),
            shutdown.clone(),
        );
        // The miss path waits at most one upstream timeout plus a queue slot.
        let miss_timeout = config.upstream.timeout + Duration::from_secs(5);
        let routes = Arc::new(NodeRoutes::new(
            cache.clone(),
            &config.listen,
            node_metrics,
            clock,
            miss_timeout,
        ));
        if routes::allowed_hosts(&config.listen).is_none() {
            warn!("a credentials listener is on a wildcard address: the Host header cannot be checked (DNS-rebinding protection is off)");
        }
        info!(
            listen = ?addrs,
            admin_listen = %admin_addr,
            exchange_url = %config.upstream.url,
            max_identities = config.cache.max_identities,
            upstream_concurrency = config.cache.upstream_concurrency,
            "credagent node starting"
        );
        let server_metrics = Arc::new(metrics.server.clone());
        let mut tasks = JoinSet::new();
        for listener in listeners {
            tasks.spawn(server::serve(
                listener,
                routes.clone(),
                server_metrics.clone(),
                shutdown.clone(),
                server::Limits {
                    grace: server::DRAIN_GRACE,
                    max_connections: config.max_connections,
                },
            ));
        }
        tasks.spawn(server::serve(
            admin_listener,
            Arc::new(AdminRoutes {
                readiness: Readiness::Listening,
                metrics: metrics.clone(),
            }),
            server_metrics,
            shutdown,
            server::Limits {
                grace: server::DRAIN_GRACE,
                max_connections: config.max_connections,
            },
        ));
        Ok(Self {
            addrs,
            admin_addr,
            cache,
            metrics,
            tasks,
        })
    }

    /// Waits for every listener to finish draining after shutdown.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds every address. An IPv6 address the node cannot hold (no IPv6
/// stack, or `setup-link` skipped it) is a warning while another listener
/// is up; anything else is an error.
async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, server::BindError> {
    let mut bound = Vec::new();
    let mut skipped = None;
    for addr in addrs {
        match server::bind(*addr, "--listen").await {
            Ok(l) => bound.push(l),
            Err(e)
                if addr.is_ipv6()
                    && matches!(e.source.kind(), std::io::ErrorKind::AddrNotAvailable)
                    || e.source.raw_os_error() == Some(97) =>
            {
                warn!(addr = %addr, error = %e.source, "cannot listen on an IPv6 address; serving IPv4 only");
                skipped = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (bound.is_empty(), skipped) {
        (true, Some(e)) => Err(e),
        _ => Ok(bound),
    }
}
