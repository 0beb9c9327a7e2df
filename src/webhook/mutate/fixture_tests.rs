//! The AdmissionReview fixtures of `tests/fixtures/admission/` (see
//! `cases.json` there and `tests/webhook/make_fixtures.py`), through the
//! whole core: parse, the ServiceAccount question, admit, respond; then the
//! patch applied, the shape checked, a second pass, the sidecar's arguments
//! through the sidecar's own command line, and broken copies of every
//! fixture that must not panic.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::admit::{admit, respond, service_account_to_look_up};
use super::annotations::Entry;
use super::argv::sidecar_url;
use super::inject::Decision;
use super::names;
use super::review::parse;
use crate::cli::InjectArgs;

struct Case {
    name: String,
    fixture: String,
    config: InjectArgs,
    sa: Option<Map<String, Value>>,
    entry: Entry,
    spec: Value,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission")
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn cases() -> Vec<Case> {
    let all: Value = serde_json::from_slice(&read("cases.json")).unwrap();
    all["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_owned();
            Case {
                config: InjectArgs::from_flags(flags(&all, c))
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
                name,
                fixture: c["fixture"].as_str().unwrap().to_owned(),
                sa: c.get("sa_annotations").and_then(Value::as_object).cloned(),
                entry: match c.get("entry").and_then(Value::as_str) {
                    None | Some("pod") => Entry::Pod,
                    Some("namespace") => Entry::Namespace,
                    Some(other) => panic!("entry {other:?}"),
                },
                spec: c.clone(),
            }
        })
        .collect()
}

/// A case's webhook flags: the common ones, the case's upstream (or the
/// common one), the case's own.
fn flags(all: &Value, case: &Value) -> Vec<String> {
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let mut flags = list(all.get("flags"));
    flags.extend(list(case.get("upstream").or(all.get("upstream"))));
    flags.extend(list(case.get("flags")));
    flags
}

/// Applies `add` operations (all the injector emits) as RFC 6902 says.
fn apply(doc: &mut Value, ops: &Value) {
    for op in ops.as_array().unwrap() {
        assert_eq!(op["op"], "add", "{op}");
        let path = op["path"].as_str().unwrap();
        let mut tokens: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = tokens.pop().unwrap();
        let mut parent = &mut *doc;
        for t in &tokens {
            parent = match parent {
                Value::Object(m) => m.get_mut(t).unwrap_or_else(|| panic!("{path}: no {t}")),
                Value::Array(a) => &mut a[t.parse::<usize>().unwrap()],
                _ => panic!("{path}: {t} is not a container"),
            };
        }
        let value = op["value"].clone();
        match parent {
            Value::Object(m) => {
                m.insert(last, value);
            }
            Value::Array(a) if last == "-" => a.push(value),
            Value::Array(a) => {
                let i: usize = last.parse().unwrap();
                assert!(i <= a.len(), "{path}: index out of range");
                a.insert(i, value);
            }
            _ => panic!("{path}: parent is not a container"),
        }
    }
}

fn run(case: &Case, body: &[u8]) -> (Decision, Value) {
    let req = parse(body).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let sa = service_account_to_look_up(&req, case.entry, &case.config).and(case.sa.as_ref());
    let decision = admit(&req, case.entry, sa, &case.config);
    let response: Value = serde_json::from_slice(&respond(&req, &decision).to_bytes()).unwrap();
    assert_eq!(
        response["apiVersion"], "admission.k8s.io/v1",
        "{}",
        case.name
    );
    assert_eq!(response["kind"], "AdmissionReview", "{}", case.name);
    assert_eq!(response["response"]["uid"], json!(req.uid), "{}", case.name);
    (decision, response)
}

fn containers(pod: &Value) -> Vec<&Value> {
    let list = |k: &str| pod["spec"][k].as_array().into_iter().flatten();
    list("initContainers").chain(list("containers")).collect()
}

fn env_value<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

