//! What `credagent webhook` injects ([`InjectArgs`]), flattened into its
//! flags. The mutator (`webhook::mutate`) consumes this struct as clap
//! leaves it: each field already its final type, so adding one injected
//! setting is its flag here, its use in the mutator, and its test.
//!
//! The sidecar image and the upstream come from here only; no Pod
//! annotation can choose them (a Pod that could pick the image could run any
//! code with the credentials, and one that could pick the upstream could
//! send its token anywhere). The per-Pod annotations tune the rest within
//! limits: the key lifetime (`credagent.io/key-lifetime`, 15m to 12h, or
//! `off` for the GET exchange) but not the key attributes, which tag keys
//! for the operator.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser};

use super::shared::DEFAULT_AUDIENCE;
use crate::config::flag::{blank_is_none, checked, positive};
use crate::config::{
    check_key_attributes, parse_key_attribute, parse_key_lifetime, post_target, Audience,
    ConfigError, HttpUrl, ImageRef, InjectedProxyUrl, KeyAttribute, NoProxyList, PullPolicy,
    Quantity, Region, TokenExpiration, Upstream,
};

/// Default node-mode credentials URL (the EKS Pod Identity address).
pub const DEFAULT_NODE_URL: &str = "http://169.254.170.23/v1/credentials";

/// What every injected Pod gets (`credagent webhook`'s injection flags).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct InjectArgs {
    /// The credagent image injected sidecars run (e.g. registry.example.com/credagent:0.1.0).
    #[arg(long, env = "CREDAGENT_SIDECAR_IMAGE", value_name = "IMAGE")]
    pub sidecar_image: ImageRef,

    /// The injected sidecars' imagePullPolicy.
    #[arg(
        long,
        env = "CREDAGENT_IMAGE_PULL_POLICY",
        value_enum,
        default_value = "IfNotPresent"
    )]
    pub image_pull_policy: PullPolicy,

    /// The upstream the injected sidecars exchange tokens with (exactly as
    /// the sidecar checks it, so that no injected sidecar exits 2 on it).
    #[command(flatten)]
    pub upstream: Upstream,

    /// The injected sidecars' --key-lifetime: the POST exchange, keys of this lifetime, 15m to 12h (credagent.io/key-lifetime overrides it; without it: the GET exchange).
    #[arg(
        long,
        env = "CREDAGENT_KEY_LIFETIME",
        value_name = "DURATION",
        value_parser = checked(parse_key_lifetime)
    )]
    pub key_lifetime: Option<Duration>,

    /// The injected sidecars' --key-attribute, e.g. cluster=prod-1, for every sidecar that uses the POST exchange (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "key-attribute",
        env = "CREDAGENT_KEY_ATTRIBUTE",
        value_name = "NAME=VALUE",
        value_parser = checked(parse_key_attribute),
        value_delimiter = ','
    )]
    pub key_attributes: Vec<KeyAttribute>,

    /// Audience of the injected projected token (a Pod's credagent.io/audience overrides it).
    #[arg(long, env = "CREDAGENT_AUDIENCE", default_value = DEFAULT_AUDIENCE, value_name = "AUDIENCE")]
    pub audience: Audience,

    /// Lifetime of the injected projected token, 10m to 24h (credagent.io/token-expiration overrides it).
    #[arg(
        long,
        env = "CREDAGENT_TOKEN_EXPIRATION",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub token_expiration: TokenExpiration,

    /// Port of the injected sidecar's credentials listener, on 127.0.0.1.
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_PORT",
        default_value = "8181",
        value_name = "PORT",
        value_parser = checked(positive::<u16>)
    )]
    pub sidecar_port: u16,

    /// Port of the injected sidecar's admin listener (probes, /metrics).
    #[arg(
        long,
        env = "CREDAGENT_SIDECAR_ADMIN_PORT",
        default_value = "9464",
        value_name = "PORT",
        value_parser = checked(positive::<u16>)
    )]
    pub sidecar_admin_port: u16,

    /// The sidecar's resources (a Pod's annotations override each).
    #[command(flatten)]
    pub resources: SidecarResources,

    // A blank value of the four below means none: typed
    // `std::option::Option` so that clap leaves that to the parser.
    /// AWS_REGION and AWS_DEFAULT_REGION for the apps (where neither is set), --region for the sidecar.
    #[arg(long, env = "CREDAGENT_REGION", value_name = "REGION", default_value = "", hide_default_value = true, value_parser = checked(blank_is_none::<Region>))]
    pub region: std::option::Option<Region>,

    /// AWS_ENDPOINT_URL_S3 for the apps (where no endpoint is set), e.g. http://cwlota.com.
    #[arg(long, env = "CREDAGENT_S3_ENDPOINT", value_name = "URL", default_value = "", hide_default_value = true, value_parser = checked(blank_is_none::<HttpUrl>))]
    pub s3_endpoint: std::option::Option<HttpUrl>,

    /// HTTPS_PROXY of the injected sidecars: the http:// proxy they reach the upstream through (no user:password@: it would be written into every Pod spec).
    #[arg(long, env = "CREDAGENT_SIDECAR_HTTPS_PROXY", value_name = "URL", default_value = "", hide_default_value = true, value_parser = checked(blank_is_none::<InjectedProxyUrl>))]
    pub sidecar_https_proxy: std::option::Option<InjectedProxyUrl>,

    /// NO_PROXY of the injected sidecars: comma-separated hosts, domains, addresses and CIDR ranges they reach directly.
    #[arg(long, env = "CREDAGENT_SIDECAR_NO_PROXY", value_name = "LIST", default_value = "", hide_default_value = true, value_parser = checked(blank_is_none::<NoProxyList>))]
    pub sidecar_no_proxy: std::option::Option<NoProxyList>,

    /// Credentials URL of the node agent, for Pods in node mode (credagent.io/mode: node).
    #[arg(long, env = "CREDAGENT_NODE_URL", default_value = DEFAULT_NODE_URL, value_name = "URL")]
    pub node_url: HttpUrl,

    /// Also inject Pods whose ServiceAccount has caios.coreweave.com/inject: "true" (reads ServiceAccounts from the API).
    #[arg(long, env = "CREDAGENT_COREWEAVE_COMPAT")]
    pub coreweave_compat: bool,
}

