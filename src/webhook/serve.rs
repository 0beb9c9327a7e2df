//! Serving the webhook: `POST /mutate` (and `/mutate/namespace`) over
//! HTTPS, the serving certificate, and the wiring of `credagent webhook`.
//!
//! - [`service`]: [`Webhook`], the wiring of the listeners, the certificate
//!   reloader and (compat mode) the ServiceAccount cache, from the parsed
//!   [`WebhookArgs`](crate::cli::WebhookArgs).
//! - [`server`]: the routes, calling the pure core; [`body`] reads a
//!   request's body within its bounds, [`budget`] is the memory requests in
//!   flight may hold.
//! - [`tls`]: the serving certificate, reloaded when its files change
//!   ([`x509`] reads its expiry).

pub mod body;
pub mod budget;
pub mod server;
pub mod service;
pub mod tls;
pub mod x509;

pub use self::server::{MutateRoutes, MUTATE_NAMESPACE_PATH, MUTATE_PATH};
pub use self::service::{StartError, Webhook, WebhookOptions, KEEP_ALIVE_TIMEOUT};
pub use self::tls::{CertError, CertFiles, CertStore};
