//! The load and measurement clients behind `bench/run.sh` (see BENCHMARKS.md).
//!
//! ```text
//! benchtool conns --addr ADDR --n N --auth-file PATH [--sources K] [--pending 1]
//!     Opens N keep-alive connections, sends one authorized GET /v1/credentials
//!     on each, prints `ready <ok> <failed>` and keeps them open. Each line on
//!     stdin is answered with `open <K>` (connections the server has not
//!     closed); EOF closes them all and exits. With --sources K the
//!     connections come from K loopback addresses (127.4.0.1...), as from K
//!     Pods; with --pending 1 the answers are not awaited (`ready` once all
//!     requests are sent: a node agent holding them on a fill).
//! benchtool herd-retry --addr ADDR --tokens PATH --per N --sources K
//!     Node-mode herd of clients that behave like botocore's container
//!     provider: each gives up after 2 s, sleeps 1 s and tries again until
//!     it has credentials (at most 60 attempts). The i-th token's clients
//!     come from address i mod K (127.3.x.y). Prints one JSON line: time to
//!     credentials per client (p50/p99/max), attempts, failures.
//! benchtool herd --addr ADDR --tokens PATH --per N
//!     Node-mode herd: for every token in PATH (one per line), N connections.
//!     All connections are opened first, then every request is sent at once;
//!     prints one JSON line with counts and latency percentiles (send to last
//!     body byte, per request).
//! benchtool token-pickup --n N --dir DIR
//!     In-process token source (credagent::token::spawn, production defaults)
//!     on a kubelet-style volume in DIR; N swaps with credagent_testkit::kubelet's port
//!     of AtomicWriter; prints one JSON line with swap -> publish latencies.
//! benchtool sdk-client --url URL --token-file PATH --spawn-ns NS
//!                      [--hour-secs S --advisory-secs A --poll-ms P]
//!     One "SDK process": what an SDK's container-credentials provider does
//!     (read the token file, GET the URL with it as `Authorization`, parse
//!     the ECS JSON), with no async runtime so that it starts in about a
//!     millisecond. NS is the parent's wall clock (Unix ns) just before it
//!     started this process. With --hour-secs it then keeps "using" the
//!     credentials until S seconds after NS, fetching again whenever fewer
//!     than A seconds of their life remain (botocore's advisory refresh).
//!     Prints one JSON line: first_ms (spawn -> credentials in hand),
//!     fetch_ms (the first GET alone), fetches, errors.
//! benchtool pki --dir DIR
//!     Writes a throwaway CA and a leaf for localhost/127.0.0.1 (DIR/ca.crt,
//!     DIR/tls.crt, DIR/tls.key) for `credagent webhook`.
//! benchtool admit --addr ADDR --ca PATH --review PATH --rate N --secs S [--conns C]
//!     The admission webhook's load: POST /mutate with the AdmissionReview in
//!     PATH over C (default 4) kept-alive HTTPS connections, N a second for S
//!     seconds, open loop (latency from each request's due time); every
//!     answer must be a 200 with a patch. Prints one JSON line: percentiles
//!     from the due time and from the send, errors, the achieved rate, the
//!     client's own send lag and CPU time.
//! ```
//!
//! The HTTP client is deliberately minimal (one request at a time per
//! connection, `Content-Length` bodies only): it measures the server, not a
//! client library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

#[path = "benchtool/admit.rs"]
mod admit;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Connections being opened at once: keeps the listener's accept queue
/// (backlog 1024) from overflowing into SYN retransmits, which would measure
/// the kernel's 1 s retry timer instead of the server.
const CONNECT_CONCURRENCY: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sdk-client") {
        // No async runtime: a client process should start as fast as it can.
        if let Err(e) = Flags::parse(&args[1..]).and_then(|f| sdk_client(&f)) {
            eprintln!("benchtool: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("pki") {
        if let Err(e) = Flags::parse(&args[1..]).and_then(|f| admit::pki(&f)) {
            eprintln!("benchtool: {e}");
            std::process::exit(1);
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async move {
        match args.first().map(String::as_str) {
            Some("conns") => conns(&Flags::parse(&args[1..])?).await,
            Some("herd") => herd(&Flags::parse(&args[1..])?).await,
            Some("herd-retry") => herd_retry(&Flags::parse(&args[1..])?).await,
            Some("token-pickup") => token_pickup(&Flags::parse(&args[1..])?).await,
            Some("admit") => admit::admit(&Flags::parse(&args[1..])?).await,
            _ => Err(
                "usage: benchtool conns|herd|herd-retry|token-pickup|sdk-client|pki|admit [--flag value]..."
                    .into(),
            ),
        }
    });
    if let Err(e) = result {
        eprintln!("benchtool: {e}");
        std::process::exit(1);
    }
}

/// `--name value` pairs.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Self, Error> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {name}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            out.push((name.to_owned(), value.clone()));
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Result<&str, Error> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("missing --{name}").into())
    }

    fn num(&self, name: &str) -> Result<usize, Error> {
        Ok(self.get(name)?.parse()?)
    }

    fn num_or(&self, name: &str, default: usize) -> Result<usize, Error> {
        match self.0.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.parse()?),
            None => Ok(default),
        }
    }
}

