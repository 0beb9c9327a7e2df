//! The types configuration is made of, below the command line.
//!
//! Two kinds, both depending on nothing else in the crate, so that every
//! stage can import its configuration without the configuration importing
//! the stage:
//!
//! - **Value types**: what one flag's value is parsed into, each with its
//!   one parser, which clap calls ([`flag`]): a bad value exits with status 2
//!   and one line naming the flag, before anything is bound. [`crate::cli`]'s
//!   `Args` structs hold these, so nothing is parsed twice.
//! - **Runtime configuration**: what the long-running modes consume once
//!   the few things that need I/O at start are resolved (the `--ca-file`
//!   roots, the proxy variables) and derived values are made
//!   ([`SidecarConfig`], [`NodeConfig`], [`UpstreamConfig`]). The webhook
//!   has none: it consumes its parsed arguments directly.
//!
//! Modules:
//!
//! - `flag`: the value parser adapter, and the small rules that are not a
//!   type of their own (positive counts, paths naming a file).
//! - `duration`: `500ms`, `20m`, `1h`, bare seconds; [`TokenExpiration`].
//! - `url`: [`HttpsUrl`] (https, or http to loopback) and [`HttpUrl`].
//! - `ids`: [`Region`], [`Audience`], credentials-profile names.
//! - `image`: [`ImageRef`] and [`PullPolicy`].
//! - `quantity`: Kubernetes resource quantities (`100m`, `64Mi`), for the
//!   webhook's sidecar resources and the per-Pod annotations alike.
//! - `upstream`: [`Upstream`] (`--org-id` or `--exchange-url`), the
//!   timeouts, roots and proxy it is reached with, and [`OutboundConfig`]
//!   for the one outbound client.
//! - `proxy`: [`ProxySettings`] from `--proxy`/`--no-proxy` and `HTTPS_PROXY`,
//!   `HTTP_PROXY`, `NO_PROXY`.
//! - `sidecar_proxy`: the `HTTPS_PROXY` and `NO_PROXY` the webhook injects
//!   into sidecars, checked as the sidecar reads them.
//! - `refresh`: [`RefreshPolicy`].
//! - `sidecar`, `node`: those modes' runtime configuration.

mod duration;
mod error;
pub mod flag;
mod ids;
mod image;
mod key;
mod node;
mod proxy;
pub mod quantity;
mod refresh;
mod sidecar;
mod sidecar_proxy;
mod upstream;
mod url;

pub use self::duration::{parse_duration, positive_duration, TokenExpiration};
pub use self::error::ConfigError;
pub use self::ids::{profile_name, valid_region, Audience, Region, REGION_RULE};
pub use self::image::{image_reference, ImageRef, PullPolicy};
pub use self::key::{
    check_key_attributes, parse_key_attribute, parse_key_lifetime, ExchangeMethod, KeyAttribute,
    KeyRequest, AGENT_ATTRIBUTES, MAX_ATTRIBUTE_VALUE, MAX_KEY_ATTRIBUTES, MAX_KEY_LIFETIME,
    MIN_KEY_LIFETIME,
};
pub use self::node::{CacheConfig, NodeConfig, SourceLimits, VerifyConfig};
pub use self::proxy::{
    ProxyOrigin, ProxySettings, ProxyUrl, HTTPS_PROXY_VARS, HTTP_PROXY_VARS, NO_PROXY_VARS,
};
pub use self::quantity::Quantity;
pub use self::refresh::{refresh_fraction, RefreshPolicy};
pub use self::sidecar::{
    AddressingStyle, FileSinkConfig, ImdsConfig, ProcessDirConfig, SidecarConfig,
};
pub use self::sidecar_proxy::{
    injected_https_proxy, injected_no_proxy, InjectedProxyError, InjectedProxyUrl, NoProxyList,
    MAX_NO_PROXY_LEN,
};
pub use self::upstream::{
    load_roots, post_target, valid_org_id, OrgId, OutboundConfig, Upstream, UpstreamConfig,
    COREWEAVE_EXCHANGE_BASE, ORG_ID_RULE,
};
pub use self::url::{check_fetch_url, is_loopback_host, HttpUrl, HttpsUrl};
