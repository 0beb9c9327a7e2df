//! The one-shot operator commands: `credential-process`, `exchange`,
//! `principal`, `doctor`.

use std::path::PathBuf;

use clap::Args;
use http::Uri;

use super::shared::{TuningArgs, DEFAULT_AUDIENCE, DEFAULT_AUTH_TOKEN_FILE, DEFAULT_TOKEN_FILE};
use super::sidecar::SidecarArgs;
use crate::config::flag::checked;
use crate::config::Upstream;

/// `credagent credential-process`.
#[derive(Debug, Clone, Args)]
pub struct CredentialProcessArgs {
    /// The agent's credentials URL.
    #[arg(
        long,
        env = "CREDAGENT_URL",
        default_value = "http://127.0.0.1:8181/v1/credentials",
        value_name = "URL",
        value_parser = checked(agent_url)
    )]
    pub url: Uri,

    /// The agent's auth token file.
    #[arg(long, env = "CREDAGENT_AUTH_TOKEN_FILE", default_value = DEFAULT_AUTH_TOKEN_FILE, value_name = "PATH")]
    pub auth_token_file: PathBuf,
}

/// `credagent exchange`.
#[derive(Debug, Clone, Args)]
pub struct ExchangeArgs {
    /// The projected service-account token to exchange.
    #[arg(long, env = "CREDAGENT_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE, value_name = "PATH")]
    pub token_file: PathBuf,

    #[command(flatten)]
    pub upstream: Upstream,

    /// Print the secret access key and session token instead of redacting them.
    #[arg(long)]
    pub show_secret: bool,

    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `credagent principal`.
#[derive(Debug, Clone, Args)]
pub struct PrincipalArgs {
    /// Read issuer and subject from this projected token.
    #[arg(long, env = "CREDAGENT_TOKEN_FILE", value_name = "PATH", conflicts_with_all = ["issuer", "namespace", "service_account"])]
    pub token_file: Option<PathBuf>,

    /// The cluster's OIDC issuer URL (instead of a token).
    #[arg(long, value_name = "URL", requires_all = ["namespace", "service_account"])]
    pub issuer: Option<String>,

    /// The workload's namespace (with --issuer).
    #[arg(long, value_name = "NS", requires = "issuer")]
    pub namespace: Option<String>,

    /// The workload's service account (with --issuer).
    #[arg(long, value_name = "SA", requires = "issuer")]
    pub service_account: Option<String>,

    /// CoreWeave organization id, for the bucket-policy principal.
    #[arg(long, env = "CREDAGENT_ORG_ID", value_name = "ID")]
    pub org_id: Option<String>,
}

/// `credagent doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub sidecar: SidecarArgs,

    /// The audience the OIDC configuration expects in tokens.
    #[arg(
        long,
        env = "CREDAGENT_AUDIENCE",
        default_value = DEFAULT_AUDIENCE,
        value_name = "AUD"
    )]
    pub audience: String,
}

/// `--url`: the agent is reached over plain http (on loopback or the node's
/// link-local address), never anything else.
fn agent_url(s: &str) -> Result<Uri, &'static str> {
    match s.parse::<Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => Ok(u),
        _ => Err("must be an http:// URL of the agent"),
    }
}
