//! The POST exchange's settings the webhook injects: its `--key-lifetime`
//! (the default) and `--key-attribute`s, and a Pod's
//! `credagent.io/key-lifetime` over them (a lifetime, or `off` for the
//! GET). Every bad value refuses the Pod by name, as the other annotations
//! do. `check_key_args` is also run on every fixture (`fixture_tests`).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::annotations::{settings, Entry, Mode};
use super::inject::{decide, Decision};
use crate::cli::InjectArgs;

const HOUR: Duration = Duration::from_secs(3600);

fn flags(extra: &[&str]) -> InjectArgs {
    let base = ["--sidecar-image", "img:1", "--org-id", "org"];
    InjectArgs::from_flags(base.iter().chain(extra)).unwrap()
}

fn lifetime(v: Value) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("credagent.io/key-lifetime".into(), v);
    a
}

/// The webhook's flag is every Pod's default; the annotation overrides it
/// either way, `off` included; a Pod may ask for the POST when the webhook
/// does not.
#[test]
fn the_annotation_over_the_flag() {
    let get = flags(&[]);
    let post = flags(&["--key-lifetime", "1h"]);
    assert_eq!(settings(None, &get).unwrap().key_lifetime, None);
    assert_eq!(settings(None, &post).unwrap().key_lifetime, Some(HOUR));
    for (value, want) in [
        ("off", None),
        ("15m", Some(Duration::from_secs(900))),
        ("12h", Some(12 * HOUR)),
        ("1h30m", Some(Duration::from_secs(5400))),
        (" 2h ", Some(2 * HOUR)),
        ("7200", Some(2 * HOUR)),
    ] {
        for config in [&get, &post] {
            let s = settings(Some(&lifetime(json!(value))), config).unwrap();
            assert_eq!(s.key_lifetime, want, "{value}");
            assert!(s.warnings.is_empty(), "{value}: {:?}", s.warnings);
        }
    }
}

#[test]
fn a_bad_lifetime_is_refused_by_name_with_the_range() {
    for bad in [
        json!("5m"),
        json!("14m59s"),
        json!("12h1s"),
        json!("1h30"),
        json!("1500ms"),
        json!(""),
        json!("OFF"),
        json!("get"),
        json!("1d"),
        json!(3600),
        json!(null),
    ] {
        for config in [flags(&[]), flags(&["--key-lifetime", "1h"])] {
            let e = settings(Some(&lifetime(bad.clone())), &config).unwrap_err();
            assert_eq!(e.key, "credagent.io/key-lifetime");
            assert!(
                e.to_string().contains(
                    "a key lifetime from 15m to 12h in whole seconds (e.g. 1h, 90m), or \"off\""
                ),
                "{bad}: {e}"
            );
        }
    }
    // What the API client is told, through the whole decision.
    let pod = json!({
        "metadata": {"annotations": {
            "credagent.io/inject": "true", "credagent.io/key-lifetime": "5m"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    });
    let Decision::Refuse { message } = decide(&pod, Entry::Pod, None, &flags(&[])) else {
        panic!("not refused")
    };
    assert_eq!(
        message,
        "annotation credagent.io/key-lifetime: \"5m\" is not accepted: a key lifetime from 15m to 12h in whole seconds (e.g. 1h, 90m), or \"off\" for the GET exchange"
    );
}

/// An `--exchange-url` without a final `/ORG-ID` cannot take the POST: the
/// webhook refuses it with `--key-lifetime` at start, and a Pod that asks
/// for it (only `off` is accepted); the sidecar would exit 2 otherwise.
#[test]
fn the_post_needs_an_upstream_it_can_use() {
    let url = ["--exchange-url", "https://up.example/credentials"];
    let e = InjectArgs::from_flags(
        ["--sidecar-image", "img:1", "--key-lifetime", "1h"]
            .iter()
            .chain(&url),
    )
    .unwrap_err();
    assert!(
        e.starts_with("invalid value for --exchange-url: must end in /ORG-ID"),
        "{e}"
    );
    let c = flags(&[]);
    let c = InjectArgs {
        upstream: InjectArgs::from_flags(["--sidecar-image", "i", url[0], url[1]])
            .unwrap()
            .upstream,
        ..c
    };
    let e = settings(Some(&lifetime(json!("1h"))), &c).unwrap_err();
    assert!(
        e.to_string().ends_with("\"1h\" is not accepted: only \"off\": the webhook's --exchange-url does not end in /ORG-ID, which the POST exchange needs"),
        "{e}"
    );
    assert_eq!(
        settings(Some(&lifetime(json!("off"))), &c)
            .unwrap()
            .key_lifetime,
        None
    );
    // In node mode only the value is checked: the annotation is ignored.
    let mut node = lifetime(json!("1h"));
    node.insert("credagent.io/mode".into(), json!("node"));
    assert_eq!(settings(Some(&node), &c).unwrap().mode, Mode::Node);
}

/// Node mode has no sidecar: the node agent's own `--key-lifetime` applies.
#[test]
fn ignored_with_a_warning_in_node_mode() {
    let mut a = lifetime(json!("2h"));
    a.insert("credagent.io/mode".into(), json!("node"));
    let s = settings(Some(&a), &flags(&[])).unwrap();
    assert_eq!(
        s.warnings,
        ["credagent: credagent.io/key-lifetime ignored: there is no sidecar in node mode"]
    );
    a.insert("credagent.io/key-lifetime".into(), json!("13h"));
    assert!(settings(Some(&a), &flags(&[])).is_err(), "still checked");
}

#[test]
fn the_webhook_flags() {
    let c = flags(&[
        "--key-lifetime",
        "90m",
        "--key-attribute",
        "cluster=prod-1",
        "--key-attribute=team=ml",
    ]);
    assert_eq!(c.key_lifetime, Some(Duration::from_secs(5400)));
    let names: Vec<_> = c.key_attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["cluster", "team"]);
    // Attributes without a lifetime: for the Pods that ask for the POST.
    assert!(flags(&["--key-attribute", "a=1"]).key_lifetime.is_none());
    let from = |extra: &[&str]| {
        let base = ["--sidecar-image", "img:1", "--org-id", "org"];
        InjectArgs::from_flags(base.iter().chain(extra)).unwrap_err()
    };
    for (extra, want) in [
        (&["--key-lifetime", "10m"][..], "--key-lifetime"),
        (&["--key-lifetime", "off"], "--key-lifetime"),
        (&["--key-attribute", "k8s-pod=x"], "set by the agent"),
        (&["--key-attribute", "a=1,b"], "NAME=VALUE"),
        (
            &["--key-attribute", "a=1", "--key-attribute", "a=2"],
            "twice",
        ),
    ] {
        let e = from(extra);
        assert!(e.contains(want), "{extra:?}: {e}");
    }
}

/// A case's `key_lifetime` (`null`: none) is the injected `--key-lifetime`,
/// followed by the webhook's `--key-attribute`s exactly when it is there.
pub fn check_key_args(name: &str, config: &InjectArgs, spec: &Value, sidecar: &Value) {
    let Some(want) = spec.get("key_lifetime") else {
        return;
    };
    let args: Vec<&str> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let got: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0].starts_with("--key-"))
        .flatten()
        .copied()
        .collect();
    let mut expected: Vec<String> = Vec::new();
    if let Some(lifetime) = want.as_str() {
        expected.extend(["--key-lifetime".into(), lifetime.into()]);
        for a in &config.key_attributes {
            let pair = format!("{}={}", a.name, a.value);
            expected.extend(["--key-attribute".into(), pair]);
        }
    }
    assert_eq!(got, expected, "{name}: {args:?}");
}
