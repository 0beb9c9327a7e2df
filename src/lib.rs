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
//! The modules in dependency order, lowest first: each imports only
//! modules of the layers before its own (`tests/it/layering.rs` checks this
//! order against the sources, and that no two files import each other).
//!
//! 1. `secret`, `clock`, `shutdown`, `atomic_file`, `dirwatch`, `fsread`, `logsafe`:
//!    the foundations: the redacted secret type, the injected wall clock,
//!    SIGTERM, atomic file replacement, the directory watch (token,
//!    certificates, credential-process directory), bounded non-blocking
//!    reads of regular files only, untrusted strings escaped and capped for
//!    logs.
//! 2. `config`: what configuration is made of: the value types each flag
//!    is parsed into, once, by clap (durations, quantities, URLs, image
//!    references, ids, the enums), and the runtime configuration the
//!    long-running modes consume once the roots and proxy variables are
//!    read.
//! 3. `cli`: the clap surface: one `Args` struct per subcommand whose
//!    fields are final, its cross-flag rules beside it, and the resolution
//!    into `config`'s runtime structs; the webhook's mutator reads its
//!    `InjectArgs` as parsed.
//! 4. `credentials`, `jwt`: the credentials type; a JWT's shape and its
//!    unverified claims (who the token names: the exchange tags keys with
//!    them, the audit line records them).
//! 5. `wire`: every format credentials are served in (ECS, IMDS,
//!    `credential_process`, the credentials file, `Expiration`).
//! 6. `outbound`: the one HTTP(S) client (proxy, roots, timeouts).
//! 7. `exchange`: the upstream call and its classified errors.
//! 8. `metrics`: one struct per subsystem, registered per mode; every
//!    series the product exports is named here.
//! 9. `token`: the projected token: watch, read, claims.
//! 10. `store`: one identity's current snapshot, one writer, lock-free
//!     readers.
//! 11. `refresh`: the one refresh engine (pure schedule, backoff with
//!     `Retry-After`) and the sidecar's refresher task.
//! 12. `server`: listeners, routes, caller auth, connection bounds.
//! 13. `surfaces`: IMDS, the credentials file, the credential-process
//!     directory.
//! 14. `sidecar`, `node`, `webhook`, `ops`: the modes, wired (node mode
//!     with its local token verification, the webhook with its mutator,
//!     server and CoreWeave compatibility), and the one-shot operator
//!     commands.
//! 15. `demo`: `credagent demo` on the test kit's stand-in (feature
//!     `demo`).
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
pub mod dirwatch;
pub mod exchange;
pub mod fsread;
pub mod jwt;
pub mod logsafe;
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
