//! `credagent sidecar`'s configuration, and the surfaces it can enable.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::ConfigError;
use super::refresh::RefreshPolicy;
use super::upstream::{refresh_policy, upstream_config, UpstreamConfig};
use crate::cli::SidecarArgs;

/// Everything `credagent sidecar` needs, validated.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The projected token (the user-visible path kubelet maintains).
    pub token_file: PathBuf,
    /// The upstream exchange.
    pub upstream: UpstreamConfig,
    /// Credentials listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// The authorization token callers must present.
    pub auth_token_file: PathBuf,
    /// When to refresh and how long to keep serving.
    pub refresh: RefreshPolicy,
    /// The IMDS emulation, if enabled.
    pub imds: Option<(SocketAddr, ImdsConfig)>,
    /// The shared credentials file, if enabled.
    pub credentials_file: Option<FileSinkConfig>,
    /// Connections served at once per listener.
    pub max_connections: usize,
}

/// The IMDS emulation's settings (`--imds-listen`).
#[derive(Debug, Clone)]
pub struct ImdsConfig {
    /// Answer requests without a session token (IMDSv1).
    pub allow_v1: bool,
    /// What `/latest/meta-data/placement/region` answers, if set.
    pub region: Option<String>,
}

/// Where and under which profile to keep a shared credentials file
/// (`--credentials-file`).
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// The credentials file.
    pub path: PathBuf,
    /// The profile section, e.g. `default`.
    pub profile: String,
}

// === impl SidecarConfig ===

impl SidecarConfig {
    /// Validates raw sidecar arguments.
    pub fn from_args(args: &SidecarArgs) -> Result<Self, ConfigError> {
        if args.token_file.file_name().is_none() {
            return Err(ConfigError::new("--token-file", "must name a file"));
        }
        if args.auth_token_file.file_name().is_none() {
            return Err(ConfigError::new("--auth-token-file", "must name a file"));
        }
        if let Some(region) = &args.region {
            let valid = !region.is_empty()
                && region.len() <= 64
                && region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "--region",
                    "must be letters, digits and '-'",
                ));
            }
        }
        let profile_ok = !args.credentials_profile.is_empty()
            && args
                .credentials_profile
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !profile_ok {
            return Err(ConfigError::new(
                "--credentials-profile",
                "must be letters, digits, '-', '_' or '.'",
            ));
        }
        if args.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be > 0"));
        }
        if let Some(path) = &args.credentials_file {
            if path.file_name().is_none() {
                return Err(ConfigError::new("--credentials-file", "must name a file"));
            }
        }
        Ok(Self {
            token_file: args.token_file.clone(),
            upstream: upstream_config(&args.upstream, &args.tuning)?,
            listen: args.listen,
            admin_listen: args.admin_listen,
            auth_token_file: args.auth_token_file.clone(),
            refresh: refresh_policy(&args.tuning)?,
            imds: args.imds_listen.map(|addr| {
                (
                    addr,
                    ImdsConfig {
                        allow_v1: args.imds_allow_v1,
                        region: args.region.clone(),
                    },
                )
            }),
            max_connections: args.max_connections,
            credentials_file: args.credentials_file.clone().map(|path| FileSinkConfig {
                path,
                profile: args.credentials_profile.clone(),
            }),
        })
    }
}
