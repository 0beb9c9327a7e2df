//! Hostile clients for the flood suite (`flood_cgroup.rs`), from many source
//! addresses, until stopped:
//!
//! - [`Flood`]: connections that each make a listener hold the most an
//!   unauthenticated client can (an idle keep-alive connection, or a request
//!   head just short of the listener's limit and never finished), each
//!   reopened as soon as the agent closes it (shed for a newcomer, or timed
//!   out);
//! - [`Forgers`]: node-mode clients sending forged tokens, each new and as
//!   large as node mode accepts, so that each is a cache miss.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use credagent_testkit::testing::request_from;
use credagent_testkit::Issuer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::support::mint;

/// What each connection of a flood holds.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// One request (`GET path`) answered, then nothing: an idle keep-alive
    /// connection.
    Idle,
    /// A request head of this many bytes without its end.
    Partial(usize),
}

/// Connections hammering listeners until [`Flood::stop`].
#[derive(Default)]
pub struct Flood {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// How many connections a part of a [`Flood`] has opened so far.
#[derive(Debug, Clone, Default)]
pub struct Opened(Arc<AtomicUsize>);

// === impl Opened ===

impl Opened {
    /// Connections opened so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

// === impl Flood ===

impl Flood {
    /// Adds `n` connections to `addr` (Host `addr`, target `path`), spread
    /// over `sources` in turn, each holding `shape`. Returns the count of
    /// connections they have opened so far (each loop's reopenings
    /// included).
    pub fn spawn(
        &mut self,
        addr: SocketAddr,
        sources: &[Ipv4Addr],
        n: usize,
        path: &str,
        shape: Shape,
    ) -> Opened {
        let host = addr.to_string();
        let payload: Arc<[u8]> = match shape {
            Shape::Idle => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            Shape::Partial(len) => {
                let mut head =
                    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Pad: ").into_bytes();
                head.resize(len, b'a');
                head
            }
        }
        .into();
        let opened = Opened::default();
        for i in 0..n {
            let source = sources[i % sources.len()];
            let (payload, stop) = (payload.clone(), self.stop.clone());
            let opened = opened.clone();
            let idle = matches!(shape, Shape::Idle);
            self.tasks.spawn(async move {
                while !stop.is_cancelled() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        () = hold(source, addr, &payload, idle, &opened.0) => {}
                    }
                }
            });
        }
        opened
    }

    /// Closes every connection and waits for the loops to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One connection: opened, `payload` written (and its answer read when
/// `idle`), then held until the agent closes it.
async fn hold(
    source: Ipv4Addr,
    addr: SocketAddr,
    payload: &[u8],
    idle: bool,
    opened: &AtomicUsize,
) {
    let Ok(mut stream) = connect_from(source, addr).await else {
        // Out of ports or refused: the agent is not the cause (its listener
        // queues what it does not accept), so this loop pauses briefly
        // rather than spin.
        tokio::time::sleep(Duration::from_millis(10)).await;
        return;
    };
    opened.fetch_add(1, Ordering::Relaxed);
    if stream.write_all(payload).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 4096];
    if idle && read_answer(&mut stream, &mut buf).await.is_none() {
        return;
    }
    // Held until the agent closes it (or answers: a 4xx for the partial
    // head's size is the end too).
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Clients sending forged tokens (signed by a stranger, each new, as large
/// as node mode accepts) over fresh connections, until stopped.
pub struct Forgers {
    stop: CancellationToken,
    tasks: JoinSet<BTreeMap<u16, u32>>,
}

// === impl Forgers ===

impl Forgers {
    /// `n` clients to `addr`, spread over `sources`.
    pub fn start(addr: SocketAddr, sources: &[Ipv4Addr], n: usize) -> Self {
        let stranger = Arc::new(Issuer::generate_es256("pods").unwrap());
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for i in 0..n {
            let (source, stop, stranger) =
                (sources[i % sources.len()], stop.clone(), stranger.clone());
            tasks.spawn(async move {
                let host = addr.to_string();
                let mut answers = BTreeMap::new();
                for j in 0.. {
                    let token = largest_token(&stranger, &format!("forged-{i}-{j}-"));
                    let headers = [("host", host.as_str()), ("authorization", token.as_str())];
                    let sent =
                        request_from(source.into(), addr, "GET", "/v1/credentials", &headers);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        answer = sent => if let Ok(r) = answer {
                            *answers.entry(r.status).or_insert(0) += 1;
                        },
                    }
                }
                answers
            });
        }
        Self { stop, tasks }
    }

    /// Stops them; how many of each status they got.
    pub async fn stop(mut self) -> BTreeMap<u16, u32> {
        self.stop.cancel();
        let mut all = BTreeMap::new();
        while let Some(answers) = self.tasks.join_next().await {
            for (status, count) in answers.unwrap() {
                *all.entry(status).or_insert(0) += count;
            }
        }
        all
    }
}

/// A token of `signer`'s for a service account named `prefix` and padding,
/// just under node mode's 8 KiB token limit.
pub fn largest_token(signer: &Issuer, prefix: &str) -> String {
    use credagent::node::resolve::MAX_TOKEN_BYTES;
    let mut pad = MAX_TOKEN_BYTES / 3;
    loop {
        let token = mint(
            signer,
            &format!("{prefix}{}", "x".repeat(pad)),
            Duration::from_secs(3600),
        );
        if token.len() <= MAX_TOKEN_BYTES {
            return token;
        }
        pad -= (token.len() - MAX_TOKEN_BYTES) / 2 + 1;
    }
}

/// A connection to `addr` from the loopback address `source`.
pub async fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    socket.connect(addr).await
}

/// Reads one answer (head and `Content-Length` body); `None` if the
/// connection ended first.
async fn read_answer(stream: &mut TcpStream, buf: &mut [u8]) -> Option<()> {
    let mut got = Vec::new();
    let end = loop {
        let n = stream.read(buf).await.ok().filter(|n| *n > 0)?;
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < end + length {
        let n = stream.read(buf).await.ok().filter(|n| *n > 0)?;
        got.extend_from_slice(&buf[..n]);
    }
    Some(())
}

/// `count` loopback addresses `127.0.NET.1`, `127.0.NET.2`, …: as many
/// Pods (or, on a Pod's loopback, as many neighbours).
pub fn sources(net: u8, count: u8) -> Vec<Ipv4Addr> {
    (1..=count)
        .map(|host| Ipv4Addr::new(127, 0, net, host))
        .collect()
}

/// The descriptors `pid` holds open now.
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `VmHWM` (peak resident set) of `pid`, KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}
