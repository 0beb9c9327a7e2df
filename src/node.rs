//! `credagent node`: one agent per node (a DaemonSet on `hostNetwork`),
//! serving every Pod the credentials its own projected token obtains, and
//! isolating Pods from each other: whatever one Pod sends, the others keep
//! their credentials.
//!
//! ```text
//!  Pod's token (Authorization) ──▶ routes ──▶ cache ──(miss)──▶ fill task ──▶ refresh engine ──▶ upstream
//!   (Host, shape, exp,            (proven LRU,        (one per token,    (fair slots per
//!    local verification)           failing, fills)     outlives callers)  source address)
//! ```
//!
//! Pods point `AWS_CONTAINER_CREDENTIALS_FULL_URI` at
//! `http://169.254.170.23/v1/credentials` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` at their own projected token;
//! `credagent node setup-link` puts that address on the node.
//!
//! - `agent`: [`Node`], the wiring; `routes`: the credentials route.
//! - `cache`, `identity`: the bounded structures and one cached identity.
//! - `fill`: the task per identity, on the shared refresh engine.
//! - `fair`, `sources`: upstream slots shared between source addresses,
//!   and per-address miss budgets.
//! - `verify`: local verification of Pods' tokens against their issuer's
//!   keys (`--issuer`, `--jwks-url`); only node mode takes tokens from
//!   callers, so only it verifies them.
//! - `health`: `/readyz`; `link`: `setup-link`.

mod agent;
pub mod cache;
mod fair;
mod fill;
mod health;
pub mod identity;
pub mod link;
pub mod resolve;
pub mod routes;
mod sources;
pub mod verify;

pub use self::agent::{Node, NodeOptions, Service, StartError};
pub use self::fair::{FairSlots, Requester};
pub use self::health::UNHEALTHY_AFTER;
