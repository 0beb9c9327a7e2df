//! A local stand-in for the CoreWeave AI Object Storage temporary-credentials endpoint.
//!
//! It serves both of CoreWeave's OIDC exchanges the way the upstream is documented to
//! (research/coreweave-api.md):
//! - `GET /v1/cwobject/temporary-credentials/oidc/{ORG_ID}` ("create access key from container
//!   credentials"). The raw JWT is the whole `Authorization` value, with no `Bearer`. The 200 body
//!   is PascalCase (`AccessKeyId`, `SecretAccessKey`, `Token` (empty by default), `Expiration`
//!   (`YYYY-MM-DDTHH:MM:SSZ`), `attributes.cw-role` = `<iss>:<sub>`). Its lifetime is the
//!   stand-in's choice, 3600 s unless set ([`StandIn::set_lifetime`], `--lifetime`; 900 s gives
//!   the 15-minute keys one CoreWeave page documents).
//! - `POST /v1/cwobject/temporary-credentials/oidc` ("create access key from OIDC",
//!   `CreateAccessKeyFromOIDC`), with a JSON body `{"durationSeconds","orgId","oidcToken",
//!   "attributes"}` and no `Authorization` (one that is sent is ignored). The 200 body is camelCase
//!   (`accessKeyId`, `secretKey`, `principalName` = `<iss>:<sub>`, `expiry` = now +
//!   `durationSeconds`, `attributes` echoed as received), with no session token. `durationSeconds`
//!   0 grants the GET's lifetime (the API reference allows 0 without saying what it means); a cap
//!   ([`StandIn::set_post_max_lifetime`]) makes it grant less than asked. Bad fields get a 400
//!   `invalid_argument` naming the field, a body over 64 KiB a 413, a wrong `orgId` the GET's 404
//!   for a wrong org; the rules and bounds are in `post`. [`PostExchange`] makes the stand-in
//!   refuse the POST with 404 or 405, as a server that does not offer it.
//!
//! A bad token gets a 401 `{"code":"unauthenticated","message":…}` from either exchange, from the
//! same verifiers, whose message never repeats the token.
//!
//! This is a test double for `credagent demo`, the integration tests, the bench and the
//! separate-process interoperability rig (`credagent-standin`). Tests can inject faults (status
//! codes, throttling, delays, hangs, raw bodies, dropped connections) into either exchange, rotate
//! the keys it hands out, count the calls (in all and by method, and the successes by exchange),
//! and read what the last POST asked for ([`StandIn::last_post`]: its body without the token).
//! Another process does the same through the unauthenticated JSON control API under `/_standin/`
//! (see `control`). Bind it to loopback only.
//!
//! # Layout
//! This file only declares and re-exports; the parts import each other, one way only:
//! - [`crate::jwt`]: [`Issuer`](crate::Issuer) mints service-account-shaped JWTs;
//!   [`Verifier`](crate::Verifier) checks them.
//! - `types`: the paths, [`StandInConfig`], [`Fault`], [`PostExchange`] and [`PostRequest`]; it
//!   depends on no other part.
//! - `state`: what the parts share (settings, records, counters), behind one lock.
//! - `handle`: [`StandIn`], the handle tests hold.
//! - `serve`: [`StandIn::start`], the accept loop and per-connection tasks; it sends each request
//!   to `control` or `service`.
//! - `service`: the credential endpoint's steps (route, record, count, fault), then `get` or
//!   `post` for the normal answer; `auth` checks the token for both.
//! - `control`: the `/_standin/` control API, which steers the stand-in through the handle.
//! - `respond`: JSON answers and error bodies, shared by `service` and `control`.
//! - `tls`: building a rustls `ServerConfig` from PEM files or DER.
//! - `cli`: [`StandInArgs`] and [`run`], the `credagent-standin` process entry point.

mod auth;
mod cli;
mod control;
mod get;
mod handle;
mod post;
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
pub use types::{
    Fault, PostExchange, PostRequest, StandInConfig, CONTROL_PATH_PREFIX, EXCHANGE_PATH_PREFIX,
    POST_EXCHANGE_PATH,
};
