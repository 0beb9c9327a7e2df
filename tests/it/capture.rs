//! What the agent logs while a test runs, for the tests that read it.
//!
//! One subscriber for the whole test binary, installed as the global default
//! on first use, writes each event (JSON, one line) into the capture of the
//! thread that emitted it, if that thread holds one, and drops it otherwise.
//! A test that captures runs on a current-thread runtime, so every task it
//! starts logs on its thread.
//!
//! Why not `tracing::subscriber::set_default` per test: tracing caches each
//! callsite's interest when the callsite is first hit, and a callsite first
//! hit by another test (without this test's dispatcher) could stay cached as
//! "never": the event was lost and the test waited for it forever (a full
//! suite run hung once). For the same reason the filter here is dynamic
//! (`dynamic_filter_fn`, interest "sometimes", asked at every event): a
//! plain `filter_fn` is asked once per callsite, at its first hit, and a
//! first hit on a thread without a capture cached "never" (the audit line
//! was lost in a cold CI-like run).

use std::cell::RefCell;
use std::io::Write;
use std::marker::PhantomData;
use std::sync::{Arc, Once};

use parking_lot::Mutex;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

type Buffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    static CURRENT: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

/// Everything logged on this thread from [`start`] until it is dropped.
pub struct Capture {
    buffer: Buffer,
    /// Bound to the thread that started it.
    _thread: PhantomData<*const ()>,
}

/// Starts capturing this thread's events.
pub fn start() -> Capture {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(|| ToThread)
            .with_filter(dynamic_filter_fn(|_, _| {
                CURRENT.with(|c| c.borrow().is_some())
            }));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global subscriber in the test binary");
    });
    let buffer = Buffer::default();
    CURRENT.with(|c| *c.borrow_mut() = Some(buffer.clone()));
    Capture {
        buffer,
        _thread: PhantomData,
    }
}

impl Capture {
    /// The lines so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock()).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// A writer into the current thread's capture.
struct ToThread;

impl Write for ToThread {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(b) = &*c.borrow() {
                b.lock().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
