//! The per-Pod opt-in and settings, read from labels and annotations.
//!
//! Every value is checked: a value we cannot use refuses the Pod with a
//! message naming the annotation and what it accepts, rather than injecting
//! something the user did not ask for.

use std::time::Duration;

use serde_json::{Map, Value};

use super::names;
use crate::cli::{InjectArgs, SidecarResources};
use crate::config::{parse_key_lifetime, quantity, Audience, TokenExpiration};

/// Longest annotation value quoted back in a message.
const MAX_QUOTED: usize = 64;

/// Which entry of the MutatingWebhookConfiguration sent the Pod, told
/// apart by the path each one posts to. The API server never sends a
/// namespace's labels, so this is how a namespace-wide opt-in reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `/mutate`: Pods labelled `credagent.io/inject: "true"`, and (the
    /// compat entry) Pods without the label, for their ServiceAccount.
    Pod,
    /// `/mutate/namespace`: Pods without the label in a namespace labelled
    /// `credagent.io/inject: "true"`; all of them are opted in.
    Namespace,
}

// === impl Entry ===

impl Entry {
    /// A short, bounded label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Namespace => "namespace",
        }
    }
}

/// Whether, and why, a Pod is opted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptIn {
    /// `credagent.io/inject: "true"` on the Pod (label or annotation).
    Pod,
    /// Sent by the namespace entry ([`Entry::Namespace`]): its namespace
    /// carries the label.
    Namespace,
    /// `caios.coreweave.com/inject: "true"` on its ServiceAccount
    /// (`coreweave_compat` on).
    ServiceAccount,
    /// `credagent.io/inject: "false"` on the Pod (label or annotation).
    OptedOut,
    /// Nothing says so.
    NotOptedIn,
}

/// Where the credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A native sidecar in the Pod, on 127.0.0.1.
    Sidecar,
    /// The node agent (DaemonSet) on the link-local address.
    Node,
}

/// What one Pod's annotations ask for, with the flags' defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSettings {
    /// Sidecar or node.
    pub mode: Mode,
    /// Container names (app or init) to leave untouched.
    pub skip_containers: Vec<String>,
    /// The projected token's `expirationSeconds`.
    pub token_expiration: u32,
    /// The projected token's audience.
    pub audience: String,
    /// The sidecar's resources.
    pub resources: SidecarResources,
    /// Whether to set up the `credential_process` fallback.
    pub credential_process: bool,
    /// The sidecar's `--key-lifetime` (the POST exchange); `None`: the GET.
    pub key_lifetime: Option<Duration>,
    /// Annotations that were valid but have no effect here.
    pub warnings: Vec<String>,
}

/// An annotation (or label) value the injector cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: {value} is not accepted: {expected}")]
pub struct AnnotationError {
    /// The annotation key.
    pub key: &'static str,
    /// The value as received, quoted and shortened.
    pub value: String,
    /// What is accepted.
    pub expected: String,
}

impl AnnotationError {
    fn new(key: &'static str, value: &Value, expected: impl Into<String>) -> Self {
        let value = match value {
            Value::String(s) => {
                let shown: String = s
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .take(MAX_QUOTED)
                    .collect();
                let more = if s.chars().count() > MAX_QUOTED {
                    "…"
                } else {
                    ""
                };
                format!("{shown:?}{more}")
            }
            _ => "a non-string value".to_owned(),
        };
        Self {
            key,
            value,
            expected: expected.into(),
        }
    }
}

