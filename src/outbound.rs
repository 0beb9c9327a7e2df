//! The one HTTP(S) client for everything that calls out of the agent: the
//! exchange with the upstream in every mode, the key-set fetches of
//! node-mode token verification, and the webhook's Kubernetes API calls.
//! One place decides TLS (rustls, the webpki roots plus `--ca-file`),
//! connect timeouts, connection reuse and the proxy.
//!
//! - `client`: [`Outbound`], built from [`crate::config::OutboundConfig`].
//! - `route`: [`Route`], which destinations go through which proxy
//!   (`HTTPS_PROXY`, `NO_PROXY`, `--proxy`).
//! - `connect`: the connector: direct, a `CONNECT` tunnel, or plain http to
//!   the proxy.
//! - `error`: [`SendError`], and [`ProxyError`] for a proxy that refuses
//!   the tunnel or cannot be reached.

mod client;
mod connect;
mod error;
mod route;

pub use self::client::{read_body, Outbound};
pub use self::error::{error_chain, BodyError, BuildError, ProxyError, SendError};
pub use self::route::{Direct, Route, Via};
