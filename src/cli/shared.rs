//! Flags every mode shares: the upstream, the refresh tuning, serving, and
//! the default paths; and the one place the shared flags are resolved into
//! what the stages consume (the `--ca-file` roots and the proxy variables
//! are read here, once).

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Arg, ArgGroup, ArgMatches, Args, Command, FromArgMatches};

use crate::config::flag::checked;
use crate::config::{
    check_key_attributes, load_roots, parse_duration, parse_key_attribute, parse_key_lifetime,
    positive_duration, post_target, refresh_fraction, ConfigError, ExchangeMethod, HttpsUrl,
    KeyAttribute, KeyRequest, OrgId, ProxySettings, ProxyUrl, RefreshPolicy, Upstream,
    UpstreamConfig,
};

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

/// Refresh and upstream tuning shared by the modes.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// Refresh once this fraction of the credentials' lifetime has passed.
    #[arg(
        long,
        env = "CREDAGENT_REFRESH_FRACTION",
        default_value = "0.5",
        value_name = "F",
        value_parser = checked(refresh_fraction)
    )]
    pub refresh_fraction: f64,

    /// ...but no later than this long before they expire (e.g. 20m).
    #[arg(
        long,
        env = "CREDAGENT_REFRESH_MARGIN",
        default_value = "20m",
        value_name = "DURATION",
        value_parser = checked(parse_duration)
    )]
    pub refresh_margin: Duration,

    /// Total time allowed for one upstream exchange (connect, TLS, answer).
    #[arg(
        long,
        env = "CREDAGENT_UPSTREAM_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION",
        value_parser = checked(positive_duration)
    )]
    pub upstream_timeout: Duration,

    /// Time allowed to open the TCP connection to the upstream.
    #[arg(
        long,
        env = "CREDAGENT_CONNECT_TIMEOUT",
        default_value = "3s",
        value_name = "DURATION",
        value_parser = checked(positive_duration)
    )]
    pub connect_timeout: Duration,

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
    pub proxy: Option<ProxyUrl>,

    /// Ignore HTTPS_PROXY, HTTP_PROXY and NO_PROXY: connect directly (not with --proxy).
    #[arg(long, env = "CREDAGENT_NO_PROXY")]
    pub no_proxy: bool,

    /// Use the POST exchange and ask for keys of this lifetime, 15m to 12h (without it: the GET exchange, where the upstream chooses).
    #[arg(
        long,
        env = "CREDAGENT_KEY_LIFETIME",
        value_name = "DURATION",
        value_parser = checked(parse_key_lifetime)
    )]
    pub key_lifetime: Option<Duration>,

    /// An extra attribute on every key the POST exchange issues, e.g. cluster=prod-1 (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "key-attribute",
        env = "CREDAGENT_KEY_ATTRIBUTE",
        value_name = "NAME=VALUE",
        value_parser = checked(parse_key_attribute),
        value_delimiter = ',',
        requires = "key_lifetime"
    )]
    pub key_attributes: Vec<KeyAttribute>,
}

/// What the long-running modes (sidecar, node) share about serving.
#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Validate the configuration (flags and environment), print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

// === impl Upstream as clap::Args ===

/// Where the exchange happens, `#[command(flatten)]`ed into each
/// subcommand that needs it: `--exchange-url URL` or `--org-id ID`, exactly
/// one (a required group), parsed straight into [`Upstream`], the one enum
/// both the modes and the webhook's injected arguments use. Written by hand
/// because clap's derive does not yet make an enum an argument group.
impl Args for Upstream {
    fn group_id() -> Option<clap::Id> {
        Some(clap::Id::from(UPSTREAM_GROUP))
    }

    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(EXCHANGE_URL)
                .long("exchange-url")
                .env("CREDAGENT_EXCHANGE_URL")
                .value_name("URL")
                .value_parser(clap::value_parser!(HttpsUrl))
                .help("Full temporary-credentials URL (https, or http to a loopback host)"),
        )
        .arg(
            Arg::new(ORG_ID)
                .long("org-id")
                .env("CREDAGENT_ORG_ID")
                .value_name("ID")
                .value_parser(clap::value_parser!(OrgId))
                .help("CoreWeave organization id; builds https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/ID"),
        )
        .group(
            ArgGroup::new(UPSTREAM_GROUP)
                .args([EXCHANGE_URL, ORG_ID])
                .required(true)
                .multiple(false),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Upstream {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        if let Some(org) = matches.remove_one::<OrgId>(ORG_ID) {
            return Ok(Self::OrgId(org));
        }
        if let Some(url) = matches.remove_one::<HttpsUrl>(EXCHANGE_URL) {
            return Ok(Self::ExchangeUrl(url));
        }
        Err(clap::Error::raw(
            ErrorKind::MissingRequiredArgument,
            "one of --org-id or --exchange-url is required\n",
        ))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

const UPSTREAM_GROUP: &str = "upstream";
const EXCHANGE_URL: &str = "exchange_url";
const ORG_ID: &str = "org_id";

// === impl TuningArgs ===

impl TuningArgs {
    /// The tuning flags' cross-flag rule (the message names both flags and
    /// never the proxy URL, which may hold a password).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.proxy.is_some() && self.no_proxy {
            return Err(ConfigError::new(
                "--no-proxy",
                "give either --proxy or --no-proxy, not both",
            ));
        }
        check_key_attributes(&self.key_attributes)
            .map_err(|e| ConfigError::new("--key-attribute", e))
    }

    /// Which exchange `upstream` is called with, and at which URL: the GET
    /// at the upstream's URL, or with `--key-lifetime` the POST at that URL
    /// without its final `/ORG`.
    pub fn exchange(
        &self,
        upstream: &Upstream,
    ) -> Result<(http::Uri, ExchangeMethod), ConfigError> {
        let Some(lifetime) = self.key_lifetime else {
            return Ok((upstream.url().clone(), ExchangeMethod::Get));
        };
        let flag = match upstream {
            Upstream::OrgId(_) => "--org-id",
            Upstream::ExchangeUrl(_) => "--exchange-url",
        };
        let (url, org_id) = post_target(upstream.url()).map_err(|e| ConfigError::new(flag, e))?;
        let key = KeyRequest {
            lifetime,
            attributes: self.key_attributes.clone(),
        };
        Ok((url, ExchangeMethod::Post { org_id, key }))
    }

    /// How `upstream` is reached: reads the `--ca-file` roots and the proxy
    /// variables from the process environment, once.
    pub fn upstream_config(&self, upstream: &Upstream) -> Result<UpstreamConfig, ConfigError> {
        self.validate()?;
        let extra_roots = match &self.ca_file {
            None => Vec::new(),
            Some(path) => load_roots(path)?,
        };
        let proxy = ProxySettings::resolve(self.proxy.as_ref(), self.no_proxy, |name| {
            std::env::var(name).ok()
        })?;
        let (url, method) = self.exchange(upstream)?;
        Ok(UpstreamConfig {
            url,
            connect_timeout: self.connect_timeout,
            timeout: self.upstream_timeout,
            extra_roots,
            proxy,
            method,
        })
    }

    /// When to refresh.
    pub fn refresh_policy(&self) -> RefreshPolicy {
        RefreshPolicy {
            fraction: self.refresh_fraction,
            margin: self.refresh_margin,
            ..RefreshPolicy::default()
        }
    }
}
