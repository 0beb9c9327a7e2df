//! The stand-in's vocabulary, shared by every part of it: its paths, its configuration, the
//! faults it can inject, how it offers the POST exchange and what it records of a POST. It depends
//! on no other part of the stand-in, so that the parts that serve requests and the parts that
//! steer them (the handle, the control API) can all name it.

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::jwt::{Issuer, Verifier};
use crate::secret::REDACTED;

/// The GET exchange's path without the org id.
pub const EXCHANGE_PATH_PREFIX: &str = "/v1/cwobject/temporary-credentials/oidc/";
/// The POST exchange's path (CoreWeave's `CreateAccessKeyFromOIDC`): no org id, which travels in
/// the body.
pub const POST_EXCHANGE_PATH: &str = "/v1/cwobject/temporary-credentials/oidc";
/// The prefix of the control API.
pub const CONTROL_PATH_PREFIX: &str = "/_standin/";

/// The stand-in's configuration. `Debug` redacts the secret access key and the session token.
pub struct StandInConfig {
    /// The org id in the exchange path. Default `standin-org`.
    pub org_id: String,
    /// The stand-in accepts a token if and only if one of these verifies its signature.
    pub verifiers: Vec<Verifier>,
    /// If set, `aud` (a string or an array) must contain it. Default `None`.
    pub audience: Option<String>,
    /// The lifetime of the credentials the GET hands out (`Expiration = now + lifetime`), and the
    /// POST's for `durationSeconds` 0. Default 3600 s.
    pub lifetime: Duration,
    /// The `AccessKeyId` it hands out.
    pub access_key_id: String,
    /// The `SecretAccessKey` it hands out.
    pub secret_access_key: String,
    /// The `Token` it hands out. Default `""`, as CoreWeave sends.
    pub session_token: String,
    /// The stand-in's own signer, used by `POST /_standin/token`. When set, its verifier is
    /// accepted too. Default `None`.
    pub issuer: Option<Issuer>,
}

/// What the stand-in does for the next request(s) instead of the normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// That status with a JSON error body (`{"code","message"}`).
    Status(u16),
    /// 429, plus a `Retry-After` header with this exact value if it is given.
    Throttle {
        /// The `Retry-After` value, sent as is.
        retry_after: Option<String>,
    },
    /// Sleep for this long, then answer normally.
    Delay(Duration),
    /// Never answer (until shutdown, which then drops the connection).
    Hang,
    /// This status with this raw body, with `Content-Type: application/json`.
    Body {
        /// The status code.
        status: u16,
        /// The body, sent as is.
        body: String,
    },
    /// Drop the connection without answering.
    CloseConnection,
    /// Answer 200 with a `Content-Length` larger than the body, then close:
    /// the connection breaks mid-body.
    TruncatedBody,
}

/// Whether the stand-in offers the POST exchange, and how it refuses it when it does not: for
/// testing a client against a server without the POST. Spelled `offered`, `not-found` and
/// `method-not-allowed` on the command line and in the control API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PostExchange {
    /// Serve it (the default).
    #[default]
    Offered,
    /// 404 `not_found` on its path, as a server without the route.
    NotFound,
    /// 405 `method_not_allowed` with an empty `Allow` on its path, as a server whose route there
    /// takes no method at all.
    MethodNotAllowed,
}

/// What a well-formed POST exchange asked for: its body without the `oidcToken`, and its
/// `Content-Type`. Recorded whatever the answer (a fault, a wrong org or a bad token included), so
/// that tests can assert what a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PostRequest {
    /// `durationSeconds`, 0 to 43200.
    #[serde(rename = "durationSeconds")]
    pub duration_seconds: u32,
    /// `orgId`.
    #[serde(rename = "orgId")]
    pub org_id: String,
    /// `attributes` (empty if the body had none).
    pub attributes: BTreeMap<String, String>,
    /// The `Content-Type` header, if it was sent and is text.
    #[serde(rename = "contentType")]
    pub content_type: Option<String>,
}

// === impl StandInConfig ===

impl Default for StandInConfig {
    /// Org `standin-org`, no verifiers, no audience check, 3600 s, test keys
    /// `STANDINACCESSKEY0000` / `standin-secret-access-key`, an empty session token, no issuer.
    fn default() -> Self {
        Self {
            org_id: "standin-org".to_owned(),
            verifiers: Vec::new(),
            audience: None,
            lifetime: Duration::from_secs(3600),
            access_key_id: "STANDINACCESSKEY0000".to_owned(),
            secret_access_key: "standin-secret-access-key".to_owned(),
            session_token: String::new(),
            issuer: None,
        }
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("org_id", &self.org_id)
            .field("verifiers", &self.verifiers)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .field("session_token", &REDACTED)
            .field("issuer", &self.issuer)
            .finish()
    }
}

// === impl PostExchange ===

impl PostExchange {
    /// The spelling on the command line and in the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            PostExchange::Offered => "offered",
            PostExchange::NotFound => "not-found",
            PostExchange::MethodNotAllowed => "method-not-allowed",
        }
    }
}