#[test]
fn every_fixture_gives_the_expected_decision() {
    let cases = cases();
    assert!(cases.len() >= 20);
    for case in &cases {
        let body = read(&case.fixture);
        let (decision, response) = run(case, &body);
        let spec = &case.spec;
        let name = &case.name;
        assert_eq!(decision.label(), spec["expect"], "{name}: {decision:?}");
        let r = &response["response"];
        assert_eq!(r["allowed"], spec["expect"] != "refused", "{name}");
        assert_eq!(
            r.get("patch").is_some(),
            spec["expect"] == "injected",
            "{name}"
        );
        assert_eq!(
            r.get("patchType").is_some(),
            spec["expect"] == "injected",
            "{name}"
        );
        let warnings: Vec<&str> = r["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if let Some(want) = spec.get("warnings").and_then(Value::as_array) {
            if want.is_empty() {
                assert!(warnings.is_empty(), "{name}: {warnings:?}");
            }
            for w in want {
                let w = w.as_str().unwrap();
                assert!(
                    warnings.iter().any(|got| got.contains(w)),
                    "{name}: no warning with {w:?} in {warnings:?}"
                );
            }
        }
        if let Some(want) = spec.get("message").and_then(Value::as_str) {
            let got = r["status"]["message"].as_str().unwrap_or_default();
            assert!(got.contains(want), "{name}: {got}");
            assert_eq!(r["status"]["code"], 400, "{name}");
        }
        if let Some(dry_run) = spec.get("dry_run") {
            assert_eq!(
                Some(parse(&body).unwrap().dry_run),
                dry_run.as_bool(),
                "{name}"
            );
        }
        if spec["expect"] == "injected" {
            check_injected(case, &body, r);
        }
    }
}

