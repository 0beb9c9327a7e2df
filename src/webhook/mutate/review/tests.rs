//! The review reader: what it reads, what it refuses, and what it costs.

use super::*;
use serde_json::json;

fn review(request: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
        .unwrap()
}

fn pod_create() -> Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "ns", "name": "", "operation": "CREATE",
        "userInfo": {"username": "u"}, "object": {"spec": {}}, "oldObject": null,
        "dryRun": true, "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    })
}

#[test]
fn reads_a_pod_create() {
    let r = parse(&review(pod_create())).unwrap();
    assert_eq!(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert!(r.is_pod_create() && r.dry_run);
    assert_eq!(r.namespace.as_deref(), Some("ns"));
    assert_eq!(r.name, None);
    assert_eq!(r.object, json!({"spec": {}}));
    assert_eq!(r.operation.as_str(), "CREATE");
}

#[test]
fn tells_pod_create_from_the_rest() {
    let with = |key: &str, v: Value| {
        let mut req = pod_create();
        req[key] = v;
        parse(&review(req)).unwrap()
    };
    assert!(!with("operation", json!("UPDATE")).is_pod_create());
    assert!(!with("subResource", json!("binding")).is_pod_create());
    assert!(with("subResource", json!("")).is_pod_create());
    assert!(!with(
        "kind",
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    )
    .is_pod_create());
    assert!(!with(
        "resource",
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    )
    .is_pod_create());
    assert_eq!(
        with("operation", json!("PATCH\n")).operation,
        Operation::Other("PATCH".into())
    );
    assert!(!with("dryRun", json!(null)).dry_run);
}

#[test]
fn refuses_what_is_not_a_review() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "not JSON"),
        (b"{\"apiVersion\":".to_vec(), "not JSON"),
        (b"[]".to_vec(), "not a JSON object"),
        (br#"{"kind":"AdmissionReview"}"#.to_vec(), "apiVersion is missing"),
        (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#.to_vec(), "not admission.k8s.io/v1"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(), "kind is not AdmissionReview"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), "request is missing"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"x","allowed":true}}"#.to_vec(), "request is missing"),
    ];
    for (body, want) in cases {
        let e = parse(&body).unwrap_err().to_string();
        assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(&body));
    }
    let broken = |key: &str, v: Value, want: &str| {
        let mut req = pod_create();
        req[key] = v;
        let e = parse(&review(req)).unwrap_err();
        assert!(matches!(e, ReviewError::Invalid(_)), "{e}");
        assert!(e.to_string().contains(want), "{key}: {e}");
    };
    broken("uid", json!(""), "request.uid");
    broken("uid", json!("a b"), "request.uid");
    broken("uid", json!("x".repeat(MAX_UID + 1)), "request.uid");
    broken("uid", json!(7), "request.uid");
    broken("kind", json!("Pod"), "request.kind");
    broken(
        "kind",
        json!({"group": "", "version": "v1"}),
        "request.kind",
    );
    broken("resource", json!(null), "request.resource");
    broken("operation", json!(1), "request.operation");
    broken("dryRun", json!("false"), "request.dryRun");
}

/// A Pod CREATE review whose `request` member `key` holds `value` (raw JSON).
fn with_raw(key: &str, value: &str) -> Vec<u8> {
    let mut body = review(pod_create());
    let at = body.len() - 2; // before the closing "}}"
    let member = format!(",\"{key}\":{value}");
    body.splice(at..at, member.bytes());
    body
}

/// `n` zeros in a list.
fn zeros(n: usize) -> String {
    format!("[{}0]", "0,".repeat(n - 1))
}

#[test]
fn refuses_deep_nesting_wherever_it_is() {
    // The review is level 1, request 2, userInfo 3.
    let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    assert!(parse(&with_raw("userInfo", &nested(MAX_DEPTH - 2))).is_ok());
    for key in ["userInfo", "object"] {
        let body = with_raw(key, &nested(MAX_DEPTH - 1));
        assert_eq!(parse(&body).unwrap_err(), ReviewError::TooDeep, "{key}");
    }
    // Unbalanced or stray brackets are the parser's to refuse, not a panic.
    for body in ["]]]]", "[[[[", "}{", "[}", "{]"] {
        assert!(matches!(
            parse(body.as_bytes()),
            Err(ReviewError::NotJson { .. })
        ));
    }
}

