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

use crate::config::is_loopback_host;
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

/// Checks `--url` by the agent's own rule for plain http: only to a
/// loopback host (`127.0.0.0/8`, `::1`, `localhost`), since the request
/// carries the auth token in clear. The agent serves only plain http, so
/// nothing else is accepted. The error is the flag's message.
pub fn agent_url(raw: &str) -> Result<Uri, &'static str> {
    const WANT: &str = "must be an http:// URL of the agent on a loopback address";
    let uri: Uri = raw.parse().map_err(|_| WANT)?;
    let host = uri.host().ok_or(WANT)?;
    match uri.scheme_str() {
        Some("http") if is_loopback_host(host) => Ok(uri),
        Some("http") => Err("plain http is allowed only to a loopback host: the auth token would cross the network in clear"),
        _ => Err(WANT),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_plain_http_to_loopback_only() {
        for ok in [
            "http://127.0.0.1:8181/v1/credentials",
            "http://127.9.9.9:1/x",
            "http://[::1]:8181/v1/credentials",
            "http://localhost:8181/v1/credentials",
        ] {
            assert!(agent_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "http://10.1.2.3:8181/v1/credentials",
                "only to a loopback host",
            ),
            ("http://agent.example:8181/", "only to a loopback host"),
            ("http://0.0.0.0:8181/", "only to a loopback host"),
            ("https://127.0.0.1:8181/", "must be an http:// URL"),
            ("127.0.0.1:8181", "must be an http:// URL"),
            ("not a url", "must be an http:// URL"),
        ] {
            let e = agent_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
