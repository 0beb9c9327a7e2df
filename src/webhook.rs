//! The admission webhook (`credagent webhook`): injects credagent into the
//! Pods that opt in. Three jobs, one folder each, depending one way
//! (`mutate` ← `compat` ← `serve`):
//!
//! - [`mutate`]: the pure core. An AdmissionReview in, a JSON Patch (or a
//!   reason not to inject) out; no I/O, no clock. Everything about *what*
//!   is injected lives here, tested with fixtures.
//! - [`compat`]: CoreWeave compatibility (`--coreweave-compat`): a minimal
//!   in-cluster Kubernetes client and the watched ServiceAccount cache that
//!   answers "does this Pod's ServiceAccount opt in?".
//! - [`serve`]: `POST /mutate` over HTTPS, bounded in body size and time,
//!   the serving certificate reloaded from its files, the wiring
//!   ([`Webhook`]).
//!
//! Its metrics stay in [`crate::metrics`] with every other subsystem's, so
//! one module lists every series the product exports (the chart's rules
//! and dashboard are checked against it); its flags are parsed by
//! [`crate::cli`] with the other subcommands, and what it injects,
//! [`crate::cli::InjectArgs`], is read by the mutator as parsed.

pub mod compat;
pub mod mutate;
pub mod serve;

pub use self::mutate::{
    admit, decide, parse, respond, service_account_to_look_up, AnnotationError, Decision, Entry,
    Mode, Op, Operation, Request, Response, ReviewError, ServiceAccountRef, SkipReason,
};
pub use self::serve::{
    CertError, CertFiles, CertStore, MutateRoutes, StartError, Webhook, WebhookOptions,
    KEEP_ALIVE_TIMEOUT, MUTATE_NAMESPACE_PATH, MUTATE_PATH,
};
