//! CoreWeave compatibility (`--coreweave-compat`): Pods whose
//! ServiceAccount carries `caios.coreweave.com/inject: "true"` are injected
//! too, as CoreWeave's own pod-identity-webhook would. The API server never
//! sends a Pod's ServiceAccount, so the webhook keeps a watched cache of
//! them (list, then watch, re-listing on expiry) and answers from memory.
//!
//! - [`kube`]: a minimal in-cluster API client (the ServiceAccount token,
//!   the cluster CA, the outbound client); [`kube_wire`]: what it reads
//!   (bounded lists and watch events).
//! - [`sa_cache`]: the cache and the reflector task that keeps it current.

pub mod kube;
pub mod kube_wire;
pub mod sa_cache;
