//! A read-only view of the parts of a raw Pod the injector looks at.
//!
//! The Pod stays a `serde_json::Value` (the patch is computed against it,
//! never against a typed copy); this module only borrows from it and checks
//! the shapes it relies on. The API server sends Pods it has already decoded
//! and defaulted, so a shape error means the request did not come from one.
//! A field that is absent or `null` is reported as absent: the patch then
//! creates it whole.

use serde_json::{Map, Value};

/// The Pod's metadata maps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta<'a> {
    /// Whether `metadata` is there at all (the API server always sends it;
    /// without it the patch must create it whole).
    pub present: bool,
    /// `metadata.labels`.
    pub labels: Option<&'a Map<String, Value>>,
    /// `metadata.annotations`.
    pub annotations: Option<&'a Map<String, Value>>,
}

/// The parts of `spec` the injector reads.
#[derive(Debug, Clone, Default)]
pub struct Spec<'a> {
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `spec.initContainers`, or `None` when the field is absent.
    pub init_containers: Option<Vec<Container<'a>>>,
    /// `spec.containers`.
    pub containers: Vec<Container<'a>>,
    /// `spec.volumes` as (name, definition), or `None` when absent.
    pub volumes: Option<Vec<(&'a str, &'a Map<String, Value>)>>,
}

/// One container.
#[derive(Debug, Clone, Default)]
pub struct Container<'a> {
    /// Its index in its list.
    pub index: usize,
    /// `name`.
    pub name: &'a str,
    /// `env` entries as (name, literal value; `None` for `valueFrom`), or
    /// `None` when the field is absent.
    pub env: Option<Vec<(&'a str, Option<&'a str>)>>,
    /// `envFrom` sources, described for a message (`secret NAME`).
    pub env_from: Vec<String>,
    /// `volumeMounts` as (name, mountPath), or `None` when absent.
    pub mounts: Option<Vec<(&'a str, &'a str)>>,
    /// Declared `containerPort`s.
    pub ports: Vec<i64>,
    /// `restartPolicy: Always` (a native sidecar, in `initContainers`).
    pub restart_always: bool,
}

/// The Pod is not shaped like a Pod; names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the object is not a Pod the injector can read: {0}")]
pub struct MalformedPod(pub String);

/// Reads the metadata maps.
pub fn meta(pod: &Value) -> Result<Meta<'_>, MalformedPod> {
    let pod = pod
        .as_object()
        .ok_or_else(|| MalformedPod("it is not a JSON object".into()))?;
    let Some(metadata) = present(pod.get("metadata")) else {
        return Ok(Meta::default());
    };
    let metadata = object(metadata, "metadata")?;
    Ok(Meta {
        present: true,
        labels: optional_object(metadata, "labels", "metadata.labels")?,
        annotations: optional_object(metadata, "annotations", "metadata.annotations")?,
    })
}

/// Reads the spec.
pub fn spec(pod: &Value) -> Result<Spec<'_>, MalformedPod> {
    let spec = pod
        .get("spec")
        .ok_or_else(|| MalformedPod("spec is missing".into()))
        .and_then(|s| object(s, "spec"))?;
    let host_network = match present(spec.get("hostNetwork")) {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| MalformedPod("spec.hostNetwork is not a boolean".into()))?,
    };
    let containers = match optional_array(spec, "containers", "spec.containers")? {
        Some(list) => read_containers(list, "spec.containers")?,
        None => return Err(MalformedPod("spec.containers is missing".into())),
    };
    let init_containers = optional_array(spec, "initContainers", "spec.initContainers")?
        .map(|list| read_containers(list, "spec.initContainers"))
        .transpose()?;
    let volumes = optional_array(spec, "volumes", "spec.volumes")?
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = format!("spec.volumes[{i}]");
                    let v = object(v, &at)?;
                    Ok((name_of(v, &at)?, v))
                })
                .collect::<Result<Vec<_>, MalformedPod>>()
        })
        .transpose()?;
    Ok(Spec {
        host_network,
        init_containers,
        containers,
        volumes,
    })
}

fn read_containers<'a>(list: &'a [Value], field: &str) -> Result<Vec<Container<'a>>, MalformedPod> {
    list.iter()
        .enumerate()
        .map(|(index, c)| container(index, c, &format!("{field}[{index}]")))
        .collect()
}

