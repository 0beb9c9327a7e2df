//! A memory cgroup for one child process: the limit a chart or an injected
//! sidecar ships, with swap off, so that a test can run the binary inside
//! it and read what it cost: the peak charge (`memory.max_usage_in_bytes`,
//! kernel memory such as socket state included), how often it hit the
//! limit (`memory.failcnt`) and whether the kernel OOM-killed anything in
//! it (`memory.oom_control`'s `oom_kill`).
//!
//! [`sidecar_limit`] and [`node_limit`] read the limits the chart ships.
//!
//! cgroup v1's memory controller, at /sys/fs/cgroup/memory (what CI's
//! machines mount), as root. [`Cgroup::create`] says why it cannot when
//! either is missing; the test then skips with that reason, or fails when
//! `CREDAGENT_TEST_REQUIRE_ALL` is set ([`unavailable`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the v1 memory controller is mounted.
pub const MEMORY: &str = "/sys/fs/cgroup/memory";

/// A memory cgroup of its own, removed when dropped (once its processes
/// have exited).
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    limit: u64,
}

/// A process started in a [`Cgroup`], its stderr in a file; killed when
/// dropped.
#[derive(Debug)]
pub struct Confined {
    child: tokio::process::Child,
    /// Its pid.
    pub pid: u32,
    log: PathBuf,
}

/// What a cgroup's processes cost, read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The limit, bytes.
    pub limit: u64,
    /// The charge now, bytes.
    pub now: u64,
    /// The highest charge since creation (or the last [`Cgroup::take_peak`]), bytes.
    pub peak: u64,
    /// Times a charge failed at the limit (of memory, or of memory and swap
    /// where both are accounted: that counter is tried first); the kernel
    /// then reclaims, or kills. Some kernels leave it at 0 even then (6.18
    /// did, with an OOM kill counted): `peak` and `oom_kills` are the
    /// figures to rely on.
    pub failcnt: u64,
    /// Processes the kernel OOM-killed in it.
    pub oom_kills: u64,
    /// Anonymous memory now (`memory.stat` `rss`), bytes.
    pub rss: u64,
    /// Kernel memory now (`memory.kmem.usage_in_bytes`; socket and file
    /// state), bytes; 0 where the kernel does not account it apart.
    pub kernel: u64,
}

// === impl Cgroup ===

impl Cgroup {
    /// Creates `credagent-test-NAME-PID-RANDOM` holding at most `limit`
    /// bytes with swap off, or says why it cannot.
    pub fn create(name: &str, limit: u64) -> Result<Self, String> {
        if !is_root() {
            return Err("not root: cannot create a memory cgroup".into());
        }
        if !Path::new(MEMORY).join("memory.limit_in_bytes").exists() {
            return Err(format!("no cgroup v1 memory controller at {MEMORY}"));
        }
        let dir = Path::new(MEMORY).join(format!(
            "credagent-test-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cgroup = Self { dir, limit };
        cgroup.write("memory.limit_in_bytes", &limit.to_string())?;
        // Swap off: memory and swap together get the same limit where swap
        // is accounted; the kernel is asked not to swap otherwise.
        if cgroup.dir.join("memory.memsw.limit_in_bytes").exists() {
            cgroup.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
        }
        cgroup.write("memory.swappiness", "0")?;
        Ok(cgroup)
    }

    /// The limit, bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// A command that runs `program` inside this cgroup: a shell joins it
    /// and then execs the program (same pid), so that every byte the
    /// program allocates is charged here. Add the program's arguments to
    /// it. The program's file is read once first, from here: its page
    /// cache is then charged to the test process's cgroup, not to this one
    /// (a 150 MB debug binary's would otherwise count against the limit;
    /// budgets count a binary's pages in the process's baseline).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let program = program.as_ref();
        if let Ok(mut file) = std::fs::File::open(program) {
            let _ = std::io::copy(&mut file, &mut std::io::sink());
        }
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo $$ > \"$0\" && exec \"$@\"")
            .arg(self.dir.join("cgroup.procs"))
            .arg(program);
        cmd
    }

    /// Starts `program ARGS` in it (see [`Cgroup::command`]), its stderr
    /// written to `log`.
    pub fn spawn(&self, program: impl AsRef<OsStr>, args: &[String], log: PathBuf) -> Confined {
        let mut cmd = tokio::process::Command::from(self.command(program));
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log file"))
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn the confined process");
        let pid = child.id().expect("a running child has a pid");
        Confined { child, pid, log }
    }

