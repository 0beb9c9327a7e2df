//! The decision's rules, one small Pod at a time (the realistic Pods are in
//! `fixture_tests`).

use serde_json::{json, Value};

use super::annotations::{Entry, Mode};
use super::inject::{decide, Decision, SkipReason};
use super::response::MAX_WARNING_CHARS;
use crate::cli::InjectArgs;

fn config() -> InjectArgs {
    flags(&[])
}

fn flags(extra: &[&str]) -> InjectArgs {
    let base = [
        "--sidecar-image",
        "img:1",
        "--org-id",
        "org",
        "--region",
        "US-EAST-04A",
        "--s3-endpoint",
        "http://cwlota.com",
    ];
    InjectArgs::from_flags(base.iter().chain(extra)).unwrap()
}

fn pod(annotations: Value, spec: Value) -> Value {
    let mut a = json!({"credagent.io/inject": "true"});
    a.as_object_mut()
        .unwrap()
        .extend(annotations.as_object().unwrap().clone());
    json!({"metadata": {"annotations": a}, "spec": spec})
}

/// (ops as (path, value), warnings) of an injection; panics otherwise.
fn injected(pod: &Value) -> (Vec<(String, Value)>, Vec<String>) {
    match decide(pod, Entry::Pod, None, &config()) {
        Decision::Inject { ops, warnings, .. } => {
            let ops = ops
                .into_iter()
                .map(|op| {
                    let v = serde_json::to_value(&op).unwrap();
                    (v["path"].as_str().unwrap().to_owned(), v["value"].clone())
                })
                .collect();
            (ops, warnings)
        }
        other => panic!("not injected: {other:?}"),
    }
}

fn env_names(ops: &[(String, Value)], path: &str) -> Vec<String> {
    ops.iter()
        .filter(|(p, _)| p == path || p == &format!("{path}/-"))
        .flat_map(|(_, v)| match v {
            Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        })
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

fn skip_reason(pod: &Value) -> SkipReason {
    match decide(pod, Entry::Pod, None, &config()) {
        Decision::Skip { reason, .. } => reason,
        other => panic!("not skipped: {other:?}"),
    }
}

fn refusal(pod: &Value) -> String {
    match decide(pod, Entry::Pod, None, &config()) {
        Decision::Refuse { message } => message,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn region_is_a_pair_and_endpoint_yields_to_a_global_one() {
    let p = pod(
        json!({}),
        json!({"containers": [
            {"name": "a", "env": [{"name": "AWS_DEFAULT_REGION", "value": "x"}]},
            {"name": "b", "env": [{"name": "AWS_ENDPOINT_URL", "value": "http://minio"}]},
            {"name": "c", "env": []},
        ]}),
    );
    let (ops, _) = injected(&p);
    let a = env_names(&ops, "/spec/containers/0/env");
    assert_eq!(
        a,
        [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_ENDPOINT_URL_S3"
        ]
    );
    let b = env_names(&ops, "/spec/containers/1/env");
    assert!(
        b.contains(&"AWS_REGION".to_owned()) && !b.contains(&"AWS_ENDPOINT_URL_S3".to_owned()),
        "{b:?}"
    );
    assert_eq!(env_names(&ops, "/spec/containers/2/env").len(), 5);
}

#[test]
fn completes_a_partial_injection_without_warnings() {
    // The apps have credagent's own variables (by value) but no mount yet.
    let ours = json!([
        {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://127.0.0.1:8181/v1/credentials"},
        {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "value": "/var/run/credagent/auth-token"},
        {"name": "AWS_REGION", "value": "US-EAST-04A"},
        {"name": "AWS_ENDPOINT_URL_S3", "value": "http://cwlota.com"},
    ]);
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "a", "env": ours}]}),
    );
    let (ops, warnings) = injected(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(env_names(&ops, "/spec/containers/0/env").is_empty());
    assert!(ops
        .iter()
        .any(|(p, _)| p == "/spec/containers/0/volumeMounts"));
}

