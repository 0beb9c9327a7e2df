//! `credagent exchange`: one exchange of the projected token, printed, with
//! an exit status per failure class (the seed's `curl | jq` check).

use std::path::Path;
use std::time::SystemTime;

use crate::config::UpstreamConfig;
use crate::exchange::{Exchange, ExchangeError, HttpExchanger};
use crate::token::read_token;
use crate::wire::format_expiration;

/// Exit statuses of `credagent exchange` (2 is bad configuration).
pub mod status {
    /// Credentials obtained.
    pub const OK: u8 = 0;
    /// The upstream rejected the token (401/403).
    pub const AUTH_REJECTED: u8 = 3;
    /// The upstream answered with an error or unusable credentials.
    pub const UPSTREAM: u8 = 4;
    /// The upstream could not be reached (DNS, TCP, TLS, timeout).
    pub const TRANSPORT: u8 = 5;
    /// The token file is missing, unreadable or not a JWT.
    pub const BAD_TOKEN: u8 = 6;
}

/// Runs one exchange; returns the text to print and the exit status.
pub async fn run(token_file: &Path, upstream: &UpstreamConfig, show_secret: bool) -> (String, u8) {
    let token = match read_token(token_file).await {
        Ok(t) => t,
        Err(e) => {
            return (
                format!("error: {}: {e}", token_file.display()),
                status::BAD_TOKEN,
            )
        }
    };
    let client = match HttpExchanger::new(upstream) {
        Ok(c) => c,
        Err(e) => return (format!("error: {e}"), status::TRANSPORT),
    };
    let result = client.exchange(&token.raw).await.and_then(|c| {
        c.with_lifetime(SystemTime::now())
            .map_err(ExchangeError::from)
    });
    match result {
        Ok((c, lifetime)) => {
            let left = SystemTime::from(c.expiration)
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let secret = if show_secret {
                c.secret_access_key.expose().to_owned()
            } else {
                "** redacted ** (--show-secret to print)".into()
            };
            let session = match (c.session_token.is_empty(), show_secret) {
                (true, _) => "(none: non-session keys)".to_owned(),
                (false, true) => c.session_token.expose().to_owned(),
                (false, false) => "** redacted **".to_owned(),
            };
            let text = format!(
                "role:              {}\naccess key id:     {}\nsecret access key: {}\nsession token:     {}\nexpiration:        {} (in {})\nlifetime:          {}s\n",
                c.role.as_deref().unwrap_or("(not given)"),
                c.access_key_id,
                secret,
                session,
                format_expiration(c.expiration),
                super::human(left),
                lifetime.as_secs(),
            );
            (text, status::OK)
        }
        Err(e) => {
            let code = match &e {
                ExchangeError::AuthRejected { .. } => status::AUTH_REJECTED,
                ExchangeError::InvalidToken => status::BAD_TOKEN,
                ExchangeError::Transport(_)
                | ExchangeError::Proxy(_)
                | ExchangeError::Timeout(_) => status::TRANSPORT,
                _ => status::UPSTREAM,
            };
            (format!("error: {e}"), code)
        }
    }
}
