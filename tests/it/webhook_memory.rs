//! What reading and answering an AdmissionReview costs in memory, measured
//! by a counting allocator: never more than the pre-scan counted
//! (`review::Scanned::cost`, what the server reserves from its budget), for
//! real Pods and for every hostile shape; and a hostile body is refused
//! without being built (the issue's 3 MiB review of tiny values peaked at
//! 176 MB).
//!
//! Through the server: such reviews get 400/413 and their metric, and a
//! request that finds the memory budget in use gets 503 with Retry-After.
//!
//! This module installs the test binary's global allocator: it counts the
//! bytes each thread has allocated and their peak, which only the thread
//! that asks reads, so the other tests running beside it are not disturbed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use credagent::cli::InjectArgs;
use credagent::webhook::mutate::review;
use credagent::webhook::{self, Entry};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::webhook::{fixture, WebhookRig};

/// The system allocator, counting per thread.
struct Counting;

thread_local! {
    /// Bytes live on this thread (allocated here, not freed here) and their
    /// peak since the last [`measure`].
    static LIVE: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|c| {
        let (live, peak) = c.get();
        let live = live + delta;
        c.set((live, peak.max(live)));
    });
}

// SAFETY: every call goes to the system allocator unchanged; the counting
// only touches a const-initialised thread-local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as a copy: old and new are both live for a moment.
        count(new_size as isize);
        count(-(layout.size() as isize));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result and the peak of the bytes this thread
/// allocated during it (beyond what was live before).
fn measure<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = LIVE.with(|c| {
        let (live, _) = c.get();
        c.set((live, live));
        live
    });
    let out = f();
    let peak = LIVE.with(|c| c.get().1);
    (out, (peak - before).max(0) as u64)
}

/// What the server does with a body, after reading it: scan, read, decide,
/// answer. Returns the scan's cost (`None` if refused) and the answer.
fn serve(body: &[u8], config: &InjectArgs) -> (Option<u64>, Option<Vec<u8>>) {
    let Ok(scanned) = review::scan(body) else {
        return (None, None);
    };
    let cost = scanned.cost();
    let answer = scanned.parse().ok().map(|req| {
        let decision = webhook::admit(&req, Entry::Pod, None, config);
        webhook::respond(&req, &decision).to_bytes()
    });
    (Some(cost), answer)
}

/// The most demanding configuration: every optional variable injected.
fn config() -> InjectArgs {
    InjectArgs::from_flags([
        "--sidecar-image",
        "credagent:test",
        "--org-id",
        "org",
        "--region",
        "US-EAST-04A",
        "--s3-endpoint",
        "http://cwlota.com",
        "--sidecar-https-proxy",
        "http://proxy.example:3128",
        "--sidecar-no-proxy",
        ".svc",
    ])
    .expect("valid flags")
}

/// `bare-pod.json` (opted in) with its Pod's `spec` fields replaced.
fn pod_with(spec: Value, annotations: Value) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture("bare-pod.json")).unwrap();
    let pod = &mut review["request"]["object"];
    for (k, v) in spec.as_object().unwrap() {
        pod["spec"][k] = v.clone();
    }
    for (k, v) in annotations.as_object().unwrap() {
        pod["metadata"]["annotations"][k] = v.clone();
    }
    serde_json::to_vec(&review).unwrap()
}

