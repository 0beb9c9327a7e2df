//! Wiring `credagent node`: metrics, the refresh engine, the cache and its
//! fills, local verification, the listeners (sharing one connection gate).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::cache::Cache;
use super::fair::FairSlots;
use super::fill::Filler;
use super::health::{NodeHealth, Ready, UpstreamHealth};
use super::resolve::Resolver;
use super::routes::NodeRoutes;
use super::sources::{MissBudget, MissLimiter};
use crate::clock::{self, SharedClock};
use crate::config::NodeConfig;
use crate::exchange::{Exchange, HttpExchanger};
use crate::logsafe::redact_userinfo;
use crate::metrics::{
    Metrics, MetricsError, NodeMetrics, RefreshMetrics, ServerMetrics, VerifyMetrics,
};
use crate::node::verify::{IssuerConfig, KeyVerifier, Verify};
use crate::outbound::{BuildError, Outbound};
use crate::refresh::{Engine, Jitter};
use crate::server::host::HostNames;
use crate::server::{self, descriptors, AdminRoutes, BindError, Gate, Health, Limits};

/// Overrides for tests; the defaults are production's.
#[derive(Default)]
pub struct NodeOptions {
    /// Use this exchange instead of the HTTPS client built from the config.
    pub exchange: Option<Arc<dyn Exchange>>,
    /// Use this wall clock instead of the system's.
    pub clock: Option<SharedClock>,
    /// Use this jitter source for every identity's schedule.
    pub jitter: Option<Jitter>,
    /// Use these already-bound credentials listeners (the config's
    /// `listen` still names the accepted `Host` values).
    pub listeners: Option<Vec<TcpListener>>,
    /// Use this already-bound admin listener.
    pub admin_listener: Option<TcpListener>,
}

