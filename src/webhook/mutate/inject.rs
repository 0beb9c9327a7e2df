//! The decision: given a Pod (raw JSON, as the API server sent it), what to
//! add, or why not.
//!
//! Pure: no I/O, no clock, no randomness, so the same Pod always gives the
//! same answer, and a second pass over an injected Pod finds every item by
//! its fixed name and adds nothing.

use serde_json::{Map, Value};

use crate::cli::InjectArgs;

use super::annotations::{self, Entry, Mode, OptIn, PodSettings};
use super::items::{self, AppPlan, EnvVar};
use super::names;
use super::patch::{self, Op, Pointer};
use super::plan::{check_reserved_names, plan_container};
use super::pod::{self, Container, Meta, Spec};

/// What to do with a Pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Mutate it with these operations (never empty).
    Inject {
        /// The mode injected.
        mode: Mode,
        /// The JSON Patch.
        ops: Vec<Op>,
        /// For the API client (containers left alone, and why).
        warnings: Vec<String>,
    },
    /// Admit it unchanged.
    Skip {
        /// Why.
        reason: SkipReason,
        /// For the API client.
        warnings: Vec<String>,
    },
    /// Refuse it (`allowed: false`): an annotation we cannot honour.
    Refuse {
        /// Names the annotation and what it accepts.
        message: String,
    },
}

/// Why a Pod is admitted unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Not a Pod CREATE (another kind, operation or subresource).
    NotPodCreate,
    /// Neither the Pod, its namespace, nor (with `coreweave_compat`) its
    /// ServiceAccount opts in.
    NotOptedIn,
    /// `credagent.io/inject: "false"`.
    OptedOut,
    /// Everything is there already (a second pass).
    AlreadyInjected,
    /// A `hostNetwork` Pod in sidecar mode: 127.0.0.1 is the node's there.
    HostNetwork,
    /// `credagent.io/skip-containers` names every container.
    AllContainersSkipped,
    /// Every container not skipped has its own credentials (or a mount
    /// where credagent's would go).
    AllContainersHaveCredentials,
}

// === impl SkipReason ===

impl SkipReason {
    /// A short, bounded label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPodCreate => "not_pod_create",
            Self::NotOptedIn => "not_opted_in",
            Self::OptedOut => "opted_out",
            Self::AlreadyInjected => "already_injected",
            Self::HostNetwork => "host_network",
            Self::AllContainersSkipped => "all_containers_skipped",
            Self::AllContainersHaveCredentials => "all_containers_have_credentials",
        }
    }
}

// === impl Decision ===

impl Decision {
    /// A short, bounded label for metrics: `injected`, `refused` or the
    /// skip reason.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Inject { .. } => "injected",
            Self::Skip { reason, .. } => reason.as_str(),
            Self::Refuse { .. } => "refused",
        }
    }

    fn skip(reason: SkipReason, warnings: Vec<String>) -> Self {
        Self::Skip { reason, warnings }
    }

    fn refuse(e: impl std::fmt::Display) -> Self {
        Self::Refuse {
            message: e.to_string(),
        }
    }
}

