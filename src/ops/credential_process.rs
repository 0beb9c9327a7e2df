//! `credagent credential-process`: prints a running agent's credentials in
//! the `credential_process` format, for AWS config profiles:
//!
//! ```ini
//! [profile app]
//! credential_process = credagent credential-process
//! ```

use std::path::PathBuf;
use std::time::Duration;

use http::{StatusCode, Uri};
use zeroize::Zeroizing;

use crate::fsread;
use crate::logsafe::redact_userinfo;
use crate::server::auth::AUTH_TOKEN_FILE;
use crate::wire;

/// What to fetch from.
#[derive(Debug, Clone)]
pub struct CredentialProcessConfig {
    /// The agent's credentials URL.
    pub url: Uri,
    /// The agent's auth token file.
    pub auth_token_file: PathBuf,
    /// Total time allowed.
    pub timeout: Duration,
}

/// Fetches and renders the credential_process JSON. The error is one line
/// for stderr.
pub async fn fetch(config: &CredentialProcessConfig) -> Result<Zeroizing<String>, String> {
    let auth = fsread::read_async(&config.auth_token_file, AUTH_TOKEN_FILE)
        .await
        .map_err(|e| format!("the auth token file: {e}"))?;
    let auth = std::str::from_utf8(&auth).map_err(|_| {
        format!(
            "the auth token file {} is not UTF-8",
            config.auth_token_file.display()
        )
    })?;
    // A token file written by hand often ends in a newline, which no header
    // may hold; the token itself never does.
    let auth = auth.trim_end_matches(['\r', '\n']);
    let shown = config.url.to_string();
    let url = redact_userinfo(&shown);
    let (status, body) = super::local_get(&config.url, Some(auth), config.timeout)
        .await
        .map_err(|e| format!("cannot reach the agent at {url}: {e}"))?;
    match status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED => {
            return Err(format!(
                "the agent at {url} refused the auth token (HTTP 401); check --auth-token-file"
            ))
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            return Err(format!(
                "the agent at {url} has no valid credentials yet (HTTP 503); see its logs"
            ))
        }
        other => {
            return Err(format!(
                "the agent at {url} answered HTTP {}",
                other.as_u16()
            ))
        }
    }
    let creds =
        wire::parse_ecs(&body).map_err(|e| format!("the agent's answer is unusable: {e}"))?;
    Ok(wire::credential_process_json(&creds))
}