fn check_injected(case: &Case, body: &[u8], r: &Value) {
    let name = &case.name;
    let review: Value = serde_json::from_slice(body).unwrap();
    let before = &review["request"]["object"];
    let raw = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    let ops: Value = serde_json::from_slice(&raw).unwrap();
    let mut pod = before.clone();
    apply(&mut pod, &ops);

    let sidecar_mode = case.spec["mode"] == "sidecar";
    let init = pod["spec"]["initContainers"].as_array();
    let first = init.and_then(|i| i.first());
    if sidecar_mode {
        let first = first.unwrap_or_else(|| panic!("{name}: no init containers"));
        assert_eq!(first["name"], names::SIDECAR, "{name}");
        assert_eq!(first["restartPolicy"], "Always", "{name}");
        assert!(first.get("readinessProbe").is_none(), "{name}");
        check_sidecar_args(name, first);
        super::key_tests::check_key_args(name, &case.config, &case.spec, first);
        super::proxy_tests::check_sidecar_env(name, &case.config, first);
    } else {
        assert!(
            !containers(&pod).iter().any(|c| c["name"] == names::SIDECAR),
            "{name}"
        );
    }
    // Every other native sidecar keeps its restartPolicy; nothing is lost.
    for c in containers(before) {
        let after = containers(&pod)
            .into_iter()
            .find(|a| a["name"] == c["name"])
            .unwrap();
        for (k, v) in c.as_object().unwrap() {
            if k != "env" && k != "volumeMounts" {
                assert_eq!(&after[k], v, "{name}: {}.{k} changed", c["name"]);
            }
        }
        super::proxy_tests::check_no_proxy_added(name, sidecar_mode, c, after);
    }
    let injected: Vec<&str> = case.spec["injected"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let untouched: Vec<&str> = case.spec["untouched"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for c in containers(&pod) {
        let cname = c["name"].as_str().unwrap();
        let has_env = env_value(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .is_some_and(|v| v == sidecar_url(&case.config) || v == case.config.node_url.as_str());
        if cname == names::SIDECAR {
            continue;
        }
        assert_eq!(
            has_env,
            injected.contains(&cname),
            "{name}: container {cname}"
        );
        if untouched.contains(&cname) {
            let orig = containers(before)
                .into_iter()
                .find(|o| o["name"] == cname)
                .unwrap();
            assert_eq!(c, orig, "{name}: {cname} was touched");
        }
    }
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    for v in [names::TOKEN_VOLUME, names::AUTH_VOLUME] {
        let n = volumes.iter().filter(|x| x["name"] == v).count();
        let want = usize::from(sidecar_mode || v == names::TOKEN_VOLUME);
        assert_eq!(n, want, "{name}: volume {v}");
    }
    assert_eq!(
        pod["metadata"]["annotations"][names::STATUS],
        "injected",
        "{name}"
    );

    // A second pass (reinvocation, or the same Pod sent again) adds nothing.
    let mut again = review.clone();
    again["request"]["object"] = pod;
    again["request"]["uid"] = json!("second-pass");
    let (decision, response) = run(case, again.to_string().as_bytes());
    assert_eq!(decision.label(), "already_injected", "{name}: {decision:?}");
    assert!(response["response"].get("patch").is_none(), "{name}");
}

/// The injected arguments are ones this version's `credagent sidecar`
/// accepts: parsed by its own clap definition and resolved by
/// `SidecarArgs::config`, exactly what `--check-config` does (the Python
/// harness runs the built binary as well).
fn check_sidecar_args(name: &str, sidecar: &Value) {
    use clap::Parser as _;
    let args: Vec<String> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let parse = |args: &[String]| {
        let argv = std::iter::once("credagent".to_owned()).chain(args.iter().cloned());
        crate::cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())
    };
    let cli = parse(&args).unwrap_or_else(|e| panic!("{name}: the sidecar rejects {args:?}: {e}"));
    let crate::cli::Command::Sidecar(sidecar_args) = cli.command else {
        panic!("{name}: not a sidecar command");
    };
    let config = sidecar_args
        .config()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        config.token_file.to_str(),
        Some(names::TOKEN_PATH),
        "{name}"
    );
    assert_eq!(
        config.auth_token_file.to_str(),
        Some(names::AUTH_TOKEN_PATH),
        "{name}"
    );
}

/// Every prefix (at a stride) of every fixture, and copies with bytes
/// overwritten, parse to a request or an error, never a panic; and the
/// parsed fixtures with any one node replaced by a value of another type
/// give a decision, never a panic.
#[test]
fn broken_input_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let config = cases().remove(0).config;
    let mut files: Vec<String> = cases().into_iter().map(|c| c.fixture).collect();
    files.sort();
    files.dedup();
    for file in &files {
        let body = read(file);
        // Every strict prefix of a JSON object is incomplete.
        for end in (0..body.trim_ascii_end().len()).step_by(61) {
            assert!(parse(&body[..end]).is_err(), "{file}: prefix {end} parsed");
        }
        for _ in 0..100 {
            let mut b = body.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % b.len() as u64) as usize;
                const BYTES: &[u8] = b"{}[]\",:0tn\\ \xff";
                b[i] = BYTES[(next() % BYTES.len() as u64) as usize];
            }
            if let Ok(req) = parse(&b) {
                let _ = respond(&req, &admit(&req, Entry::Pod, None, &config)).to_bytes();
            }
        }
        let req = parse(&body).unwrap();
        let mut paths = Vec::new();
        collect_paths(&req.object, String::new(), &mut paths);
        for path in paths {
            for replacement in [json!(null), json!(7), json!("x"), json!({}), json!([{}])] {
                let mut r = req.clone();
                if let Some(slot) = r.object.pointer_mut(&path) {
                    *slot = replacement;
                }
                let _ = respond(&r, &admit(&r, Entry::Pod, None, &config)).to_bytes();
            }
        }
    }
}

fn collect_paths(v: &Value, at: String, out: &mut Vec<String>) {
    if at.matches('/').count() > 6 {
        return;
    }
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k != "managedFields" {
                    collect_paths(v, format!("{at}/{}", super::patch::escape(k)), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                collect_paths(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}
