//! `credagent sidecar`'s configuration, and the surfaces it can enable.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::Uri;

use super::error::ConfigError;
use super::refresh::RefreshPolicy;
use super::upstream::{refresh_policy, upstream_config, valid_region, UpstreamConfig, REGION_RULE};
use crate::cli::{AddressingStyleArg, SidecarArgs};

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
    /// The credential-process directory, if enabled.
    pub credential_process_dir: Option<ProcessDirConfig>,
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

/// The credential-process directory (`--credential-process-dir`): what its
/// AWS config's `[default]` profile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessDirConfig {
    /// The directory shared with the apps.
    pub dir: PathBuf,
    /// This agent's credentials URL, as the apps reach it.
    pub url: Uri,
    /// The auth token file, as the apps see it (the same path: shared volume).
    pub auth_token_file: PathBuf,
    /// The profile's `region`.
    pub region: Option<String>,
    /// The profile's `endpoint_url`.
    pub endpoint_url: Option<Uri>,
    /// The profile's `s3.addressing_style`.
    pub addressing_style: Option<AddressingStyle>,
}

/// An S3 addressing style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressingStyle {
    /// `bucket.endpoint/key`.
    Virtual,
    /// `endpoint/bucket/key`.
    Path,
    /// The SDK's choice.
    Auto,
}

impl AddressingStyle {
    /// As AWS config files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtual => "virtual",
            Self::Path => "path",
            Self::Auto => "auto",
        }
    }
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
            if !valid_region(region) {
                return Err(ConfigError::new("--region", REGION_RULE));
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
        let credential_process_dir = process_dir(args)?;
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
            credential_process_dir,
        })
    }
}

fn process_dir(args: &SidecarArgs) -> Result<Option<ProcessDirConfig>, ConfigError> {
    const FLAG: &str = "--credential-process-dir";
    let Some(dir) = &args.credential_process_dir else {
        return Ok(None);
    };
    if !dir.is_absolute() {
        return Err(ConfigError::new(
            FLAG,
            "must be an absolute path (the apps run the copy by that path)",
        ));
    }
    if !args.auth_token_file.is_absolute() {
        return Err(ConfigError::new(
            "--auth-token-file",
            "must be an absolute path with --credential-process-dir (the profile names it)",
        ));
    }
    for path in [dir.as_path(), args.auth_token_file.as_path()] {
        if path
            .to_str()
            .is_none_or(|p| p.contains(char::is_whitespace))
        {
            return Err(ConfigError::new(
                FLAG,
                format!("{} holds a space or is not UTF-8: credential_process lines are split on spaces", path.display()),
            ));
        }
    }
    // The apps reach the agent on loopback; a wildcard listen address is
    // reached through 127.0.0.1 (never `localhost`: some clients try ::1).
    let mut listen = args.listen;
    if listen.ip().is_unspecified() {
        listen.set_ip(match listen {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{listen}/v1/credentials")
        .parse()
        .map_err(|e| ConfigError::new("--listen", format!("makes no URL ({e})")))?;
    let endpoint_url = match &args.endpoint_url {
        None => None,
        Some(raw) => {
            let uri: Uri = raw
                .parse()
                .map_err(|e| ConfigError::new("--endpoint-url", format!("not a URL ({e})")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(ConfigError::new(
                    "--endpoint-url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
            Some(uri)
        }
    };
    Ok(Some(ProcessDirConfig {
        dir: dir.clone(),
        url,
        auth_token_file: args.auth_token_file.clone(),
        region: args.region.clone(),
        endpoint_url,
        addressing_style: args.s3_addressing_style.map(|s| match s {
            AddressingStyleArg::Virtual => AddressingStyle::Virtual,
            AddressingStyleArg::Path => AddressingStyle::Path,
            AddressingStyleArg::Auto => AddressingStyle::Auto,
        }),
    }))
}
