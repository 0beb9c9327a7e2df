//! The handle tests hold: where the stand-in listens, what it has seen, and the knobs that change
//! its next answers. The control API turns its JSON requests into calls on this same handle.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use super::state::Shared;
use super::types::Fault;
use crate::jwt::{Issuer, Verifier};
use crate::secret::Secret;

/// A handle to a running stand-in. Cloning is cheap (it is an `Arc` inside).
#[derive(Clone)]
pub struct StandIn {
    pub(super) shared: Arc<Shared>,
}

// === impl StandIn ===

impl StandIn {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The full exchange URL, such as `http://127.0.0.1:PORT/v1/cwobject/temporary-credentials/oidc/ORG`.
    /// A listener on an unspecified address is reached through loopback.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.shared.scheme,
            self.connect_addr(),
            self.shared.path
        )
    }

    /// The address a client should connect to (`127.0.0.1:PORT` for a `0.0.0.0` listener).
    pub fn connect_addr(&self) -> SocketAddr {
        let mut addr = self.shared.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        addr
    }

    /// How many credential requests have arrived, whatever their outcome. This counts every request
    /// outside `/_standin/`, including 404s and faulted ones.
    pub fn calls(&self) -> u64 {
        *self.shared.calls.borrow()
    }

    /// How many credentials have been served: normal 200 answers only. A `Fault::Body` with status
    /// 200 does not count.
    pub fn successes(&self) -> u64 {
        self.shared.successes.load(Ordering::SeqCst)
    }

    /// Queues `fault` for the next credential request only (FIFO).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.state().faults.push_back(fault);
    }

    /// Applies `fault` to every credential request until cleared with `None`. Queued faults go first.
    pub fn set_sticky_fault(&self, fault: Option<Fault>) {
        self.shared.state().sticky = fault;
    }

    /// Drops every queued fault and the sticky fault.
    pub fn clear_faults(&self) {
        let mut state = self.shared.state();
        state.faults.clear();
        state.sticky = None;
    }

    /// Switches the credentials handed out from now on (a rotation or "revocation" upstream).
    pub fn set_keys(&self, access_key_id: &str, secret_access_key: &str, session_token: &str) {
        let mut state = self.shared.state();
        state.access_key_id = access_key_id.to_owned();
        state.secret_access_key = Secret::new(secret_access_key);
        state.session_token = Secret::new(session_token);
    }

    /// Sets the lifetime of credentials handed out from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.shared.state().lifetime = lifetime;
    }

    /// Also accepts tokens that `v` verifies.
    pub fn add_verifier(&self, v: Verifier) {
        self.shared.state().verifiers.push(v);
    }

    /// The stand-in's own issuer, if it was configured with one.
    pub fn issuer(&self) -> Option<&Issuer> {
        self.shared.issuer.as_ref()
    }

    /// The `sub` of the token behind the last successful exchange.
    pub fn last_subject(&self) -> Option<String> {
        self.shared.state().last_subject.clone()
    }

    /// The length of the last credential request's `Authorization` value (`None` if it had none).
    /// Tests get only the length, never the token.
    pub fn last_authorization_len(&self) -> Option<usize> {
        self.shared.state().last_authorization.map(|(len, _)| len)
    }

    /// Whether the last credential request's `Authorization` began with `Bearer ` (in any case),
    /// which the upstream does not expect.
    pub fn last_authorization_had_bearer_prefix(&self) -> bool {
        self.shared
            .state()
            .last_authorization
            .is_some_and(|(_, bearer)| bearer)
    }

    /// Resolves once [`calls`](Self::calls) is at least `n`.
    pub async fn wait_for_calls(&self, n: u64) {
        let mut rx = self.shared.calls.subscribe();
        // Fails only if the sender is dropped; `self` keeps it alive.
        let _ = rx.wait_for(|calls| *calls >= n).await;
    }

    /// Resolves once the accept loop has stopped after shutdown (the listener is closed by then).
    pub async fn stopped(&self) {
        let mut rx = self.shared.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("local_addr", &self.shared.local_addr)
            .field("path", &self.shared.path)
            .field("calls", &self.calls())
            .field("successes", &self.successes())
            .finish_non_exhaustive()
    }
}