fn container<'a>(index: usize, c: &'a Value, at: &str) -> Result<Container<'a>, MalformedPod> {
    let c = object(c, at)?;
    let name = name_of(c, at)?;
    let env = optional_array(c, "env", &format!("{at}.env"))?
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, e)| {
                    let at = format!("{at}.env[{i}]");
                    let e = object(e, &at)?;
                    Ok((name_of(e, &at)?, e.get("value").and_then(Value::as_str)))
                })
                .collect::<Result<Vec<_>, MalformedPod>>()
        })
        .transpose()?;
    let env_from = optional_array(c, "envFrom", &format!("{at}.envFrom"))?
        .unwrap_or_default()
        .iter()
        .map(describe_env_from)
        .collect();
    let mounts = optional_array(c, "volumeMounts", &format!("{at}.volumeMounts"))?
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, m)| {
                    let at = format!("{at}.volumeMounts[{i}]");
                    let m = object(m, &at)?;
                    let path = m.get("mountPath").and_then(Value::as_str).ok_or_else(|| {
                        MalformedPod(format!("{at}.mountPath is missing or not a string"))
                    })?;
                    Ok((name_of(m, &at)?, path))
                })
                .collect::<Result<Vec<_>, MalformedPod>>()
        })
        .transpose()?;
    let ports = optional_array(c, "ports", &format!("{at}.ports"))?
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.get("containerPort").and_then(Value::as_i64))
        .collect();
    let restart_always = c.get("restartPolicy").and_then(Value::as_str) == Some("Always");
    Ok(Container {
        index,
        name,
        env,
        env_from,
        mounts,
        ports,
        restart_always,
    })
}

/// `secret NAME` / `configMap NAME`, for a warning.
fn describe_env_from(source: &Value) -> String {
    let of = |key: &str| {
        source
            .get(key)
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str)
    };
    match (of("secretRef"), of("configMapRef")) {
        (Some(n), _) => format!("secret {n}"),
        (None, Some(n)) => format!("configMap {n}"),
        (None, None) => "an envFrom source".to_owned(),
    }
}

/// `None` for an absent or `null` field.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, MalformedPod> {
    v.as_object()
        .ok_or_else(|| MalformedPod(format!("{at} is not an object")))
}

fn optional_object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a Map<String, Value>>, MalformedPod> {
    present(parent.get(key)).map(|v| object(v, at)).transpose()
}

fn optional_array<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a [Value]>, MalformedPod> {
    present(parent.get(key))
        .map(|v| {
            v.as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| MalformedPod(format!("{at} is not a list")))
        })
        .transpose()
}

fn name_of<'a>(v: &'a Map<String, Value>, at: &str) -> Result<&'a str, MalformedPod> {
    v.get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| MalformedPod(format!("{at}.name is missing or not a string")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_is_there_and_absent_as_absent() {
        let pod = json!({
            "metadata": {"labels": null, "annotations": {"a/b": "c"}},
            "spec": {
                "initContainers": [{"name": "i", "restartPolicy": "Always", "env": null}],
                "containers": [{
                    "name": "app",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                    "envFrom": [{"secretRef": {"name": "s"}}, {"configMapRef": {"name": "m"}}, {"prefix": "P_"}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "ports": [{"containerPort": 8080}]
                }]
            }
        });
        let m = meta(&pod).unwrap();
        assert!(m.labels.is_none() && m.annotations.is_some());
        let s = spec(&pod).unwrap();
        assert!(!s.host_network && s.volumes.is_none());
        let init = &s.init_containers.as_ref().unwrap()[0];
        assert!(init.restart_always && init.env.is_none() && init.mounts.is_none());
        let app = &s.containers[0];
        assert_eq!(
            app.env.as_deref(),
            Some(&[("A", Some("1")), ("B", None)][..])
        );
        assert_eq!(
            app.env_from,
            ["secret s", "configMap m", "an envFrom source"]
        );
        assert_eq!(app.mounts.as_deref(), Some(&[("v", "/v")][..]));
        assert_eq!(app.ports, [8080]);
    }

    #[test]
    fn names_the_malformed_field() {
        let cases = [
            (json!([]), "not a JSON object"),
            (json!({"metadata": []}), "metadata is not an object"),
            (
                json!({"metadata": {"annotations": "x"}}),
                "metadata.annotations is not an object",
            ),
        ];
        for (pod, want) in cases {
            assert!(meta(&pod).unwrap_err().0.contains(want), "{pod}");
        }
        let cases = [
            (json!({}), "spec is missing"),
            (json!({"spec": {}}), "spec.containers is missing"),
            (
                json!({"spec": {"containers": {}}}),
                "spec.containers is not a list",
            ),
            (
                json!({"spec": {"containers": [{}]}}),
                "spec.containers[0].name",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "env": [{"value": "x"}]}]}}),
                "spec.containers[0].env[0].name",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "v"}]}]}}),
                "volumeMounts[0].mountPath",
            ),
            (
                json!({"spec": {"containers": [], "initContainers": [7]}}),
                "spec.initContainers[0] is not an object",
            ),
            (
                json!({"spec": {"containers": [], "volumes": [{}]}}),
                "spec.volumes[0].name",
            ),
            (
                json!({"spec": {"containers": [], "hostNetwork": "yes"}}),
                "spec.hostNetwork",
            ),
        ];
        for (pod, want) in cases {
            let e = spec(&pod).unwrap_err().to_string();
            assert!(e.contains(want), "{pod}: {e}");
        }
    }
}
