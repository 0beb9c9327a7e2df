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
//! wrote, checked by content: the config byte for byte, the binary by its
//! SHA-256 against the running binary's (an in-place edit of the same size
//! is caught; size and mode alone were not). Checks run on every change in
//! `DIR` (never on a read: see `dirwatch`) and every [`RECHECK`]: hashing
//! the 7.5 MB binary takes about 7 ms, so an idle agent spends about
//! 0.07 % of a core on it (BENCHMARKS.md, section 10). Each check runs on
//! tokio's blocking pool.
//!
//! The apps share `DIR` and can write it: a change is undone within one
//! event, but an app that races the agent can run its own file in between.
//! Mount the directory read-only in the apps (docs/deploy.md).

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ring::digest::{Context, Digest, SHA256};
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
/// The largest binary copied: 512 MiB (the image's is about 7 MB).
const MAX_BINARY_BYTES: u64 = 512 * 1024 * 1024;

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
/// time, not held in memory (it is several times the agent's own RSS); its
/// digest is.
#[derive(Debug)]
pub struct ProcessDir {
    dir: PathBuf,
    exe: PathBuf,
    exe_len: u64,
    exe_digest: Digest,
    config: String,
    checks: Arc<AtomicU64>,
}

// === impl ProcessDir ===

impl ProcessDir {
    /// The files for `config`, copying the running binary, written once;
    /// on tokio's blocking pool.
    pub async fn prepare(config: &ProcessDirConfig) -> Result<Self, ProcessDirError> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let dir = Self::new(&config)?;
            dir.sync()?;
            Ok(dir)
        })
        .await
        .unwrap_or_else(|e| Err(ProcessDirError::Binary(std::io::Error::other(e))))
    }

    /// The files for `config`, copying the running binary.
    pub fn new(config: &ProcessDirConfig) -> Result<Self, ProcessDirError> {
        let exe = std::env::current_exe().map_err(ProcessDirError::Binary)?;
        Self::copying(config, exe)
    }

    /// The files for `config`, copying the binary at `exe`.
    pub fn copying(config: &ProcessDirConfig, exe: PathBuf) -> Result<Self, ProcessDirError> {
        let (file, exe_len) = fsread::open(&exe, binary_limit(MAX_BINARY_BYTES))
            .map_err(|e| ProcessDirError::Binary(std::io::Error::other(e)))?;
        let exe_digest = sha256(file, exe_len).ok_or_else(|| {
            ProcessDirError::Binary(std::io::Error::other("it changed while read"))
        })?;
        Ok(Self {
            dir: config.dir.clone(),
            exe,
            exe_len,
            exe_digest,
            config: render(config),
            checks: Arc::new(AtomicU64::new(0)),
        })
    }

    /// `DIR/aws-config`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_NAME)
    }

    /// How many checks ([`ProcessDir::sync`]) have run, for tests: it
    /// moves with changes in `DIR`, never with reads.
    pub fn checks(&self) -> Arc<AtomicU64> {
        self.checks.clone()
    }

    /// Writes whichever file is missing or changed; `Ok(true)` if any was.
    pub fn sync(&self) -> Result<bool, ProcessDirError> {
        let result = self.sync_files();
        self.checks.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn sync_files(&self) -> Result<bool, ProcessDirError> {
        let mut wrote = false;
        let binary = self.dir.join(BINARY_NAME);
        if !self.binary_intact(&binary) {
            let (source, _) = fsread::open(&self.exe, binary_limit(self.exe_len))
                .map_err(|e| ProcessDirError::Binary(std::io::Error::other(e)))?;
            let mut hashing = Hashing::new(source);
            atomic_file::write_from(&binary, &mut hashing, 0o755).map_err(|source| {
                ProcessDirError::Write {
                    path: binary.clone(),
                    source,
                }
            })?;
            if hashing.ctx.finish().as_ref() != self.exe_digest.as_ref() {
                // The next check copies it again.
                return Err(ProcessDirError::Binary(std::io::Error::other(
                    "the agent's binary on disk changed since it started",
                )));
            }
            wrote = true;
        }
        let config = self.config_path();
        // An app sharing the directory may have put anything there (a FIFO,
        // a huge file): read at most what the agent wrote.
        let limit = Limit {
            what: "the credential-process AWS config",
            max: self.config.len() as u64,
        };
        let current = fsread::read(&config, limit).ok();
        if current.as_deref().map(Vec::as_slice) != Some(self.config.as_bytes()) {
            write(&config, self.config.as_bytes(), 0o644)?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Returns true if and only if `path` is the agent's copy: a regular
    /// file (not a symlink), mode 0755, of the binary's size and SHA-256.
    fn binary_intact(&self, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return false;
        };
        if !meta.is_file()
            || meta.len() != self.exe_len
            || meta.permissions().mode() & 0o7777 != 0o755
        {
            return false;
        }
        match fsread::open(path, binary_limit(self.exe_len)) {
            Ok((file, len)) if len == self.exe_len => {
                sha256(file, len).is_some_and(|d| d.as_ref() == self.exe_digest.as_ref())
            }
            _ => false,
        }
    }

    /// Keeps the files in place until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        self.run_every(RECHECK, shutdown).await
    }

    /// [`ProcessDir::run`], checking every `recheck` without events.
    pub async fn run_every(self, recheck: Duration, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let kick = Arc::new(Notify::new());
        let rearm = Arc::new(AtomicBool::new(false));
        let mut watch: Option<DirWatch> = None;
        let mut watch_failed_logged = false;
        loop {
            if watch.is_none() || rearm.swap(false, Ordering::AcqRel) {
                watch = match watch_dir(&this.dir, &kick, &rearm) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        if !watch_failed_logged {
                            warn!(dir = %this.dir.display(), error = %e, "cannot watch the credential-process directory; checking it every {}s", recheck.as_secs());
                            watch_failed_logged = true;
                        }
                        None
                    }
                };
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = kick.notified() => {}
                _ = tokio::time::sleep(recheck) => {}
            }
            let check = this.clone();
            // A check stuck on a hung filesystem must not hold shutdown.
            let checked = tokio::select! {
                checked = tokio::task::spawn_blocking(move || check.sync()) => checked,
                _ = shutdown.cancelled() => return,
            };
            match checked {
                Ok(Ok(true)) => {
                    info!(dir = %this.dir.display(), "credential-process files were missing or changed; written again")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => warn!(error = %e, "cannot restore the credential-process files"),
                Err(e) => warn!(error = %e, "the credential-process check failed"),
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

fn binary_limit(max: u64) -> Limit {
    Limit {
        what: "the agent's binary",
        max,
    }
}

/// The SHA-256 of exactly `len` bytes of `reader`; `None` on an error or
/// if it holds more or fewer.
fn sha256(reader: impl Read, len: u64) -> Option<Digest> {
    let mut hashing = Hashing::new(reader.take(len + 1));
    let n = std::io::copy(&mut hashing, &mut std::io::sink()).ok()?;
    (n == len).then(|| hashing.ctx.finish())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    ctx: Context,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            ctx: Context::new(&SHA256),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        Ok(n)
    }
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
mod tests;
