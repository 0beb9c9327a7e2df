//! `benchtool pki` and `benchtool admit`: the admission webhook's load,
//! as the API server sends it (HTTPS, keep-alive, a few connections).
//!
//! Open loop: request `i` is due at `start + i / rate` whatever happened to
//! the ones before, and its latency is counted from that instant, so a slow
//! answer delays (and is charged to) the requests queued behind it instead
//! of silently lowering the rate (no coordinated omission). Requests go
//! round-robin over the connections; each connection sends one at a time.
//! The client's own part is reported beside it: the send lag (due → the
//! request handed to its connection) and the latency counted from the send.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Error, Flags};

/// Writes a throwaway CA and a leaf for `localhost` and `127.0.0.1`:
/// `DIR/ca.crt`, `DIR/tls.crt`, `DIR/tls.key`.
pub fn pki(flags: &Flags) -> Result<(), Error> {
    let dir = std::path::PathBuf::from(flags.get("dir")?);
    std::fs::create_dir_all(&dir)?;
    let pki = credagent_testkit::testing::test_pki();
    std::fs::write(dir.join("ca.crt"), &pki.ca_pem)?;
    std::fs::write(dir.join("tls.crt"), &pki.leaf_pem)?;
    std::fs::write(dir.join("tls.key"), &pki.leaf_key_pem)?;
    Ok(())
}

/// One due request: when it was due.
type Due = Instant;

/// The load run; prints one JSON line.
pub async fn admit(flags: &Flags) -> Result<(), Error> {
    let addr: SocketAddr = flags.get("addr")?.parse()?;
    let ca_pem = std::fs::read(flags.get("ca")?)?;
    let ca = CertificateDer::from_pem_slice(&ca_pem)?;
    let body = Bytes::from(std::fs::read(flags.get("review")?)?);
    let rate: f64 = flags.get("rate")?.parse()?;
    let secs: f64 = flags.get("secs")?.parse()?;
    let conns = flags.num("conns").unwrap_or(4).max(1);
    let total = (rate * secs).round() as usize;
    let tls = tokio_rustls::TlsConnector::from(credagent_testkit::testing::client_config(&ca));

    let mut queues = Vec::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(Duration, Duration), String>>();
    for _ in 0..conns {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls.connect(ServerName::try_from("localhost")?, tcp).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let (tx, mut rx) = mpsc::unbounded_channel::<Due>();
        queues.push(tx);
        let (body, done) = (body.clone(), done_tx.clone());
        tokio::spawn(async move {
            while let Some(due) = rx.recv().await {
                let sent = Instant::now();
                let result = one(&mut sender, body.clone()).await;
                let finished = Instant::now();
                let _ = done.send(result.map(|()| (finished - due, sent - due)));
            }
        });
    }
    drop(done_tx);

    let cpu0 = cpu_ns();
    let start = Instant::now() + Duration::from_millis(10);
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Paced by a thread of its own: nanosleep wakes within tens of
    // microseconds, where tokio's timer wheel has 1 ms slots.
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let _ = queues[i % conns].send(due);
        }
    });
    tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| "the pacing thread panicked")?;
    let mut latencies = Vec::with_capacity(total);
    let mut lags = Vec::with_capacity(total);
    let mut services = Vec::with_capacity(total);
    let mut errors = 0usize;
    let mut first_error = String::new();
    while let Some(r) = done_rx.recv().await {
        match r {
            Ok((latency, lag)) => {
                latencies.push(latency.as_secs_f64() * 1e3);
                lags.push(lag.as_secs_f64() * 1e3);
                services.push((latency - lag).as_secs_f64() * 1e3);
            }
            Err(e) => {
                errors += 1;
                if first_error.is_empty() {
                    first_error = e;
                }
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu_us = (cpu_ns() - cpu0) as f64 / 1e3;
    latencies.sort_by(f64::total_cmp);
    lags.sort_by(f64::total_cmp);
    services.sort_by(f64::total_cmp);
    let pct = |xs: &[f64], p: f64| -> f64 {
        if xs.is_empty() {
            return f64::NAN;
        }
        let k = ((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len());
        xs[k - 1]
    };
    let out = serde_json::json!({
        "requests": total,
        "ok": latencies.len(),
        "errors": errors,
        "first_error": first_error,
        "connections": conns,
        "achieved_rate": latencies.len() as f64 / wall,
        "p50_ms": pct(&latencies, 0.50),
        "p90_ms": pct(&latencies, 0.90),
        "p99_ms": pct(&latencies, 0.99),
        "p999_ms": pct(&latencies, 0.999),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "send_lag_p50_ms": pct(&lags, 0.50),
        "send_lag_p99_ms": pct(&lags, 0.99),
        "sent_p50_ms": pct(&services, 0.50),
        "sent_p99_ms": pct(&services, 0.99),
        "client_cpu_us_per_request": cpu_us / total.max(1) as f64,
    });
    println!("{out}");
    Ok(())
}

/// One AdmissionReview: 200 with a patch, or the reason it was not.
async fn one(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    body: Bytes,
) -> Result<(), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::post("/mutate?timeout=5s")
        .header("host", "credagent-webhook.credagent-system.svc")
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let rsp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = rsp.status();
    let answer = rsp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 || !answer.windows(9).any(|w| w == b"\"patch\":\"") {
        return Err(format!(
            "status {status}, {} bytes without a patch",
            answer.len()
        ));
    }
    Ok(())
}

/// CPU time (user + system) of every thread of this process, ns.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
