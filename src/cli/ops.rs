//! The one-shot operator commands: `credential-process`, `exchange`,
//! `principal`, `doctor`.

use std::path::PathBuf;

use clap::Args;
use http::Uri;

use super::shared::{TuningArgs, DEFAULT_AUDIENCE, DEFAULT_AUTH_TOKEN_FILE, DEFAULT_TOKEN_FILE};
use super::sidecar::SidecarArgs;
use crate::config::flag::checked;
use crate::config::{is_loopback_host, Upstream};

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

/// Checks `--url` by the agent's own rule for plain http: only to a
/// loopback host (`127.0.0.0/8`, `::1`, `localhost`), since the request
/// carries the auth token in clear. The agent serves only plain http, so
/// nothing else is accepted. The error is the flag's message.
fn agent_url(raw: &str) -> Result<Uri, &'static str> {
    const WANT: &str = "must be an http:// URL of the agent on a loopback address";
    let uri: Uri = raw.parse().map_err(|_| WANT)?;
    let host = uri.host().ok_or(WANT)?;
    match uri.scheme_str() {
        Some("http") if is_loopback_host(host) => Ok(uri),
        Some("http") => Err("plain http is allowed only to a loopback host: the auth token would cross the network in clear"),
        _ => Err(WANT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_plain_http_to_loopback_only() {
        for ok in [
            "http://127.0.0.1:8181/v1/credentials",
            "http://127.9.9.9:1/x",
            "http://[::1]:8181/v1/credentials",
            "http://localhost:8181/v1/credentials",
        ] {
            assert!(agent_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "http://10.1.2.3:8181/v1/credentials",
                "only to a loopback host",
            ),
            ("http://agent.example:8181/", "only to a loopback host"),
            ("http://0.0.0.0:8181/", "only to a loopback host"),
            ("https://127.0.0.1:8181/", "must be an http:// URL"),
            ("127.0.0.1:8181", "must be an http:// URL"),
            ("not a url", "must be an http:// URL"),
        ] {
            let e = agent_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