/// Decides what to do with a Pod being created, sent by `entry`.
/// `sa_annotations` are the annotations of its ServiceAccount
/// (`spec.serviceAccountName`, `default` when empty) if the caller looked it
/// up; `None` means unknown, which counts as no opt-in.
pub fn decide(
    pod: &Value,
    entry: Entry,
    sa_annotations: Option<&Map<String, Value>>,
    config: &InjectArgs,
) -> Decision {
    let meta = match pod::meta(pod) {
        Ok(m) => m,
        Err(e) => return Decision::refuse(e),
    };
    match annotations::opt_in(meta.labels, meta.annotations, entry, sa_annotations, config) {
        Err(e) => return Decision::refuse(e),
        Ok(OptIn::NotOptedIn) => return Decision::skip(SkipReason::NotOptedIn, vec![]),
        Ok(OptIn::OptedOut) => return Decision::skip(SkipReason::OptedOut, vec![]),
        Ok(OptIn::Pod | OptIn::Namespace | OptIn::ServiceAccount) => {}
    }
    let settings = match annotations::settings(meta.annotations, config) {
        Ok(s) => s,
        Err(e) => return Decision::refuse(e),
    };
    let spec = match pod::spec(pod) {
        Ok(s) => s,
        Err(e) => return Decision::refuse(e),
    };
    let mut warnings = settings.warnings.clone();
    if spec.host_network && settings.mode == Mode::Sidecar {
        warnings.push("credagent: hostNetwork Pod not injected: 127.0.0.1 there is the node's; use credagent.io/mode: node".into());
        return Decision::skip(SkipReason::HostNetwork, warnings);
    }
    if let Err(message) = check_reserved_names(&spec, config, &settings) {
        return Decision::Refuse { message };
    }
    let plan = items::app_plan(config, &settings);
    let targets = match targets(&spec, &plan, config, &settings, &mut warnings) {
        Ok(t) => t,
        Err(reason) => return Decision::skip(reason, warnings),
    };

    // Metadata first, then volumes, then the sidecar (which shifts the
    // existing init containers by one), then each container's additions.
    let mut ops = Vec::new();
    metadata_ops(&mut ops, &meta, &settings);
    volume_ops(&mut ops, &spec, &settings);
    let shift = sidecar_ops(&mut ops, &spec, config, &settings, &mut warnings);
    let spec_ptr = Pointer::root().key("spec");
    for t in targets {
        let base = if t.init {
            spec_ptr
                .key("initContainers")
                .index(t.container.index + shift)
        } else {
            spec_ptr.key("containers").index(t.container.index)
        };
        let env: Vec<Value> = t.env.iter().map(items::env_entry).collect();
        patch::append_all(&mut ops, &base.key("env"), t.container.env.is_some(), env);
        if t.mount {
            let m = vec![items::read_only_mount(plan.mount)];
            let exists = t.container.mounts.is_some();
            patch::append_all(&mut ops, &base.key("volumeMounts"), exists, m);
        }
    }
    if ops.is_empty() {
        // A second pass: every item is found by name. Its warnings were
        // given on the first.
        return Decision::skip(SkipReason::AlreadyInjected, vec![]);
    }
    Decision::Inject {
        mode: settings.mode,
        ops,
        warnings,
    }
}

/// One container to add to, and what.
struct Target<'s, 'a> {
    init: bool,
    container: &'s Container<'a>,
    env: Vec<EnvVar>,
    mount: bool,
}

