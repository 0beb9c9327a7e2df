//! # credagent
//!
//! A credential agent for Kubernetes. kubelet projects a short-lived
//! service-account JWT into the Pod; credagent exchanges it, ahead of time,
//! for temporary S3 credentials at the cloud's temporary-credentials endpoint
//! and serves them from memory in the ECS container-credentials format, so
//! every AWS SDK in the Pod works with `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
//!
//! Data flows one way; each stage is a module with one job:
//!
//! ```text
//!  token file ──▶ token ──▶ refresh ──▶ store ◀── server ◀── GET /v1/credentials
//!  (kubelet        (watch,    (Engine: one    (ArcSwap of     (routes, auth,
//!   ..data swap)    read,      exchange and   a snapshot,     connection
//!                   claims)    the next one)  bodies from     bounds)
//!                                 │           wire)
//!                                 ▼
//!                    exchange ──▶ outbound ──▶ upstream temporary-credentials API
//! ```
//!
//! Node mode runs the same engine for every Pod's token (`node`), the
//! surfaces and operator commands read the same store or exchange.
//!
//! # Layout
//!
//! The stages, in data-flow order; each depends only on those before it
//! (a test checks that no two modules import each other):
//!
//! - [`secret`], [`clock`]: the redacted secret type, the injected wall clock.
//! - [`cli`] → [`config`]: the clap surface, and the typed configuration every
//!   stage consumes, validated before anything is bound.
//! - [`credentials`]: the credentials type; [`wire`]: every format it is
//!   served in (ECS, IMDS, `credential_process`, the credentials file, the
//!   `Expiration` form).
//! - [`token`]: the projected token: watch, read, claims, and node mode's
//!   local verification.
//! - [`outbound`]: the one HTTP(S) client; [`exchange`]: the upstream call
//!   and its classified errors.
//! - [`refresh`]: the one refresh engine (pure schedule, backoff with
//!   `Retry-After`, metrics) and the sidecar's refresher task.
//! - [`store`]: one identity's current snapshot, one writer, lock-free readers.
//! - [`server`]: listeners, routes, caller auth, connection bounds.
//! - [`metrics`]: one struct per subsystem, registered per mode.
//! - [`sidecar`], [`node`]: the two modes, wired; [`surfaces`]: IMDS and the
//!   credentials file; [`ops`]: the one-shot operator commands.
//! - `demo` (feature `demo`): `credagent demo` on the test kit's stand-in.
//!
//! The test kit (stand-in upstream, kubelet's writer, JWT issuer) is the
//! separate crate `credagent-testkit`; the image's binary, built without
//! the `demo` feature, contains none of it.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod atomic_file;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exchange;
pub mod metrics;
pub mod node;
pub mod ops;
pub mod outbound;
pub mod refresh;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sidecar;
pub mod store;
pub mod surfaces;
pub mod token;
pub mod webhook;
pub mod wire;
