//! What one listener may hold: how many connections (in all and per source
//! address), how large a request head, and how long each phase of a
//! connection may take. Every listener of every mode is built from one of
//! the presets here, so the figures the memory budget is computed from
//! (docs/deploy.md, "Sizing") are in one place.
//!
//! A connection's worst cost is about its head limit plus ~10 KiB of
//! buffers and state (plus ~10 KiB of TLS state on the webhook's HTTPS
//! listener): BENCHMARKS.md, section 10. The caps of listeners that only
//! probes and scrapers use are therefore small, and their heads short.

use std::time::Duration;

/// How long open connections get to finish after shutdown starts.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// A TLS handshake must finish within this time. The API server's TLS
/// handshake with the webhook takes milliseconds; Go's own client gives a
/// handshake 10 s.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request head must arrive whole within this time of its first byte (of
/// the accept, or the end of the TLS handshake, for a connection's first
/// request). Every client of every listener sends its head in one write.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle keep-alive connection (its last answer sent, no byte of the
/// next request yet) is closed after this time, on every listener but the
/// webhook's HTTPS one.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A write that makes no progress for this long closes the connection (a
/// client that stopped reading; nginx's `send_timeout`, 60 s there). Every
/// answer but the webhook's largest is small enough for the socket buffer,
/// so only such a client ever waits; a webhook answer left unread holds
/// its share of the webhook's memory budget until then.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection must have been in its TLS handshake or receiving
/// a head before a full credentials or IMDS listener may shed it: a herd
/// of clients (Pods starting on a node) overflows those listeners' caps
/// legitimately, and its connections are each in that phase for a moment;
/// a newcomer waits (in the kernel's backlog) rather than cut them off.
pub const HERD_SHED_AFTER: Duration = Duration::from_secs(1);
/// The same for the admin and webhook listeners, whose clients (kubelet's
/// probe, a scraper, the API server) send their head or finish their
/// handshake within milliseconds: long enough that a flood which churns
/// through every slot cannot shed a probe's fresh connection before its
/// head is read (at 0, one from 64 addresses did), short enough that a
/// small cap drains its backlog quickly (64 slots every quarter second).
pub const PROBE_SHED_AFTER: Duration = Duration::from_millis(250);
/// Largest request head on the credentials listeners (sidecar and node):
/// node mode's largest token is 8 KiB, an SDK's other headers well under
/// 1 KiB.
pub const CREDENTIALS_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request head on the webhook's HTTPS listener (the API server
/// sends well under 1 KiB; room for an authenticating proxy's headers).
pub const WEBHOOK_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request head on the admin and IMDS listeners (a probe, a
/// scraper with a bearer token, an IMDS session token: under 2 KiB). It is
/// also hyper's smallest read buffer, so such a head costs no more than an
/// empty one.
pub const SMALL_MAX_HEAD_BYTES: usize = 8 * 1024;
/// Connections on an admin listener (`/healthz`, `/readyz`, `/metrics`),
/// which listens on the Pod network: kubelet's probes use one connection
/// each (no keep-alive), a Prometheus one per scraper.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Connections on an admin listener from one address. Kubelet shares the
/// node's address with hostNetwork Pods; a full source sheds its own
/// oldest idle connection, so a probe is still served.
pub const ADMIN_MAX_PER_SOURCE: usize = 8;
/// Connections on the IMDS emulation (SDKs open one or two per process).
pub const IMDS_MAX_CONNECTIONS: usize = 64;
/// Connections on the IMDS emulation from one address.
pub const IMDS_MAX_PER_SOURCE: usize = 16;
/// The kernel's send buffer of a webhook connection, as asked (`SO_SNDBUF`;
/// Linux doubles it and then never grows it): what it holds of an answer
/// has left the webhook's memory budget, so it is small, yet a typical
/// answer (a few KB) fits whole and the largest (~730 KB for 1,400
/// containers) takes a few dozen round trips of a millisecond or less
/// inside a cluster.
pub const WEBHOOK_SEND_BUFFER: usize = 16 * 1024;
/// Bytes of encrypted records a TLS connection holds that the kernel has
/// not taken (rustls's default is 64 KiB): one full record, nginx's
/// `ssl_buffer_size`.
pub const TLS_SEND_BUFFER: usize = 16 * 1024;
/// Connections the kernel queues for a listener before `accept` (capped by
/// `net.core.somaxconn`). `TcpListener::bind` would ask for 128, the
/// standard library's value, which a burst of clients (Pods starting on a
/// node, a load generator) overflows: the kernel then drops SYNs and each
/// dropped client waits a full second to retry.
pub const LISTEN_BACKLOG: u32 = 1024;

/// How long each phase of a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The TLS handshake (listeners with one).
    pub handshake: Duration,
    /// A request head, from its first byte (or the connection's start).
    pub head: Duration,
    /// Between an answer and the next request's first byte.
    pub idle: Duration,
    /// A write making no progress.
    pub send: Duration,
}

