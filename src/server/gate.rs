//! The connection gate of a listener (node mode's credentials listeners
//! share one): at most `max_connections` open, at most `max_per_source`
//! from one address, and when either is reached, room is made by shedding
//! the connection that has waited longest without a request in progress.
//!
//! Why shed rather than refuse or queue: a full listener that refuses (or
//! leaves newcomers in the backlog) is held by whoever filled it first, so
//! a neighbour holding every admin connection open would fail kubelet's
//! probes, and slow clients would block the API server's fresh connection
//! to the webhook. Connections that are idle, or still sending a head, or
//! in a TLS handshake cost memory and serve nobody; Envoy's overload
//! manager likewise closes idle connections under pressure. A connection
//! becomes sheddable only once its task has waited on it (a read or a
//! handshake step that found nothing to do): in a burst, the accept loop
//! runs ahead of the connections' tasks, and would otherwise shed clients
//! whose complete request sits unread in the socket. On the listeners
//! that see herds (credentials, IMDS), a connection in its handshake or
//! receiving a head is shed only once that has lasted
//! [`Limits::shed_after`]; until one has, or a slot frees, a newcomer waits
//! in the kernel's backlog. The victim is
//! taken from the newcomer's own address when that address is at its cap,
//! otherwise from the address holding the most connections, so one address
//! cannot push out another's. Only when every candidate is answering a
//! request is the newcomer refused (its address at its cap) or held until
//! one finishes (the listener full).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::conn::{Conn, Phase, Rule};
use super::limits::Limits;
use crate::metrics::ListenerMetrics;

/// The connection bounds of [`Limits`], shared by every listener serving
/// through it. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    table: Mutex<Table>,
    waiters: Waiters,
    epoch: Instant,
}

/// Admissions waiting for a slot, woken when one frees.
#[derive(Debug, Default)]
struct Waiters {
    freed: Notify,
    waiting: AtomicUsize,
}

/// The open connections by source.
#[derive(Default)]
struct Table {
    open: usize,
    shedding: usize,
    sources: HashMap<IpAddr, Vec<Entry>>,
}

struct Entry {
    conn: Arc<Conn>,
    shedding: bool,
}

/// A connection's place in the gate, released on drop.
pub struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
    conn: Arc<Conn>,
}

/// How often a full listener with nothing to shed looks again (a
/// connection may have turned idle, or its head have taken long enough):
/// a scan of its connections, at most this often while it stays full,
/// rather than one each time any connection changes phase.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

/// What [`Table::decide`] found.
enum Decision {
    Admit,
    /// Until a slot frees, or (`Some`) until then: the next look.
    Wait(Option<Instant>),
    Refuse,
    Shed(&'static str),
}

/// An admission counted among the waiters while it lives.
struct Waiting<'a>(&'a Waiters);

// === impl Waiting ===

impl<'a> Waiting<'a> {
    fn new(waiters: &'a Waiters) -> Self {
        waiters.waiting.fetch_add(1, Ordering::AcqRel);
        Self(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

// === impl Gate ===

impl Gate {
    /// A gate enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                table: Mutex::default(),
                waiters: Waiters::default(),
                epoch: Instant::now(),
            }),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Admissions waiting for a slot now.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.inner.waiters.waiting.load(Ordering::Acquire)
    }

    /// A slot for a connection from `ip` starting in `phase`, shedding
    /// another connection if that is what it takes; waits while the
    /// listener is full of connections answering requests. `None`: `ip`
    /// holds its share, every one of them answering a request.
    pub async fn admit(&self, ip: IpAddr, phase: Phase, metrics: &ListenerMetrics) -> Option<Slot> {
        let waiters = &self.inner.waiters;
        // Counted from before the first look, so that no slot freed after
        // it goes unnoticed.
        let _waiting = Waiting::new(waiters);
        loop {
            let freed = waiters.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let decision = self.inner.table.lock().decide(ip, &self.inner.limits);
            match decision {
                Decision::Admit => return Some(self.insert(ip, phase)),
                Decision::Refuse => {
                    metrics.refused_per_source.inc();
                    return None;
                }
                Decision::Shed(reason) => {
                    metrics.shed(reason);
                    freed.await;
                }
                Decision::Wait(None) => freed.await,
                Decision::Wait(Some(again)) => {
                    tokio::select! {
                        _ = freed => {}
                        _ = tokio::time::sleep_until(again) => {}
                    }
                }
            }
        }
    }

