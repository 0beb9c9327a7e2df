//! Per-container planning, and the checks that refuse a Pod outright.
//!
//! A container is left alone (with a warning) if it already has its own AWS
//! credentials or something mounted where credagent's volume would go;
//! otherwise it gets each of credagent's variables it does not set itself.
//! Values credagent itself injects are recognised as its own, not as
//! conflicts, so a second pass finds nothing to add and nothing to warn
//! about.

use serde_json::{Map, Value};

use super::annotations::{Mode, PodSettings};
use super::items::{self, AppPlan, EnvVar};
use super::names;
use super::pod::{Container, Spec};
use crate::cli::InjectArgs;

/// Most variable names listed in one warning.
const MAX_LISTED: usize = 3;
/// Proxy variables that make a no-proxy entry for the node agent necessary.
const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"];
const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Refuses a Pod that uses one of the injector's fixed names for something
/// else, or (sidecar mode) declares one of the sidecar's ports.
pub fn check_reserved_names(
    spec: &Spec<'_>,
    config: &InjectArgs,
    settings: &PodSettings,
) -> Result<(), String> {
    for (name, def) in spec.volumes.iter().flatten() {
        let ours = match *name {
            names::TOKEN_VOLUME => is_token_volume(def),
            names::AUTH_VOLUME => def.contains_key("emptyDir"),
            _ => true,
        };
        if !ours {
            return Err(format!("volume {name} is not the one credagent injects; the names {}, {} and {} are reserved for the credagent injector", names::SIDECAR, names::TOKEN_VOLUME, names::AUTH_VOLUME));
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    let sidecar_present = containers.clone().any(|c| c.name == names::SIDECAR);
    if settings.mode == Mode::Sidecar && !sidecar_present {
        for c in containers {
            if let Some(p) = c.ports.iter().find(|p| {
                [config.sidecar_port, config.sidecar_admin_port]
                    .map(i64::from)
                    .contains(p)
            }) {
                return Err(format!("container {} declares port {p}, which the credagent sidecar listens on; use credagent.io/mode: node or opt this Pod out", c.name));
            }
        }
    }
    Ok(())
}

fn is_token_volume(def: &Map<String, Value>) -> bool {
    def.get("projected")
        .and_then(|p| p.get("sources"))
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|src| {
                src.get("serviceAccountToken")
                    .and_then(|t| t.get("path"))
                    .and_then(Value::as_str)
                    == Some(names::TOKEN_FILE_NAME)
            })
        })
}

/// What one container needs: the env vars and whether the mount is
/// missing; `None` (with a warning) if it is to be left alone.
pub fn plan_container(
    c: &Container<'_>,
    plan: &AppPlan,
    config: &InjectArgs,
    settings: &PodSettings,
    warnings: &mut Vec<String>,
) -> Option<(Vec<EnvVar>, bool)> {
    let env = c.env.as_deref().unwrap_or(&[]);
    let value_of = |n: &str| env.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let has = |n: &str| value_of(n).is_some();
    let ours = |n: &str, v: Option<&str>| {
        plan.credentials
            .iter()
            .any(|e| e.name == n && Some(e.value.as_str()) == v)
    };
    let foreign: Vec<&str> = items::CREDENTIAL_VARS
        .into_iter()
        .filter(|n| value_of(n).is_some_and(|v| !ours(n, v)))
        .collect();
    if !foreign.is_empty() {
        let more = if foreign.len() > MAX_LISTED {
            ", …"
        } else {
            ""
        };
        warnings.push(format!(
            "credagent: container {} left as it is: it sets {}{more}",
            c.name,
            foreign[..foreign.len().min(MAX_LISTED)].join(", ")
        ));
        return None;
    }
    let (volume, path) = plan.mount;
    let mounts = c.mounts.as_deref().unwrap_or(&[]);
    if let Some((other, at)) = mounts.iter().find(|(n, p)| (*n == volume) != (*p == path)) {
        warnings.push(format!(
            "credagent: container {} left as it is: it mounts {other} at {at}",
            c.name
        ));
        return None;
    }
    let mount = !mounts.iter().any(|(n, _)| *n == volume);

    let mut add: Vec<EnvVar> = plan
        .credentials
        .iter()
        .filter(|e| !has(e.name))
        .cloned()
        .collect();
    if !c.env_from.is_empty() && !add.is_empty() {
        warnings.push(format!(
            "credagent: container {} has envFrom ({}): if that holds AWS credentials they outrank credagent's",
            c.name,
            c.env_from.join(", ")
        ));
    }
    if let Some(region) = &plan.region {
        if !items::REGION_VARS.iter().any(|n| has(n)) {
            add.extend(region.iter().cloned());
        }
    }
    if let Some(endpoint) = &plan.endpoint {
        if !items::ENDPOINT_VARS.iter().any(|n| has(n)) {
            add.push(endpoint.clone());
        }
    }
    if let Some(file) = &plan.config_file {
        match value_of(file.name) {
            None => add.push(file.clone()),
            Some(v) if v == Some(file.value.as_str()) => {}
            Some(_) => warnings.push(format!(
                "credagent: container {} sets {}: no credential_process fallback for it",
                c.name, file.name
            )),
        }
    }
    if settings.mode == Mode::Node
        && PROXY_VARS.iter().any(|n| has(n))
        && !NO_PROXY_VARS.iter().any(|n| has(n))
    {
        // Go's HTTP client would otherwise send the link-local request to the proxy.
        if let Some(host) = config.node_url.uri().host() {
            add.push(EnvVar {
                name: "NO_PROXY",
                value: host.to_owned(),
            });
        }
    }
    Some((add, mount))
}
