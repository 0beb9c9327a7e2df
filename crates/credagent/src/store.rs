//! The current credentials, as an immutable snapshot with its response body
//! already rendered.
//!
//! The refresher is the only writer; servers read lock-free through
//! `ArcSwap` and never wait on the upstream. A `Store` holds one identity;
//! node mode keeps one per identity.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::exchange::Credentials;

/// One set of credentials and everything derived from them.
pub struct Snapshot {
    /// The credentials as the upstream issued them.
    pub credentials: Credentials,
    /// The ECS container-credentials response body, rendered once.
    pub body: Bytes,
    /// The EC2 instance-metadata (IMDS) credentials body, rendered once.
    pub imds_body: Bytes,
    /// When they were obtained (monotonic).
    pub obtained_at: Instant,
    /// How long the upstream granted them for, on the upstream's clock.
    pub lifetime: Duration,
    /// When they expire (monotonic): `obtained_at + lifetime`.
    pub expires_at: Instant,
    /// Until when they may be served: shortly before `expires_at`.
    pub serve_until: Instant,
}

/// The single place the current credentials live.
#[derive(Clone)]
pub struct Store {
    current: Arc<ArcSwapOption<Snapshot>>,
    /// Bumped on every publish, for the few callers that wait (the demo,
    /// tests); servers never wait.
    published: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            current: Arc::default(),
            published: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

/// The ECS container-credentials wire format.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EcsBody<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

/// Owns a rendered body so that its bytes are zeroized when the last
/// response using it is dropped.
struct ZeroizingBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

// === impl Snapshot ===

impl Snapshot {
    /// Builds a snapshot of `credentials` obtained at `obtained_at` and valid
    /// for `lifetime`; they are served until `stale_margin` before expiry.
    pub fn new(
        credentials: Credentials,
        obtained_at: Instant,
        lifetime: Duration,
        stale_margin: Duration,
    ) -> Self {
        let body = render_ecs(&credentials);
        let imds_body = render_imds(&credentials, lifetime);
        let expires_at = obtained_at + lifetime;
        Self {
            credentials,
            body,
            imds_body,
            obtained_at,
            lifetime,
            expires_at,
            serve_until: expires_at - stale_margin.min(lifetime),
        }
    }

