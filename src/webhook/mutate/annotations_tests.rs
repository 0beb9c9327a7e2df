//! The opt-in and the per-Pod settings annotations.

use serde_json::{json, Map, Value};

use super::annotations::{opt_in, settings, Entry, Mode, OptIn};
use crate::cli::InjectArgs;

fn config() -> InjectArgs {
    flags(&[])
}

fn flags(extra: &[&str]) -> InjectArgs {
    let base = ["--sidecar-image", "img", "--org-id", "org"];
    InjectArgs::from_flags(base.iter().chain(extra)).unwrap()
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn opt_in_rules() {
    let c = config();
    let compat = flags(&["--coreweave-compat"]);
    let t = map(json!({"credagent.io/inject": "true"}));
    let f = map(json!({"credagent.io/inject": "false"}));
    let sa = map(json!({"caios.coreweave.com/inject": "true"}));
    assert_eq!(opt_in(Some(&t), None, Entry::Pod, None, &c), Ok(OptIn::Pod));
    assert_eq!(opt_in(None, Some(&t), Entry::Pod, None, &c), Ok(OptIn::Pod));
    assert_eq!(
        opt_in(Some(&t), Some(&f), Entry::Pod, None, &c),
        Ok(OptIn::OptedOut)
    );
    assert_eq!(
        opt_in(Some(&f), Some(&t), Entry::Pod, Some(&sa), &compat),
        Ok(OptIn::OptedOut)
    );
    assert_eq!(
        opt_in(None, None, Entry::Pod, Some(&sa), &c),
        Ok(OptIn::NotOptedIn)
    );
    assert_eq!(
        opt_in(None, None, Entry::Pod, Some(&sa), &compat),
        Ok(OptIn::ServiceAccount)
    );
    assert_eq!(
        opt_in(None, Some(&f), Entry::Pod, Some(&sa), &compat),
        Ok(OptIn::OptedOut)
    );
    assert_eq!(
        opt_in(None, None, Entry::Pod, None, &compat),
        Ok(OptIn::NotOptedIn)
    );
    let other = map(json!({"caios.coreweave.com/inject": "yes"}));
    assert_eq!(
        opt_in(None, None, Entry::Pod, Some(&other), &compat),
        Ok(OptIn::NotOptedIn)
    );
    let typo = map(json!({"credagent.io/inject": "True"}));
    // The namespace entry: opted in by the namespace, unless the Pod says
    // otherwise; its own "true" is still the Pod's, a typo still refused.
    let ns = Entry::Namespace;
    assert_eq!(opt_in(None, None, ns, None, &c), Ok(OptIn::Namespace));
    assert_eq!(
        opt_in(None, None, ns, Some(&sa), &compat),
        Ok(OptIn::Namespace)
    );
    assert_eq!(opt_in(None, Some(&f), ns, None, &c), Ok(OptIn::OptedOut));
    assert_eq!(
        opt_in(Some(&f), None, ns, Some(&sa), &compat),
        Ok(OptIn::OptedOut)
    );
    assert_eq!(opt_in(None, Some(&t), ns, None, &c), Ok(OptIn::Pod));
    assert!(opt_in(None, Some(&typo), ns, None, &c).is_err());
    let e = opt_in(None, Some(&typo), Entry::Pod, None, &c).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"annotation credagent.io/inject: "True" is not accepted: "true" or "false""#
    );
}

#[test]
fn defaults_come_from_the_config() {
    let s = settings(None, &config()).unwrap();
    assert_eq!(s.mode, Mode::Sidecar);
    assert_eq!(s.token_expiration, 3600);
    assert_eq!(s.audience, "https://coreweave.com/iam");
    assert_eq!(s.resources, config().resources);
    assert!(!s.credential_process && s.skip_containers.is_empty() && s.warnings.is_empty());
}

