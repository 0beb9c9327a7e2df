//! The proxy the webhook gives the sidecar (`sidecar_https_proxy`,
//! `sidecar_no_proxy`): in the sidecar's env only, as `HTTPS_PROXY` and
//! `NO_PROXY`, read back exactly as the sidecar reads it; never in an app's;
//! nothing when unset; and a second pass adds nothing. The two checks at the
//! end are also run on every fixture (`fixture_tests`).

use serde_json::{json, Value};

use super::annotations::Entry;
use super::inject::{decide, Decision, SkipReason};
use crate::cli::InjectArgs;
use crate::config::ProxySettings;

const PROXY: &str = "http://proxy.corp.example:3128";
const NO_PROXY: &str = ".svc,.cluster.local,10.96.0.0/12";

fn config(https: Option<&str>, no: Option<&str>) -> InjectArgs {
    let mut flags = vec![
        "--sidecar-image",
        "img:1",
        "--org-id",
        "org",
        "--region",
        "US-EAST-04A",
    ];
    if let Some(url) = https {
        flags.extend(["--sidecar-https-proxy", url]);
    }
    if let Some(list) = no {
        flags.extend(["--sidecar-no-proxy", list]);
    }
    InjectArgs::from_flags(flags).unwrap()
}

/// A Pod with an init container, two apps (one with a proxy of its own).
fn pod(annotations: Value) -> Value {
    let mut a = json!({"credagent.io/inject": "true"});
    a.as_object_mut()
        .unwrap()
        .extend(annotations.as_object().unwrap().clone());
    json!({
        "metadata": {"annotations": a},
        "spec": {
            "initContainers": [{"name": "fetch", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "app:1"},
                {"name": "proxied", "image": "app:1", "env": [
                    {"name": "HTTPS_PROXY", "value": "http://apps-proxy:8080"},
                ]},
            ],
        },
    })
}

/// The Pod after the decision's patch (applied by json-patch, not by us).
fn injected(pod: &Value, config: &InjectArgs) -> Value {
    let Decision::Inject { ops, .. } = decide(pod, Entry::Pod, None, config) else {
        panic!("not injected");
    };
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::to_value(&ops).unwrap()).expect("a JSON Patch");
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).expect("the patch applies");
    out
}

fn env(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("value"))
        })
        .collect()
}

fn has(container: &Value, name: &str) -> bool {
    env(container).iter().any(|(k, _)| k == name)
}

