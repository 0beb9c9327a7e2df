//! Local verification of Pods' tokens (node mode, opt-in with `--issuer`).
//!
//! A token is accepted only if its `iss` is a configured issuer, its
//! signature (RS256 or ES256, as its header says) verifies against that
//! issuer's published keys, its `aud` contains the configured audience and
//! its `exp`/`nbf` hold, with [`LEEWAY`] either way. Signatures and claims
//! are checked by the `jsonwebtoken` crate; lifetimes against the agent's
//! injected clock.
//!
//! Keys are found through `ISSUER/.well-known/openid-configuration` →
//! `jwks_uri`, or at a configured key-set URL; they are cached, refreshed
//! every [`KEY_REFRESH`], and fetched again when a token names a key id the
//! cache does not know (at most once per [`UNKNOWN_KID_INTERVAL`] per
//! issuer, so a stream of made-up key ids costs one fetch, not one each).
//! Fetches go through [`Outbound`], the client the exchange uses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::ACCEPT;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::{unix_seconds, SharedClock};
use crate::exchange::BoxFuture;
use crate::jwt::Claims;
use crate::logsafe::redact_userinfo;
use crate::metrics::VerifyMetrics;
use crate::outbound::{read_body, Outbound};

/// Clock difference tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// How often every issuer's keys are fetched again.
pub const KEY_REFRESH: Duration = Duration::from_secs(300);
/// Least time between two fetches of one issuer's keys caused by unknown
/// key ids.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// Time allowed for one discovery or key-set fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A token check run before any upstream call.
pub trait Verify: Send + Sync + 'static {
    /// Checks `token`, whose unverified claims are `claims`.
    fn verify<'a>(&'a self, token: &'a str, claims: &'a Claims) -> BoxFuture<'a, Verdict>;
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token may be exchanged.
    Accepted,
    /// Refused, with a short reason (also a metric label).
    Refused(&'static str),
}

/// One issuer to accept tokens from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The `iss` value, exactly as in tokens.
    pub issuer: String,
    /// Its key set, if named directly; otherwise discovered.
    pub jwks_url: Option<Uri>,
}

/// Verifies tokens against the keys of configured issuers.
pub struct KeyVerifier {
    issuers: HashMap<String, Arc<IssuerKeys>>,
    audience: String,
    clock: SharedClock,
    client: Outbound,
    metrics: VerifyMetrics,
}

/// One issuer's cached keys.
struct IssuerKeys {
    config: IssuerConfig,
    keys: ArcSwap<KeySet>,
    /// Held while fetching: concurrent fetches of one issuer share one.
    fetching: tokio::sync::Mutex<()>,
    last_fetch: Mutex<Option<Instant>>,
    /// The last fetch an unknown key id asked for (rate-limited apart from
    /// the periodic ones, so a rotation is picked up at once).
    last_unknown_kid_fetch: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
}

/// Keys by key id; keys without one are tried for tokens without one.
#[derive(Default)]
struct KeySet {
    loaded: bool,
    by_kid: HashMap<String, Key>,
    unnamed: Vec<Key>,
}

struct Key {
    alg: Algorithm,
    key: DecodingKey,
}

// === impl KeyVerifier ===

impl KeyVerifier {
    /// A verifier for `issuers` requiring `audience`, fetching with `client`.
    pub fn new(
        issuers: &[IssuerConfig],
        audience: String,
        clock: SharedClock,
        client: Outbound,
        metrics: VerifyMetrics,
    ) -> Arc<Self> {
        let issuers = issuers
            .iter()
            .map(|c| {
                let keys = IssuerKeys {
                    config: c.clone(),
                    keys: ArcSwap::default(),
                    fetching: tokio::sync::Mutex::new(()),
                    last_fetch: Mutex::new(None),
                    last_unknown_kid_fetch: Mutex::new(None),
                    last_error: Mutex::new(None),
                };
                (c.issuer.clone(), Arc::new(keys))
            })
            .collect();
        Arc::new(Self {
            issuers,
            audience,
            clock,
            client,
            metrics,
        })
    }

