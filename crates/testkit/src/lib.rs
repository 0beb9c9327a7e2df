//! # credagent-testkit
//!
//! What credagent's tests, its benchmarks and `credagent demo` stand on, kept out of the
//! product crate so that the image's binary never contains it:
//!
//! - [`standin`]: a local stand-in for the CoreWeave temporary-credentials endpoint, with fault
//!   injection and an unauthenticated control API (bind it to loopback only). The
//!   `credagent-standin` binary runs it as a process for the interoperability suite and the bench.
//! - [`jwt`]: an issuer of service-account-shaped JWTs (RS256, ES256) and their verifier.
//! - [`oidc`]: a cluster's OIDC issuer (discovery and key set) for local-verification tests.
//! - [`kubelet`]: kubelet's `AtomicWriter` ported op for op, to write a projected token volume
//!   exactly as kubelet does; [`KUBELET_SWAP_SH`] is the same swap as a shell script.
//! - `testing` (feature `testing`, and always in the kit's own unit tests): a throwaway CA and
//!   leaf certificate, and a minimal HTTP/1.1 client.
//!
//! # Layout
//!
//! The modules in dependency order, lowest first: each imports only modules of the layers before
//! its own (the product's `tests/it/layering.rs` checks this crate too).
//!
//! 1. `error`, `secret`, `kubelet`: the stand-in's errors, the redacted secret type, the kubelet
//!    writer (which needs nothing else).
//! 2. `jwt`: minting and verifying tokens.
//! 3. `oidc`, `standin`: an issuer's discovery documents; the stand-in upstream.
//! 4. `testing`: the test PKI and HTTP client, which start stand-ins.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod error;
pub mod jwt;
pub mod kubelet;
pub mod oidc;
mod secret;
pub mod standin;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::StandInError;
pub use jwt::{Alg, Issuer, TokenSpec, Verifier};
pub use secret::{Secret, REDACTED};
pub use standin::{Fault, PostExchange, StandIn, StandInConfig};

/// `kubelet-swap.sh`: kubelet's atomic token swap as a shell script, op for op
/// (`sh kubelet-swap.sh DIR NAME SOURCE-FILE`).
pub const KUBELET_SWAP_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kubelet-swap.sh");

/// A test-only RSA 2048 key, PKCS#8 DER (see `fixtures/README.md`): public, never a secret.
pub const RS256_TEST_KEY: &[u8] = include_bytes!("../fixtures/rs256-test-key.pk8");
