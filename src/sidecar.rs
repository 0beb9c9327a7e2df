//! `credagent sidecar`: the token source, the refresher, the store and the
//! two listeners, wired together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use tokio::time::Instant;

use crate::clock::{self, SharedClock};
use crate::config::SidecarConfig;
use crate::exchange::{Exchange, HttpExchanger};
use crate::logsafe::redact_userinfo;
use crate::metrics::{
    Metrics, MetricsError, RefreshMetrics, ServerMetrics, SidecarMetrics, TokenMetrics,
};
use crate::refresh::{Engine, Jitter, Refresher};
use crate::server::{self, AdminRoutes, AuthToken, CredentialsRoutes, Health};
use crate::store::Store;
use crate::surfaces::file_sink;
use crate::surfaces::imds::ImdsRoutes;
use crate::surfaces::process_dir::ProcessDir;
use crate::token::{self, TokenSourceConfig};

/// Overrides for tests and the demo; the defaults are production's.
#[derive(Default)]
pub struct Options {
    /// Use this exchange instead of the HTTPS client built from the config.
    pub exchange: Option<Arc<dyn Exchange>>,
    /// Use this wall clock instead of the system's.
    pub clock: Option<SharedClock>,
    /// Tune the token source (poll interval, inotify on/off).
    pub token: Option<TokenSourceConfig>,
    /// Use this jitter source for the refresh schedule.
    pub jitter: Option<Jitter>,
    /// Use these already-bound listeners (credentials, admin).
    pub listeners: Option<(tokio::net::TcpListener, tokio::net::TcpListener)>,
    /// Use this already-bound listener for the IMDS emulation.
    pub imds_listener: Option<tokio::net::TcpListener>,
    /// Drain grace period (default [`server::DRAIN_GRACE`]).
    pub grace: Option<Duration>,
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The auth token file.
    #[error(transparent)]
    AuthToken(#[from] server::auth::AuthTokenError),
    /// A listener.
    #[error(transparent)]
    Bind(#[from] server::BindError),
    /// The upstream client.
    #[error(transparent)]
    Client(#[from] crate::outbound::BuildError),
    /// Metrics registration.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The credential-process directory.
    #[error(transparent)]
    ProcessDir(#[from] crate::surfaces::process_dir::ProcessDirError),
    /// Reading a listener's address.
    #[error("cannot read the listener address: {0}")]
    Io(#[from] std::io::Error),
}

/// A running sidecar.
#[derive(Debug)]
pub struct Sidecar {
    /// Where credentials are served.
    pub credentials_addr: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    pub admin_addr: SocketAddr,
    /// Where the IMDS emulation is served, if enabled.
    pub imds_addr: Option<SocketAddr>,
    /// The store the listeners serve from.
    pub store: Store,
    /// The metrics registry.
    pub metrics: Metrics,
    tasks: JoinSet<()>,
}

// === impl Sidecar ===

impl Sidecar {
    /// Starts everything; returns once both listeners are bound. Runs until
    /// `shutdown` is cancelled.
    pub async fn start(
        config: &SidecarConfig,
        options: Options,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let token_metrics = TokenMetrics::register(&metrics)?;
        let refresh_metrics = RefreshMetrics::register(&metrics)?;
        let sidecar_metrics = SidecarMetrics::register(&metrics)?;
        let server_metrics = Arc::new(ServerMetrics::register(&metrics)?);
        let clock = options.clock.unwrap_or_else(clock::system);
        let exchange: Arc<dyn Exchange> = match options.exchange {
            Some(e) => e,
            None => Arc::new(HttpExchanger::new(&config.upstream)?),
        };
        let auth = AuthToken::load_or_create(&config.auth_token_file).await?;
        // Written before anything is served, so the apps never see the
        // agent ready without the files in place.
        let process_dir = match &config.credential_process_dir {
            None => None,
            Some(c) => {
                let dir = ProcessDir::prepare(c).await?;
                info!(aws_config = %dir.config_path().display(), "credential-process files written");
                Some(dir)
            }
        };
        let (creds_listener, admin_listener) = match options.listeners {
            Some(pair) => pair,
            None => (
                server::bind(config.listen, "--listen").await?,
                server::bind(config.admin_listen, "--admin-listen").await?,
            ),
        };
        let imds_listener = match (options.imds_listener, &config.imds) {
            (Some(l), Some(_)) => Some(l),
            (None, Some((addr, _))) => Some(server::bind(*addr, "--imds-listen").await?),
            _ => None,
        };
        let imds_addr = imds_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let credentials_addr = creds_listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        if !credentials_addr.ip().is_loopback() {
            warn!(addr = %credentials_addr, "the credentials listener is not on loopback: anything that can reach it and read the auth token gets credentials");
        }
        info!(
            listen = %credentials_addr,
            admin_listen = %admin_addr,
            token_file = %config.token_file.display(),
            exchange_url = %redact_userinfo(&config.upstream.url.to_string()),
            auth_token_file = %config.auth_token_file.display(),
            "credagent sidecar starting"
        );

        let store = if config.imds.is_some() {
            Store::with_imds()
        } else {
            Store::new()
        };
        let token_config = options
            .token
            .unwrap_or_else(|| TokenSourceConfig::new(config.token_file.clone()));
        let tokens = token::spawn(token_config, clock.clone(), token_metrics, shutdown.clone());
        let mut engine = Engine::new(exchange, config.refresh, clock, refresh_metrics);
        if let Some(jitter) = options.jitter {
            engine = engine.with_jitter(jitter);
        }
        let refresher = Refresher::new(engine, tokens, store.clone(), sidecar_metrics);

        let grace = options.grace.unwrap_or(server::DRAIN_GRACE);
        let credentials =
            server::Limits::credentials(config.max_connections, None).with_grace(grace);
        let imds_limits = server::Limits::imds().with_grace(grace);
        let admin = server::Limits::admin().with_grace(grace);
        server::descriptors::check(
            credentials.max_connections
                + admin.max_connections
                + imds_addr.map_or(0, |_| imds_limits.max_connections),
        );
        let mut tasks = JoinSet::new();
        tasks.spawn(refresher.run(shutdown.clone()));
        tasks.spawn(server::serve(
            creds_listener,
            Arc::new(CredentialsRoutes {
                store: store.clone(),
                auth,
            }),
            server_metrics.clone(),
            shutdown.clone(),
            server::Gate::new(credentials),
        ));
        if let (Some(listener), Some(addr), Some((_, imds))) =
            (imds_listener, imds_addr, &config.imds)
        {
            if !addr.ip().is_loopback() {
                warn!("the IMDS emulation is not on loopback");
            }
            tasks.spawn(server::serve(
                listener,
                Arc::new(ImdsRoutes::new(store.clone(), imds.clone(), addr)),
                server_metrics.clone(),
                shutdown.clone(),
                server::Gate::new(imds_limits),
            ));
        }
        if let Some(dir) = process_dir {
            tasks.spawn(dir.run(shutdown.clone()));
        }
        if let Some(sink) = &config.credentials_file {
            tasks.spawn(file_sink::run(
                sink.clone(),
                store.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(server::serve(
            admin_listener,
            Arc::new(AdminRoutes {
                health: Arc::new(HoldsCredentials(store.clone())),
                metrics: metrics.clone(),
            }),
            server_metrics,
            shutdown,
            server::Gate::new(admin),
        ));
        Ok(Self {
            credentials_addr,
            admin_addr,
            imds_addr,
            store,
            metrics,
            tasks,
        })
    }

    /// Waits for every task to finish (after shutdown: listeners drained).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The sidecar is ready while its store holds servable credentials.
struct HoldsCredentials(Store);

impl Health for HoldsCredentials {
    fn ready(&self) -> Result<(), String> {
        match self.0.servable(Instant::now()) {
            Some(_) => Ok(()),
            None => Err("no valid credentials".into()),
        }
    }
}
