//! Prometheus metrics: one struct per subsystem, each registered by the mode
//! that runs it on the one [`Metrics`] registry the admin listener serves.
//! A mode registers only what it runs, so a node agent shows no sidecar-only
//! series and the other way round.
//!
//! Every name starts with `credagent_`. No label carries a token, a key, or
//! anything unbounded: labels are small fixed sets (result, route, status).
//!
//! - `registry`: [`Metrics`], `credagent_build_info`, the text encoding.
//! - `refresh`: the refresh engine's metrics (both modes) and the sidecar's
//!   readiness and expiry gauges.
//! - `token`, `server`, `node`, `webhook`: the token source, the listeners,
//!   the identity cache, the admission webhook.

mod node;
mod refresh;
mod registry;
mod server;
mod token;
mod webhook;

pub use self::node::{NodeMetrics, VerifyMetrics, REJECT_REASONS};
pub use self::refresh::{RefreshMetrics, SidecarMetrics};
pub use self::registry::{Metrics, MetricsError};
pub use self::server::{ListenerMetrics, ServerMetrics};
pub use self::token::TokenMetrics;
pub use self::webhook::{WebhookMetrics, ADMISSION_OUTCOMES};