/// Decides whether the Pod is opted in. `"false"` on the Pod (label or
/// annotation) always wins; any other value than `"true"`/`"false"` under
/// our key is refused, since it can only be a typo of one of them. Then the
/// Pod's own `"true"`, its namespace's ([`Entry::Namespace`]), and last its
/// ServiceAccount's (with `coreweave_compat`).
pub fn opt_in(
    labels: Option<&Map<String, Value>>,
    annotations: Option<&Map<String, Value>>,
    entry: Entry,
    sa_annotations: Option<&Map<String, Value>>,
    config: &InjectArgs,
) -> Result<OptIn, AnnotationError> {
    let mut opted_in = false;
    for map in [labels, annotations].into_iter().flatten() {
        match map.get(names::INJECT) {
            None => {}
            Some(v) => match flag(names::INJECT, v)? {
                true => opted_in = true,
                false => return Ok(OptIn::OptedOut),
            },
        }
    }
    if opted_in {
        return Ok(OptIn::Pod);
    }
    if entry == Entry::Namespace {
        return Ok(OptIn::Namespace);
    }
    let sa_opt_in = config.coreweave_compat
        && sa_annotations
            .and_then(|a| a.get(names::COREWEAVE_SA_INJECT))
            .and_then(Value::as_str)
            == Some("true");
    Ok(if sa_opt_in {
        OptIn::ServiceAccount
    } else {
        OptIn::NotOptedIn
    })
}

/// Reads the settings annotations over the flags' defaults.
pub fn settings(
    annotations: Option<&Map<String, Value>>,
    config: &InjectArgs,
) -> Result<PodSettings, AnnotationError> {
    let empty = Map::new();
    let a = annotations.unwrap_or(&empty);
    let mode = match a.get(names::MODE) {
        None => Mode::Sidecar,
        Some(v) => match v.as_str() {
            Some("sidecar") => Mode::Sidecar,
            Some("node") => Mode::Node,
            _ => {
                return Err(AnnotationError::new(
                    names::MODE,
                    v,
                    "\"sidecar\" or \"node\"",
                ))
            }
        },
    };
    let credential_process = match a.get(names::CREDENTIAL_PROCESS) {
        None => false,
        Some(v) => flag(names::CREDENTIAL_PROCESS, v)?,
    };
    if credential_process && mode == Mode::Node {
        return Err(AnnotationError::new(
            names::CREDENTIAL_PROCESS,
            &Value::String("true".into()),
            "only with the sidecar (the node agent cannot write files into the Pod): drop it or use credagent.io/mode: sidecar",
        ));
    }
    let skip_containers = match a.get(names::SKIP_CONTAINERS) {
        None => Vec::new(),
        Some(v) => container_list(v)?,
    };
    let token_expiration = match a.get(names::TOKEN_EXPIRATION) {
        None => config.token_expiration.secs(),
        Some(v) => v
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .and_then(TokenExpiration::from_secs)
            .map(TokenExpiration::secs)
            .ok_or_else(|| {
                AnnotationError::new(
                    names::TOKEN_EXPIRATION,
                    v,
                    "a whole number of seconds from 600 to 86400",
                )
            })?,
    };
    let audience = match a.get(names::AUDIENCE) {
        None => config.audience.as_str().to_owned(),
        Some(v) => v
            .as_str()
            .filter(|s| s.parse::<Audience>().is_ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                AnnotationError::new(
                    names::AUDIENCE,
                    v,
                    "1-256 printable characters without spaces",
                )
            })?,
    };
    let (resources, mut overridden) = resources(a, &config.resources)?;
    let key_lifetime = match a.get(names::KEY_LIFETIME) {
        None => config.key_lifetime,
        Some(v) => {
            overridden.push(names::KEY_LIFETIME);
            key_lifetime(v, config, mode)?
        }
    };
    let mut warnings = Vec::new();
    if mode == Mode::Node && !overridden.is_empty() {
        warnings.push(format!(
            "credagent: {} ignored: there is no sidecar in node mode",
            overridden.join(", ")
        ));
    }
    Ok(PodSettings {
        mode,
        skip_containers,
        token_expiration,
        audience,
        resources,
        credential_process,
        key_lifetime,
        warnings,
    })
}

