//! The handle tests hold: where the stand-in listens, what it has seen (counts by method, the last
//! `Authorization` length, the last POST's request), and the knobs that change its next answers
//! (faults, keys, lifetimes, whether the POST is offered). The control API turns its JSON requests
//! into calls on this same handle.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use super::state::Shared;
use super::types::{Fault, PostExchange, PostRequest, POST_EXCHANGE_PATH};
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

    /// The GET exchange's full URL, such as
    /// `http://127.0.0.1:PORT/v1/cwobject/temporary-credentials/oidc/ORG`. A listener on an
    /// unspecified address is reached through loopback.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.shared.scheme,
            self.connect_addr(),
            self.shared.path
        )
    }

    /// The POST exchange's full URL, such as
    /// `http://127.0.0.1:PORT/v1/cwobject/temporary-credentials/oidc` (the org goes in the body).
    pub fn post_url(&self) -> String {
        format!(
            "{}://{}{POST_EXCHANGE_PATH}",
            self.shared.scheme,
            self.connect_addr()
        )
    }

    /// The org id: the end of the GET's path, and the `orgId` the POST must send.
    pub fn org_id(&self) -> &str {
        &self.shared.org_id
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

    /// How many credential requests have arrived, whatever their method or outcome. This counts
    /// every request outside `/_standin/`, including 404s and faulted ones.
    pub fn calls(&self) -> u64 {
        self.shared.calls.borrow().total
    }

    /// How many of [`calls`](Self::calls) were `GET` requests (on any path).
    pub fn calls_get(&self) -> u64 {
        self.shared.calls.borrow().get
    }

    /// How many of [`calls`](Self::calls) were `POST` requests (on any path).
    pub fn calls_post(&self) -> u64 {
        self.shared.calls.borrow().post
    }

    /// How many credentials have been served by either exchange: normal 200 answers only. A
    /// `Fault::Body` with status 200 does not count.
    pub fn successes(&self) -> u64 {
        self.successes_get() + self.successes_post()
    }

    /// How many credentials the GET exchange has served.
    pub fn successes_get(&self) -> u64 {
        self.shared.successes_get.load(Ordering::SeqCst)
    }

    /// How many credentials the POST exchange has served.
    pub fn successes_post(&self) -> u64 {
        self.shared.successes_post.load(Ordering::SeqCst)
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

    /// Sets the lifetime of credentials handed out from now on by the GET, and by the POST when it
    /// asks for `durationSeconds` 0. For CoreWeave's documented 15-minute OIDC keys: 900 s.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.shared.state().lifetime = lifetime;
    }

    /// The lifetime [`set_lifetime`](Self::set_lifetime) sets.
    pub fn lifetime(&self) -> Duration {
        self.shared.state().lifetime
    }

    /// Caps the lifetime the POST grants from now on, whatever `durationSeconds` asks: a server
    /// that grants less than asked. `None` (the default) grants what is asked.
    pub fn set_post_max_lifetime(&self, max: Option<Duration>) {
        self.shared.state().post.max_lifetime = max;
    }

    /// The cap [`set_post_max_lifetime`](Self::set_post_max_lifetime) sets.
    pub fn post_max_lifetime(&self) -> Option<Duration> {
        self.shared.state().post.max_lifetime
    }

    /// Offers the POST exchange from now on, or refuses it with 404 or 405 as a server without
    /// it would. Offered by default.
    pub fn set_post_exchange(&self, exchange: PostExchange) {
        self.shared.state().post.exchange = exchange;
    }

    /// Whether the POST exchange is offered, as [`set_post_exchange`](Self::set_post_exchange)
    /// sets.
    pub fn post_exchange(&self) -> PostExchange {
        self.shared.state().post.exchange
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

    /// What the last well-formed POST exchange asked for (its body without the token, and its
    /// `Content-Type`), whatever the answer; `None` before the first.
    pub fn last_post(&self) -> Option<PostRequest> {
        self.shared.state().last_post.clone()
    }

    /// Resolves once [`calls`](Self::calls) is at least `n`.
    pub async fn wait_for_calls(&self, n: u64) {
        let mut rx = self.shared.calls.subscribe();
        // Fails only if the sender is dropped; `self` keeps it alive.
        let _ = rx.wait_for(|calls| calls.total >= n).await;
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
            .field("calls", &*self.shared.calls.borrow())
            .field("successes_get", &self.successes_get())
            .field("successes_post", &self.successes_post())
            .finish_non_exhaustive()
    }
}