/// Connects to `addr` from the local address `source` (`None`: any).
async fn connect_from(
    source: Option<std::net::IpAddr>,
    addr: SocketAddr,
) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// The `k`-th of `n` loopback source addresses under `127.PREFIX.0.0/16`.
fn source(prefix: u8, k: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, prefix, (k / 250) as u8, 1 + (k % 250) as u8])
}

/// Sends one GET with these extra header lines and reads the answer; returns
/// the status.
async fn get(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<u16, Error> {
    stream.write_all(request).await?;
    read_response(stream, buf).await
}

/// Reads one response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u16, Error> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            let status: u16 = head.split(' ').nth(1).ok_or("no status line")?.parse()?;
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .ok_or("no content-length")?;
            let total = end + 4 + length;
            while buf.len() < total {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err("connection closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn request(host: &str, authorization: &str) -> Vec<u8> {
    format!(
        "GET /v1/credentials HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n\r\n"
    )
    .into_bytes()
}

/// Opens `n` connections with at most [`CONNECT_CONCURRENCY`] connects in
/// flight, in order.
async fn connect_all(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>, Error> {
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        set.spawn(async move {
            let stream = TcpStream::connect(addr).await;
            drop(permit);
            (i, stream)
        });
    }
    let mut out: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, stream) = joined?;
        let stream = stream?;
        stream.set_nodelay(true)?;
        out[i] = Some(stream);
    }
    Ok(out.into_iter().flatten().collect())
}

// === conns ===

async fn conns(flags: &Flags) -> Result<(), Error> {
    let addr: SocketAddr = flags.get("addr")?.parse()?;
    let n = flags.num("n")?;
    let sources = flags.num_or("sources", 0)?;
    let pending = flags.num_or("pending", 0)? == 1;
    let auth = std::fs::read_to_string(flags.get("auth-file")?)?;
    let req = Arc::new(request(&addr.to_string(), auth.trim()));
    // Connect and ask at once on each connection: the server closes a
    // connection that sends no request head within its header timeout.
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let req = req.clone();
        let from = (sources > 0).then(|| source(4, i % sources));
        set.spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut stream = connect_from(from, addr).await.ok()?;
            let _ = stream.set_nodelay(true);
            let status = if pending {
                stream.write_all(&req).await.ok()?;
                200
            } else {
                get(&mut stream, &req, &mut buf).await.unwrap_or(0)
            };
            drop(permit);
            Some((status, stream))
        });
    }
    let mut open = Vec::with_capacity(n);
    let (mut ok, mut failed) = (0usize, 0usize);
    while let Some(joined) = set.join_next().await {
        match joined? {
            Some((200, stream)) => {
                ok += 1;
                open.push(stream);
            }
            Some((_, stream)) => {
                failed += 1;
                open.push(stream);
            }
            None => failed += 1,
        }
    }
    println!("ready {ok} {failed}");
    // Lines from stdin, read on a blocking thread (tokio's stdin needs a
    // feature the crate does not enable).
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lines() {
            if line.is_err() || line_tx.blocking_send(()).is_err() {
                break;
            }
        }
    });
    while line_rx.recv().await.is_some() {
        let mut still_open = 0;
        let mut byte = [0u8; 1];
        for s in &open {
            // WouldBlock: nothing to read and not closed.
            if let Err(e) = s.try_read(&mut byte) {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    still_open += 1;
                }
            }
        }
        println!("open {still_open}");
    }
    Ok(())
}