    fn insert(&self, ip: IpAddr, phase: Phase) -> Slot {
        let conn = Arc::new(Conn::new(phase, self.inner.epoch));
        let mut table = self.inner.table.lock();
        table.open += 1;
        table.sources.entry(ip).or_default().push(Entry {
            conn: conn.clone(),
            shedding: false,
        });
        Slot {
            inner: self.inner.clone(),
            ip,
            conn,
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("limits", &self.inner.limits)
            .finish()
    }
}

// === impl Table ===

impl Table {
    /// Whether a connection from `ip` may open now, and if not, what to do.
    fn decide(&mut self, ip: IpAddr, limits: &Limits) -> Decision {
        let rule = Rule {
            now: Instant::now(),
            shed_after: limits.shed_after,
        };
        if let Some(max) = limits.max_per_source {
            let (held, shedding) = self.sources.get(&ip).map_or((0, 0), |e| count(e));
            if held - shedding >= max {
                return match self.shed_from(ip, rule) {
                    true => Decision::Shed("per_source"),
                    false if shedding > 0 => Decision::Wait(None),
                    false => Decision::Refuse,
                };
            }
            if held >= max {
                return Decision::Wait(None);
            }
        }
        if self.open - self.shedding >= limits.max_connections {
            // The address holding the most gives one up (its oldest
            // sheddable connection; among equals, the one holding the
            // oldest); if all of theirs are answering requests, the oldest
            // sheddable one anywhere goes.
            let most = self.sources.values().map(|e| held(e)).max().unwrap_or(0);
            let heaviest = self
                .sources
                .iter()
                .filter(|(_, entries)| held(entries) == most)
                .filter_map(|(ip, entries)| oldest_sheddable(entries, rule).map(|at| (at, *ip)))
                .min();
            let victim = heaviest.or_else(|| {
                self.sources
                    .iter()
                    .filter_map(|(ip, entries)| oldest_sheddable(entries, rule).map(|at| (at, *ip)))
                    .min()
            });
            if victim.is_some_and(|(_, ip)| self.shed_from(ip, rule)) {
                return Decision::Shed("full");
            }
            return Decision::Wait(Some(rule.now + RECHECK));
        }
        if self.open >= limits.max_connections {
            return Decision::Wait(None);
        }
        Decision::Admit
    }

    /// Sheds the oldest sheddable connection from `ip`; false if it has none.
    fn shed_from(&mut self, ip: IpAddr, rule: Rule) -> bool {
        let Some(entries) = self.sources.get_mut(&ip) else {
            return false;
        };
        let victim = entries
            .iter_mut()
            .filter(|e| !e.shedding)
            .filter_map(|e| e.conn.sheddable(rule).map(|since| (since, e)))
            .min_by_key(|(since, _)| *since);
        let Some((_, entry)) = victim else {
            return false;
        };
        entry.shedding = true;
        entry.conn.tell_to_go();
        self.shedding += 1;
        true
    }
}

/// Connections held and being shed, of one source.
fn count(entries: &[Entry]) -> (usize, usize) {
    let shedding = entries.iter().filter(|e| e.shedding).count();
    (entries.len(), shedding)
}

/// Connections held by one source, not counting those being shed.
fn held(entries: &[Entry]) -> usize {
    let (held, shedding) = count(entries);
    held - shedding
}

/// When the oldest sheddable connection of one source began its phase.
fn oldest_sheddable(entries: &[Entry], rule: Rule) -> Option<Instant> {
    entries
        .iter()
        .filter(|e| !e.shedding)
        .filter_map(|e| e.conn.sheddable(rule))
        .min()
}

// === impl Slot ===

impl Slot {
    /// The connection's shared phase.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut table = self.inner.table.lock();
            let Table {
                open,
                shedding,
                sources,
            } = &mut *table;
            if let Some(entries) = sources.get_mut(&self.ip) {
                if let Some(i) = entries
                    .iter()
                    .position(|e| Arc::ptr_eq(&e.conn, &self.conn))
                {
                    let entry = entries.swap_remove(i);
                    *open -= 1;
                    if entry.shedding {
                        *shedding -= 1;
                    }
                }
                if entries.is_empty() {
                    sources.remove(&self.ip);
                }
            }
        }
        if self.inner.waiters.waiting.load(Ordering::Acquire) > 0 {
            self.inner.waiters.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