/// The injected sidecar's resources as Kubernetes quantities; `None`
/// leaves one unset (a blank flag).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct SidecarResources {
    /// The injected sidecar's CPU request ("" for none).
    #[arg(long = "sidecar-cpu-request", env = "CREDAGENT_SIDECAR_CPU_REQUEST", default_value = "5m", value_name = "QUANTITY", value_parser = checked(blank_is_none::<Quantity>))]
    pub cpu_request: std::option::Option<Quantity>,

    /// The injected sidecar's CPU limit ("" for none).
    #[arg(long = "sidecar-cpu-limit", env = "CREDAGENT_SIDECAR_CPU_LIMIT", default_value = "100m", value_name = "QUANTITY", value_parser = checked(blank_is_none::<Quantity>))]
    pub cpu_limit: std::option::Option<Quantity>,

    /// The injected sidecar's memory request ("" for none).
    #[arg(long = "sidecar-memory-request", env = "CREDAGENT_SIDECAR_MEMORY_REQUEST", default_value = "16Mi", value_name = "QUANTITY", value_parser = checked(blank_is_none::<Quantity>))]
    pub memory_request: std::option::Option<Quantity>,

    // 32Mi: 7 MiB RSS measured, plus the ~7 MB binary copy that
    // credential-process mode keeps in memory.
    /// The injected sidecar's memory limit ("" for none).
    #[arg(long = "sidecar-memory-limit", env = "CREDAGENT_SIDECAR_MEMORY_LIMIT", default_value = "32Mi", value_name = "QUANTITY", value_parser = checked(blank_is_none::<Quantity>))]
    pub memory_limit: std::option::Option<Quantity>,
}

// === impl InjectArgs ===

impl InjectArgs {
    /// The injection flags' cross-flag rules (clap checks the rest as it
    /// parses), run before anything is bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sidecar_port == self.sidecar_admin_port {
            return Err(ConfigError::new(
                "--sidecar-admin-port",
                "must differ from --sidecar-port",
            ));
        }
        check_key_attributes(&self.key_attributes)
            .map_err(|e| ConfigError::new("--key-attribute", e))?;
        if self.key_lifetime.is_some() {
            self.post_target()?;
        }
        self.resources.validate()
    }

    /// Whether the upstream can be called with the POST exchange (the
    /// sidecar's own rule: `--exchange-url` must end in `/ORG-ID`), checked
    /// before a sidecar is injected with `--key-lifetime`, by the flag here
    /// or by a Pod's annotation.
    pub fn post_target(&self) -> Result<(), ConfigError> {
        let flag = match self.upstream {
            Upstream::OrgId(_) => "--org-id",
            Upstream::ExchangeUrl(_) => "--exchange-url",
        };
        post_target(self.upstream.url())
            .map(drop)
            .map_err(|e| ConfigError::new(flag, e))
    }

    /// The injection flags alone (`--sidecar-image IMAGE --org-id ID ...`),
    /// parsed as `credagent webhook` parses them (`CREDAGENT_*` variables
    /// included) and checked: how tests, `examples/admission.rs` and the
    /// fuzz targets build what the mutator consumes. The error is clap's
    /// or the rule's, one line naming the flag.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        #[derive(Parser)]
        #[command(name = "inject", no_binary_name = true)]
        struct Flags {
            #[command(flatten)]
            inject: InjectArgs,
        }
        let inject = Flags::try_parse_from(flags)
            .map_err(|e| e.render().to_string().trim_end().to_owned())?
            .inject;
        inject.validate().map_err(|e| e.to_string())?;
        Ok(inject)
    }
}

// === impl SidecarResources ===

impl SidecarResources {
    /// No request above its limit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pairs = [
            (
                &self.cpu_request,
                &self.cpu_limit,
                "--sidecar-cpu-request",
                "--sidecar-cpu-limit",
            ),
            (
                &self.memory_request,
                &self.memory_limit,
                "--sidecar-memory-request",
                "--sidecar-memory-limit",
            ),
        ];
        for (request, limit, request_flag, limit_flag) in pairs {
            if let (Some(r), Some(l)) = (request, limit) {
                if r.exceeds(l) {
                    return Err(ConfigError::new(
                        request_flag,
                        format!("exceeds {limit_flag}"),
                    ));
                }
            }
        }
        Ok(())
    }
}
