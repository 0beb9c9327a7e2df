//! What the stand-in's parts share: the settings and records behind one lock, and the counters.
//!
//! The serving side (`service`) and the steering side (`handle`, `control`) both read and write
//! it; neither depends on the other, only on this.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{atomic::AtomicU64, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use http::Method;
use tokio::sync::watch;

use super::types::{Fault, PostExchange, PostRequest, StandInConfig, EXCHANGE_PATH_PREFIX};
use crate::jwt::{Issuer, Verifier};
use crate::secret::Secret;

/// State shared by the handle, the accept loop and the connection tasks.
pub(super) struct Shared {
    /// The org id: the GET's path ends in it, the POST's `orgId` must equal it.
    pub(super) org_id: String,
    /// The GET exchange's path.
    pub(super) path: String,
    pub(super) audience: Option<String>,
    pub(super) issuer: Option<Issuer>,
    pub(super) local_addr: SocketAddr,
    pub(super) scheme: &'static str,
    pub(super) state: Mutex<State>,
    /// The counts of credential requests. A watch so that `wait_for_calls` can await them.
    pub(super) calls: watch::Sender<Calls>,
    /// Normal 200 answers to the GET exchange.
    pub(super) successes_get: AtomicU64,
    /// Normal 200 answers to the POST exchange.
    pub(super) successes_post: AtomicU64,
    pub(super) stopped: watch::Sender<bool>,
}

/// Credential requests (anything outside the control API) by method, whatever their outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Calls {
    /// All of them, whatever the method.
    pub(super) total: u64,
    /// `GET` requests.
    pub(super) get: u64,
    /// `POST` requests.
    pub(super) post: u64,
}

/// How the POST exchange starts out (changed later through the handle).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PostSettings {
    /// Offered, or refused as 404 or 405.
    pub(super) exchange: PostExchange,
    /// The longest lifetime the POST grants, whatever `durationSeconds` asks (`None`: no cap).
    pub(super) max_lifetime: Option<Duration>,
}

/// The mutable part of [`Shared`].
pub(super) struct State {
    pub(super) verifiers: Vec<Verifier>,
    pub(super) lifetime: Duration,
    pub(super) access_key_id: String,
    pub(super) secret_access_key: Secret,
    pub(super) session_token: Secret,
    pub(super) faults: VecDeque<Fault>,
    pub(super) sticky: Option<Fault>,
    /// The length of the last request's `Authorization` and whether it began with `Bearer `.
    pub(super) last_authorization: Option<(usize, bool)>,
    /// The `sub` of the token behind the last successful exchange.
    pub(super) last_subject: Option<String>,
    pub(super) post: PostSettings,
    /// What the last well-formed POST asked for.
    pub(super) last_post: Option<PostRequest>,
}

// === impl Shared ===

impl Shared {
    /// The starting state for `config` and `post`, served on `local_addr` over `scheme`.
    pub(super) fn new(
        config: StandInConfig,
        post: PostSettings,
        local_addr: SocketAddr,
        scheme: &'static str,
    ) -> Self {
        let mut verifiers = config.verifiers;
        verifiers.extend(config.issuer.as_ref().map(Issuer::verifier));
        Self {
            path: format!("{EXCHANGE_PATH_PREFIX}{}", config.org_id),
            org_id: config.org_id,
            audience: config.audience,
            issuer: config.issuer,
            local_addr,
            scheme,
            state: Mutex::new(State {
                verifiers,
                lifetime: config.lifetime,
                access_key_id: config.access_key_id,
                secret_access_key: Secret::new(config.secret_access_key),
                session_token: Secret::new(config.session_token),
                faults: VecDeque::new(),
                sticky: None,
                last_authorization: None,
                last_subject: None,
                post,
                last_post: None,
            }),
            calls: watch::Sender::new(Calls::default()),
            successes_get: AtomicU64::new(0),
            successes_post: AtomicU64::new(0),
            stopped: watch::Sender::new(false),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent after a panic: each critical section is a plain assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one credential request made with `method`.
    pub(super) fn count(&self, method: &Method) {
        self.calls.send_modify(|calls| {
            calls.total += 1;
            if method == Method::GET {
                calls.get += 1;
            } else if method == Method::POST {
                calls.post += 1;
            }
        });
    }

    /// Takes the fault for this request: the queue first, then the sticky one.
    pub(super) fn next_fault(&self) -> Option<Fault> {
        let mut state = self.state();
        state.faults.pop_front().or_else(|| state.sticky.clone())
    }
}

/// The wall clock. This is the only `SystemTime::now` call in the stand-in, a test double.
#[allow(clippy::disallowed_methods)]
pub(super) fn now() -> SystemTime {
    SystemTime::now()
}
