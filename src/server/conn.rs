//! A connection's phase, shared by its task, its I/O (`timed`), its
//! service and the gate: where it is in its life (handshake, head, idle,
//! busy) and since when, whether its task has waited on it, and the
//! gate's signal to close it. One atomic word for the phase and its start,
//! so the gate reads a consistent pair without a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, TLS handshake under way.
    Handshake = 0,
    /// Receiving a request head (a new connection's first, or after the
    /// first byte of the next).
    Head = 1,
    /// Keep-alive: the last answer is out, no byte of the next request yet.
    Idle = 2,
    /// A request is being answered.
    Busy = 3,
}

/// One open connection's phase, shared by its task, its I/O (see
/// `timed`), its service and the gate.
#[derive(Debug)]
pub struct Conn {
    /// The phase (low 2 bits) and when it began (µs after `epoch`).
    state: AtomicU64,
    epoch: Instant,
    /// Its task has waited for the client (why that matters: `gate`).
    waited: AtomicBool,
    /// Its service returned an answer not yet flushed: still busy.
    answered: AtomicBool,
    shed: Notify,
}

/// What may be shed, at one moment.
#[derive(Clone, Copy)]
pub(super) struct Rule {
    pub(super) now: Instant,
    pub(super) shed_after: Duration,
}

// === impl Phase ===

impl Phase {
    fn from_bits(bits: u64) -> Phase {
        match bits & 3 {
            0 => Phase::Handshake,
            1 => Phase::Head,
            2 => Phase::Idle,
            _ => Phase::Busy,
        }
    }
}

// === impl Conn ===

impl Conn {
    pub(super) fn new(phase: Phase, epoch: Instant) -> Self {
        Self {
            state: AtomicU64::new(pack(phase, epoch)),
            epoch,
            waited: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            shed: Notify::new(),
        }
    }

    /// The current phase and when it began.
    pub fn phase(&self) -> (Phase, Instant) {
        let bits = self.state.load(Ordering::Acquire);
        let since = self.epoch + std::time::Duration::from_micros(bits >> 2);
        (Phase::from_bits(bits), since)
    }

    /// Moves to `phase`, from now.
    pub fn enter(&self, phase: Phase) {
        self.state.store(pack(phase, self.epoch), Ordering::Release);
    }

    /// A request is being answered. (hyper may start on a pipelined
    /// request before the previous answer is flushed: that flush must not
    /// make this one idle.)
    pub fn answering(&self) {
        self.answered.store(false, Ordering::Release);
        self.enter(Phase::Busy);
    }

    /// The service has its answer. The connection stays busy until the
    /// answer has been flushed to the socket ([`Self::flushed`]): an answer
    /// still being written (a large one, a client slow to read) serves
    /// someone, and shedding it would cut the answer off.
    pub fn answered(&self) {
        self.answered.store(true, Ordering::Release);
    }

    /// A flush completed: if an answer was waiting for one, it has left the
    /// process and the connection is idle. (Every answer's body is one
    /// buffer, queued whole before hyper's first flush of it.)
    pub fn flushed(&self) {
        if self.answered.swap(false, Ordering::AcqRel) {
            self.enter(Phase::Idle);
        }
    }

    /// Bytes arrived: an idle connection starts receiving a head.
    pub fn bytes_arrived(&self) {
        if self.phase().0 == Phase::Idle {
            self.enter(Phase::Head);
        }
    }

    /// Its task found nothing to read (or no handshake step to take): from
    /// now on it may be shed while not busy.
    pub fn waited(&self) {
        if !self.waited.load(Ordering::Relaxed) {
            self.waited.store(true, Ordering::Relaxed);
        }
    }

    /// Tells the connection's task to close it.
    pub(super) fn tell_to_go(&self) {
        self.shed.notify_one();
    }

    /// Resolves once the gate sheds this connection.
    pub async fn shed(&self) {
        self.shed.notified().await;
    }

    /// When its current phase began, if `rule` lets it be shed now.
    pub(super) fn sheddable(&self, rule: Rule) -> Option<Instant> {
        if !self.waited.load(Ordering::Relaxed) {
            return None;
        }
        match self.phase() {
            (Phase::Busy, _) => None,
            (Phase::Idle, since) => Some(since),
            (_, since) => (since + rule.shed_after <= rule.now).then_some(since),
        }
    }
}

/// `phase` from now, as [`Conn::state`] holds it.
fn pack(phase: Phase, epoch: Instant) -> u64 {
    let micros = Instant::now().saturating_duration_since(epoch).as_micros() as u64;
    (micros << 2) | phase as u64
}
