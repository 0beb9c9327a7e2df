//! A connection's I/O under its listener's [`Timeouts`]: reads fail once
//! the phase the connection is in (see [`Conn`]) has lasted too long, and a
//! write that makes no progress for [`Timeouts::send`] fails; hyper then
//! closes the connection.
//!
//! Why here and not hyper's `header_read_timeout`: hyper starts that timer
//! when it begins waiting for a head, which on a keep-alive connection is
//! right after the previous answer, so one value bounds both the idle time
//! and the head's arrival. The webhook needs the two apart (idle for longer
//! than the API server's 90 s, a head within seconds, as nginx's
//! `keepalive_timeout` and `client_header_timeout`), so the phase is
//! tracked here: the first byte read on an idle connection starts the head
//! timer, the service marks the request busy (no read deadline: the
//! route's own timeouts apply) and then idle again.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::conn::{Conn, Phase};
use super::limits::Timeouts;
use crate::metrics::ListenerMetrics;

/// `T` with its reads and writes bounded in time.
pub struct Timed<T> {
    io: T,
    conn: Arc<Conn>,
    timeouts: Timeouts,
    metrics: ListenerMetrics,
    /// The read deadline the timer is set to, if one is.
    read_at: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    /// Set while a write is blocked: its deadline's timer.
    write_timer: Option<Pin<Box<Sleep>>>,
}

// === impl Timed ===

impl<T> Timed<T> {
    /// `io`, for the connection `conn`.
    pub fn new(io: T, conn: Arc<Conn>, timeouts: Timeouts, metrics: ListenerMetrics) -> Self {
        Self {
            io,
            conn,
            timeouts,
            metrics,
            read_at: None,
            read_timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            write_timer: None,
        }
    }

    /// The deadline of the phase the connection is in, and its name.
    fn read_deadline(&self) -> Option<(Instant, &'static str)> {
        match self.conn.phase() {
            (Phase::Handshake, since) => Some((since + self.timeouts.handshake, "handshake")),
            (Phase::Head, since) => Some((since + self.timeouts.head, "head")),
            (Phase::Idle, since) => Some((since + self.timeouts.idle, "idle")),
            (Phase::Busy, _) => None,
        }
    }

    /// Ready with an error once the current phase's deadline has passed.
    fn poll_read_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some((deadline, phase)) = self.read_deadline() else {
            self.read_at = None;
            return Poll::Pending;
        };
        if self.read_at != Some(deadline) {
            self.read_timer.as_mut().reset(deadline);
            self.read_at = Some(deadline);
        }
        ready!(self.read_timer.as_mut().poll(cx));
        self.read_at = None;
        self.metrics.timed_out(phase);
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete request within the {phase} timeout"),
        ))
    }

    /// Passes a write's outcome on, failing a write blocked for too long.
    fn bound_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.write_timer = None;
            return poll;
        }
        let send = self.timeouts.send;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send)));
        ready!(timer.as_mut().poll(cx));
        self.write_timer = None;
        self.metrics.timed_out("send");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Timed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.conn.waited();
                this.poll_read_deadline(cx).map(Err)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Timed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.bound_write(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.bound_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        let poll = this.bound_write(cx, poll);
        if let Poll::Ready(Ok(())) = poll {
            this.conn.flushed();
        }
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.bound_write(cx, poll)
    }
}

#[cfg(test)]
#[path = "timed_tests.rs"]
mod tests;
