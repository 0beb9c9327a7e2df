//! Mirrors the store into an AWS shared credentials file, for tools that
//! only read files (`--credentials-file`).
//!
//! The file is rewritten atomically (a temporary file in the same directory,
//! then a rename; mode 0640) at start-up and after every refresh, so readers
//! never see a partial file.

use std::fmt::Write as _;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::exchange::Credentials;
use crate::store::{format_expiration, Store};

/// Where and under which profile to write.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// The credentials file.
    pub path: PathBuf,
    /// The profile section, e.g. `default`.
    pub profile: String,
}

/// Renders the file: one profile section.
pub fn render(profile: &str, credentials: &Credentials) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(256));
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "# Written by credagent; rewritten on every refresh. Do not edit."
    );
    let _ = writeln!(
        out,
        "# Expires {}",
        format_expiration(credentials.expiration)
    );
    let _ = writeln!(out, "[{profile}]");
    let _ = writeln!(out, "aws_access_key_id = {}", credentials.access_key_id);
    let _ = writeln!(
        out,
        "aws_secret_access_key = {}",
        credentials.secret_access_key.expose()
    );
    if !credentials.session_token.is_empty() {
        let _ = writeln!(
            out,
            "aws_session_token = {}",
            credentials.session_token.expose()
        );
    }
    out
}

/// Writes the file whenever the store publishes, until `shutdown`.
pub async fn run(config: FileSinkConfig, store: Store, shutdown: CancellationToken) {
    let mut published = store.subscribe();
    loop {
        if let Some(snapshot) = store.load() {
            let body = render(&config.profile, &snapshot.credentials);
            let path = config.path.clone();
            let written = tokio::task::spawn_blocking(move || {
                crate::atomic_file::write(&path, body.as_bytes(), 0o640)
            })
            .await;
            match written {
                Ok(Ok(())) => {
                    info!(path = %config.path.display(), profile = %config.profile, "credentials file written")
                }
                Ok(Err(e)) => {
                    warn!(path = %config.path.display(), error = %e, "cannot write the credentials file")
                }
                Err(e) => warn!(error = %e, "credentials file writer failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn renders_one_profile() {
        let mut c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("SK"),
            session_token: Secret::new(""),
            expiration: time::macros::datetime!(2026-01-01 00:00:00 UTC),
            role: None,
            account_id: None,
            server_date: None,
        };
        assert_eq!(
            render("app", &c).as_str(),
            "# Written by credagent; rewritten on every refresh. Do not edit.\n# Expires 2026-01-01T00:00:00Z\n[app]\naws_access_key_id = AKID\naws_secret_access_key = SK\n"
        );
        c.session_token = Secret::new("TOK");
        assert!(render("default", &c).ends_with("aws_session_token = TOK\n"));
    }
}