    /// Fetches every issuer's keys now, then every [`KEY_REFRESH`] until
    /// `shutdown`. A failed fetch keeps the keys already held.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            for keys in self.issuers.values() {
                self.fetch(keys).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(KEY_REFRESH) => {}
            }
        }
    }

    /// `Err` names the first issuer whose keys have never been loaded.
    pub fn ready(&self) -> Result<(), String> {
        for keys in self.issuers.values() {
            if !keys.keys.load().loaded {
                let why = keys
                    .last_error
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "not fetched yet".into());
                return Err(format!(
                    "the keys of issuer {} are not loaded ({why})",
                    keys.config.issuer
                ));
            }
        }
        Ok(())
    }

    async fn check(&self, token: &str, claims: &Claims) -> Verdict {
        let Some(keys) = claims.iss.as_deref().and_then(|i| self.issuers.get(i)) else {
            return Verdict::Refused("issuer");
        };
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Verdict::Refused("malformed");
        };
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Verdict::Refused("algorithm");
        }
        if !keys.has(header.kid.as_deref()) {
            self.fetch_for_unknown_kid(keys).await;
        }
        let set = keys.keys.load();
        let candidates: Vec<&Key> = match header.kid.as_deref() {
            Some(kid) => set.by_kid.get(kid).into_iter().collect(),
            None => set.unnamed.iter().collect(),
        };
        let candidates: Vec<&Key> = candidates
            .into_iter()
            .filter(|k| k.alg == header.alg)
            .collect();
        if candidates.is_empty() {
            return Verdict::Refused("unknown_key");
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[keys.config.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        // Lifetimes are checked below, against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        let mut refusal = "signature";
        let verified = candidates.iter().any(|k| {
            match jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &validation) {
                Ok(_) => true,
                Err(e) => {
                    refusal = match e.kind() {
                        jsonwebtoken::errors::ErrorKind::InvalidAudience => "audience",
                        jsonwebtoken::errors::ErrorKind::InvalidIssuer => "issuer",
                        jsonwebtoken::errors::ErrorKind::InvalidSignature => "signature",
                        _ => "malformed",
                    };
                    false
                }
            }
        });
        if !verified {
            return Verdict::Refused(refusal);
        }
        let now = unix_seconds(self.clock.now()) as i64;
        let leeway = LEEWAY.as_secs() as i64;
        match (claims.exp, claims.nbf) {
            (None, _) => Verdict::Refused("expired"),
            (Some(exp), _) if exp.saturating_add(leeway) <= now => Verdict::Refused("expired"),
            (_, Some(nbf)) if nbf.saturating_sub(leeway) > now => Verdict::Refused("not_yet_valid"),
            _ => Verdict::Accepted,
        }
    }

    async fn fetch_for_unknown_kid(&self, keys: &IssuerKeys) {
        {
            let mut last = keys.last_unknown_kid_fetch.lock();
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.fetch(keys).await;
    }

    /// Fetches `keys`' issuer's key set (one fetch at a time per issuer).
    async fn fetch(&self, keys: &IssuerKeys) {
        let started = Instant::now();
        let _one = keys.fetching.lock().await;
        if keys.last_fetch.lock().is_some_and(|at| at > started) {
            return; // fetched while this one waited
        }
        *keys.last_fetch.lock() = Some(Instant::now());
        let result = tokio::time::timeout(FETCH_TIMEOUT, self.load(&keys.config))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())));
        match result {
            Ok(set) => {
                let n = set.by_kid.len() + set.unnamed.len();
                let first = !keys.keys.load().loaded;
                keys.keys.store(Arc::new(set));
                *keys.last_error.lock() = None;
                self.metrics.fetches.with_label_values(&["ok"]).inc();
                self.metrics.keys.set(self.key_count() as i64);
                if first {
                    info!(issuer = %redact_userinfo(&keys.config.issuer), keys = n, "issuer keys loaded");
                }
            }
            Err(e) => {
                self.metrics.fetches.with_label_values(&["error"]).inc();
                warn!(issuer = %redact_userinfo(&keys.config.issuer), error = %e, keeping = keys.keys.load().loaded, "cannot fetch the issuer's keys");
                *keys.last_error.lock() = Some(e);
            }
        }
    }

    fn key_count(&self) -> usize {
        self.issuers
            .values()
            .map(|k| {
                let set = k.keys.load();
                set.by_kid.len() + set.unnamed.len()
            })
            .sum()
    }

    async fn load(&self, config: &IssuerConfig) -> Result<KeySet, String> {
        let jwks_url = match &config.jwks_url {
            Some(u) => u.clone(),
            None => self.discover(&config.issuer).await?,
        };
        let body = self.get(&jwks_url).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("{jwks_url} is not a JSON Web Key Set ({e})"))?;
        let mut out = KeySet {
            loaded: true,
            ..KeySet::default()
        };
        for jwk in &set.keys {
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_),
                    None | Some(jsonwebtoken::jwk::KeyAlgorithm::RS256),
                ) => Algorithm::RS256,
                (
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p),
                    None | Some(jsonwebtoken::jwk::KeyAlgorithm::ES256),
                ) if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 => Algorithm::ES256,
                _ => continue, // another algorithm or key type: not used here
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    out.by_kid.insert(kid.clone(), Key { alg, key });
                }
                None => out.unnamed.push(Key { alg, key }),
            }
        }
        Ok(out)
    }

    /// `ISSUER/.well-known/openid-configuration` → `jwks_uri`.
    async fn discover(&self, issuer: &str) -> Result<Uri, String> {
        let url: Uri = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        )
        .parse()
        .map_err(|e| format!("the issuer {issuer} makes no discovery URL ({e})"))?;
        let body = self.get(&url).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON ({e})"))?;
        let jwks = doc
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("{url} has no jwks_uri"))?;
        let uri: Uri = jwks
            .parse()
            .map_err(|e| format!("jwks_uri is not a URL ({e})"))?;
        crate::config::check_fetch_url(&uri).map_err(|why| format!("jwks_uri {uri}: {why}"))?;
        Ok(uri)
    }

    async fn get(&self, url: &Uri) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        let req = Request::get(url.clone())
            .header(ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| e.to_string())?;
        let rsp = self
            .client
            .send(req)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if rsp.status() != StatusCode::OK {
            return Err(format!("{url} answered HTTP {}", rsp.status().as_u16()));
        }
        read_body(rsp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| format!("{url}: {e}"))
    }
}

impl Verify for KeyVerifier {
    fn verify<'a>(&'a self, token: &'a str, claims: &'a Claims) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let verdict = self.check(token, claims).await;
            let label = match verdict {
                Verdict::Accepted => "accepted",
                Verdict::Refused(why) => why,
            };
            self.metrics.verifications.with_label_values(&[label]).inc();
            verdict
        })
    }
}

impl std::fmt::Debug for KeyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVerifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

// === impl IssuerKeys ===

impl IssuerKeys {
    fn has(&self, kid: Option<&str>) -> bool {
        let set = self.keys.load();
        match kid {
            Some(kid) => set.by_kid.contains_key(kid),
            None => !set.unnamed.is_empty(),
        }
    }
}
