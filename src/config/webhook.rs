//! `credagent webhook`'s configuration: its listeners and TLS files, the
//! bounds on a request, and what it injects.
//!
//! What it injects is checked here flag by flag as far as the flags alone
//! tell (the image reference, the upstream exactly as the sidecar checks
//! it, the token lifetime, the ports); the webhook's core then builds its
//! `InjectConfig` from [`InjectSettings`] and validates the rest
//! (quantities, URLs) before anything is bound, naming the flag too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::image::image_reference;
use super::sidecar_proxy::{injected_https_proxy, injected_no_proxy};
use super::upstream::{exchange_target, Given};
use crate::cli::{PullPolicyArg, WebhookArgs};

/// Smallest `--max-body-bytes` (no Pod fits in less).
pub const MIN_BODY_BYTES: usize = 16 * 1024;
/// Largest `--max-body-bytes`.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Everything `credagent webhook` needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The HTTPS listener (`POST /mutate`).
    pub listen: SocketAddr,
    /// The admin listener (plain HTTP).
    pub admin_listen: SocketAddr,
    /// The serving certificate chain, PEM.
    pub tls_cert_file: PathBuf,
    /// The serving private key, PEM.
    pub tls_key_file: PathBuf,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed for a body once the head has arrived.
    pub body_timeout: Duration,
    /// Connections open at once on the HTTPS listener.
    pub max_connections: usize,
    /// How long to keep serving after SIGTERM before draining.
    pub shutdown_delay: Duration,
    /// What is injected.
    pub inject: InjectSettings,
}

/// What the webhook injects, as the flags gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectSettings {
    /// The sidecar image reference.
    pub image: String,
    /// Its `imagePullPolicy`.
    pub image_pull_policy: PullPolicyArg,
    /// The upstream the sidecars use.
    pub upstream: InjectUpstream,
    /// The projected token's default audience.
    pub audience: String,
    /// The projected token's default lifetime, seconds.
    pub token_expiration: u32,
    /// The sidecar's credentials port on 127.0.0.1.
    pub sidecar_port: u16,
    /// The sidecar's admin port.
    pub sidecar_admin_port: u16,
    /// The sidecar's CPU request, if any.
    pub cpu_request: Option<String>,
    /// The sidecar's CPU limit, if any.
    pub cpu_limit: Option<String>,
    /// The sidecar's memory request, if any.
    pub memory_request: Option<String>,
    /// The sidecar's memory limit, if any.
    pub memory_limit: Option<String>,
    /// The apps' region, if any.
    pub region: Option<String>,
    /// The apps' S3 endpoint, if any.
    pub s3_endpoint: Option<String>,
    /// The node agent's credentials URL (node mode).
    pub node_url: String,
    /// Honour CoreWeave's ServiceAccount annotation.
    pub coreweave_compat: bool,
    /// The sidecars' `HTTPS_PROXY`, as they will read it (no credentials).
    pub sidecar_https_proxy: Option<String>,
    /// The sidecars' `NO_PROXY`, entries trimmed.
    pub sidecar_no_proxy: Option<String>,
}

/// The injected sidecars' `--org-id` or `--exchange-url`, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectUpstream {
    /// `--org-id`.
    OrgId(String),
    /// `--exchange-url`.
    ExchangeUrl(String),
}

// === impl WebhookConfig ===

impl WebhookConfig {
    /// Validates raw webhook arguments.
    pub fn from_args(args: &WebhookArgs) -> Result<Self, ConfigError> {
        if args.listen == args.admin_listen {
            return Err(ConfigError::new(
                "--admin-listen",
                "must differ from --listen",
            ));
        }
        for (flag, path) in [
            ("--tls-cert-file", &args.tls_cert_file),
            ("--tls-key-file", &args.tls_key_file),
        ] {
            if path.file_name().is_none() {
                return Err(ConfigError::new(flag, "must name a file"));
            }
        }
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&args.max_body_bytes) {
            return Err(ConfigError::new(
                "--max-body-bytes",
                format!("must be {MIN_BODY_BYTES} to {MAX_BODY_BYTES}"),
            ));
        }
        let body_timeout = parse_duration(&args.body_timeout)
            .map_err(|e| ConfigError::new("--body-timeout", e))?;
        if body_timeout.is_zero() {
            return Err(ConfigError::new("--body-timeout", "must be > 0"));
        }
        if args.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be > 0"));
        }
        let shutdown_delay = parse_duration(&args.shutdown_delay)
            .map_err(|e| ConfigError::new("--shutdown-delay", e))?;
        if shutdown_delay > Duration::from_secs(60) {
            return Err(ConfigError::new("--shutdown-delay", "must be at most 60s"));
        }
        Ok(Self {
            listen: args.listen,
            admin_listen: args.admin_listen,
            tls_cert_file: args.tls_cert_file.clone(),
            tls_key_file: args.tls_key_file.clone(),
            max_body_bytes: args.max_body_bytes,
            body_timeout,
            max_connections: args.max_connections,
            shutdown_delay,
            inject: inject_settings(args)?,
        })
    }
}