#[test]
fn leaves_containers_with_other_credentials_or_mounts_alone() {
    let p = pod(
        json!({}),
        json!({"containers": [
            {"name": "cw", "env": [{"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://169.254.170.23/v1/credentials"}]},
            {"name": "profile", "env": [{"name": "AWS_PROFILE", "value": "p"}]},
            {"name": "mounted", "volumeMounts": [{"name": "mine", "mountPath": "/var/run/credagent"}]},
            {"name": "elsewhere", "volumeMounts": [{"name": "credagent-auth", "mountPath": "/creds"}]},
            {"name": "free"},
        ]}),
    );
    let (ops, warnings) = injected(&p);
    for i in 0..4 {
        assert!(
            !ops.iter()
                .any(|(p, _)| p.starts_with(&format!("/spec/containers/{i}/"))),
            "{i}"
        );
    }
    assert!(ops.iter().any(|(p, _)| p == "/spec/containers/4/env"));
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(warnings[0].contains("cw left as it is: it sets AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    assert!(warnings[2].contains("mounts mine at /var/run/credagent"));
    assert!(warnings[3].contains("mounts credagent-auth at /creds"));
}

#[test]
fn skips_when_nothing_is_left_to_inject() {
    let keys = json!([{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}]);
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "a", "env": keys}]}),
    );
    assert_eq!(skip_reason(&p), SkipReason::AllContainersHaveCredentials);
    let p = pod(
        json!({"credagent.io/skip-containers": "a"}),
        json!({"containers": [{"name": "a"}]}),
    );
    assert_eq!(skip_reason(&p), SkipReason::AllContainersSkipped);
    let p = pod(json!({}), json!({"containers": []}));
    assert_eq!(skip_reason(&p), SkipReason::AllContainersSkipped);
}

#[test]
fn refuses_reserved_names_ports_and_unreadable_pods() {
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "a"}], "volumes": [{"name": "credagent-token", "secret": {"secretName": "s"}}]}),
    );
    assert!(refusal(&p).contains("volume credagent-token is not the one credagent injects"));
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "a"}], "volumes": [{"name": "credagent-auth", "hostPath": {"path": "/"}}]}),
    );
    assert!(refusal(&p).contains("credagent-auth"));
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "a", "ports": [{"containerPort": 8181}]}]}),
    );
    assert!(refusal(&p).contains("container a declares port 8181"));
    // In node mode the ports are free.
    let p = pod(
        json!({"credagent.io/mode": "node"}),
        json!({"containers": [{"name": "a", "ports": [{"containerPort": 8181}]}]}),
    );
    injected(&p);
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "a", "env": {"A": "1"}}]}),
    );
    assert!(refusal(&p).contains("spec.containers[0].env is not a list"));
    // Not opted in: the spec is never looked at.
    let p = json!({"metadata": {}, "spec": 7});
    assert_eq!(skip_reason(&p), SkipReason::NotOptedIn);
}

#[test]
fn a_hand_added_credagent_container_counts_as_the_sidecar() {
    let p = pod(
        json!({}),
        json!({"containers": [{"name": "credagent"}, {"name": "app"}]}),
    );
    let (ops, _) = injected(&p);
    assert!(
        !ops.iter()
            .any(|(p, _)| p.starts_with("/spec/initContainers")),
        "{ops:?}"
    );
    assert!(
        !ops.iter()
            .any(|(p, _)| p.starts_with("/spec/containers/0/")),
        "{ops:?}"
    );
    assert!(ops.iter().any(|(p, _)| p == "/spec/containers/1/env"));
}

#[test]
fn init_containers_before_an_existing_credagent_get_nothing() {
    // A later webhook put its init container in front of credagent.
    let p = pod(
        json!({}),
        json!({"initContainers": [{"name": "early"}, {"name": "credagent"}, {"name": "late"}], "containers": [{"name": "app"}]}),
    );
    let (ops, warnings) = injected(&p);
    assert!(
        !ops.iter()
            .any(|(p, _)| p.starts_with("/spec/initContainers/0/")),
        "{ops:?}"
    );
    assert!(ops.iter().any(|(p, _)| p == "/spec/initContainers/2/env"));
    assert_eq!(
        warnings,
        ["credagent: init container early starts before credagent: no credentials for it"]
    );
    // In node mode there is no sidecar to wait for.
    let p = pod(
        json!({"credagent.io/mode": "node"}),
        json!({"initContainers": [{"name": "early"}], "containers": [{"name": "app"}]}),
    );
    let (ops, _) = injected(&p);
    assert!(ops.iter().any(|(p, _)| p == "/spec/initContainers/0/env"));
}

