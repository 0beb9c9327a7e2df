//! The admission webhook's core on any body: `webhook::parse`, then
//! `admit` (compat on and off, with and without the ServiceAccount's
//! opt-in) and `respond`, as `POST /mutate` runs them.
//!
//! Checks, besides "never panics":
//! - what the server does with the body (scan, read, decide, answer)
//!   allocates at most what the scan counted (`review::Scanned::cost`, what
//!   the server reserves from its memory budget), measured by a counting
//!   global allocator;
//! - the answer is an `admission.k8s.io/v1` AdmissionReview echoing the
//!   request's `uid`, `allowed` unless refused, a base64 JSON Patch exactly
//!   when injecting;
//! - the patch applies to the Pod (json-patch, an independent RFC 6902
//!   implementation) with only `add` operations, and a second pass over
//!   the patched Pod adds nothing (reinvocation is a no-op).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use std::sync::OnceLock;

use base64::Engine as _;
use credagent::cli::InjectArgs;
use credagent::webhook::mutate::review;
use credagent::webhook::{self, Decision, Entry, SkipReason};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// The system allocator, counting the bytes live and their peak (the
/// harness runs one input at a time, on one thread).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; the counters
// are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new are both live while it copies.
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fuzz_target!(|body: &[u8]| {
    let mut config = flags().clone();
    // What POST /mutate does with the body, measured against its cost.
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let served = review::scan(body).ok().map(|scanned| {
        let cost = scanned.cost();
        if let Ok(req) = scanned.parse() {
            let decision = webhook::admit(&req, Entry::Pod, None, &config);
            drop(webhook::respond(&req, &decision).to_bytes());
        }
        cost
    });
    let used = PEAK.load(Relaxed).saturating_sub(before) as u64;
    if let Some(cost) = served {
        assert!(used <= cost, "{used} bytes used, {cost} counted by the scan");
    }
    let Ok(req) = webhook::parse(body) else {
        return;
    };
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
