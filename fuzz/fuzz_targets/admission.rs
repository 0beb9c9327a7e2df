//! The admission webhook's core on any body: `webhook::parse`, then
//! `admit` (compat on and off, with and without the ServiceAccount's
//! opt-in) and `respond`, as `POST /mutate` runs them.
//!
//! Checks, besides "never panics":
//! - the answer is an `admission.k8s.io/v1` AdmissionReview echoing the
//!   request's `uid`, `allowed` unless refused, a base64 JSON Patch exactly
//!   when injecting;
//! - the patch applies to the Pod (json-patch, an independent RFC 6902
//!   implementation) with only `add` operations, and a second pass over
//!   the patched Pod adds nothing (reinvocation is a no-op).
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use credagent::cli::InjectArgs;
use credagent::webhook::{self, Decision, Entry, SkipReason};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fuzz_target!(|body: &[u8]| {
    let Ok(req) = webhook::parse(body) else {
        return;
    };
    let mut config = flags().clone();
    let mut sa = Map::new();
    sa.insert("caios.coreweave.com/inject".into(), json!("true"));
    for (compat, entry) in [false, true].into_iter().flat_map(|c| [(c, Entry::Pod), (c, Entry::Namespace)]) {
        config.coreweave_compat = compat;
        let _ = webhook::service_account_to_look_up(&req, entry, &config);
        for annotations in [None, Some(&sa)] {
            let decision = webhook::admit(&req, entry, annotations, &config);
            check(&req, &decision, entry, annotations, &config);
        }
    }
});

/// The webhook's injection flags, parsed once (`CREDAGENT_*` variables
/// would be read too: none are set where the fuzzer runs).
fn flags() -> &'static InjectArgs {
    static FLAGS: OnceLock<InjectArgs> = OnceLock::new();
    FLAGS.get_or_init(|| {
        InjectArgs::from_flags([
            "--sidecar-image",
            "credagent:fuzz",
            "--org-id",
            "fuzz",
            "--region",
            "US-EAST-04A",
            "--s3-endpoint",
            "http://cwlota.com",
            // The POST exchange by default; a Pod's credagent.io/key-lifetime
            // changes the lifetime or (`off`) turns it off.
            "--key-lifetime",
            "1h",
            "--key-attribute",
            "cluster=fuzz",
        ])
        .expect("valid flags")
    })
}

fn check(
    req: &webhook::Request,
    decision: &Decision,
    entry: Entry,
    sa: Option<&Map<String, Value>>,
    config: &InjectArgs,
) {
    let answer: Value =
        serde_json::from_slice(&webhook::respond(req, decision).to_bytes()).expect("the answer is JSON");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let rsp = &answer["response"];
    assert_eq!(rsp["uid"], req.uid.as_str());
    assert_eq!(rsp["allowed"], !matches!(decision, Decision::Refuse { .. }));
    // The namespace entry's Pods are opted in by their namespace.
    if entry == Entry::Namespace {
        assert!(
            !matches!(decision, Decision::Skip { reason: SkipReason::NotOptedIn, .. }),
            "the namespace entry said not opted in"
        );
    }
    let Decision::Inject { .. } = decision else {
        assert!(rsp.get("patch").is_none(), "a patch without an injection");
        return;
    };
    assert_eq!(rsp["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rsp["patch"].as_str().expect("patch is a string"))
        .expect("patch is base64");
    let ops: Value = serde_json::from_slice(&raw).expect("patch is JSON");
    for op in ops.as_array().expect("patch is a list") {
        assert_eq!(op["op"], "add", "{op}");
    }
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("an RFC 6902 patch");
    let mut pod = req.object.clone();
    json_patch::patch(&mut pod, &patch).expect("the patch applies to the Pod");
    match webhook::decide(&pod, entry, sa, config) {
        Decision::Skip { reason: SkipReason::AlreadyInjected, .. } => {}
        other => panic!("a second pass over the patched Pod did not find it injected: {other:?}"),
    }
}
