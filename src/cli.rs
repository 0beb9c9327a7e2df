//! The command-line surface: one clap `Args` struct per subcommand, the
//! subcommand's cross-flag rules beside it, and what it resolves to.
//!
//! Every flag also reads a `CREDAGENT_*` environment variable. Each value
//! is parsed once, by clap, into its final type ([`crate::config`]'s value
//! types: durations, quantities, URLs, image references, ids, the enums);
//! a rule between flags is checked by clap where it can say it (a required
//! group, `requires`) and otherwise in the subcommand's one `validate`.
//! Then:
//!
//! - `sidecar` and `node` resolve their arguments once (reading the
//!   `--ca-file` roots and the proxy variables) into [`crate::config`]'s
//!   runtime structs: [`SidecarArgs::config`], [`NodeArgs::config`];
//! - `webhook` is consumed as parsed: its [`InjectArgs`] is what the
//!   mutator reads.

use clap::{Parser, Subcommand, ValueEnum};

mod inject;
mod node;
mod ops;
mod shared;
mod sidecar;
mod webhook;

#[cfg(test)]
mod inject_tests;
#[cfg(test)]
mod modes_tests;

pub use self::inject::{InjectArgs, SidecarResources, DEFAULT_NODE_URL};
pub use self::node::{NodeArgs, NodeCommand, SetupLinkArgs, DEFAULT_NODE_LISTEN};
pub use self::ops::{CredentialProcessArgs, DoctorArgs, ExchangeArgs, PrincipalArgs};
pub use self::shared::{
    ServingArgs, TuningArgs, DEFAULT_ADMIN_LISTEN, DEFAULT_AUDIENCE, DEFAULT_AUTH_TOKEN_FILE,
    DEFAULT_LISTEN, DEFAULT_TOKEN_FILE,
};
pub use self::sidecar::{DemoArgs, SidecarArgs};
pub use self::webhook::{
    WebhookArgs, DEFAULT_MAX_BODY_BYTES, DEFAULT_TLS_CERT_FILE, DEFAULT_TLS_KEY_FILE,
    DEFAULT_WEBHOOK_LISTEN, MAX_BODY_BYTES, MIN_BODY_BYTES,
};

/// credagent: exchanges a Pod's projected service-account token for temporary
/// S3 credentials ahead of time and serves them to every AWS SDK in the Pod.
#[derive(Debug, Parser)]
#[command(name = "credagent", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "CREDAGENT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter (tracing env-filter syntax, e.g. `info`, `credagent=debug`).
    #[arg(
        long,
        global = true,
        env = "CREDAGENT_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run in a workload Pod: watch the projected token, keep credentials fresh, serve them on loopback.
    Sidecar(SidecarArgs),
    /// Run on every node (DaemonSet): serve each Pod the credentials its own projected token obtains.
    Node(NodeArgs),
    /// Run the admission webhook that injects credagent into the Pods that opt in.
    Webhook(WebhookArgs),
    /// Run the whole pipeline locally against a local stand-in upstream (no cluster needed).
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Print a running agent's credentials in the AWS credential_process format.
    CredentialProcess(CredentialProcessArgs),
    /// Exchange the projected token once and print what the upstream returns.
    Exchange(ExchangeArgs),
    /// Print the policy principal of a workload and an example access policy.
    Principal(PrincipalArgs),
    /// Check a sidecar set-up end to end and say how to fix what fails.
    Doctor(DoctorArgs),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines.
    Text,
}
