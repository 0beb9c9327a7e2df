//! The admission webhook's pure core: an AdmissionReview in, a JSON Patch
//! that injects credagent (or a reason not to) out.
//!
//! No I/O, no clock: the HTTPS server around it reads the body, looks up a
//! ServiceAccount when asked to, and writes the answer:
//!
//! ```text
//! let req = webhook::parse(&body)?;                               // Err → HTTP 400
//! let sa = webhook::service_account_to_look_up(&req, &config);   // Some → GET it
//! let decision = webhook::admit(&req, sa_annotations, &config);
//! metrics.inc(decision.label());
//! let answer = webhook::respond(&req, &decision).to_bytes();     // HTTP 200
//! ```
//!
//! # What is injected
//!
//! Into a Pod created with `credagent.io/inject: "true"` (label or
//! annotation; `"false"` on either always wins), or whose ServiceAccount has
//! `caios.coreweave.com/inject: "true"` when `coreweave_compat` is on:
//!
//! - **sidecar mode** (default): the native sidecar `credagent` as the first
//!   init container (`restartPolicy: Always`, startupProbe on `/readyz`,
//!   livenessProbe on `/healthz`, no readinessProbe), the projected token
//!   volume `credagent-token`, the in-memory volume `credagent-auth`; and in
//!   every other container (app and init) `AWS_CONTAINER_CREDENTIALS_FULL_URI`
//!   (`http://127.0.0.1:8181/v1/credentials`),
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` and a read-only mount of
//!   `credagent-auth`, plus the configured region and S3 endpoint. With a key
//!   lifetime (`--key-lifetime`, or the Pod's `credagent.io/key-lifetime`,
//!   whose `off` keeps the GET) the sidecar uses the POST exchange: its
//!   `--key-lifetime` and the webhook's `--key-attribute`s;
//! - **node mode** (`credagent.io/mode: node`): no sidecar; the token volume
//!   mounted read-only into each container, whose env points at the node
//!   agent with the Pod's own token.
//!
//! Marker annotations `credagent.io/status: injected` and
//! `credagent.io/injected-mode`, and (sidecar mode) the label
//! `credagent/mode: sidecar` that the shipped PodMonitor scrapes.
//!
//! # Never clobber
//!
//! Every item has a fixed name and is added only if absent, one patch
//! operation per item on the raw JSON, so a second pass adds nothing and no
//! field of anything else is lost. A container that already has its own AWS
//! credentials (keys, web identity, a profile, a container-credentials URI)
//! is left as it is, with a warning; region and endpoint variables are added
//! only where none is set. A `hostNetwork` Pod gets no sidecar (node mode
//! works there). An annotation value that cannot be honoured refuses the Pod
//! with a message naming it.
//!
//! # Layout
//!
//! - [`review`] reads the request, [`response`] writes the answer.
//! - [`admit`](mod@admit) ties them to [`inject`], the decision.
//! - What is injected is [`crate::cli::InjectArgs`], the webhook's parsed
//!   flags, read as they are (tests build it with `InjectArgs::from_flags`).
//! - [`annotations`] reads the opt-in and the per-Pod settings over those
//!   flags' defaults, with [`crate::config::quantity`] for resource values.
//! - [`pod`] views the raw Pod, [`plan`] decides per container, [`items`]
//!   builds what is added ([`argv`] the sidecar's command line), [`patch`]
//!   builds the operations, [`names`] holds every fixed name and path.

pub mod admit;
pub mod annotations;
pub mod argv;
pub mod inject;
pub mod items;
pub mod names;
pub mod patch;
pub mod plan;
pub mod pod;
pub mod response;
pub mod review;

#[cfg(test)]
mod annotations_tests;
#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod proxy_tests;

pub use self::admit::{admit, respond, service_account_to_look_up, ServiceAccountRef};
pub use self::annotations::{AnnotationError, Entry, Mode};
pub use self::inject::{decide, Decision, SkipReason};
pub use self::patch::Op;
pub use self::response::Response;
pub use self::review::{parse, Operation, Request, ReviewError};
