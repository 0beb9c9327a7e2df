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
//!  token file ──▶ token::TokenSource ──▶ refresh::Refresher ──▶ store::Store ◀── server (ECS /v1/credentials)
//!  (kubelet ..data   (notify on the dir       (schedule,            (ArcSwap of an
//!   symlink swap)     + poll fallback)          backoff)              immutable snapshot)
//!                                                  │
//!                                                  ▼
//!                                        exchange::Exchange ──▶ upstream temporary-credentials API
//! ```
//!
//! # Layout
//!
//! - [`config`]: typed, validated configuration; [`cli`]: the clap surface
//!   that produces it. Validation finishes before any socket is bound.
//! - [`token`]: reads the projected token the way kubelet writes it.
//! - [`exchange`]: the only code that talks to the upstream.
//! - [`refresh`]: the pure refresh schedule and the one task that writes the
//!   store.
//! - [`store`]: the current credentials as a pre-rendered response.
//! - [`server`]: the credentials listener and the admin listener.
//! - [`metrics`]: Prometheus metrics, one struct per subsystem.
//! - [`sidecar`]: wires the stages together for `credagent sidecar`.
//! - [`node`]: `credagent node`, one agent per node serving every Pod by its
//!   own token through an identity cache.
//! - [`demo`], [`standin`], [`kubelet`]: a local stand-in for the upstream
//!   and a port of kubelet's atomic writer, for the demo and the tests.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod atomic_file;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exchange;
pub mod metrics;
pub mod node;
pub mod ops;
pub mod refresh;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sidecar;
pub mod store;
pub mod surfaces;
pub mod token;