/// A large real Pod: `containers` containers of `envs` variables each,
/// `annotations` annotations, and managedFields listing them all, as the
/// API server sends it.
pub fn large_pod(containers: usize, envs: usize, annotations: usize) -> Vec<u8> {
    let mut fields = serde_json::Map::new();
    let list: Vec<Value> = (0..containers)
        .map(|c| {
            let env: Vec<Value> = (0..envs)
                .map(|i| json!({"name": format!("SETTING_{c}_{i:04}"), "value": format!("value-{i}-abcdefghijklmnop")}))
                .collect();
            let mut f = serde_json::Map::new();
            f.insert(".".into(), json!({}));
            for e in &env {
                f.insert(format!("k:{{\"name\":\"{}\"}}", e["name"].as_str().unwrap()), json!({".": {}, "f:name": {}, "f:value": {}}));
            }
            fields.insert(format!("k:{{\"name\":\"c{c}\"}}"), json!({".": {}, "f:env": f, "f:image": {}, "f:name": {}}));
            json!({"name": format!("c{c}"), "image": format!("registry.example.com/team/app-{c}:1.2.3"), "env": env,
                   "ports": [{"containerPort": 8000 + c, "protocol": "TCP"}],
                   "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                   "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"})
        })
        .collect();
    let notes: serde_json::Map<String, Value> = (0..annotations)
        .map(|i| {
            (
                format!("example.com/annotation-{i:05}"),
                json!("v".repeat(64)),
            )
        })
        .collect();
    let mut review: Value =
        serde_json::from_slice(&pod_with(json!({"containers": list}), Value::Object(notes)))
            .unwrap();
    review["request"]["object"]["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
        ["f:containers"] = Value::Object(fields);
    serde_json::to_vec(&review).unwrap()
}

/// `n` copies of `item` as a JSON list.
fn list(item: &str, n: usize) -> String {
    format!("[{}{item}]", format!("{item},").repeat(n - 1))
}

/// `bare-pod.json` with raw JSON as the value of its Pod's `spec.x`.
fn pod_holding(raw: &str) -> Vec<u8> {
    let body = String::from_utf8(fixture("bare-pod.json")).unwrap();
    body.replacen("\"spec\": {", &format!("\"spec\": {{\"x\": {raw}, "), 1)
        .into_bytes()
}

#[test]
fn reading_and_answering_never_costs_more_than_the_scan_counted() {
    let config = config();
    let envs = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"name": format!("V{i}"), "value": "1"}))
            .collect()
    };
    let mut bodies: Vec<(String, Vec<u8>)> = vec![
        ("large real Pod".into(), large_pod(20, 150, 500)),
        (
            "dense env".into(),
            pod_with(
                json!({"containers": [{"name": "a", "env": envs(20_000)}]}),
                json!({}),
            ),
        ),
        // Many containers, each answered with every variable, a mount and
        // a warning naming its envFrom.
        (
            "many containers".into(),
            pod_with(
                json!({"containers": (0..600).map(|i| json!({"name": format!("c{i}"),
            "envFrom": [{"secretRef": {"name": "s".repeat(200)}}]})).collect::<Value>()}),
                json!({}),
            ),
        ),
        (
            "containers with their own keys".into(),
            pod_with(
                json!({"containers": (0..600).map(|i| json!({"name": format!("c{i}"),
            "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "x"}, {"name": "AWS_PROFILE", "value": "p"},
                    {"name": "AWS_ROLE_ARN", "value": "r"}, {"name": "AWS_SESSION_TOKEN", "value": "t"}]})).collect::<Value>()}),
                json!({}),
            ),
        ),
        // Long names, quoted in warnings and the view (credential-process
        // mode, a conflicting AWS_CONFIG_FILE and an envFrom each).
        (
            "long names".into(),
            pod_with(
                json!({"containers": (0..20).map(|i| json!({"name": format!("c{i}{}", "n".repeat(20_000)),
            "env": [{"name": "AWS_CONFIG_FILE", "value": "/x"}],
            "envFrom": [{"secretRef": {"name": "s".repeat(20_000)}}, {"configMapRef": {"name": "m".repeat(20_000)}}]})).collect::<Value>()}),
                json!({"credagent.io/credential-process": "true", "credagent.io/skip-containers": "x".repeat(20_000)}),
            ),
        ),
        (
            "long strings".into(),
            pod_holding(&list(&format!("\"{}\"", "x".repeat(4_000)), 200)),
        ),
        (
            "escaped strings".into(),
            pod_holding(&list(&format!("\"{}\"", "\\n".repeat(50_000)), 4)),
        ),
        (
            "one long escaped string".into(),
            pod_holding(&format!("\"{}\"", "\\u00e9".repeat(300_000))),
        ),
        (
            "nested to the limit".into(),
            pod_holding(&format!(
                "{}0{}",
                "[".repeat(review::MAX_DEPTH - 5),
                "]".repeat(review::MAX_DEPTH - 5)
            )),
        ),
    ];
    for (name, item, n) in [
        ("zeros", "0", 120_000),
        ("empty lists", "[]", 100_000),
        ("empty objects", "{}", 100_000),
        ("lists of one", "[0]", 40_000),
        ("objects of one", "{\"\":0}", 25_000),
        (
            "objects of four",
            "{\"a\":0,\"b\":0,\"c\":0,\"d\":0}",
            15_000,
        ),
        (
            "objects of eight",
            "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0}",
            8_000,
        ),
        ("lists of lists", "[[0]]", 20_000),
        ("short strings", "\"ab\"", 100_000),
    ] {
        bodies.push((name.into(), pod_holding(&list(item, n))));
    }
    let wide: String = (0..60_000).map(|i| format!("\"k{i}\":0,")).collect();
    bodies.push((
        "one wide object".into(),
        pod_holding(&format!("{{{}\"k\":0}}", wide)),
    ));
    for f in std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission"
    ))
    .unwrap()
    {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") && !path.ends_with("cases.json") {
            bodies.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let mut report = Vec::new();
    for (name, body) in &bodies {
        let ((cost, answer), peak) = measure(|| serve(body, &config));
        let cost = cost.unwrap_or_else(|| panic!("{name}: refused by the scan"));
        assert!(answer.is_some(), "{name}: not read");
        assert!(peak <= cost, "{name}: {peak} bytes used, {cost} counted");
        report.push(format!(
            "{name}: {} bytes, {peak} used ({:.1}/byte), {cost} counted ({:.2}x)",
            body.len(),
            peak as f64 / body.len() as f64,
            cost as f64 / peak as f64
        ));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn a_hostile_review_is_refused_without_being_built() {
    // The issue's body: 3 MiB of tiny values in the request. Skipped: the
    // request is refused for what it lacks, and nothing of it is built.
    let zeros = list("0", 1_500_000);
    let hostile = format!(
        "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{{\"uid\":\"u\",\"x\":{zeros}}}}}"
    );
    assert!(hostile.len() > 3_000_000);
    let (result, peak) = measure(|| review::parse(hostile.as_bytes()).map(drop));
    assert!(
        matches!(result, Err(review::ReviewError::Invalid(_))),
        "{result:?}"
    );
    assert!(peak < 64 * 1024, "{peak} bytes to refuse it");
    // The same values in the Pod: refused by the scan, before any of it is
    // built.
    let in_pod = pod_holding(&zeros);
    let (result, peak) = measure(|| review::parse(&in_pod).map(drop));
    assert!(
        matches!(result, Err(review::ReviewError::TooCostly { .. })),
        "{result:?}"
    );
    assert!(peak < 64 * 1024, "{peak} bytes to refuse it");
    // Nested past the limit, in a member that is skipped.
    let deep = pod_holding(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    let (result, peak) = measure(|| review::parse(&deep).map(drop));
    assert_eq!(result, Err(review::ReviewError::TooDeep));
    assert!(peak < 64 * 1024, "{peak} bytes to refuse it");
}

/// The status, `Retry-After` and JSON body of one POST /mutate on a fresh
/// connection; `Err` if the connection fails (the process died).
pub async fn post(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    body: Vec<u8>,
) -> Result<(u16, Option<String>, Value), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(credagent_testkit::testing::client_config(ca))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let rsp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = rsp.status().as_u16();
    let retry = rsp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = rsp.into_body().collect().await.map_err(|e| e.to_string())?;
    let json = serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null);
    Ok((status, retry, json))
}

/// Opens a TLS connection and sends a head announcing `len` bytes of body
/// and only a few of them; the connection is kept open (a slow upload).
async fn slow_upload(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    len: usize,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(credagent_testkit::testing::client_config(ca))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!("POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{{\"apiVersi");
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_costly_reviews_and_sheds_load_past_its_budget() {
    let rig = WebhookRig::start(
        &["--sidecar-image", "credagent:test", "--org-id", "org"],
        None,
    )
    .await;
    let (addr, ca) = (rig.webhook.addr, rig.ca.clone());
    // Too deep (in a skipped member), too costly (thousands of containers
    // in a 30 KB body), and a typical Pod: 400, 413, 200.
    let pod = String::from_utf8(fixture("bare-pod.json")).unwrap();
    let deep = pod.replacen(
        "\"userInfo\": {",
        &format!(
            "\"userInfo\": {{\"x\": {}{}, ",
            "[".repeat(70),
            "]".repeat(70)
        ),
        1,
    );
    let costly = pod.replacen(
        "\"spec\": {",
        &format!("\"spec\": {{\"initContainers\": {}, ", list("{}", 2_000)),
        1,
    );
    for (body, want, reason) in [(deep, 400, "too_deep"), (costly, 413, "too_costly")] {
        let (status, _, answer) = post(addr, &ca, body.into_bytes()).await.unwrap();
        assert_eq!(status, want, "{answer}");
        assert!(answer["message"].is_string(), "{answer}");
        assert_eq!(rig.admissions("error", reason), 1.0);
    }
    // Two slow uploads of 3 MiB hold 6 of the 8 MiB bodies may use at once:
    // a third waits 1 s for room, then gets 503 with Retry-After; a small
    // body still fits, and once the uploads are gone, so does a large one.
    let mut uploads = Vec::new();
    for _ in 0..2 {
        uploads.push(slow_upload(addr, &ca, 3 << 20).await);
    }
    let started = tokio::time::Instant::now();
    let mut third = slow_upload(addr, &ca, 3 << 20).await;
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(rig.admissions("error", "overloaded"), 1.0);
    let mut big = fixture("bare-pod.json");
    big.resize(3 << 20, b' ');
    let (status, _, _) = post(addr, &ca, fixture("bare-pod.json")).await.unwrap();
    assert_eq!(status, 200);
    drop(uploads);
    let mut status = 0;
    for _ in 0..100 {
        status = post(addr, &ca, big.clone()).await.unwrap().0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    rig.stop().await;
}
