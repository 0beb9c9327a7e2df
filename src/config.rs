//! Typed, validated configuration.
//!
//! [`crate::cli`] collects raw strings from flags and the environment; this
//! module turns them into durations, URIs and certificates, and rejects
//! anything that would fail later. It runs before any socket is bound, so a
//! bad value exits with status 2 and one line naming the flag.
//!
//! The types here are what the stages consume; they depend on nothing but
//! the CLI definitions, so every stage can import its configuration without
//! the configuration importing the stage.
//!
//! - `upstream`: the exchange endpoint, timeouts and roots, the refresh
//!   flags, and [`OutboundConfig`] for the one outbound client.
//! - `proxy`: [`ProxySettings`] from `--proxy`/`--no-proxy` and `HTTPS_PROXY`,
//!   `HTTP_PROXY`, `NO_PROXY`.
//! - `sidecar_proxy`: the `HTTPS_PROXY` and `NO_PROXY` the webhook injects
//!   into sidecars, checked as the sidecar reads them.
//! - `refresh`: [`RefreshPolicy`].
//! - `sidecar`, `node`, `webhook`: each mode's whole configuration.
//! - `duration`: `500ms`, `20m`, `1h`, bare seconds.
//! - `quantity`: Kubernetes resource quantities (`100m`, `64Mi`), for the
//!   webhook's sidecar resources and the per-Pod annotations alike.

mod duration;
mod error;
mod image;
mod node;
mod proxy;
pub mod quantity;
mod refresh;
mod sidecar;
mod sidecar_proxy;
mod upstream;
mod webhook;

pub use self::duration::parse_duration;
pub use self::error::ConfigError;
pub use self::image::image_reference;
pub use self::node::{CacheConfig, NodeConfig, SourceLimits, VerifyConfig};
pub use self::proxy::{
    proxy_settings, ProxyOrigin, ProxySettings, ProxyUrl, HTTPS_PROXY_VARS, HTTP_PROXY_VARS,
    NO_PROXY_VARS,
};
pub use self::refresh::RefreshPolicy;
pub use self::sidecar::{
    AddressingStyle, FileSinkConfig, ImdsConfig, ProcessDirConfig, SidecarConfig,
};
pub use self::sidecar_proxy::{
    injected_https_proxy, injected_no_proxy, InjectedProxyError, MAX_NO_PROXY_LEN,
};
pub use self::upstream::{
    check_fetch_url, is_loopback_host, refresh_policy, upstream_config, valid_org_id, valid_region,
    OutboundConfig, UpstreamConfig, COREWEAVE_EXCHANGE_BASE, ORG_ID_RULE, REGION_RULE,
};
#[cfg(test)]
pub(crate) use self::webhook::tests::config as webhook_config_from_flags;
pub use self::webhook::{InjectSettings, InjectUpstream, WebhookConfig};
