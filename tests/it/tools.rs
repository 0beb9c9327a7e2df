//! What some tests need from the machine: programs and privileges. The
//! tests never install anything; `scripts/test.sh` installs the programs
//! and hands each one's path over through the environment:
//!
//! - `CREDAGENT_TEST_PYTHON`: a Python with botocore (`tests/requirements.txt`).
//!   Unset: `target/test-venv`, if scripts/test.sh has built it.
//! - `CREDAGENT_TEST_TINYPROXY`, `CREDAGENT_TEST_UNSHARE`, `CREDAGENT_TEST_IP`,
//!   `CREDAGENT_TEST_CURL`: those programs. Unset: found on `PATH` (or in an
//!   sbin directory), if they are there.
//! - `CREDAGENT_TEST_REQUIRE_ALL=1`: a missing program or privilege fails the
//!   test (with the same reason) instead of skipping it. scripts/test.sh sets
//!   it, so that CI runs every test.
//!
//! A test states what it needs first, `let python = require!(tools::python());`;
//! when that is missing, a plain `cargo test` prints `skipped TEST: REASON`
//! on stderr and the test returns (it counts as passed).

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Why a test cannot run here.
#[derive(Debug, Clone)]
pub struct Missing(String);

impl Missing {
    /// A reason of the caller's own (a harness that checks its needs itself).
    pub fn because(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of a need (`Result<T, Missing>`), or the end of the test:
/// skipped with its reason, or failed under `CREDAGENT_TEST_REQUIRE_ALL=1`.
macro_rules! require {
    ($need:expr) => {
        match $need {
            Ok(found) => found,
            Err(missing) => {
                $crate::tools::skip(&missing);
                return;
            }
        }
    };
}
pub(crate) use require;

/// Reports a test that cannot run: panics (fails the test) when
/// `CREDAGENT_TEST_REQUIRE_ALL` is set, otherwise prints
/// `skipped TEST: REASON` straight to stderr (past the test harness's output
/// capture, so that a passing run shows it too).
pub fn skip(missing: &Missing) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if std::env::var_os("CREDAGENT_TEST_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{test}: {missing} (CREDAGENT_TEST_REQUIRE_ALL is set: no test may be skipped)");
    }
    let _ = writeln!(std::io::stderr().lock(), "skipped {test}: {missing}");
}

/// The Python with botocore.
pub fn python() -> Result<PathBuf, Missing> {
    static FOUND: OnceLock<Result<PathBuf, Missing>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("CREDAGENT_TEST_PYTHON") {
                return executable("CREDAGENT_TEST_PYTHON", PathBuf::from(path));
            }
            // What scripts/test.sh builds, once complete (it writes the
            // requirements it installed last).
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let venv = root.join("target/test-venv");
            let wanted = std::fs::read(root.join("tests/requirements.txt")).ok();
            let python = venv.join("bin/python");
            if wanted.is_some() && std::fs::read(venv.join(".installed")).ok() == wanted {
                return executable("target/test-venv", python);
            }
            Err(Missing(
                "no Python with botocore: CREDAGENT_TEST_PYTHON is unset and target/test-venv \
                 is not built (scripts/test.sh builds it)"
                    .into(),
            ))
        })
        .clone()
}

/// tinyproxy, and the mount namespace it runs in (see `tinyproxy.rs`).
pub fn tinyproxy() -> Result<PathBuf, Missing> {
    static FOUND: OnceLock<Result<PathBuf, Missing>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = program("CREDAGENT_TEST_TINYPROXY", "tinyproxy", "tinyproxy")?;
            mount_namespace()?;
            Ok(path)
        })
        .clone()
}

/// `unshare`, once it has shown it can give a process a mount namespace of
/// its own with `/etc/hosts` bind-mounted over (root or CAP_SYS_ADMIN).
pub fn mount_namespace() -> Result<PathBuf, Missing> {
    static FOUND: OnceLock<Result<PathBuf, Missing>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let unshare = program("CREDAGENT_TEST_UNSHARE", "unshare", "util-linux")?;
            probe(
                Command::new(&unshare).args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    "mount --bind /etc/hosts /etc/hosts",
                ]),
                "cannot make a mount namespace (`unshare --mount` needs root or CAP_SYS_ADMIN)",
            )?;
            Ok(unshare)
        })
        .clone()
}

/// `ip`, once it has shown it can create (and delete) a network namespace
/// (root).
pub fn network_namespace() -> Result<PathBuf, Missing> {
    static FOUND: OnceLock<Result<PathBuf, Missing>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let ip = program("CREDAGENT_TEST_IP", "ip", "iproute2")?;
            let name = format!("credagent-it-probe-{}", std::process::id());
            probe(
                Command::new(&ip).args(["netns", "add", &name]),
                "cannot create a network namespace (`ip netns add` needs root)",
            )?;
            let _ = Command::new(&ip)
                .args(["netns", "delete", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            Ok(ip)
        })
        .clone()
}

/// curl.
pub fn curl() -> Result<PathBuf, Missing> {
    static FOUND: OnceLock<Result<PathBuf, Missing>> = OnceLock::new();
    FOUND
        .get_or_init(|| program("CREDAGENT_TEST_CURL", "curl", "curl"))
        .clone()
}

/// The test kit's `credagent-standin` binary, beside this crate's binary:
/// `cargo test` builds only this package's binaries for its integration
/// tests, so scripts/test.sh builds it first.
pub fn standin_bin() -> Result<PathBuf, Missing> {
    let bin = Path::new(env!("CARGO_BIN_EXE_credagent")).with_file_name("credagent-standin");
    executable("the test kit's stand-in", bin).map_err(|_| {
        Missing(
            "credagent-standin is not built (`cargo build -p credagent-testkit --bin \
             credagent-standin`; scripts/test.sh builds it)"
                .into(),
        )
    })
}

/// `$var` if set (it must name an executable), else `name` on `PATH` or in
/// an sbin directory.
fn program(var: &str, name: &str, package: &str) -> Result<PathBuf, Missing> {
    if let Some(path) = std::env::var_os(var) {
        return executable(var, PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            Missing(format!(
                "no `{name}` here (Debian package {package}; scripts/test.sh installs it and sets {var})"
            ))
        })
}

fn executable(what: &str, path: PathBuf) -> Result<PathBuf, Missing> {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path),
        Ok(_) => Err(Missing(format!(
            "{what}: {} is not an executable file",
            path.display()
        ))),
        Err(e) => Err(Missing(format!("{what}: {}: {e}", path.display()))),
    }
}

fn is_executable(path: &Path) -> bool {
    executable("", path.to_owned()).is_ok()
}

/// Runs `cmd`; a failure is `what`, with what it printed.
fn probe(cmd: &mut Command, what: &str) -> Result<(), Missing> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Missing(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Missing(format!("{what}: {}", stderr.trim())))
}
