//! A local stand-in for the CoreWeave AI Object Storage temporary-credentials endpoint.
//!
//! It serves `GET /v1/cwobject/temporary-credentials/oidc/{ORG_ID}` the way the upstream is
//! documented to (research/coreweave-api.md). The raw JWT is the whole `Authorization` value, with
//! no `Bearer`. The 200 body is PascalCase (`AccessKeyId`, `SecretAccessKey`, `Token` (empty by
//! default), `Expiration` (`YYYY-MM-DDTHH:MM:SSZ`), `attributes.cw-role` = `<iss>:<sub>`). A bad token
//! gets a 401 `{"code":"unauthenticated","message":…}` whose message never repeats the token.
//!
//! This is a test double for `credagent demo`, the integration tests, the bench and the
//! separate-process interoperability rig (`credagent-standin`). Tests can inject faults (status codes, throttling, delays, hangs, raw
//! bodies, dropped connections), rotate the keys it hands out, and count the calls. Another process
//! does the same through the unauthenticated JSON control API under `/_standin/` (see `control`).
//! Bind it to loopback only.
//!
//! # Layout
//! This file only declares and re-exports; the parts import each other, one way only:
//! - [`crate::jwt`]: [`Issuer`](crate::Issuer) mints service-account-shaped JWTs;
//!   [`Verifier`](crate::Verifier) checks them.
//! - `types`: the paths, [`StandInConfig`] and [`Fault`]; it depends on no other part.
//! - `state`: what the parts share (settings, records, counters), behind one lock.
//! - `handle`: [`StandIn`], the handle tests hold.
//! - `serve`: [`StandIn::start`], the accept loop and per-connection tasks; it sends each request
//!   to `control` or `service`.
//! - `service`: the credential endpoint and fault injection.
//! - `control`: the `/_standin/` control API, which steers the stand-in through the handle.
//! - `respond`: JSON answers and error bodies, shared by `service` and `control`.
//! - `tls`: building a rustls `ServerConfig` from PEM files or DER.
//! - `cli`: [`StandInArgs`] and [`run`], the `credagent-standin` process entry point.

mod cli;
mod control;
mod handle;
mod respond;
mod serve;
mod service;
mod state;
#[cfg(test)]
mod tests;
mod tls;
mod types;

pub use cli::{run, start_from_args, StandInArgs};
pub use handle::StandIn;
pub use tls::{load_tls_pem, tls_server_config};
pub use types::{Fault, StandInConfig, CONTROL_PATH_PREFIX, EXCHANGE_PATH_PREFIX};