// === herd ===

async fn herd(flags: &Flags) -> Result<(), Error> {
    let addr: SocketAddr = flags.get("addr")?.parse()?;
    let per = flags.num("per")?;
    let tokens: Vec<String> = std::fs::read_to_string(flags.get("tokens")?)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let host = addr.to_string();
    let requests: Vec<Arc<Vec<u8>>> = tokens.iter().map(|t| Arc::new(request(&host, t))).collect();
    let n = tokens.len() * per;
    let started_connect = Instant::now();
    let streams = connect_all(addr, n).await?;
    let connect_ms = started_connect.elapsed().as_secs_f64() * 1e3;
    let (go_tx, go_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        let req = requests[i % requests.len()].clone();
        let mut go = go_rx.clone();
        set.spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let _ = go.wait_for(|g| *g).await;
            let sent = Instant::now();
            let status = get(&mut stream, &req, &mut buf).await.unwrap_or(0);
            (status, sent.elapsed())
        });
    }
    // Let every task reach its wait before the gun.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    go_tx.send_replace(true);
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(joined) = set.join_next().await {
        let (status, latency) = joined?;
        *statuses.entry(status).or_default() += 1;
        if status != 200 {
            failed += 1;
        }
        latencies.push(latency);
    }
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    latencies.sort();
    let pct = |p: f64| -> f64 {
        let idx = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx].as_secs_f64() * 1e3
    };
    let statuses: Vec<String> = statuses
        .iter()
        .map(|(s, c)| format!("\"{s}\":{c}"))
        .collect();
    println!(
        "{{\"requests\":{n},\"ok\":{},\"failed\":{failed},\"statuses\":{{{}}},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"wall_ms\":{wall_ms:.3},\"connect_ms\":{connect_ms:.3}}}",
        n - failed,
        statuses.join(","),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}

// === herd-retry ===

