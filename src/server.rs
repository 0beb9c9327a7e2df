//! The listeners: credentials (`GET /v1/credentials`) and admin (`/healthz`,
//! `/readyz`, `/metrics`).
//!
//! Routing and authorization only: every answer comes from memory (the
//! store's pre-rendered body or the metrics registry); nothing here waits on
//! the upstream. Each listener stops accepting on shutdown and drains open
//! connections within a grace period.
//!
//! - `limits`: every listener's bounds ([`Limits`]: connections, head
//!   size, per-phase [`Timeouts`]), one preset per kind of listener.
//! - `gate`: admission, in all and per source, shedding the longest-waiting
//!   idle connection when full; `conn`: a connection's phase, which the
//!   gate, its I/O and its service share; `timed`: each phase's deadline on a
//!   connection's I/O; `accept`: accept errors backed off, counted, logged
//!   rate-limited.
//! - `listener`: [`bind`], [`serve`] (plain TCP), [`serve_with`] (through a
//!   [`Handshake`], e.g. TLS).
//! - `host`: the request-target checks (`Host`, absolute-form) of the
//!   listeners that answer only to their own addresses.
//! - `descriptors`: the open-file limit, raised at start.
//! - `routes`: the [`Routes`] trait and the shared answers.
//! - `credentials`, `admin`: the sidecar's credentials route and the admin
//!   routes of every mode; `auth`: the caller's auth token.

mod accept;
mod admin;
pub mod auth;
mod conn;
mod credentials;
pub mod descriptors;
mod gate;
pub mod host;
mod limits;
mod listener;
mod routes;
mod timed;

pub use self::admin::{AdminRoutes, Health};
pub use self::auth::AuthToken;
pub use self::credentials::{CredentialsRoutes, CREDENTIALS_PATH};
pub use self::gate::Gate;
pub use self::limits::{
    Limits, Timeouts, Writes, ADMIN_MAX_CONNECTIONS, ADMIN_MAX_PER_SOURCE,
    CREDENTIALS_MAX_HEAD_BYTES, DRAIN_GRACE, HANDSHAKE_TIMEOUT, HEAD_TIMEOUT, IDLE_TIMEOUT,
    IMDS_MAX_CONNECTIONS, IMDS_MAX_PER_SOURCE, LISTEN_BACKLOG, SEND_TIMEOUT, SMALL_MAX_HEAD_BYTES,
    TLS_SEND_BUFFER, WEBHOOK_MAX_HEAD_BYTES, WEBHOOK_SEND_BUFFER,
};
pub use self::listener::{bind, serve, serve_with, BindError, Handshake, Plain};
pub use self::routes::{
    error, internal_error, method_not_allowed, retry_later, text, text_owned, Answer, Body, Routes,
};