#[test]
fn existing_init_containers_are_addressed_after_the_insert() {
    let p = pod(
        json!({}),
        json!({"initContainers": [{"name": "a"}, {"name": "b", "env": []}], "containers": [{"name": "c"}]}),
    );
    let (ops, _) = injected(&p);
    let paths: Vec<&str> = ops.iter().map(|(p, _)| p.as_str()).collect();
    let insert = paths
        .iter()
        .position(|p| *p == "/spec/initContainers/0")
        .unwrap();
    let a = paths
        .iter()
        .position(|p| *p == "/spec/initContainers/1/env")
        .unwrap();
    let b = paths
        .iter()
        .position(|p| *p == "/spec/initContainers/2/env/-")
        .unwrap();
    assert!(insert < a && a < b, "{paths:?}");
    // A null list is absent: created whole.
    let p = pod(
        json!({}),
        json!({"initContainers": null, "containers": [{"name": "c", "env": null}]}),
    );
    let (ops, _) = injected(&p);
    assert!(ops
        .iter()
        .any(|(p, v)| p == "/spec/initContainers" && v.as_array().is_some_and(|a| a.len() == 1)));
    assert!(ops.iter().any(|(p, _)| p == "/spec/containers/0/env"));
}

#[test]
fn node_mode_adds_no_proxy_only_beside_a_visible_proxy() {
    let p = pod(
        json!({"credagent.io/mode": "node"}),
        json!({"hostNetwork": true, "containers": [
            {"name": "a", "env": [{"name": "HTTPS_PROXY", "value": "http://p:3128"}]},
            {"name": "b", "env": [{"name": "https_proxy", "value": "http://p:3128"}, {"name": "no_proxy", "value": ".svc"}]},
            {"name": "c"},
        ]}),
    );
    let Decision::Inject { mode, .. } = decide(&p, Entry::Pod, None, &config()) else {
        panic!()
    };
    assert_eq!(mode, Mode::Node);
    let (ops, _) = injected(&p);
    assert!(env_names(&ops, "/spec/containers/0/env").contains(&"NO_PROXY".to_owned()));
    assert!(!env_names(&ops, "/spec/containers/1/env").contains(&"NO_PROXY".to_owned()));
    assert!(!env_names(&ops, "/spec/containers/2/env").contains(&"NO_PROXY".to_owned()));
    assert!(!ops
        .iter()
        .any(|(p, _)| p.contains("labels") || p.starts_with("/spec/initContainers")));
}

#[test]
fn warnings_stay_short() {
    let long = "c".repeat(63);
    let every: Vec<Value> = super::items::CREDENTIAL_VARS
        .iter()
        .map(|n| json!({"name": n, "value": "x"}))
        .collect();
    let p = pod(
        json!({"credagent.io/skip-containers": format!("{},d", "e".repeat(63))}),
        json!({"containers": [{"name": long, "env": every}, {"name": "f", "envFrom": [{"secretRef": {"name": "s".repeat(253)}}]}]}),
    );
    let (_, warnings) = injected(&p);
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(
        warnings[2].ends_with("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, …"),
        "{}",
        warnings[2]
    );
    for w in &warnings[..3] {
        assert!(w.chars().count() <= MAX_WARNING_CHARS, "{w}");
    }
    // The envFrom one names a 253-character secret: the response shortens it.
    assert!(warnings[3].contains("envFrom"));
}

#[test]
fn a_pod_without_metadata_gets_it_whole() {
    // Found by fuzz/fuzz_targets/admission.rs: opted in by its ServiceAccount,
    // a Pod with no `metadata` got an add under a parent that did not exist.
    let compat = flags(&["--coreweave-compat"]);
    let mut sa = serde_json::Map::new();
    sa.insert("caios.coreweave.com/inject".into(), json!("true"));
    for metadata in [None, Some(Value::Null)] {
        let mut pod = json!({"spec": {"containers": [{"name": "app"}]}});
        if let Some(m) = &metadata {
            pod["metadata"] = m.clone();
        }
        let Decision::Inject { ops, .. } = decide(&pod, Entry::Pod, Some(&sa), &compat) else {
            panic!("not injected");
        };
        let patch: json_patch::Patch =
            serde_json::from_value(serde_json::to_value(&ops).unwrap()).unwrap();
        json_patch::patch(&mut pod, &patch).expect("the patch applies");
        assert_eq!(
            pod["metadata"]["annotations"]["credagent.io/status"],
            "injected"
        );
        assert_eq!(pod["metadata"]["labels"]["credagent/mode"], "sidecar");
        assert!(matches!(
            decide(&pod, Entry::Pod, Some(&sa), &compat),
            Decision::Skip {
                reason: SkipReason::AlreadyInjected,
                ..
            }
        ));
    }
}
