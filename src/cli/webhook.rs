//! `credagent webhook`: the admission webhook that injects credagent into
//! Pods (docs/webhook.md).
//!
//! Its own flags: what it serves on, its TLS files, the bounds on a
//! request; what it injects is [`InjectArgs`], flattened in. The upstream
//! flags are the shared ones, naming the upstream the *injected* sidecars
//! use (the webhook never calls it). The webhook consumes these arguments
//! as they are: there is no configuration struct after them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::inject::InjectArgs;
use super::shared::DEFAULT_ADMIN_LISTEN;
use crate::config::flag::{checked, checked_os, file_path, positive};
use crate::config::{parse_duration, positive_duration, ConfigError};

/// Default HTTPS listener of the webhook (the Service's target port).
pub const DEFAULT_WEBHOOK_LISTEN: &str = "0.0.0.0:8443";
/// Default serving certificate chain (PEM), as cert-manager names it in its Secret.
pub const DEFAULT_TLS_CERT_FILE: &str = "/etc/credagent/tls/tls.crt";
/// Default serving private key (PEM), as cert-manager names it in its Secret.
pub const DEFAULT_TLS_KEY_FILE: &str = "/etc/credagent/tls/tls.key";
/// Default bound on an AdmissionReview body: 3 MiB, the API server's own
/// limit on a request body, so any Pod it accepts fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Smallest `--max-body-bytes` (no Pod fits in less).
pub const MIN_BODY_BYTES: usize = 16 * 1024;
/// Largest `--max-body-bytes`.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// `credagent webhook`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// HTTPS listener for POST /mutate (the API server calls it through the Service).
    #[arg(long, env = "CREDAGENT_LISTEN", default_value = DEFAULT_WEBHOOK_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Serving certificate chain, PEM (leaf first); reloaded when it changes.
    #[arg(long, env = "CREDAGENT_TLS_CERT_FILE", default_value = DEFAULT_TLS_CERT_FILE, value_name = "PATH", value_parser = checked_os(file_path))]
    pub tls_cert_file: PathBuf,

    /// Serving private key, PEM (PKCS#8, PKCS#1 or SEC1); reloaded when it changes.
    #[arg(long, env = "CREDAGENT_TLS_KEY_FILE", default_value = DEFAULT_TLS_KEY_FILE, value_name = "PATH", value_parser = checked_os(file_path))]
    pub tls_key_file: PathBuf,

    /// Admin listener address for /metrics, /healthz and /readyz (plain HTTP).
    #[arg(long, env = "CREDAGENT_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: SocketAddr,

    /// What is injected.
    #[command(flatten)]
    pub inject: InjectArgs,

    /// Largest AdmissionReview body accepted, in bytes (larger gets 413).
    #[arg(long, env = "CREDAGENT_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, value_name = "BYTES", value_parser = checked(body_bytes))]
    pub max_body_bytes: usize,

    /// Time allowed to receive a whole AdmissionReview body once its head has arrived.
    #[arg(
        long,
        env = "CREDAGENT_BODY_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION",
        value_parser = checked(positive_duration)
    )]
    pub body_timeout: Duration,

    /// Most connections open at once on the HTTPS listener (more wait until one closes).
    // 128: each can hold ~47 KiB (an unread answer filling its TLS and
    // socket buffers), 6 MiB in all, beside the 32 MiB request budget and
    // the baseline: 46 MiB, plus a third inside the chart's 64 MiB
    // (docs/deploy.md, "Sizing"); the API servers keep a few each.
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "128",
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub max_connections: usize,

    /// After SIGTERM, keep serving this long (while the endpoint leaves the Service), then drain.
    #[arg(
        long,
        env = "CREDAGENT_SHUTDOWN_DELAY",
        default_value = "5s",
        value_name = "DURATION",
        value_parser = checked(shutdown_delay)
    )]
    pub shutdown_delay: Duration,

    /// Validate the configuration (flags and environment), print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

fn body_bytes(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    if (MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be {MIN_BODY_BYTES} to {MAX_BODY_BYTES}"))
    }
}

fn shutdown_delay(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d > Duration::from_secs(60) => Err("must be at most 60s".into()),
        d => Ok(d),
    }
}

// === impl WebhookArgs ===

impl WebhookArgs {
    /// The webhook's cross-flag rules, and those of what it injects (clap
    /// checks the rest as it parses); run before anything is bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen == self.admin_listen {
            return Err(ConfigError::new(
                "--admin-listen",
                "must differ from --listen",
            ));
        }
        self.inject.validate()
    }
}
