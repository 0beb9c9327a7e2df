//! `credagent node setup-link` and the node agent on its link-local address,
//! each inside a network namespace the test creates and deletes, never on the
//! host's own interfaces.
//!
//! These tests need root, to create the namespaces: without it they are
//! skipped (see `tools.rs`), or fail under `CREDAGENT_TEST_REQUIRE_ALL=1`
//! (as in CI, which runs as root). The `ip` command is used for set-up,
//! inspection and tear-down only; the product code talks netlink itself.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use credagent_testkit::standin::EXCHANGE_PATH_PREFIX;

use crate::tools::{self, require};

const BIN: &str = env!("CARGO_BIN_EXE_credagent");
const V4: &str = "169.254.170.23/32";
const V6: &str = "fd00:ec2::23/128";
const V6_ADDR: &str = "fd00:ec2::23";

#[test]
fn setup_link_is_idempotent_in_a_fresh_netns() {
    require!(tools::network_namespace());
    let host_before = host_addrs();
    let ns = Netns::create();

    let first = ns.run(BIN, &["node", "setup-link"]);
    first.assert_success("the first `node setup-link`");
    let addrs = ns.addrs();
    assert!(
        addrs.contains(V4),
        "{V4} missing after setup-link:\n{addrs}\n{first}"
    );
    let has_v6 = addrs.contains(V6);
    if !has_v6 {
        assert!(
            first.has_line(&[V6_ADDR, "skipped"]),
            "{V6} is missing but the output does not say it was skipped:\n{first}"
        );
    }

    // Dummy link where the kernel has the type, loopback where it does not
    // (this test machine's kernel answers "Unknown device type").
    let on_dummy = ns.run(&ip(), &["-o", "link", "show", "credagent0"]).code == 0;
    let dev = if on_dummy { "credagent0" } else { "lo" };
    assert_eq!(
        device_of(&addrs, V4).as_deref(),
        Some(dev),
        "{V4} is not on {dev}:\n{addrs}"
    );
    if has_v6 {
        assert_eq!(
            device_of(&addrs, V6).as_deref(),
            Some(dev),
            "{V6} is not on {dev}:\n{addrs}"
        );
    }
    if on_dummy {
        assert!(
            first.has_line(&["dummy link created"]),
            "the output does not report the new link:\n{first}"
        );
    } else {
        assert!(
            first.all().to_lowercase().contains("loopback"),
            "the addresses went on lo but the output does not say so:\n{first}"
        );
    }
    assert!(ns.link_is_up(dev), "{dev} is not up after setup-link");

    let second = ns.run(BIN, &["node", "setup-link"]);
    second.assert_success("the second `node setup-link`");
    assert!(
        second.has_line(&["169.254.170.23", "already present"]),
        "the second run does not report {V4} as already present:\n{second}"
    );
    if has_v6 {
        assert!(
            second.has_line(&[V6_ADDR, "already present"]),
            "the second run does not report {V6} as already present:\n{second}"
        );
    }
    assert!(
        !second.has_line(&["address added"]),
        "the second run added an address:\n{second}"
    );
    if on_dummy {
        assert!(
            second.has_line(&["dummy link already exists"]),
            "the second run does not reuse the link:\n{second}"
        );
    }
    assert_eq!(ns.addrs(), addrs, "the second run changed the addresses");

    drop(ns);
    assert_eq!(
        host_addrs(),
        host_before,
        "the host's own addresses changed"
    );
    assert_ne!(
        run(&ip(), &["-o", "link", "show", "credagent0"]).code,
        0,
        "credagent0 appeared on the host"
    );
}

#[test]
fn setup_link_without_ipv6_keeps_ipv4_and_warns() {
    require!(tools::network_namespace());
    let ns = Netns::create();
    ns.disable_ipv6();

    let out = ns.run(BIN, &["node", "setup-link"]);
    out.assert_success("`node setup-link` without IPv6");
    let addrs = ns.addrs();
    assert!(addrs.contains(V4), "{V4} missing:\n{addrs}\n{out}");
    assert!(
        !addrs.contains(V6),
        "{V6} added despite disable_ipv6:\n{addrs}"
    );
    assert!(
        out.has_line(&[V6_ADDR, "skipped", "IPv6"]),
        "the output does not say why {V6} was skipped:\n{out}"
    );
}