/// What the sidecar makes of its env, through its own reader.
fn as_the_sidecar_reads_it(sidecar: &Value) -> ProxySettings {
    let vars = env(sidecar);
    ProxySettings::from_env_vars(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        .expect("the sidecar accepts its env")
}

#[test]
fn the_sidecar_gets_the_proxy_and_the_apps_do_not() {
    let c = config(Some(PROXY), Some(NO_PROXY));
    let after = injected(&pod(json!({})), &c);
    let init = after["spec"]["initContainers"].as_array().unwrap();
    let sidecar = &init[0];
    assert_eq!(sidecar["name"], "credagent");
    assert_eq!(
        env(sidecar),
        [
            ("HTTPS_PROXY".to_owned(), PROXY.to_owned()),
            ("NO_PROXY".to_owned(), NO_PROXY.to_owned()),
        ]
    );
    let read = as_the_sidecar_reads_it(sidecar);
    assert_eq!(read.https.as_ref().map(|p| p.redacted()), Some(PROXY));
    assert_eq!(
        read.http, None,
        "plain http is only to loopback, always direct"
    );
    assert_eq!(read.no_proxy, Some((NO_PROXY.to_owned(), "NO_PROXY")));

    // Every other container, init or app: credentials, and no proxy of ours.
    let apps = after["spec"]["containers"].as_array().unwrap();
    for c in init[1..].iter().chain(apps) {
        assert!(has(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI"), "{c}");
        assert!(!has(c, "NO_PROXY"), "{c}");
    }
    assert!(!has(&init[1], "HTTPS_PROXY") && !has(&apps[0], "HTTPS_PROXY"));
    let own: Vec<_> = env(&apps[1])
        .into_iter()
        .filter(|(k, _)| k.contains("PROXY"))
        .collect();
    assert_eq!(
        own,
        [(
            "HTTPS_PROXY".to_owned(),
            "http://apps-proxy:8080".to_owned()
        )]
    );
}

#[test]
fn a_second_pass_adds_nothing() {
    let c = config(Some(PROXY), Some(NO_PROXY));
    let once = injected(&pod(json!({"credagent.io/credential-process": "true"})), &c);
    match decide(&once, Entry::Pod, None, &c) {
        Decision::Skip { reason, .. } => assert_eq!(reason, SkipReason::AlreadyInjected),
        other => panic!("a second pass changed the Pod: {other:?}"),
    }
    let sidecar = &once["spec"]["initContainers"][0];
    assert_eq!(env(sidecar).len(), 2, "{sidecar}");
}

#[test]
fn unset_changes_nothing() {
    let plain = config(None, None);
    let p = pod(json!({}));
    let after = injected(&p, &plain);
    let sidecar = &after["spec"]["initContainers"][0];
    assert!(sidecar.get("env").is_none(), "{sidecar}");
    assert!(as_the_sidecar_reads_it(sidecar).is_none());
    // The same patch as before the setting existed, minus nothing: the
    // sidecar's keys are exactly these.
    let keys: Vec<&str> = sidecar
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "image",
            "imagePullPolicy",
            "args",
            "restartPolicy",
            "ports",
            "startupProbe",
            "livenessProbe",
            "resources",
            "securityContext",
            "terminationMessagePolicy",
            "volumeMounts"
        ]
    );
    // With the proxy, `env` comes right after `args`.
    let proxied = injected(&p, &config(Some(PROXY), None));
    let sidecar = &proxied["spec"]["initContainers"][0];
    let keys: Vec<&str> = sidecar
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(&keys[3..5], ["args", "env"]);
    assert_eq!(env(sidecar), [("HTTPS_PROXY".to_owned(), PROXY.to_owned())]);
}

#[test]
fn no_proxy_alone_is_written_alone() {
    let after = injected(&pod(json!({})), &config(None, Some(".svc")));
    let sidecar = &after["spec"]["initContainers"][0];
    assert_eq!(env(sidecar), [("NO_PROXY".to_owned(), ".svc".to_owned())]);
}

#[test]
fn node_mode_and_a_sidecar_already_there_get_no_proxy() {
    let c = config(Some(PROXY), Some(NO_PROXY));
    // Node mode: no sidecar, and the apps' env gains no proxy of ours.
    let after = injected(&pod(json!({"credagent.io/mode": "node"})), &c);
    for list in ["initContainers", "containers"] {
        for ctr in after["spec"][list].as_array().unwrap() {
            assert_ne!(ctr["name"], "credagent");
            let ours = env(ctr)
                .into_iter()
                .any(|(k, v)| (k == "HTTPS_PROXY" && v == PROXY) || v == NO_PROXY);
            assert!(!ours, "{ctr}");
        }
    }
    // A credagent container someone configured by hand is theirs: left as it is.
    let mut hand = pod(json!({}));
    hand["spec"]["initContainers"]
        .as_array_mut()
        .unwrap()
        .insert(
            0,
            json!({"name": "credagent", "image": "img:1", "restartPolicy": "Always"}),
        );
    let after = injected(&hand, &c);
    assert_eq!(
        after["spec"]["initContainers"][0],
        hand["spec"]["initContainers"][0]
    );
}

/// The sidecar's env holds the configured proxy and nothing else, and the
/// sidecar's own reader makes of it what was configured.
pub(super) fn check_sidecar_env(name: &str, config: &InjectArgs, sidecar: &Value) {
    let https_proxy = config
        .sidecar_https_proxy
        .as_ref()
        .map(|p| p.as_str().to_owned());
    let no_proxy = config
        .sidecar_no_proxy
        .as_ref()
        .map(|l| l.as_str().to_owned());
    let want: Vec<(String, String)> = [("HTTPS_PROXY", &https_proxy), ("NO_PROXY", &no_proxy)]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect();
    assert_eq!(env(sidecar), want, "{name}");
    assert_eq!(sidecar.get("env").is_some(), !want.is_empty(), "{name}");
    let read = as_the_sidecar_reads_it(sidecar);
    let https = read.https.as_ref().map(|p| p.redacted().to_owned());
    assert_eq!(https, https_proxy, "{name}");
    let read_no_proxy = read.no_proxy.map(|(list, _)| list);
    assert_eq!(read_no_proxy, no_proxy, "{name}");
}

/// No proxy variable is added to a container other than the sidecar, but
/// node mode's `NO_PROXY` for the node agent to an app that has a proxy.
pub(super) fn check_no_proxy_added(name: &str, sidecar_mode: bool, before: &Value, after: &Value) {
    let proxy_vars = |c: &Value| -> Vec<(String, String)> {
        env(c)
            .into_iter()
            .filter(|(k, _)| k.to_ascii_uppercase().ends_with("_PROXY"))
            .collect()
    };
    let was = proxy_vars(before);
    let added: Vec<_> = proxy_vars(after)
        .into_iter()
        .filter(|v| !was.contains(v))
        .collect();
    let node_agent = [("NO_PROXY".to_owned(), "169.254.170.23".to_owned())];
    let allowed = !sidecar_mode && !was.is_empty() && added == node_agent;
    assert!(
        added.is_empty() || allowed,
        "{name}: {} got {added:?}",
        before["name"]
    );
}