/// Why the node agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The outbound client.
    #[error(transparent)]
    Client(#[from] BuildError),
    /// Metrics registration.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Reading a listener's address.
    #[error("cannot read the listener address: {0}")]
    Io(#[from] std::io::Error),
}

/// A running node agent.
#[derive(Debug)]
pub struct Node {
    /// Where credentials are served.
    pub addrs: Vec<SocketAddr>,
    /// Where /metrics, /healthz and /readyz are served.
    pub admin_addr: SocketAddr,
    /// The identity cache.
    pub cache: Arc<Cache>,
    /// The logic behind the credentials route.
    pub resolver: Arc<Resolver>,
    /// The metrics registry.
    pub metrics: Metrics,
    tasks: JoinSet<()>,
}

/// The node agent's logic, without listeners.
pub struct Service {
    /// From a token to an answer.
    pub resolver: Arc<Resolver>,
    /// The identity cache.
    pub cache: Arc<Cache>,
    /// The metrics registry (`/metrics`).
    pub metrics: Metrics,
    node_metrics: NodeMetrics,
    health: Arc<NodeHealth>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The key sets, as one of readiness's conditions.
struct KeysLoaded(Arc<KeyVerifier>);

impl Ready for KeysLoaded {
    fn ready(&self) -> Result<(), String> {
        self.0.ready()
    }
}

// === impl Service ===

impl Service {
    /// Builds the node agent's logic for `config` (spawning the key-set
    /// refresh when verification is on), without any listener: what
    /// [`Node::start`] serves, and what tests drive directly.
    pub fn new(
        config: &NodeConfig,
        exchange: Option<Arc<dyn Exchange>>,
        clock: Option<SharedClock>,
        jitter: Option<Jitter>,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let refresh_metrics = RefreshMetrics::register(&metrics)?;
        let node_metrics = NodeMetrics::register(&metrics)?;
        let clock = clock.unwrap_or_else(clock::system);
        let exchange: Arc<dyn Exchange> = match exchange {
            Some(e) => e,
            None => Arc::new(HttpExchanger::new(&config.upstream)?),
        };
        let mut engine = Engine::new(
            exchange,
            config.cache.policy,
            clock.clone(),
            refresh_metrics,
        );
        if let Some(jitter) = jitter {
            engine = engine.with_jitter(jitter);
        }
        let cache = Arc::new(Cache::new(
            config.cache.max_identities,
            config.cache.max_pending_fills,
            node_metrics.clone(),
        ));
        let upstream_health = Arc::new(UpstreamHealth::new());
        let filler = Arc::new(Filler {
            cache: cache.clone(),
            engine,
            slots: FairSlots::new(config.cache.upstream_concurrency),
            limiter: MissLimiter::new(MissBudget {
                burst: config.sources.miss_burst,
                rate: config.sources.miss_rate,
                penalty: config.sources.refusal_cost,
            }),
            health: upstream_health.clone(),
            idle_timeout: config.cache.idle_timeout,
            shutdown: shutdown.clone(),
        });
        let verifier = match &config.verify {
            None => None,
            Some(v) => {
                let issuers: Vec<IssuerConfig> = v
                    .issuers
                    .iter()
                    .map(|(issuer, jwks_url)| IssuerConfig {
                        issuer: issuer.clone(),
                        jwks_url: jwks_url.clone(),
                    })
                    .collect();
                let verifier = KeyVerifier::new(
                    &issuers,
                    v.audience.clone(),
                    clock.clone(),
                    Outbound::new(&config.upstream.outbound())?,
                    VerifyMetrics::register(&metrics)?,
                );
                tokio::spawn(verifier.clone().run(shutdown.clone()));
                Some(verifier)
            }
        };
        let resolver = Arc::new(Resolver::new(
            filler,
            verifier.clone().map(|v| v as Arc<dyn Verify>),
            node_metrics.clone(),
            clock,
            config.cache.fill_wait,
        ));
        let health = Arc::new(NodeHealth {
            upstream: upstream_health,
            keys: verifier.map(|v| Arc::new(KeysLoaded(v)) as Arc<dyn Ready>),
        });
        Ok(Self {
            resolver,
            cache,
            metrics,
            node_metrics,
            health,
        })
    }

    /// What `/readyz` reports.
    pub fn ready(&self) -> Result<(), String> {
        self.health.ready()
    }

    /// The credentials route over this service, for listeners on `listen`.
    pub fn routes(&self, listen: &[SocketAddr]) -> NodeRoutes {
        NodeRoutes::new(self.resolver.clone(), listen, self.node_metrics.clone())
    }
}

// === impl Node ===

impl Node {
    /// Binds the listeners and starts serving until `shutdown`.
    pub async fn start(
        config: &NodeConfig,
        options: NodeOptions,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
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
        let service = Service::new(
            config,
            options.exchange,
            options.clock,
            options.jitter,
            shutdown.clone(),
        )?;
        let server_metrics = Arc::new(ServerMetrics::register(&service.metrics)?);
        let routes = Arc::new(service.routes(&config.listen));
        if HostNames::of(&config.listen).is_none() {
            warn!("a credentials listener is on a wildcard address: the Host header cannot be checked against it (DNS-rebinding protection is off)");
        }
        info!(
            listen = ?addrs,
            admin_listen = %admin_addr,
            exchange_url = %redact_userinfo(&config.upstream.url.to_string()),
            max_identities = config.cache.max_identities,
            upstream_concurrency = config.cache.upstream_concurrency,
            max_connections = config.max_connections,
            max_connections_per_source = config.sources.max_connections,
            verify_issuers = config.verify.as_ref().map(|v| v.issuers.len()).unwrap_or(0),
            "credagent node starting"
        );
        // One gate for every credentials listener: the cap is the agent's,
        // sized to its memory limit, whichever address a Pod uses.
        let limits =
            Limits::credentials(config.max_connections, Some(config.sources.max_connections));
        let admin = Limits::admin();
        descriptors::check(limits.max_connections + admin.max_connections);
        let gate = Gate::new(limits);
        let mut tasks = JoinSet::new();
        for listener in listeners {
            tasks.spawn(server::serve(
                listener,
                routes.clone(),
                server_metrics.clone(),
                shutdown.clone(),
                gate.clone(),
            ));
        }
        tasks.spawn(server::serve(
            admin_listener,
            Arc::new(AdminRoutes {
                health: service.health.clone(),
                metrics: service.metrics.clone(),
            }),
            server_metrics,
            shutdown,
            Gate::new(admin),
        ));
        Ok(Self {
            addrs,
            admin_addr,
            cache: service.cache.clone(),
            resolver: service.resolver.clone(),
            metrics: service.metrics.clone(),
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
async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, BindError> {
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
