//! Flags every mode shares: the upstream, the refresh tuning, serving, and
//! the default paths.

use std::path::PathBuf;

use clap::Args;

/// Default location of the projected service-account token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/tokens/oidc-token";
/// Default credentials listener (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8181";
/// Default admin listener (`/metrics`, `/healthz`, `/readyz`).
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9464";
/// The audience the CoreWeave guide asks kubelet to put in projected tokens.
pub const DEFAULT_AUDIENCE: &str = "https://coreweave.com/iam";
/// Default path of the authorization token that callers must present.
pub const DEFAULT_AUTH_TOKEN_FILE: &str = "/var/run/credagent/auth-token";

/// Where the exchange happens: a full URL or an organization id.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct UpstreamArgs {
    /// Full temporary-credentials URL (https, or http to a loopback host).
    #[arg(long, env = "CREDAGENT_EXCHANGE_URL", value_name = "URL")]
    pub exchange_url: Option<String>,

    /// CoreWeave organization id; builds https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/ID.
    #[arg(long, env = "CREDAGENT_ORG_ID", value_name = "ID")]
    pub org_id: Option<String>,
}

/// Refresh and upstream tuning shared by the modes.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// Refresh once this fraction of the credentials' lifetime has passed.
    #[arg(
        long,
        env = "CREDAGENT_REFRESH_FRACTION",
        default_value = "0.5",
        value_name = "F"
    )]
    pub refresh_fraction: f64,

    /// ...but no later than this long before they expire (e.g. 20m).
    #[arg(
        long,
        env = "CREDAGENT_REFRESH_MARGIN",
        default_value = "20m",
        value_name = "DURATION"
    )]
    pub refresh_margin: String,

    /// Total time allowed for one upstream exchange (connect, TLS, answer).
    #[arg(
        long,
        env = "CREDAGENT_UPSTREAM_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub upstream_timeout: String,

    /// Time allowed to open the TCP connection to the upstream.
    #[arg(
        long,
        env = "CREDAGENT_CONNECT_TIMEOUT",
        default_value = "3s",
        value_name = "DURATION"
    )]
    pub connect_timeout: String,

    /// Extra PEM root certificates for the upstream (private CA, tests).
    #[arg(long, env = "CREDAGENT_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// HTTP proxy for every outbound connection (http://[USER:PASSWORD@]HOST:PORT); wins over HTTPS_PROXY/HTTP_PROXY, NO_PROXY still applies.
    #[arg(
        long,
        env = "CREDAGENT_PROXY",
        value_name = "URL",
        hide_env_values = true
    )]
    pub proxy: Option<ProxyArg>,

    /// Ignore HTTPS_PROXY, HTTP_PROXY and NO_PROXY: connect directly (not with --proxy).
    #[arg(long, env = "CREDAGENT_NO_PROXY")]
    pub no_proxy: bool,
}

/// A `--proxy` value as given. It may hold a password, so its Debug does
/// not show it; `config` validates it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyArg(pub String);

impl std::str::FromStr for ProxyArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for ProxyArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyArg(** redacted **)")
    }
}

/// What the long-running modes (sidecar, node) share about serving.
#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Validate the configuration (flags and environment), print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}
