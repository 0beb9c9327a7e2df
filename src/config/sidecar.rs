//! `credagent sidecar`'s runtime configuration, and the surfaces it can
//! enable: what `cli::SidecarArgs` resolves to once the `--ca-file` roots
//! and the proxy variables are read and the derived values (the
//! credential-process profile's URL) are made.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::Uri;

use super::refresh::RefreshPolicy;
use super::upstream::UpstreamConfig;

/// Everything `credagent sidecar` needs, resolved.
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

/// An S3 addressing style, as AWS config files spell it (on the command
/// line too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressingStyle {
    /// `bucket.endpoint/key` (what CoreWeave AI Object Storage needs).
    Virtual,
    /// `endpoint/bucket/key`.
    Path,
    /// Let the SDK choose.
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