async fn herd_retry(flags: &Flags) -> Result<(), Error> {
    const TIMEOUT: Duration = Duration::from_secs(2);
    const SLEEP: Duration = Duration::from_secs(1);
    const MAX_ATTEMPTS: u32 = 60;
    let addr: SocketAddr = flags.get("addr")?.parse()?;
    let per = flags.num("per")?;
    let sources = flags.num("sources")?.max(1);
    let tokens: Vec<String> = std::fs::read_to_string(flags.get("tokens")?)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let host = addr.to_string();
    let (go_tx, go_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let req = Arc::new(request(&host, token));
        let from = source(3, i % sources);
        for _ in 0..per {
            let (req, mut go) = (req.clone(), go_rx.clone());
            set.spawn(async move {
                let _ = go.wait_for(|g| *g).await;
                let started = Instant::now();
                let mut buf = Vec::with_capacity(1024);
                for attempt in 1..=MAX_ATTEMPTS {
                    let once = async {
                        let mut stream = connect_from(Some(from), addr).await?;
                        let _ = stream.set_nodelay(true);
                        get(&mut stream, &req, &mut buf).await
                    };
                    if let Ok(Ok(200)) = tokio::time::timeout(TIMEOUT, once).await {
                        return Some((started.elapsed(), attempt));
                    }
                    tokio::time::sleep(SLEEP).await;
                }
                None
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    go_tx.send_replace(true);
    let mut times = Vec::new();
    let mut attempts = std::collections::BTreeMap::<u32, usize>::new();
    let mut failed = 0usize;
    while let Some(joined) = set.join_next().await {
        match joined? {
            Some((t, a)) => {
                times.push(t);
                *attempts.entry(a).or_default() += 1;
            }
            None => failed += 1,
        }
    }
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    times.sort();
    let pct = |p: f64| -> f64 {
        if times.is_empty() {
            return 0.0;
        }
        let idx = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[idx].as_secs_f64() * 1e3
    };
    let attempts: Vec<String> = attempts
        .iter()
        .map(|(a, c)| format!("\"{a}\":{c}"))
        .collect();
    println!(
        "{{\"clients\":{},\"ok\":{},\"failed\":{failed},\"attempts\":{{{}}},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1},\"wall_ms\":{wall_ms:.1}}}",
        tokens.len() * per,
        times.len(),
        attempts.join(","),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}

// === token-pickup ===

async fn token_pickup(flags: &Flags) -> Result<(), Error> {
    use credagent_testkit::{Issuer, TokenSpec};
    let n = flags.num("n")?;
    let dir = PathBuf::from(flags.get("dir")?);
    let issuer = Issuer::generate_es256("bench")?;
    let tokens = (0..=n)
        .map(|i| {
            let spec = TokenSpec {
                service_account: format!("bench-{i}"),
                ..TokenSpec::default()
            };
            issuer.service_account_token(&spec, SystemTime::now())
        })
        .collect::<Result<Vec<_>, _>>()?;
    credagent_testkit::kubelet::atomic_write(&dir, "oidc-token", tokens[0].as_bytes(), 0o644)?;
    let metrics = credagent::metrics::Metrics::new()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = credagent::token::TokenSourceConfig::new(dir.join("oidc-token"));
    let mut rx = credagent::token::spawn(
        config,
        credagent::clock::system(),
        credagent::metrics::TokenMetrics::register(&metrics)?,
        shutdown.clone(),
    );
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(Option::is_some)).await??;
    let mut samples = Vec::with_capacity(n);
    for token in &tokens[1..] {
        // Quiet time between swaps, as between two kubelet rotations.
        tokio::time::sleep(Duration::from_millis(50)).await;
        rx.borrow_and_update();
        let t0 = Instant::now();
        credagent_testkit::kubelet::atomic_write(&dir, "oidc-token", token.as_bytes(), 0o644)?;
        tokio::time::timeout(Duration::from_secs(130), rx.changed()).await??;
        samples.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    shutdown.cancel();
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.3}")).collect();
    println!("{{\"samples_ms\":[{}]}}", list.join(","));
    Ok(())
}

// === sdk-client ===

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn sdk_client(flags: &Flags) -> Result<(), Error> {
    let url = flags.get("url")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://HOST:PORT/PATH")?;
    let (authority, path) = rest.split_at(rest.find('/').ok_or("--url has no path")?);
    let token_file = flags.get("token-file")?;
    let spawn_ns: u128 = flags.get("spawn-ns")?.parse()?;
    let started = unix_ns();
    let mut expires = fetch_credentials(authority, path, token_file)?;
    let done = unix_ns();
    let (mut fetches, mut errors) = (1u64, 0u64);
    if let Ok(hour) = flags.get("hour-secs") {
        let deadline = spawn_ns + (hour.parse::<f64>()? * 1e9) as u128;
        let advisory: f64 = flags.get("advisory-secs")?.parse()?;
        let poll = Duration::from_millis(flags.num("poll-ms")? as u64);
        while unix_ns() < deadline {
            if expires as f64 - unix_ns() as f64 / 1e9 < advisory {
                fetches += 1;
                match fetch_credentials(authority, path, token_file) {
                    Ok(e) => expires = e,
                    Err(_) => errors += 1,
                }
            }
            std::thread::sleep(poll);
        }
    }
    println!(
        "{{\"first_ms\":{:.3},\"fetch_ms\":{:.3},\"fetches\":{fetches},\"errors\":{errors}}}",
        (done.saturating_sub(spawn_ns)) as f64 / 1e6,
        (done - started) as f64 / 1e6,
    );
    Ok(())
}

/// One GET on a fresh connection; returns the credentials' expiry (Unix s).
fn fetch_credentials(authority: &str, path: &str, token_file: &str) -> Result<i64, Error> {
    use std::io::{Read, Write};
    let token = std::fs::read_to_string(token_file)?;
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        token.trim()
    )?;
    let mut response = Vec::with_capacity(1024);
    stream.read_to_end(&mut response)?;
    let end = find(&response, b"\r\n\r\n").ok_or("no response head")?;
    let head = std::str::from_utf8(&response[..end])?;
    if head.split(' ').nth(1) != Some("200") {
        return Err(format!("status line {:?}", head.lines().next()).into());
    }
    let creds: serde_json::Value = serde_json::from_slice(&response[end + 4..])?;
    let ready = creds["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty())
        && creds["SecretAccessKey"].is_string();
    if !ready {
        return Err("not S3-ready credentials".into());
    }
    let expiration = creds["Expiration"].as_str().ok_or("no Expiration")?;
    let expires =
        time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)?;
    Ok(expires.unix_timestamp())
}