/// `credagent.io/key-lifetime`: a key lifetime as `--key-lifetime` takes
/// it (the POST exchange), or `"off"` (the GET). Turning the POST on needs
/// an upstream the POST can use (the sidecar would exit 2 otherwise); in
/// node mode, where it is ignored, only the value is checked.
fn key_lifetime(
    v: &Value,
    config: &InjectArgs,
    mode: Mode,
) -> Result<Option<Duration>, AnnotationError> {
    let key = names::KEY_LIFETIME;
    let lifetime = match v.as_str() {
        Some(names::KEY_LIFETIME_OFF) => return Ok(None),
        Some(s) => parse_key_lifetime(s).ok(),
        None => None,
    };
    let Some(lifetime) = lifetime else {
        return Err(AnnotationError::new(
            key,
            v,
            format!("a key lifetime from 15m to 12h in whole seconds (e.g. 1h, 90m), or \"{}\" for the GET exchange", names::KEY_LIFETIME_OFF),
        ));
    };
    if mode == Mode::Sidecar && config.post_target().is_err() {
        return Err(AnnotationError::new(
            key,
            v,
            format!("only \"{}\": the webhook's --exchange-url does not end in /ORG-ID, which the POST exchange needs", names::KEY_LIFETIME_OFF),
        ));
    }
    Ok(Some(lifetime))
}

/// `"true"` or `"false"`.
fn flag(key: &'static str, v: &Value) -> Result<bool, AnnotationError> {
    match v.as_str() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        _ => Err(AnnotationError::new(key, v, "\"true\" or \"false\"")),
    }
}

/// A comma-separated list of container names (DNS labels); blanks ignored.
fn container_list(v: &Value) -> Result<Vec<String>, AnnotationError> {
    let key = names::SKIP_CONTAINERS;
    let expected = "comma-separated container names (lowercase letters, digits and '-')";
    let s = v
        .as_str()
        .ok_or_else(|| AnnotationError::new(key, v, expected))?;
    let mut out: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !is_dns_label(name) {
            return Err(AnnotationError::new(key, v, expected));
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// An RFC 1123 label: what container names are.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The four resource annotations over `defaults`; also names those given.
fn resources(
    a: &Map<String, Value>,
    defaults: &SidecarResources,
) -> Result<(SidecarResources, Vec<&'static str>), AnnotationError> {
    let mut r = defaults.clone();
    let mut given = Vec::new();
    let slots = [
        (names::CPU_REQUEST, &mut r.cpu_request),
        (names::MEMORY_REQUEST, &mut r.memory_request),
        (names::CPU_LIMIT, &mut r.cpu_limit),
        (names::MEMORY_LIMIT, &mut r.memory_limit),
    ];
    for (key, slot) in slots {
        let Some(v) = a.get(key) else { continue };
        let s = v
            .as_str()
            .ok_or_else(|| AnnotationError::new(key, v, "a Kubernetes quantity"))?;
        *slot = Some(quantity::parse(s).map_err(|e| AnnotationError::new(key, v, e.to_string()))?);
        given.push(key);
    }
    let pairs = [
        (
            names::CPU_REQUEST,
            names::CPU_LIMIT,
            &r.cpu_request,
            &r.cpu_limit,
        ),
        (
            names::MEMORY_REQUEST,
            names::MEMORY_LIMIT,
            &r.memory_request,
            &r.memory_limit,
        ),
    ];
    for (req_key, lim_key, req, lim) in pairs {
        let (Some(req), Some(lim)) = (req, lim) else {
            continue;
        };
        if req.exceeds(lim) {
            // Blame whichever of the two the Pod set.
            let key = if given.contains(&req_key) {
                req_key
            } else {
                lim_key
            };
            let value = if key == req_key { req } else { lim };
            let (req, lim) = (req.as_str(), lim.as_str());
            return Err(AnnotationError::new(
                key,
                &Value::String(value.as_str().to_owned()),
                format!("the sidecar's request ({req}) must not exceed its limit ({lim}): set {req_key} and {lim_key} together"),
            ));
        }
    }
    Ok((r, given))
}