#[test]
fn reads_every_setting() {
    let a = map(json!({
        "credagent.io/mode": "sidecar",
        "credagent.io/skip-containers": " a, b ,,a,init-1 ",
        "credagent.io/token-expiration": "600",
        "credagent.io/audience": "sts.example",
        "credagent.io/sidecar-cpu-request": "50m",
        "credagent.io/sidecar-memory-request": "20Mi",
        "credagent.io/sidecar-cpu-limit": "1",
        "credagent.io/sidecar-memory-limit": "0.5Gi",
        "credagent.io/credential-process": "true",
    }));
    let s = settings(Some(&a), &config()).unwrap();
    assert_eq!(s.skip_containers, ["a", "b", "init-1"]);
    assert_eq!(s.token_expiration, 600);
    assert_eq!(s.audience, "sts.example");
    let q = |q: &Option<crate::config::Quantity>| q.as_ref().map(|q| q.as_str().to_owned());
    assert_eq!(q(&s.resources.cpu_request).as_deref(), Some("50m"));
    assert_eq!(q(&s.resources.memory_limit).as_deref(), Some("0.5Gi"));
    assert!(s.credential_process);
    let node = map(json!({"credagent.io/mode": "node", "credagent.io/sidecar-cpu-limit": "1"}));
    let s = settings(Some(&node), &config()).unwrap();
    assert_eq!(s.mode, Mode::Node);
    assert_eq!(
        s.warnings,
        ["credagent: credagent.io/sidecar-cpu-limit ignored: there is no sidecar in node mode"]
    );
}

#[test]
fn refuses_each_bad_value_by_name() {
    let cases = [
        (
            "credagent.io/mode",
            json!("Node"),
            "\"sidecar\" or \"node\"",
        ),
        (
            "credagent.io/credential-process",
            json!("yes"),
            "\"true\" or \"false\"",
        ),
        (
            "credagent.io/skip-containers",
            json!("App"),
            "comma-separated",
        ),
        (
            "credagent.io/skip-containers",
            json!("a;b"),
            "comma-separated",
        ),
        (
            "credagent.io/token-expiration",
            json!("599"),
            "600 to 86400",
        ),
        (
            "credagent.io/token-expiration",
            json!("86401"),
            "600 to 86400",
        ),
        ("credagent.io/token-expiration", json!("1h"), "600 to 86400"),
        (
            "credagent.io/token-expiration",
            json!("+3600"),
            "600 to 86400",
        ),
        ("credagent.io/token-expiration", json!(3600), "600 to 86400"),
        ("credagent.io/audience", json!(""), "printable"),
        ("credagent.io/audience", json!("a b"), "printable"),
        (
            "credagent.io/sidecar-cpu-request",
            json!("lots"),
            "not a Kubernetes quantity",
        ),
        (
            "credagent.io/sidecar-memory-limit",
            json!("64MB"),
            "not a Kubernetes quantity",
        ),
        (
            "credagent.io/sidecar-memory-request",
            json!("-1Mi"),
            "must not be negative",
        ),
        (
            "credagent.io/sidecar-cpu-request",
            json!("2"),
            "must not exceed its limit (100m)",
        ),
        (
            "credagent.io/sidecar-memory-limit",
            json!("8Mi"),
            "must not exceed its limit (8Mi)",
        ),
    ];
    for (key, value, want) in cases {
        let mut a = Map::new();
        a.insert(key.to_owned(), value.clone());
        let e = settings(Some(&a), &config()).unwrap_err();
        assert_eq!(e.key, key, "{value}");
        assert!(e.to_string().contains(want), "{key}={value}: {e}");
    }
    let both = map(json!({"credagent.io/mode": "node", "credagent.io/credential-process": "true"}));
    let e = settings(Some(&both), &config()).unwrap_err();
    assert_eq!(e.key, "credagent.io/credential-process");
    let long = map(json!({"credagent.io/mode": "x".repeat(500) + "\n"}));
    let e = settings(Some(&long), &config()).unwrap_err().to_string();
    assert!(e.len() < 200 && !e.contains('\n'), "{e}");
}
