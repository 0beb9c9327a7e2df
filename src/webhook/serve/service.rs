//! `credagent webhook`, wired: the certificate store and its reloader, the
//! ServiceAccount cache (CoreWeave compatibility), the HTTPS listener and
//! the admin listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::budget::Budget;
use super::server::MutateRoutes;
use super::tls::{run_reloader, server_config, CertError, CertFiles, CertStore, POLL_INTERVAL};
use crate::cli::WebhookArgs;
use crate::metrics::{Metrics, MetricsError, ServerMetrics, WebhookMetrics};
use crate::server::{self, AdminRoutes, Gate, Health, Limits};
use crate::webhook::compat::kube::{KubeClient, KubeConfig};
use crate::webhook::compat::kube_wire::KubeError;
use crate::webhook::compat::sa_cache::{
    run_reflector, CachedServiceAccounts, SaCache, ServiceAccounts,
};

/// How long an idle keep-alive connection is kept: longer than the 90 s
/// after which the API server's Go transport drops idle connections itself,
/// so it is the client that closes one, never the webhook while a request
/// may be on its way (a POST on a connection the server closed is not
/// retried). Only idle time: a request's head must arrive within
/// [`server::HEAD_TIMEOUT`] of its first byte, whatever this is.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Overrides for tests; the defaults are production's.
#[derive(Debug, Default)]
pub struct WebhookOptions {
    /// Use these already-bound listeners (HTTPS, admin).
    pub listeners: Option<(TcpListener, TcpListener)>,
    /// Use this Kubernetes API instead of the in-cluster one (compat mode).
    pub kube: Option<KubeConfig>,
    /// Poll the certificate files this often (default [`POLL_INTERVAL`]).
    pub cert_poll: Option<Duration>,
    /// Drain grace period (default [`server::DRAIN_GRACE`]).
    pub grace: Option<Duration>,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener.
    #[error(transparent)]
    Bind(#[from] server::BindError),
    /// Metrics registration.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The TLS configuration.
    #[error(transparent)]
    Tls(#[from] CertError),
    /// The Kubernetes client (compat mode).
    #[error("--coreweave-compat: {0}")]
    Kube(#[from] KubeError),
    /// Reading a listener's address.
    #[error("cannot read the listener address: {0}")]
    Io(#[from] std::io::Error),
}

/// A running webhook.
#[derive(Debug)]
pub struct Webhook {
    /// Where `POST /mutate` is served (HTTPS).
    pub addr: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    pub admin_addr: SocketAddr,
    /// The metrics registry.
    pub metrics: Metrics,
    tasks: JoinSet<()>,
}

/// `/readyz`: a certificate is served and, in compat mode, the
/// ServiceAccount cache has listed once.
struct Ready {
    certs: Arc<CertStore>,
    accounts: Option<Arc<dyn ServiceAccounts>>,
}

impl Health for Ready {
    fn ready(&self) -> Result<(), String> {
        if !self.certs.loaded() {
            return Err("no serving certificate loaded".into());
        }
        if self.accounts.as_ref().is_some_and(|a| !a.synced()) {
            return Err("ServiceAccounts not listed yet".into());
        }
        Ok(())
    }
}

// === impl Webhook ===

impl Webhook {
    /// Starts everything; returns once both listeners are bound. Runs until
    /// `shutdown` is cancelled.
    pub async fn start(
        config: &WebhookArgs,
        options: WebhookOptions,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let webhook_metrics = WebhookMetrics::register(&metrics)?;
        let server_metrics = Arc::new(ServerMetrics::register(&metrics)?);
        let mut tasks = JoinSet::new();

        let files = CertFiles {
            cert: config.tls_cert_file.clone(),
            key: config.tls_key_file.clone(),
        };
        let certs = Arc::new(CertStore::new(webhook_metrics.clone()));
        if let Err(e) = certs.reload(&files).await {
            warn!(error = %e, "no serving certificate yet; not ready until one loads");
        }
        let tls = tokio_rustls::TlsAcceptor::from(server_config(certs.clone())?);

        let inject = &config.inject;
        let accounts: Option<Arc<dyn ServiceAccounts>> = if inject.coreweave_compat {
            let kube = match options.kube {
                Some(k) => k,
                None => KubeConfig::in_cluster()?,
            };
            let client = KubeClient::new(&kube)?;
            info!(api = %kube.api, route = ?client.route(), namespace = kube.namespace.as_deref().unwrap_or(""), "CoreWeave compatibility: watching ServiceAccounts");
            let cache = Arc::new(SaCache::new(webhook_metrics.clone()));
            tasks.spawn(run_reflector(
                client.clone(),
                cache.clone(),
                shutdown.clone(),
            ));
            Some(Arc::new(CachedServiceAccounts { cache, client }))
        } else {
            None
        };

        let (listener, admin_listener) = match options.listeners {
            Some(pair) => pair,
            None => (
                server::bind(config.listen, "--listen").await?,
                server::bind(config.admin_listen, "--admin-listen").await?,
            ),
        };
        let addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        info!(
            listen = %addr,
            admin_listen = %admin_addr,
            tls_cert_file = %files.cert.display(),
            sidecar_image = inject.sidecar_image.as_str(),
            coreweave_compat = inject.coreweave_compat,
            // No credentials in either, by construction (InjectedProxyUrl).
            sidecar_https_proxy = inject.sidecar_https_proxy.as_ref().map_or("", |p| p.as_str()),
            sidecar_no_proxy = inject.sidecar_no_proxy.as_ref().map_or("", |l| l.as_str()),
            "credagent webhook starting"
        );

        tasks.spawn(run_reloader(
            certs.clone(),
            files,
            options.cert_poll.unwrap_or(POLL_INTERVAL),
            shutdown.clone(),
        ));
        let grace = options.grace.unwrap_or(server::DRAIN_GRACE);
        let limits = Limits::webhook(config.max_connections, KEEP_ALIVE_TIMEOUT).with_grace(grace);
        let admin = Limits::admin().with_grace(grace);
        server::descriptors::check(limits.max_connections + admin.max_connections);
        let routes = MutateRoutes {
            config: Arc::new(inject.clone()),
            accounts: accounts.clone(),
            metrics: webhook_metrics,
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            budget: Budget::new(config.max_body_bytes),
        };
        tasks.spawn(server::serve_with(
            listener,
            Arc::new(routes),
            server_metrics.clone(),
            shutdown.clone(),
            Gate::new(limits),
            tls,
        ));
        tasks.spawn(server::serve(
            admin_listener,
            Arc::new(AdminRoutes {
                health: Arc::new(Ready { certs, accounts }),
                metrics: metrics.clone(),
            }),
            server_metrics,
            shutdown,
            Gate::new(admin),
        ));
        Ok(Self {
            addr,
            admin_addr,
            metrics,
            tasks,
        })
    }

    /// Waits for every task to finish (after shutdown).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}