/// The containers to add to (an empty addition on a second pass), or why
/// there are none.
fn targets<'s, 'a>(
    spec: &'s Spec<'a>,
    plan: &AppPlan,
    config: &InjectArgs,
    settings: &PodSettings,
    warnings: &mut Vec<String>,
) -> Result<Vec<Target<'s, 'a>>, SkipReason> {
    let init = spec.init_containers.iter().flatten().map(|c| (true, c));
    let all: Vec<(bool, &Container<'a>)> = init
        .chain(spec.containers.iter().map(|c| (false, c)))
        .collect();
    for name in &settings.skip_containers {
        if !all.iter().any(|(_, c)| c.name == name) {
            warnings.push(format!(
                "credagent: {}: no container {name:?} in this Pod",
                names::SKIP_CONTAINERS
            ));
        }
    }
    // Init containers that start before an existing credagent (one a later
    // webhook put in front, or a hand-added regular container) cannot get
    // credentials from it. On a first pass the sidecar goes first.
    let sidecar_at = spec
        .init_containers
        .iter()
        .flatten()
        .position(|c| c.name == names::SIDECAR)
        .or_else(|| {
            let in_apps = spec.containers.iter().any(|c| c.name == names::SIDECAR);
            in_apps.then_some(usize::MAX)
        });
    let mut targets = Vec::new();
    let mut conflicts = 0;
    for (init, c) in all {
        if c.name == names::SIDECAR || settings.skip_containers.iter().any(|n| n == c.name) {
            continue;
        }
        if settings.mode == Mode::Sidecar && init && sidecar_at.is_some_and(|k| c.index < k) {
            warnings.push(format!(
                "credagent: init container {} starts before credagent: no credentials for it",
                c.name
            ));
            continue;
        }
        match plan_container(c, plan, config, settings, warnings) {
            Some((env, mount)) => targets.push(Target {
                init,
                container: c,
                env,
                mount,
            }),
            None => conflicts += 1,
        }
    }
    match (targets.is_empty(), conflicts) {
        (false, _) => Ok(targets),
        (true, 0) => Err(SkipReason::AllContainersSkipped),
        (true, _) => Err(SkipReason::AllContainersHaveCredentials),
    }
}

/// The marker annotations and (sidecar mode) the PodMonitor's label.
fn metadata_ops(ops: &mut Vec<Op>, meta: &Meta<'_>, settings: &PodSettings) {
    let metadata = Pointer::root().key("metadata");
    let mode = match settings.mode {
        Mode::Sidecar => "sidecar",
        Mode::Node => "node",
    };
    let mut marks = Map::new();
    for (key, value) in [(names::STATUS, "injected"), (names::INJECTED_MODE, mode)] {
        if !meta.annotations.is_some_and(|a| a.contains_key(key)) {
            marks.insert(key.into(), value.into());
        }
    }
    let labelled = meta
        .labels
        .is_some_and(|l| l.contains_key(names::MODE_LABEL));
    let mut label = Map::new();
    if settings.mode == Mode::Sidecar && !labelled {
        label.insert(names::MODE_LABEL.into(), "sidecar".into());
    }
    if !meta.present {
        // No metadata at all (not what an API server sends): one object.
        let mut whole = Map::new();
        whole.insert("annotations".into(), Value::Object(marks));
        if !label.is_empty() {
            whole.insert("labels".into(), Value::Object(label));
        }
        ops.push(Op::add(&metadata, Value::Object(whole)));
        return;
    }
    let exists = meta.annotations.is_some();
    patch::insert_all(ops, &metadata.key("annotations"), exists, marks);
    patch::insert_all(ops, &metadata.key("labels"), meta.labels.is_some(), label);
}

/// The token volume and (sidecar mode) the shared in-memory volume.
fn volume_ops(ops: &mut Vec<Op>, spec: &Spec<'_>, settings: &PodSettings) {
    let has = |n: &str| spec.volumes.iter().flatten().any(|(name, _)| *name == n);
    let mut volumes = Vec::new();
    if !has(names::TOKEN_VOLUME) {
        volumes.push(items::token_volume(settings));
    }
    if settings.mode == Mode::Sidecar && !has(names::AUTH_VOLUME) {
        volumes.push(items::auth_volume(settings));
    }
    let list = Pointer::root().key("spec").key("volumes");
    patch::append_all(ops, &list, spec.volumes.is_some(), volumes);
}

/// Inserts the sidecar as the first init container unless it is there;
/// returns how far the existing init containers moved.
fn sidecar_ops(
    ops: &mut Vec<Op>,
    spec: &Spec<'_>,
    config: &InjectArgs,
    settings: &PodSettings,
    warnings: &mut Vec<String>,
) -> usize {
    let init = spec.init_containers.iter().flatten();
    let present = init
        .clone()
        .chain(&spec.containers)
        .any(|c| c.name == names::SIDECAR);
    if settings.mode != Mode::Sidecar || present {
        return 0;
    }
    if init
        .clone()
        .any(|c| c.name == "istio-proxy" && c.restart_always)
    {
        warnings.push("credagent: starts before istio-proxy; with Istio CNI traffic capture, exclude the upstream from interception".into());
    }
    let list = Pointer::root().key("spec").key("initContainers");
    let sidecar = items::sidecar(config, settings);
    if spec.init_containers.is_some() {
        ops.push(Op::add(&list.index(0), sidecar));
        1
    } else {
        ops.push(Op::add(&list, Value::Array(vec![sidecar])));
        0
    }
}
