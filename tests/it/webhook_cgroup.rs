//! `credagent webhook`, the binary, inside a memory cgroup with the chart's
//! 64 MiB limit: hostile AdmissionReviews (the issue's 3 MiB of tiny
//! values, the same values in the Pod, nesting past the limit), a real Pod
//! of about 1 MB and a typical one, one after the other and then all at
//! once; then answers a client never reads. The process must survive, stay
//! under its limit without an OOM kill, refuse the hostile ones (400/413,
//! or 503 with Retry-After when its memory budget is in use) and keep
//! answering the real ones, and close connections whose answers are not
//! read. Before the bounded reader, the first hostile review got it
//! OOM-killed; before answers were written from their own buffer, about
//! 160 unread ones did (each kept in the connection's write buffer); with
//! that but the kernel's send buffer left to grow, the kernel took every
//! answer whole and none was ever refused.
//!
//! Needs root (a cgroup v1 memory controller at /sys/fs/cgroup/memory, as
//! on CI's machines): skipped with the reason printed otherwise, a failure
//! when `CREDAGENT_TEST_REQUIRE_ALL` is set (scripts/test.sh sets it).

use std::net::SocketAddr;
use std::time::Duration;

use credagent::server::SEND_TIMEOUT;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;

use crate::cgroup::Cgroup;
use crate::support::{free_port, metric, request, test_pki};
use crate::webhook::fixture;
use crate::webhook_memory::{large_pod, post};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");
/// The chart's memory limit for the webhook.
const LIMIT: u64 = 64 * 1024 * 1024;
/// `VmHWM` of `pid`, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Sends `body` from a socket with a 4 KiB receive buffer and reads only
/// the status line of the answer; returns the status and the connection,
/// left open with the rest of the answer unread.
async fn unread_answer(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    body: &[u8],
) -> Result<(u16, tokio_rustls::client::TlsStream<tokio::net::TcpStream>), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(credagent_testkit::testing::client_config(ca))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(body).await.map_err(|e| e.to_string())?;
    let mut status = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(30), tls.read_exact(&mut status))
        .await
        .map_err(|_| "no answer in 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let code = std::str::from_utf8(&status[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not a status line: {status:?}"))?;
    Ok((code, tls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_outlives_hostile_reviews_inside_its_memory_limit() {
    let cgroup = match Cgroup::create("webhook", LIMIT) {
        Ok(c) => c,
        Err(reason) => return crate::cgroup::unavailable(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pki.leaf_pem).unwrap();
    std::fs::write(&key, &pki.leaf_key_pem).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let args: Vec<String> = [
        "webhook",
        "--listen",
        &addr.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--tls-cert-file",
        &cert.to_string_lossy(),
        "--tls-key-file",
        &key.to_string_lossy(),
        "--sidecar-image",
        "credagent:test",
        "--org-id",
        "org",
    ]
    .map(String::from)
    .to_vec();
    let mut webhook = cgroup.spawn(BIN, &args, dir.path().join("webhook.log"));
    let pid = webhook.pid;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while request(admin, None, "GET", "/readyz", &[], "")
        .await
        .map(|r| r.status)
        != Ok(200)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook never became ready"
        );
        webhook.alive(&cgroup);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let envelope = |request: &str| {
        format!("{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{request}}}")
            .into_bytes()
    };
    let zeros = format!("[{}0]", "0,".repeat(1_500_000 - 1));
    let issue = envelope(&format!("{{\"uid\":\"u\",\"x\":{zeros}}}"));
    let pod = String::from_utf8(fixture("bare-pod.json")).unwrap();
    let in_pod = pod
        .replacen("\"spec\": {", &format!("\"spec\": {{\"x\": {zeros}, "), 1)
        .into_bytes();
    let deep = pod
        .replacen(
            "\"userInfo\": {",
            &format!(
                "\"userInfo\": {{\"x\": {}{}, ",
                "[".repeat(100),
                "]".repeat(100)
            ),
            1,
        )
        .into_bytes();
    let large = large_pod(45, 150, 500);
    assert!(issue.len() > 3_000_000 && in_pod.len() <= 3 * 1024 * 1024);
    assert!(large.len() > 900_000, "{}", large.len());

    // One at a time: each refused for what it is, the real ones answered.
    for (name, body, want) in [
        ("the issue's review", issue.clone(), 400),
        ("tiny values in the Pod", in_pod.clone(), 413),
        ("nested too deep", deep, 400),
        ("a 1 MB Pod", large.clone(), 200),
        ("a typical Pod", fixture("bare-pod.json"), 200),
    ] {
        let (status, _, answer) = post(addr, &pki.ca_der, body).await.unwrap_or_else(|e| {
            panic!(
                "{name}: no answer ({e}); the webhook was OOM-killed {} times",
                cgroup.usage().oom_kills
            )
        });
        assert_eq!(status, want, "{name}: {answer}");
        if want == 200 {
            assert!(answer["response"]["patch"].is_string(), "{name}: {answer}");
        }
    }
    let sequential = cgroup.take_peak();

    // All at once: each answered, or told to retry while the budget is in use.
    let mut sent = tokio::task::JoinSet::new();
    for i in 0..18 {
        let (body, name) = match i % 3 {
            0 => (large.clone(), "large"),
            1 => (in_pod.clone(), "hostile"),
            _ => (fixture("bare-pod.json"), "typical"),
        };
        let ca = pki.ca_der.clone();
        sent.spawn(async move { (name, post(addr, &ca, body).await) });
    }
    let mut answered = std::collections::BTreeMap::<(&str, u16), u32>::new();
    while let Some(joined) = sent.join_next().await {
        let (name, result) = joined.unwrap();
        let (status, retry, answer) = result.unwrap_or_else(|e| panic!("{name}: no answer ({e})"));
        let allowed: &[u16] = if name == "hostile" {
            &[413, 503]
        } else {
            &[200, 503]
        };
        assert!(allowed.contains(&status), "{name}: {status} {answer}");
        if status == 503 {
            assert_eq!(retry.as_deref(), Some("1"), "{name}");
        }
        *answered.entry((name, status)).or_default() += 1;
    }
    assert!(
        answered.contains_key(&("large", 200)) && answered.contains_key(&("typical", 200)),
        "{answered:?}"
    );
    let burst = cgroup.take_peak();
    // Still serving.
    let (status, _, _) = post(addr, &pki.ca_der, fixture("bare-pod.json"))
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Answers never read: a review of 600 containers has a ~310 KB answer;
    // its client reads the status line only. Each answer keeps its share of
    // the budget until the client has taken it (all but a few dozen KB, in
    // the kernel's and TLS's send buffers), so the budget fills and the
    // next review is told to retry. The webhook closes a connection whose
    // answer makes no progress for its send timeout, giving the share
    // back: the same review is answered again while those clients still
    // hold their ends.
    let containers: Vec<String> = (0..600).map(|i| format!("{{\"name\":\"c{i}\"}}")).collect();
    let many = pod
        .replacen(
            "\"spec\": {",
            &format!(
                "\"spec\": {{\"initContainers\": [{}], ",
                containers.join(",")
            ),
            1,
        )
        .into_bytes();
    let (status, _, answer) = post(addr, &pki.ca_der, many.clone()).await.unwrap();
    assert_eq!(status, 200);
    let answer_bytes = answer.to_string().len();
    assert!(answer_bytes > 300_000, "{answer_bytes}");
    let mut unread = Vec::new();
    let mut shed = false;
    for _ in 0..200 {
        let (status, connection) = unread_answer(addr, &pki.ca_der, &many)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} answers left unread, then no answer ({e}); OOM kills: {}",
                    unread.len(),
                    cgroup.usage().oom_kills
                )
            });
        unread.push(connection);
        if status == 503 {
            shed = true;
            break;
        }
        assert_eq!(status, 200);
    }
    assert!(shed, "200 answers left unread and none refused");
    let held = unread.len() - 1;
    let timed_out = || async {
        let scrape = request(admin, None, "GET", "/metrics", &[], "")
            .await
            .unwrap();
        metric(
            &scrape.body,
            r#"credagent_connection_timeouts_total{listener="webhook",phase="send"}"#,
        )
        .unwrap_or(0.0)
    };
    assert_eq!(timed_out().await, 0.0, "closed before the send timeout");
    // Each attempt waits up to the budget's 1 s for room before a 503.
    let deadline = tokio::time::Instant::now() + SEND_TIMEOUT + Duration::from_secs(10);
    let status = loop {
        let status = post(addr, &pki.ca_der, many.clone()).await.unwrap().0;
        if status == 200 || tokio::time::Instant::now() > deadline {
            break status;
        }
    };
    assert_eq!(status, 200, "{held} answers unread for {SEND_TIMEOUT:?}");
    assert!(timed_out().await >= 1.0, "answered, yet no send timed out");
    drop(unread);

    webhook.alive(&cgroup);
    let unread = cgroup.take_peak();
    assert_eq!(cgroup.usage().oom_kills, 0);
    for (phase, peak) in [
        ("sequence", sequential),
        ("burst", burst),
        ("unread", unread),
    ] {
        assert!(peak < LIMIT, "{phase}: peak {peak} B");
    }
    println!(
        "webhook in a {} MiB cgroup, peak usage: {} KiB for the sequence, {} KiB for the burst {answered:?}, {} KiB with {held} unread answers of {answer_bytes} B; VmHWM {} KiB",
        LIMIT >> 20,
        sequential >> 10,
        burst >> 10,
        unread >> 10,
        peak_rss_kib(pid)
    );
    drop(webhook);
    drop(cgroup);
}
