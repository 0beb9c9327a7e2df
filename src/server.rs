//! The listeners: credentials (`GET /v1/credentials`) and admin (`/healthz`,
//! `/readyz`, `/metrics`).
//!
//! Routing and authorization only: every answer comes from memory (the
//! store's pre-rendered body or the metrics registry); nothing here waits on
//! the upstream. Each listener stops accepting on shutdown and drains open
//! connections within a grace period.
//!
//! - `listener`: [`bind`], [`serve`] (plain TCP), [`serve_with`] (through a
//!   [`Handshake`], e.g. TLS) and their [`Limits`].
//! - `routes`: the [`Routes`] trait and the shared answers.
//! - `credentials`, `admin`: the sidecar's credentials route and the admin
//!   routes of every mode; `auth`: the caller's auth token.

mod admin;
pub mod auth;
mod credentials;
mod listener;
mod routes;

pub use self::admin::{AdminRoutes, Health};
pub use self::auth::AuthToken;
pub use self::credentials::{CredentialsRoutes, CREDENTIALS_PATH};
pub use self::listener::{
    bind, serve, serve_with, BindError, Connections, Gate, Handshake, Limits, Plain, Writes,
    DRAIN_GRACE, HEADER_READ_TIMEOUT, LISTEN_BACKLOG, MAX_CONNECTIONS, MAX_HEAD_BYTES,
    TLS_SEND_BUFFER,
};
pub use self::routes::{
    error, internal_error, method_not_allowed, retry_later, text, text_owned, Answer, Body, Routes,
};