/// How a connection writes its answers, and so where the bytes a client
/// has not taken yet wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Head and body copied into the connection's write buffer and sent in
    /// one write(2), which costs less than writev(2) of the two; the
    /// kernel's send buffer grows as it sees fit (up to `tcp_wmem`'s
    /// maximum, 4 MiB by default). For small answers: the write buffer
    /// keeps the size of the largest answer as long as the connection
    /// lives, and the kernel takes whole answers off the process's hands.
    Joined,
    /// The body written from its own buffer (hyper's writev queue), and the
    /// kernel's send buffer fixed at `send_buffer` bytes (`SO_SNDBUF`,
    /// which Linux doubles and which stops it growing): what a client has
    /// not taken stays in the answer, where the routes count it (the
    /// webhook's memory budget), and at most twice `send_buffer` more waits
    /// in the kernel (plus [`TLS_SEND_BUFFER`] behind TLS) until
    /// [`Timeouts::send`] closes a connection that stopped reading.
    FromAnswer {
        /// The kernel's send buffer, bytes (as asked; Linux doubles it).
        send_buffer: usize,
    },
}

/// Bounds on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The listener's name in metrics (`listener` label).
    pub name: &'static str,
    /// How long open connections get to finish after shutdown starts.
    pub grace: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one source address. `None`: no such
    /// bound (the sidecar's credentials listener, whose callers share the
    /// Pod's loopback).
    pub max_per_source: Option<usize>,
    /// Largest request head, start line included (431 above it).
    pub max_head_bytes: usize,
    /// How long a connection must have been in its handshake or receiving
    /// a head before it may be shed (an idle one may be at once).
    pub shed_after: Duration,
    /// Per-phase time bounds.
    pub timeouts: Timeouts,
    /// How answers are written.
    pub writes: Writes,
}

// === impl Timeouts ===

impl Timeouts {
    /// The plain-HTTP listeners' timeouts.
    pub const PLAIN: Timeouts = Timeouts {
        handshake: HANDSHAKE_TIMEOUT,
        head: HEAD_TIMEOUT,
        idle: IDLE_TIMEOUT,
        send: SEND_TIMEOUT,
    };
}

// === impl Limits ===

impl Limits {
    /// A credentials listener holding `max_connections` (`--max-connections`),
    /// `max_per_source` from one address.
    pub fn credentials(max_connections: usize, max_per_source: Option<usize>) -> Self {
        Self {
            name: "credentials",
            grace: DRAIN_GRACE,
            max_connections,
            max_per_source,
            max_head_bytes: CREDENTIALS_MAX_HEAD_BYTES,
            shed_after: HERD_SHED_AFTER,
            timeouts: Timeouts::PLAIN,
            writes: Writes::Joined,
        }
    }

    /// An admin listener (every mode's `/healthz`, `/readyz`, `/metrics`).
    pub fn admin() -> Self {
        Self {
            name: "admin",
            grace: DRAIN_GRACE,
            max_connections: ADMIN_MAX_CONNECTIONS,
            max_per_source: Some(ADMIN_MAX_PER_SOURCE),
            max_head_bytes: SMALL_MAX_HEAD_BYTES,
            shed_after: PROBE_SHED_AFTER,
            timeouts: Timeouts::PLAIN,
            writes: Writes::Joined,
        }
    }

    /// The sidecar's IMDS emulation.
    pub fn imds() -> Self {
        Self {
            name: "imds",
            grace: DRAIN_GRACE,
            max_connections: IMDS_MAX_CONNECTIONS,
            max_per_source: Some(IMDS_MAX_PER_SOURCE),
            max_head_bytes: SMALL_MAX_HEAD_BYTES,
            shed_after: HERD_SHED_AFTER,
            timeouts: Timeouts::PLAIN,
            writes: Writes::Joined,
        }
    }

    /// The webhook's HTTPS listener holding `max_connections`
    /// (`--max-connections`), whose idle keep-alive connections are kept
    /// for `idle` (longer than the API server keeps them itself).
    ///
    /// No bound per source: every request comes from the API servers, and
    /// where they reach the webhook through a proxy (konnectivity), from
    /// one address. A full listener sheds the oldest idle connection of
    /// the address holding the most, so a flood from elsewhere costs a
    /// fresh API-server connection nothing but that.
    pub fn webhook(max_connections: usize, idle: Duration) -> Self {
        Self {
            name: "webhook",
            grace: DRAIN_GRACE,
            max_connections,
            max_per_source: None,
            max_head_bytes: WEBHOOK_MAX_HEAD_BYTES,
            shed_after: PROBE_SHED_AFTER,
            timeouts: Timeouts {
                idle,
                ..Timeouts::PLAIN
            },
            // An answer keeps its share of the webhook's memory budget
            // until the client has taken it.
            writes: Writes::FromAnswer {
                send_buffer: WEBHOOK_SEND_BUFFER,
            },
        }
    }

    /// These limits with `grace` as the drain grace period.
    pub fn with_grace(self, grace: Duration) -> Self {
        Self { grace, ..self }
    }
}
