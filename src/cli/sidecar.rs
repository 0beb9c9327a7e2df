//! `credagent sidecar` and `credagent demo`: their flags, the sidecar's
//! cross-flag rules, and what they resolve to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::{
    ServingArgs, TuningArgs, DEFAULT_ADMIN_LISTEN, DEFAULT_AUTH_TOKEN_FILE, DEFAULT_LISTEN,
    DEFAULT_TOKEN_FILE,
};
use crate::config::flag::{checked, checked_os, file_path, positive};
use crate::config::{
    parse_duration, profile_name, AddressingStyle, ConfigError, FileSinkConfig, HttpUrl,
    ImdsConfig, ProcessDirConfig, Region, SidecarConfig, Upstream,
};

/// `credagent sidecar`.
#[derive(Debug, Clone, Args)]
pub struct SidecarArgs {
    /// Projected service-account token to exchange (the kubelet-managed path, not a subPath mount).
    #[arg(long, env = "CREDAGENT_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE, value_name = "PATH", value_parser = checked_os(file_path))]
    pub token_file: PathBuf,

    #[command(flatten)]
    pub upstream: Upstream,

    /// Credentials listener address (keep it on loopback).
    #[arg(long, env = "CREDAGENT_LISTEN", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Admin listener address for /metrics, /healthz and /readyz.
    #[arg(long, env = "CREDAGENT_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: SocketAddr,

    /// Authorization token callers must send; created (random, 256-bit) if missing or empty.
    #[arg(long, env = "CREDAGENT_AUTH_TOKEN_FILE", default_value = DEFAULT_AUTH_TOKEN_FILE, value_name = "PATH", value_parser = checked_os(file_path))]
    pub auth_token_file: PathBuf,

    #[command(flatten)]
    pub tuning: TuningArgs,

    /// Also serve an EC2 instance-metadata (IMDSv2) emulation here, e.g. 127.0.0.1:8182 (off by default).
    #[arg(long, env = "CREDAGENT_IMDS_LISTEN", value_name = "ADDR")]
    pub imds_listen: Option<SocketAddr>,

    /// Let the IMDS emulation answer requests without a session token (IMDSv1).
    #[arg(long, env = "CREDAGENT_IMDS_ALLOW_V1")]
    pub imds_allow_v1: bool,

    /// Region the IMDS emulation reports at /latest/meta-data/placement/region, and the credential-process profile's `region`.
    #[arg(long, env = "CREDAGENT_REGION", value_name = "REGION")]
    pub region: Option<Region>,

    /// Also keep a copy of this binary and an AWS config whose [default] profile runs it as credential_process against this agent, in DIR (an emptyDir shared with the apps; they set AWS_CONFIG_FILE=DIR/aws-config).
    #[arg(long, env = "CREDAGENT_CREDENTIAL_PROCESS_DIR", value_name = "DIR", value_parser = checked(process_dir))]
    pub credential_process_dir: Option<PathBuf>,

    /// The credential-process profile's `endpoint_url` (e.g. http://cwlota.com inside CKS, https://cwobject.com outside).
    #[arg(
        long,
        env = "CREDAGENT_ENDPOINT_URL",
        value_name = "URL",
        requires = "credential_process_dir"
    )]
    pub endpoint_url: Option<HttpUrl>,

    /// The credential-process profile's S3 `addressing_style` (CoreWeave needs virtual).
    #[arg(
        long,
        env = "CREDAGENT_S3_ADDRESSING_STYLE",
        value_enum,
        value_name = "STYLE",
        requires = "credential_process_dir"
    )]
    pub s3_addressing_style: Option<AddressingStyle>,

    /// Also keep an AWS shared credentials file here, rewritten atomically on every refresh.
    #[arg(long, env = "CREDAGENT_CREDENTIALS_FILE", value_name = "PATH", value_parser = checked_os(file_path))]
    pub credentials_file: Option<PathBuf>,

    /// Profile name in the credentials file.
    #[arg(
        long,
        env = "CREDAGENT_CREDENTIALS_PROFILE",
        default_value = "default",
        value_name = "NAME",
        value_parser = checked(profile_name)
    )]
    pub credentials_profile: String,

    /// Most connections open at once on the credentials listener (more wait until one closes; sized to the memory limit: docs/deploy.md).
    #[arg(
        long,
        env = "CREDAGENT_MAX_CONNECTIONS",
        default_value = "256",
        value_name = "N",
        value_parser = checked(positive::<usize>)
    )]
    pub max_connections: usize,

    #[command(flatten)]
    pub serving: ServingArgs,
}

