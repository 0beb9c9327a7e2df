//! The `credential_process` fallback (`--credential-process-dir DIR`): a copy
//! of the agent's own binary at `DIR/credagent` and an AWS config file
//! `DIR/aws-config` whose `[default]` profile runs it as `credential_process`
//! against this agent. App containers that share `DIR` (an emptyDir) set one
//! variable, `AWS_CONFIG_FILE=DIR/aws-config`.
//!
//! Every SDK ranks a profile's `credential_process` above the container
//! provider, so this serves clients whose container provider cannot take
//! CoreWeave's answer: the AWS CRT before aws-c-auth 0.10.2 (PyTorch's
//! s3torchconnector, Mountpoint) refuses a `Token` of `""`, while its process
//! provider accepts it. The cost is one process start per credential fetch.
//!
//! Both files are written atomically before the agent reports ready, and
//! written again whenever either is missing or no longer what the agent
//! wrote (checked on every change in `DIR` and every [`RECHECK`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::atomic_file;
use crate::config::ProcessDirConfig;
use crate::dirwatch::{watch_dir, DirWatch};
use crate::fsread::{self, Limit};

/// The copied binary's name in `DIR`.
pub const BINARY_NAME: &str = "credagent";
/// The AWS config file's name in `DIR`.
pub const CONFIG_NAME: &str = "aws-config";
/// How often the files are checked without a change event.
pub const RECHECK: Duration = Duration::from_secs(10);

/// Why the directory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProcessDirError {
    /// The agent's own binary could not be read.
    #[error("cannot read the agent's own binary to copy it: {0}")]
    Binary(std::io::Error),
    /// A file could not be written.
    #[error("cannot write {path} (--credential-process-dir must be a directory this user can write, e.g. an emptyDir shared with the apps): {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The files, ready to be (re)written. The binary is copied from disk each
/// time, not held in memory (it is several times the agent's own RSS).
#[derive(Debug)]
pub struct ProcessDir {
    dir: PathBuf,
    exe: PathBuf,
    exe_len: u64,
    config: String,
}

// === impl ProcessDir ===

impl ProcessDir {
    /// The files for `config`, copying the running binary.
    pub fn new(config: &ProcessDirConfig) -> Result<Self, ProcessDirError> {
        let exe = std::env::current_exe().map_err(ProcessDirError::Binary)?;
        Self::copying(config, exe)
    }

    /// The files for `config`, copying the binary at `exe`.
    pub fn copying(config: &ProcessDirConfig, exe: PathBuf) -> Result<Self, ProcessDirError> {
        let exe_len = std::fs::metadata(&exe)
            .map_err(ProcessDirError::Binary)?
            .len();
        Ok(Self {
            dir: config.dir.clone(),
            exe,
            exe_len,
            config: render(config),
        })
    }