    /// Returns true if and only if these credentials may still be served at `now`.
    pub fn is_servable(&self, now: Instant) -> bool {
        now < self.serve_until
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("credentials", &self.credentials)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Renders the ECS body: `AccessKeyId`, `SecretAccessKey`, `Token` (always a
/// string, possibly empty), `Expiration` as `YYYY-MM-DDTHH:MM:SSZ` in UTC,
/// and `AccountId` only when known.
pub fn render_ecs(credentials: &Credentials) -> Bytes {
    let expiration = format_expiration(credentials.expiration);
    let body = EcsBody {
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        token: credentials.session_token.expose(),
        expiration: &expiration,
        account_id: credentials.account_id.as_deref(),
    };
    // Serializing a struct of strings into a Vec cannot fail.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Bytes::from_owner(ZeroizingBody(Zeroizing::new(bytes)))
}

/// The IMDS wire format (what EC2 serves at
/// `/latest/meta-data/iam/security-credentials/ROLE`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsBody<'a> {
    code: &'a str,
    last_updated: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
}

/// Renders the IMDS body; `LastUpdated` is when the upstream issued them.
pub fn render_imds(credentials: &Credentials, lifetime: Duration) -> Bytes {
    let issued = credentials.expiration - lifetime;
    let body = ImdsBody {
        code: "Success",
        last_updated: &format_expiration(issued),
        kind: "AWS-HMAC",
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        token: credentials.session_token.expose(),
        expiration: &format_expiration(credentials.expiration),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Bytes::from_owner(ZeroizingBody(Zeroizing::new(bytes)))
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ` in UTC: the one format every SDK
/// parses (JS and Rust reject offsets, botocore rejects naive times).
pub fn format_expiration(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

// === impl Store ===

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the current snapshot and returns it. Only the refresher
    /// (one per identity) calls this.
    pub fn publish(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        self.current.store(Some(snapshot.clone()));
        self.published.send_modify(|n| *n += 1);
        snapshot
    }

    /// A receiver that changes on every publish (for sinks that mirror the
    /// store, such as the credentials file).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Waits until the store holds servable credentials.
    pub async fn wait_servable(&self) -> Arc<Snapshot> {
        let mut rx = self.published.subscribe();
        loop {
            if let Some(s) = self.servable(Instant::now()) {
                return s;
            }
            // The sender lives as long as `self`, so this cannot fail.
            let _ = rx.changed().await;
        }
    }

    /// The current snapshot, servable or not.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The current snapshot if it may be served at `now`.
    pub fn servable(&self, now: Instant) -> Option<Arc<Snapshot>> {
        self.load().filter(|s| s.is_servable(now))
    }

    /// The ECS body of the current snapshot if it may be served at `now`:
    /// what the credentials route sends. It reads through a guard, so the
    /// snapshot's shared reference count is not touched; the only shared
    /// write per request is the body's own count.
    pub fn servable_body(&self, now: Instant) -> Option<Bytes> {
        let current = self.current.load();
        current
            .as_deref()
            .filter(|s| s.is_servable(now))
            .map(|s| s.body.clone())
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("current", &self.current.load().as_deref())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use time::macros::datetime;

    fn creds(token: &str) -> Credentials {
        Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("s3cr3t"),
            session_token: Secret::new(token),
            expiration: datetime!(2026-03-14 21:44:43.250 +02:00),
            role: Some("role".into()),
            account_id: None,
            server_date: None,
        }
    }

    #[test]
    fn ecs_body_is_exact() {
        let body = render_ecs(&creds(""));
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"AccessKeyId":"AKID","SecretAccessKey":"s3cr3t","Token":"","Expiration":"2026-03-14T19:44:43Z"}"#
        );
        let mut c = creds("tok");
        c.account_id = Some("123".into());
        let v: serde_json::Value = serde_json::from_slice(&render_ecs(&c)).unwrap();
        assert_eq!(v["Token"], "tok");
        assert_eq!(v["AccountId"], "123");
    }

    #[test]
    fn imds_body_is_exact() {
        let body = render_imds(&creds("tok"), Duration::from_secs(3600));
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"Code":"Success","LastUpdated":"2026-03-14T18:44:43Z","Type":"AWS-HMAC","AccessKeyId":"AKID","SecretAccessKey":"s3cr3t","Token":"tok","Expiration":"2026-03-14T19:44:43Z"}"#
        );
    }

    #[tokio::test(start_paused = true)]
    async fn servable_until_margin_before_expiry() {
        let store = Store::new();
        let now = Instant::now();
        assert!(store.servable(now).is_none());
        store.publish(Snapshot::new(
            creds(""),
            now,
            Duration::from_secs(3600),
            Duration::from_secs(300),
        ));
        assert!(store.servable(now + Duration::from_secs(3299)).is_some());
        assert!(store.servable(now + Duration::from_secs(3300)).is_none());
        assert_eq!(
            store.servable_body(now + Duration::from_secs(3299)),
            Some(render_ecs(&creds("")))
        );
        assert!(store
            .servable_body(now + Duration::from_secs(3300))
            .is_none());
        assert!(store.load().is_some());
    }

    #[test]
    fn debug_has_no_secrets() {
        let snap = Snapshot::new(
            creds("sessiontok"),
            Instant::now(),
            Duration::from_secs(60),
            Duration::from_secs(15),
        );
        let out = format!("{:?}", Store::new()) + &format!("{snap:?}");
        assert!(
            !out.contains("s3cr3t") && !out.contains("sessiontok"),
            "{out}"
        );
    }
}