fn inject_settings(args: &WebhookArgs) -> Result<InjectSettings, ConfigError> {
    image_reference(&args.sidecar_image).map_err(|why| ConfigError::new("--sidecar-image", why))?;
    // Checked exactly as the sidecar will check them, so that no injected
    // sidecar exits 2 on the upstream it was given.
    let upstream = match exchange_target(&args.upstream)? {
        (Given::ExchangeUrl(url), _) => InjectUpstream::ExchangeUrl(url.to_owned()),
        (Given::OrgId(org), _) => InjectUpstream::OrgId(org.to_owned()),
    };
    let lifetime = parse_duration(&args.token_expiration)
        .map_err(|e| ConfigError::new("--token-expiration", e))?;
    let token_expiration = u32::try_from(lifetime.as_secs())
        .ok()
        .filter(|s| (600..=86_400).contains(s) && lifetime.subsec_nanos() == 0)
        .ok_or_else(|| {
            ConfigError::new(
                "--token-expiration",
                "must be whole seconds from 10m to 24h (Kubernetes' minimum to 24 hours)",
            )
        })?;
    for (flag, port) in [
        ("--sidecar-port", args.sidecar_port),
        ("--sidecar-admin-port", args.sidecar_admin_port),
    ] {
        if port == 0 {
            return Err(ConfigError::new(flag, "must be > 0"));
        }
    }
    if args.sidecar_port == args.sidecar_admin_port {
        return Err(ConfigError::new(
            "--sidecar-admin-port",
            "must differ from --sidecar-port",
        ));
    }
    let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    // Checked exactly as the sidecar reads them, and written as it reads them.
    let sidecar_https_proxy = args
        .sidecar_https_proxy
        .as_deref()
        .and_then(optional)
        .map(|url| injected_https_proxy(&url))
        .transpose()
        .map_err(|e| ConfigError::new("--sidecar-https-proxy", e.to_string()))?;
    let sidecar_no_proxy = args
        .sidecar_no_proxy
        .as_deref()
        .and_then(optional)
        .map(|list| injected_no_proxy(&list))
        .transpose()
        .map_err(|e| ConfigError::new("--sidecar-no-proxy", e.to_string()))?;
    Ok(InjectSettings {
        image: args.sidecar_image.clone(),
        image_pull_policy: args.image_pull_policy,
        upstream,
        audience: args.audience.clone(),
        token_expiration,
        sidecar_port: args.sidecar_port,
        sidecar_admin_port: args.sidecar_admin_port,
        cpu_request: optional(&args.sidecar_cpu_request),
        cpu_limit: optional(&args.sidecar_cpu_limit),
        memory_request: optional(&args.sidecar_memory_request),
        memory_limit: optional(&args.sidecar_memory_limit),
        region: args.region.as_deref().and_then(optional),
        s3_endpoint: args.s3_endpoint.as_deref().and_then(optional),
        node_url: args.node_url.clone(),
        coreweave_compat: args.coreweave_compat,
        sidecar_https_proxy,
        sidecar_no_proxy,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser as _;

    /// `credagent webhook --sidecar-image credagent:1 --org-id org FLAGS...`,
    /// parsed and checked (also the webhook's settings tests' input).
    pub(crate) fn config(flags: &[&str]) -> Result<WebhookConfig, ConfigError> {
        let mut argv = vec![
            "credagent",
            "webhook",
            "--sidecar-image",
            "credagent:1",
            "--org-id",
            "org",
        ];
        argv.extend_from_slice(flags);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("flags parse")
            .command
        {
            crate::cli::Command::Webhook(args) => WebhookConfig::from_args(&args),
            _ => unreachable!("a webhook command"),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9464");
        assert_eq!(c.max_body_bytes, 3 * 1024 * 1024);
        assert_eq!(c.body_timeout, Duration::from_secs(10));
        let i = &c.inject;
        assert_eq!(i.upstream, InjectUpstream::OrgId("org".into()));
        assert_eq!(i.token_expiration, 3600);
        assert_eq!((i.sidecar_port, i.sidecar_admin_port), (8181, 9464));
        assert_eq!(i.cpu_request.as_deref(), Some("5m"));
        assert_eq!(i.memory_limit.as_deref(), Some("32Mi"));
        assert_eq!(i.image_pull_policy, PullPolicyArg::IfNotPresent);
        assert!(!i.coreweave_compat && i.region.is_none());
        assert_eq!(
            (&i.sidecar_https_proxy, &i.sidecar_no_proxy),
            (&None, &None)
        );
        let c = config(&["--sidecar-https-proxy", "", "--sidecar-no-proxy", " "]).unwrap();
        assert_eq!(c.inject, i.clone(), "empty is unset");
    }

    #[test]
    fn names_the_flag() {
        let flag = |flags: &[&str]| config(flags).unwrap_err().flag;
        assert_eq!(flag(&["--admin-listen", "0.0.0.0:8443"]), "--admin-listen");
        assert_eq!(flag(&["--token-expiration", "5m"]), "--token-expiration");
        assert_eq!(flag(&["--token-expiration", "25h"]), "--token-expiration");
        assert_eq!(
            flag(&["--sidecar-admin-port", "8181"]),
            "--sidecar-admin-port"
        );
        assert_eq!(flag(&["--sidecar-port", "0"]), "--sidecar-port");
        assert_eq!(flag(&["--max-body-bytes", "100"]), "--max-body-bytes");
        assert_eq!(flag(&["--body-timeout", "0s"]), "--body-timeout");
        assert_eq!(flag(&["--tls-cert-file", "/"]), "--tls-cert-file");
        assert_eq!(flag(&["--max-connections", "0"]), "--max-connections");
        assert_eq!(flag(&["--shutdown-delay", "2m"]), "--shutdown-delay");
        let c = config(&[
            "--token-expiration",
            "86400",
            "--sidecar-cpu-limit",
            "",
            "--region",
            "US-EAST-04A",
        ])
        .unwrap();
        assert_eq!(c.inject.token_expiration, 86_400);
        assert_eq!(c.inject.cpu_limit, None);
        assert_eq!(c.inject.region.as_deref(), Some("US-EAST-04A"));
    }

    #[test]
    fn sidecar_proxy_is_checked_as_the_sidecar_reads_it() {
        let c = config(&[
            "--sidecar-https-proxy",
            "proxy.corp.example:3128",
            "--sidecar-no-proxy",
            ".svc, .cluster.local,10.96.0.0/12",
        ])
        .unwrap();
        assert_eq!(
            c.inject.sidecar_https_proxy.as_deref(),
            Some("http://proxy.corp.example:3128")
        );
        assert_eq!(
            c.inject.sidecar_no_proxy.as_deref(),
            Some(".svc,.cluster.local,10.96.0.0/12")
        );
        // NO_PROXY alone is written too (for a proxy set by other means).
        let c = config(&["--sidecar-no-proxy", ".svc"]).unwrap();
        assert_eq!(c.inject.sidecar_https_proxy, None);
        assert_eq!(c.inject.sidecar_no_proxy.as_deref(), Some(".svc"));
        for (flags, why) in [
            (
                ["--sidecar-https-proxy", "https://proxy:3128"],
                "TLS to the proxy",
            ),
            (["--sidecar-https-proxy", "socks5://proxy:1080"], "SOCKS"),
            (["--sidecar-https-proxy", "http://proxy:3128/x"], "no path"),
            (["--sidecar-https-proxy", "http://proxy:99999"], "port"),
            (
                ["--sidecar-https-proxy", "http://u:hunter2@proxy:3128"],
                "readable by anyone who can read Pods",
            ),
            (["--sidecar-no-proxy", ".svc,a b"], "entry 2 contains ' '"),
            (["--sidecar-no-proxy", "http://x.corp"], "is a URL"),
            (["--sidecar-no-proxy", ","], "names no host"),
        ] {
            let e = config(&flags).unwrap_err();
            assert_eq!(e.flag, flags[0], "{flags:?}");
            assert!(e.to_string().contains(why), "{flags:?}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let long = format!("--sidecar-no-proxy={}", "a,".repeat(2100));
        assert_eq!(
            config(&[long.as_str()]).unwrap_err().flag,
            "--sidecar-no-proxy"
        );
    }

    #[test]
    fn upstream_is_checked_as_the_sidecar_checks_it() {
        let parse = |flags: &[&str]| {
            let mut argv = vec!["credagent", "webhook", "--sidecar-image", "credagent:1"];
            argv.extend_from_slice(flags);
            match crate::cli::Cli::try_parse_from(argv)
                .expect("flags parse")
                .command
            {
                crate::cli::Command::Webhook(args) => WebhookConfig::from_args(&args),
                _ => unreachable!(),
            }
        };
        assert_eq!(parse(&["--org-id", "a/b"]).unwrap_err().flag, "--org-id");
        let e = parse(&["--exchange-url", "http://example.com/x"]).unwrap_err();
        assert_eq!(e.flag, "--exchange-url");
        assert!(e.reason.contains("loopback"), "{e}");
        let ok = parse(&["--exchange-url", "http://127.0.0.1:9/v1/x"]).unwrap();
        assert_eq!(
            ok.inject.upstream,
            InjectUpstream::ExchangeUrl("http://127.0.0.1:9/v1/x".into())
        );
    }
}