    /// `DIR/aws-config`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_NAME)
    }

    /// Writes whichever file is missing or changed; `Ok(true)` if any was.
    pub fn sync(&self) -> Result<bool, ProcessDirError> {
        let mut wrote = false;
        let binary = self.dir.join(BINARY_NAME);
        if !same_size_executable(&binary, self.exe_len) {
            let mut source = std::fs::File::open(&self.exe).map_err(ProcessDirError::Binary)?;
            atomic_file::write_from(&binary, &mut source, 0o755).map_err(|source| {
                ProcessDirError::Write {
                    path: binary.clone(),
                    source,
                }
            })?;
            wrote = true;
        }
        let config = self.config_path();
        // An app sharing the directory may have put anything there (a FIFO,
        // a huge file): read at most what the agent wrote.
        let limit = Limit {
            what: "the credential-process AWS config",
            max: self.config.len() as u64,
        };
        if fsread::read(&config, limit)
            .ok()
            .as_deref()
            .map(Vec::as_slice)
            != Some(self.config.as_bytes())
        {
            write(&config, self.config.as_bytes(), 0o644)?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Keeps the files in place until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let kick = Arc::new(Notify::new());
        let rearm = Arc::new(AtomicBool::new(false));
        let mut watch: Option<DirWatch> = None;
        let mut watch_failed_logged = false;
        loop {
            if watch.is_none() || rearm.swap(false, Ordering::AcqRel) {
                watch = match watch_dir(&self.dir, &kick, &rearm) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        if !watch_failed_logged {
                            warn!(dir = %self.dir.display(), error = %e, "cannot watch the credential-process directory; checking it every {}s", RECHECK.as_secs());
                            watch_failed_logged = true;
                        }
                        None
                    }
                };
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = kick.notified() => {}
                _ = tokio::time::sleep(RECHECK) => {}
            }
            match self.sync() {
                Ok(true) => {
                    info!(dir = %self.dir.display(), "credential-process files were missing or changed; written again")
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot restore the credential-process files"),
            }
        }
    }
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), ProcessDirError> {
    atomic_file::write(path, data, mode).map_err(|source| ProcessDirError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A cheap check that the copy is still ours (re-reading 7 MB every few
/// seconds is not): a regular file, this size, executable.
fn same_size_executable(path: &Path, len: u64) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|m| m.is_file() && m.len() == len && m.permissions().mode() & 0o111 == 0o111)
}

/// Renders `DIR/aws-config`.
pub fn render(config: &ProcessDirConfig) -> String {
    let mut out = String::with_capacity(512);
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "# Written by credagent sidecar (--credential-process-dir); rewritten if removed or edited."
    );
    let _ = writeln!(
        out,
        "# Apps set AWS_CONFIG_FILE={}.",
        config.dir.join(CONFIG_NAME).display()
    );
    let _ = writeln!(out, "[default]");
    let _ = writeln!(
        out,
        "credential_process = {} credential-process --url {} --auth-token-file {}",
        config.dir.join(BINARY_NAME).display(),
        config.url,
        config.auth_token_file.display()
    );
    if let Some(region) = &config.region {
        let _ = writeln!(out, "region = {region}");
    }
    if let Some(endpoint) = &config.endpoint_url {
        let _ = writeln!(out, "endpoint_url = {endpoint}");
    }
    if let Some(style) = config.addressing_style {
        let _ = writeln!(out, "s3 =\n    addressing_style = {}", style.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AddressingStyle;

    fn config(dir: &Path) -> ProcessDirConfig {
        ProcessDirConfig {
            dir: dir.to_owned(),
            url: "http://127.0.0.1:8181/v1/credentials".parse().unwrap(),
            auth_token_file: "/var/run/credagent/auth-token".into(),
            region: Some("US-EAST-04A".into()),
            endpoint_url: Some("http://cwlota.com".parse().unwrap()),
            addressing_style: Some(AddressingStyle::Virtual),
        }
    }

    #[test]
    fn the_profile_runs_the_copy_against_this_agent() {
        let text = render(&config(Path::new("/var/run/credagent/bin")));
        assert_eq!(
            text.lines().skip(2).collect::<Vec<_>>(),
            [
                "[default]",
                "credential_process = /var/run/credagent/bin/credagent credential-process --url http://127.0.0.1:8181/v1/credentials --auth-token-file /var/run/credagent/auth-token",
                "region = US-EAST-04A",
                "endpoint_url = http://cwlota.com/",
                "s3 =",
                "    addressing_style = virtual",
            ]
        );
    }

    #[test]
    fn files_are_written_and_written_again_when_removed_or_edited() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("the-agent");
        std::fs::write(&exe, b"\x7fELF not really").unwrap();
        let out = tmp.path().join("shared");
        let dir = ProcessDir::copying(&config(&out), exe.clone()).unwrap();
        assert!(dir.sync().unwrap());
        let bin = out.join(BINARY_NAME);
        let meta = std::fs::metadata(&bin).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(&exe).unwrap());
        assert!(!dir.sync().unwrap(), "nothing to do when both are in place");
        std::fs::remove_file(&bin).unwrap();
        std::fs::write(dir.config_path(), "[default]\nregion = elsewhere\n").unwrap();
        assert!(dir.sync().unwrap());
        assert!(bin.exists());
        assert!(std::fs::read_to_string(dir.config_path())
            .unwrap()
            .contains("credential_process"));
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        let dir = ProcessDir::copying(&config(&file), file.clone()).unwrap();
        let e = dir.sync().unwrap_err().to_string();
        assert!(
            e.contains("cannot write") && e.contains("--credential-process-dir"),
            "{e}"
        );
    }
}