#[test]
fn counts_only_what_is_built() {
    let n = 100_000;
    // Skipped (an unknown member, userInfo): the same small cost as without it.
    let base = scan(&review(pod_create())).unwrap().cost();
    for key in ["x", "userInfo", "oldObject", "options"] {
        let body = with_raw(key, &zeros(n));
        let scanned = scan(&body).unwrap();
        assert_eq!(scanned.cost(), base, "{key}");
        assert_eq!(scanned.parse().unwrap().uid, pod_create()["uid"]);
    }
    // In the Pod: each zero is a Value in a list.
    let mut req = pod_create();
    req["object"] = json!({"spec": {"x": vec![0; n]}});
    let body = review(req);
    let scanned = scan(&body).unwrap();
    let slot = std::mem::size_of::<Value>() as u64;
    assert!(
        scanned.cost() >= base + n as u64 * slot,
        "{}",
        scanned.cost()
    );
    assert_eq!(scanned.shape().pod_values, n as u64 + 2);
}

#[test]
fn counts_the_pods_containers() {
    let containers = |n: usize| vec![json!({"name": "c"}); n];
    let mut req = pod_create();
    req["object"] = json!({"spec": {"containers": containers(3), "initContainers": containers(2),
        "volumes": containers(5)}, "metadata": {"containers": containers(7)}});
    req["userInfo"] = json!({"containers": containers(11)});
    assert_eq!(scan(&review(req)).unwrap().shape().containers, 5);
    // A name with an escape may be any name: counted.
    let body = with_raw("obj\\u0065ct", r#"{"spec":{"c\u006fntainers":[{},{}]}}"#);
    assert_eq!(scan(&body).unwrap().shape().containers, 2);
    assert_eq!(
        parse(&body).unwrap().object["spec"]["containers"],
        json!([{}, {}])
    );
}

#[test]
fn refuses_what_costs_more_than_one_request_may_use() {
    let body = with_raw(
        "object",
        &format!("{{\"spec\":{{\"x\":{}}}}}", zeros(500_000)),
    );
    let e = parse(&body).unwrap_err();
    let ReviewError::TooCostly {
        cost_kib,
        limit_kib,
        values,
        containers,
    } = e
    else {
        panic!("{e}")
    };
    assert!(cost_kib > limit_kib && limit_kib == MAX_COST / 1024);
    // Both `object` members count (the first one's `spec` too): a repeated
    // member is built before it is replaced.
    assert_eq!((values, containers), (500_003, 0));
    assert!(
        e.to_string().contains("more than the 24576 KiB allowed"),
        "{e}"
    );
    // Many containers cost their answers, however small each is.
    let many = format!(
        "{{\"spec\":{{\"containers\":[{}{{}}]}}}}",
        "{},".repeat(5_000)
    );
    let e = parse(&with_raw("object", &many)).unwrap_err();
    assert!(
        matches!(
            e,
            ReviewError::TooCostly {
                containers: 5_001,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn skipped_values_are_checked_as_json() {
    // What a generic parse refuses is refused in a skipped member too.
    for bad in [
        "1e400",
        "\"\\ud800\"",
        "\"\\x\"",
        "01",
        "[1,]",
        "{\"a\"}",
        "tru",
    ] {
        let e = parse(&with_raw("userInfo", bad)).unwrap_err();
        assert!(matches!(e, ReviewError::NotJson { .. }), "{bad}: {e}");
    }
    let mut body = with_raw("userInfo", "\"..\"");
    let at = body.len() - 5;
    body[at] = 0xff;
    assert!(matches!(parse(&body), Err(ReviewError::NotJson { .. })));
    // A repeated member keeps its last value, as a generic parse does.
    let body = with_raw("dryRun", "null");
    assert!(!parse(&body).unwrap().dry_run);
    let body = with_raw("object", "{\"b\":2}");
    assert_eq!(parse(&body).unwrap().object, json!({"b": 2}));
}

#[test]
fn scanning_any_bytes_never_panics() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const BYTES: &[u8] = b"{}[]\",:0\\ u\xff";
    for len in 0..200 {
        for _ in 0..50 {
            let body: Vec<u8> = (0..len)
                .map(|_| BYTES[(next() % BYTES.len() as u64) as usize])
                .collect();
            let _ = parse(&body);
        }
    }
    let body = review(pod_create());
    for end in 0..body.len() {
        let _ = scan::scan(&body[..end]);
    }
    assert!(scan::scan(b"\"\\").is_ok());
}