/// `credagent demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Credentials listener address.
    #[arg(long, env = "CREDAGENT_LISTEN", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Admin listener address (/metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "CREDAGENT_ADMIN_LISTEN",
        default_value = "127.0.0.1:9464",
        value_name = "ADDR"
    )]
    pub admin_listen: SocketAddr,

    /// Lifetime of the stand-in's credentials (short, so refreshes are visible).
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = checked(demo_duration))]
    pub credential_lifetime: Duration,

    /// How often the demo's fake kubelet rotates the projected token.
    #[arg(long, default_value = "45s", value_name = "DURATION", value_parser = checked(demo_duration))]
    pub rotate_every: Duration,

    /// Directory for the token volume and auth token (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Stop after this long instead of waiting for Ctrl-C (e.g. 10s).
    #[arg(long, value_name = "DURATION", value_parser = checked(demo_duration))]
    pub duration: Option<Duration>,
}

/// `--credential-process-dir`: absolute (the apps run the copy by that
/// path) and free of spaces (credential_process lines are split on them).
fn process_dir(s: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(s);
    if !dir.is_absolute() {
        return Err("must be an absolute path (the apps run the copy by that path)".into());
    }
    no_space(&dir)?;
    Ok(dir)
}

fn no_space(path: &std::path::Path) -> Result<(), String> {
    if path
        .to_str()
        .is_none_or(|p| p.contains(char::is_whitespace))
    {
        return Err(format!(
            "{} holds a space or is not UTF-8: credential_process lines are split on spaces",
            path.display()
        ));
    }
    Ok(())
}

/// The demo's durations: at least a second.
fn demo_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d < Duration::from_secs(1) => Err("must be at least 1s".into()),
        d => Ok(d),
    }
}

// === impl SidecarArgs ===

impl SidecarArgs {
    /// The sidecar's cross-flag rules (clap checks the rest as it parses).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tuning.validate()?;
        if self.credential_process_dir.is_some() {
            // The profile names the auth token file by this path.
            let auth = &self.auth_token_file;
            if !auth.is_absolute() {
                return Err(ConfigError::new(
                    "--auth-token-file",
                    "must be an absolute path with --credential-process-dir (the profile names it)",
                ));
            }
            no_space(auth).map_err(|why| ConfigError::new("--credential-process-dir", why))?;
        }
        Ok(())
    }

    /// Everything the sidecar needs: the rules checked, the upstream's
    /// roots and proxy read, the derived values made.
    pub fn config(&self) -> Result<SidecarConfig, ConfigError> {
        self.validate()?;
        Ok(SidecarConfig {
            token_file: self.token_file.clone(),
            upstream: self.tuning.upstream_config(&self.upstream)?,
            listen: self.listen,
            admin_listen: self.admin_listen,
            auth_token_file: self.auth_token_file.clone(),
            refresh: self.tuning.refresh_policy(),
            imds: self.imds_listen.map(|addr| {
                let region = self.region.as_ref().map(|r| r.as_str().to_owned());
                (
                    addr,
                    ImdsConfig {
                        allow_v1: self.imds_allow_v1,
                        region,
                    },
                )
            }),
            credentials_file: self.credentials_file.clone().map(|path| FileSinkConfig {
                path,
                profile: self.credentials_profile.clone(),
            }),
            credential_process_dir: self.process_dir_config()?,
            max_connections: self.max_connections,
        })
    }

    fn process_dir_config(&self) -> Result<Option<ProcessDirConfig>, ConfigError> {
        let Some(dir) = &self.credential_process_dir else {
            return Ok(None);
        };
        // The apps reach the agent on loopback; a wildcard listen address is
        // reached through 127.0.0.1 (never `localhost`: some clients try ::1).
        let mut listen = self.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(match listen {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        // `credagent credential-process` sends the auth token only over
        // loopback, so a profile naming another address would never work.
        if !listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "--credential-process-dir",
                format!("needs --listen on a loopback or wildcard address (credential-process sends the auth token only over loopback), not {}", listen.ip()),
            ));
        }
        let url = format!("http://{listen}/v1/credentials")
            .parse()
            .map_err(|e| ConfigError::new("--listen", format!("makes no URL ({e})")))?;
        Ok(Some(ProcessDirConfig {
            dir: dir.clone(),
            url,
            auth_token_file: self.auth_token_file.clone(),
            region: self.region.as_ref().map(|r| r.as_str().to_owned()),
            endpoint_url: self.endpoint_url.as_ref().map(|u| u.uri().clone()),
            addressing_style: self.s3_addressing_style,
        }))
    }
}