    /// What its processes cost now and at their peak.
    pub fn usage(&self) -> Usage {
        let stat = self.read("memory.stat");
        let rss = stat
            .lines()
            .find_map(|l| l.strip_prefix("rss "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let oom_kills = self
            .read("memory.oom_control")
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Usage {
            limit: self.limit,
            now: self.number("memory.usage_in_bytes"),
            peak: self.number("memory.max_usage_in_bytes"),
            failcnt: self.number("memory.failcnt") + self.number_or_zero("memory.memsw.failcnt"),
            oom_kills,
            rss,
            kernel: self.number_or_zero("memory.kmem.usage_in_bytes"),
        }
    }

    /// The peak charge so far, bytes; the peak then starts again from the
    /// charge now (for a peak per phase of a test).
    pub fn take_peak(&self) -> u64 {
        let peak = self.number("memory.max_usage_in_bytes");
        self.write("memory.max_usage_in_bytes", "0")
            .unwrap_or_else(|e| panic!("{e}"));
        peak
    }

    /// The processes in it now.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("{}/{file}: {e}", self.dir.display()))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", self.dir.display()))
    }

    fn number(&self, file: &str) -> u64 {
        let text = self.read(file);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}/{file}: not a number: {text}", self.dir.display()))
    }

    fn number_or_zero(&self, file: &str) -> u64 {
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // A cgroup can be removed once its last process has been reaped;
        // the test's own guard kills and reaps it, the kernel may take a
        // moment more to let go.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{}: not removed, processes {:?} still in it",
            self.dir.display(),
            self.pids()
        );
    }
}

// === impl Confined ===

impl Confined {
    /// Panics, with `cgroup`'s figures and the end of the log, if the
    /// process has exited (an OOM kill shows as SIGKILL).
    pub fn alive(&mut self, cgroup: &Cgroup) {
        if let Some(status) = self.child.try_wait().expect("wait on the child") {
            panic!(
                "the process exited ({status}); {}\n{}",
                cgroup.usage(),
                self.log_tail(20)
            );
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

// === impl Usage ===

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "peak {:.1} MiB of {:.0} MiB ({:.0} %), now {:.1} MiB (anonymous {:.1}, kernel {:.1}), failcnt {}, OOM kills {}",
            mib(self.peak),
            mib(self.limit),
            self.peak as f64 * 100.0 / self.limit as f64,
            mib(self.now),
            mib(self.rss),
            mib(self.kernel),
            self.failcnt,
            self.oom_kills
        )
    }
}

/// Reports a test that cannot run here (the reason `create` gave): fails
/// it when `CREDAGENT_TEST_REQUIRE_ALL` is set (scripts/test.sh), otherwise
/// prints `skipped TEST: REASON` on stderr (past the harness's capture).
/// The same convention as `tools::require!`.
pub fn unavailable(reason: &str) {
    crate::tools::skip(&crate::tools::Missing::because(reason));
}

/// Whether this process runs as root (effective UID 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2).map(str::to_owned)
        })
        .as_deref()
        == Some("0")
}

/// The repository, where the shipped limits are read from.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The memory limit the webhook gives injected sidecars, as the chart
/// renders it at its defaults.
pub fn sidecar_limit() -> u64 {
    let golden = Path::new(ROOT).join("charts/credagent/tests/golden/default.yaml");
    let text = std::fs::read_to_string(&golden).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("CREDAGENT_SIDECAR_MEMORY_LIMIT:"))
        .and_then(quantity)
        .unwrap_or_else(|| panic!("no sidecar memory limit in {}", golden.display()))
}

/// The node agent's memory limit in the rendered DaemonSet (the chart at
/// its defaults): the `credagent` container's `limits.memory`.
pub fn node_limit() -> u64 {
    let manifest = Path::new(ROOT).join("manifests/daemonset/generated.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    text.lines()
        .skip_while(|l| l.trim() != "- name: credagent")
        .skip_while(|l| l.trim() != "limits:")
        .find_map(|l| l.trim().strip_prefix("memory:"))
        .and_then(quantity)
        .unwrap_or_else(|| panic!("no credagent memory limit in {}", manifest.display()))
}

/// A memory limit as a chart or manifest writes it (`32Mi`, `1Gi`, bytes).
fn quantity(text: &str) -> Option<u64> {
    let text = text.trim().trim_matches('"');
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let scale = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok().map(|n| n * scale)
}