#[test]
fn node_agent_serves_credentials_on_the_link_local_address() {
    require!(tools::network_namespace());
    let curl = require!(tools::curl());
    let curl = curl.to_str().expect("UTF-8 path");
    let standin_bin = require!(tools::standin_bin());
    let ns = Netns::create();
    // The stand-in listens on 127.0.0.1, which exists only once lo is up
    // (setup-link brings lo up only when it falls back to it).
    ns.run(&ip(), &["link", "set", "lo", "up"])
        .assert_success("ip link set lo up");
    ns.run(BIN, &["node", "setup-link"])
        .assert_success("`node setup-link`");

    let dir = tempfile::tempdir().expect("temporary directory");
    let addr_file = dir.path().join("standin.addr");
    let addr_arg = addr_file.to_str().expect("UTF-8 temp path");
    let mut standin = ns.spawn_bin(
        standin_bin.to_str().expect("UTF-8 path"),
        "stand-in",
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--access-key",
            "AK",
            "--secret-key",
            "SK",
            "--addr-file",
            addr_arg,
        ],
    );
    let mut standin_addr = None;
    poll(Duration::from_secs(20), || {
        standin.assert_running();
        standin_addr = std::fs::read_to_string(&addr_file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        standin_addr.is_some()
    });
    let Some(standin_addr) = standin_addr else {
        panic!("the stand-in wrote no address file\n{}", standin.logs());
    };

    let minted = ns.run(
        curl,
        &[
            "-sS",
            "-f",
            "--noproxy",
            "*",
            "-X",
            "POST",
            &format!("http://{standin_addr}/_standin/token"),
        ],
    );
    minted.assert_success("minting a token at the stand-in");
    let token = minted.stdout.trim().to_owned();
    assert!(!token.is_empty(), "the stand-in minted an empty token");

    let exchange_url = format!("http://{standin_addr}{EXCHANGE_PATH_PREFIX}standin-org");
    let mut node = ns.spawn(
        "node",
        dir.path(),
        &[
            "node",
            "--exchange-url",
            &exchange_url,
            "--listen",
            "169.254.170.23:8080",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let authorization = format!("Authorization: {token}");
    let mut last = (String::new(), String::new());
    let served = poll(Duration::from_secs(30), || {
        node.assert_running();
        let out = ns.run(
            curl,
            &[
                "-sS",
                "--noproxy",
                "*",
                "--max-time",
                "5",
                "-H",
                &authorization,
                "-w",
                "\n%{http_code}",
                "http://169.254.170.23:8080/v1/credentials",
            ],
        );
        let (body, status) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
        last = (
            format!("curl exit {}, HTTP {status}, {}", out.code, out.stderr),
            body.to_owned(),
        );
        out.code == 0 && status == "200"
    });
    let (answer, body) = last;
    assert!(
        served,
        "no 200 from http://169.254.170.23:8080/v1/credentials; last answer: {answer}: {body}\n{}",
        node.logs()
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("credentials are JSON");
    assert_eq!(json["AccessKeyId"], "AK", "{body}");
    assert_eq!(json["SecretAccessKey"], "SK", "{body}");
    assert!(json["Token"].is_string(), "{body}");
    assert!(json["Expiration"].is_string(), "{body}");
}

/// A network namespace of the test's own, deleted on drop.
struct Netns {
    name: String,
}

/// A finished command.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A process inside a namespace, killed on drop. Its output goes to a file
/// so that it can never block on a full pipe.
struct Process {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

// === impl Netns ===

impl Netns {
    /// Creates `credagent-it-<pid>-<n>`. Panics (so the test fails) when it
    /// cannot: the test required [`tools::network_namespace`] first.
    fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "credagent-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(&ip(), &["netns", "add", &name]);
        assert_eq!(
            out.code, 0,
            "cannot create network namespace {name} (these tests need root):\n{out}"
        );
        Self { name }
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(ip());
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> Outcome {
        let mut cmd = self.command(program, args);
        Outcome::of(&mut cmd, program)
    }

    /// Starts `credagent ARGS` inside the namespace. `ip netns exec` execs the
    /// program in place, so the child is credagent itself.
    fn spawn(&self, what: &'static str, log_dir: &Path, args: &[&str]) -> Process {
        self.spawn_bin(BIN, what, log_dir, args)
    }

    fn spawn_bin(&self, bin: &str, what: &'static str, log_dir: &Path, args: &[&str]) -> Process {
        let log = log_dir.join(format!("{what}.log"));
        let file = File::create(&log).expect("create log file");
        let err = file.try_clone().expect("clone log file");
        let child = self
            .command(bin, args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("spawn ip netns exec");
        Process { what, child, log }
    }

    /// `ip -o addr show` inside, normalised.
    fn addrs(&self) -> String {
        let out = self.run(&ip(), &["-o", "addr", "show"]);
        out.assert_success("ip -o addr show");
        normalise_addrs(&out.stdout)
    }

    fn link_is_up(&self, dev: &str) -> bool {
        let out = self.run(&ip(), &["-o", "link", "show", dev]);
        out.assert_success("ip -o link show");
        out.stdout
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"))
    }

    /// Turns IPv6 off inside the namespace, as `disable_ipv6` does on a node.
    /// A kernel without IPv6 needs nothing done.
    fn disable_ipv6(&self) {
        let script = "[ -d /proc/sys/net/ipv6 ] || exit 0; \
                      for c in all default lo; do \
                      echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6 || exit 1; done";
        self.run("sh", &["-c", script])
            .assert_success("disabling IPv6 in the namespace");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = run(&ip(), &["netns", "delete", &self.name]);
        if out.code != 0 {
            eprintln!(
                "warning: cannot delete network namespace {}:\n{out}",
                self.name
            );
        }
    }
}

// === impl Outcome ===

impl Outcome {
    fn of(cmd: &mut Command, program: &str) -> Self {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn assert_success(&self, what: &str) -> &Self {
        assert_eq!(self.code, 0, "{what} failed:\n{self}");
        self
    }

    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Whether one output line holds every needle (a log line in either
    /// format carries its message and fields on one line).
    fn has_line(&self, needles: &[&str]) -> bool {
        self.all()
            .lines()
            .any(|line| needles.iter().all(|n| line.contains(n)))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

// === impl Process ===

impl Process {
    fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} output\n{text}", self.what)
    }

    /// Fails the test at once if the process has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status})\n{}", self.what, self.logs());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ip`'s path (the test required [`tools::network_namespace`] first).
fn ip() -> String {
    let ip = tools::network_namespace().unwrap_or_else(|missing| panic!("{missing}"));
    ip.display().to_string()
}

/// Runs a command on the host.
fn run(program: &str, args: &[&str]) -> Outcome {
    Outcome::of(Command::new(program).args(args), program)
}

/// The host's own addresses, normalised.
fn host_addrs() -> String {
    let out = run(&ip(), &["-o", "addr", "show"]);
    out.assert_success("ip -o addr show on the host");
    normalise_addrs(&out.stdout)
}

/// Drops the lifetimes (they count down on dynamic addresses) and sorts.
fn normalise_addrs(out: &str) -> String {
    let mut lines: Vec<String> = out
        .lines()
        .map(|line| {
            let mut kept = Vec::new();
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                if word == "valid_lft" || word == "preferred_lft" {
                    words.next();
                } else if word != "\\" {
                    kept.push(word);
                }
            }
            kept.join(" ")
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The device a normalised `ip -o addr` listing puts `cidr` on.
fn device_of(addrs: &str, cidr: &str) -> Option<String> {
    addrs
        .lines()
        .find(|line| line.split_whitespace().any(|w| w == cidr))
        .and_then(|line| line.split_whitespace().nth(1))
        .map(|dev| dev.trim_end_matches(':').to_owned())
}

/// Calls `attempt` every 50 ms until it succeeds (true) or `timeout` has
/// passed (false).
fn poll(timeout: Duration, mut attempt: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if attempt() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
