//! Upstream slots shared fairly between requesters.
//!
//! At most `slots` exchanges run at once. When all are taken, waiters queue
//! per requester (a Pod's source address, or the background refresher) and
//! a freed slot goes to the next requester in turn, not to the longest
//! queue: a Pod that sends a thousand new tokens at once gets one slot in
//! turn with every other Pod, so it cannot push their misses behind its own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Who an exchange is for: what the slots are shared between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Requester {
    /// A cache miss from a Pod at this address.
    Pod(IpAddr),
    /// A refresh ahead of expiry of an identity already cached.
    Refresh,
}

/// A bounded set of upstream slots, handed out round-robin by requester.
#[derive(Debug)]
pub struct FairSlots {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    queues: HashMap<Requester, VecDeque<oneshot::Sender<Slot>>>,
    /// Requesters with waiters, in turn order.
    turn: VecDeque<Requester>,
}

/// One slot, held for one exchange; freed (or handed to the next
/// requester in turn) on drop.
#[derive(Debug)]
pub struct Slot {
    /// `None` once handed back without releasing (a failed hand-over).
    slots: Option<Arc<FairSlots>>,
}

// === impl FairSlots ===

impl FairSlots {
    /// `slots` slots (at least one).
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: slots.max(1),
                queues: HashMap::new(),
                turn: VecDeque::new(),
            }),
        })
    }

    /// Waits for a slot for `requester`, in its turn.
    pub async fn acquire(self: &Arc<Self>, requester: Requester) -> Slot {
        let rx = {
            let mut state = self.state.lock();
            if state.free > 0 && state.turn.is_empty() {
                state.free -= 1;
                return Slot {
                    slots: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            let queue = state.queues.entry(requester).or_default();
            let first = queue.is_empty();
            queue.push_back(tx);
            if first {
                state.turn.push_back(requester);
            }
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // The sender is only dropped by `release` after a failed
            // hand-over, which never happens while this receiver lives.
            Err(_) => Slot {
                slots: Some(self.clone()),
            },
        }
    }

    /// Waiters queued now.
    pub fn waiting(&self) -> usize {
        self.state.lock().queues.values().map(VecDeque::len).sum()
    }

    /// Hands a freed slot to the next requester in turn, or frees it.
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock();
        while let Some(requester) = state.turn.pop_front() {
            let Some(queue) = state.queues.get_mut(&requester) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                state.queues.remove(&requester);
            } else {
                state.turn.push_back(requester);
            }
            if let Some(tx) = next {
                // A receiver that is gone hands the slot back through its
                // drop: try the next waiter instead.
                let slot = Slot {
                    slots: Some(self.clone()),
                };
                match tx.send(slot) {
                    Ok(()) => return,
                    Err(slot) => std::mem::forget(slot),
                }
            }
        }
        state.free += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pod(n: u8) -> Requester {
        Requester::Pod(IpAddr::from([10, 0, 0, n]))
    }

    #[tokio::test(start_paused = true)]
    async fn turns_go_round_requesters_not_queue_length() {
        let slots = FairSlots::new(1);
        let held = slots.acquire(pod(1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Pod 1 queues five, then pod 2 and pod 3 one each.
        for (n, who) in [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2), (7, 3)] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(pod(who)).await;
                order.lock().push(n);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.waiting(), 7);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), [1, 6, 7, 2, 3, 4, 5]);
        assert_eq!(slots.state.lock().free, 1);
    }

    #[tokio::test]
    async fn an_abandoned_waiter_does_not_keep_the_slot() {
        let slots = FairSlots::new(1);
        let held = slots.acquire(pod(1)).await;
        let abandoned = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(pod(2)).await }
        });
        tokio::task::yield_now().await;
        while slots.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        let _ = abandoned.await;
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), slots.acquire(pod(3))).await;
        assert!(again.is_ok(), "the slot came back");
    }
}
