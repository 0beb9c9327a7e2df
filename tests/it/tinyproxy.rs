//! A real CONNECT proxy for the tests: Debian's tinyproxy, started on a free
//! port with its own configuration and log.
//!
//! It runs in a mount namespace of its own (`unshare -m`) whose `/etc/hosts`
//! maps [`STANDIN_HOST`] to 127.0.0.1. Only the proxy resolves that name:
//! this process and every agent it starts get a DNS error for it (the name
//! is under `.test`, which no resolver answers). A request that reaches a
//! stand-in by that name went through the proxy; the proxy's log shows the
//! `CONNECT`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::paused::off_clock;
use crate::tools;

/// A name only the proxy can resolve (to 127.0.0.1).
pub const STANDIN_HOST: &str = "standin.credagent.test";

/// How to configure the proxy.
#[derive(Default, Clone)]
pub struct ProxyOptions {
    /// `BasicAuth user password`: a `CONNECT` without them gets 407.
    pub basic_auth: Option<(&'static str, &'static str)>,
    /// `ConnectPort` lines: a `CONNECT` to another port gets 403. Empty: any port.
    pub connect_ports: Vec<u16>,
    /// Listen here (to restart a proxy on the port an agent knows).
    pub port: Option<u16>,
}

/// A running tinyproxy, killed on drop.
pub struct Tinyproxy {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The hosts file the proxy (and agents started with [`own_hosts`]) see.
fn hosts_file(dir: &Path) -> PathBuf {
    let path = dir.join("hosts");
    std::fs::write(
        &path,
        format!("127.0.0.1 localhost\n::1 localhost\n127.0.0.1 {STANDIN_HOST}\n"),
    )
    .expect("write hosts");
    path
}

/// `cmd`, run inside a mount namespace whose /etc/hosts maps
/// [`STANDIN_HOST`] to 127.0.0.1 (the file is written into `dir`). The test
/// requires [`tools::tinyproxy`] (or [`tools::mount_namespace`]) first.
pub fn own_hosts(dir: &Path, program: &Path) -> Command {
    let hosts = hosts_file(dir);
    let unshare = tools::mount_namespace().unwrap_or_else(|missing| panic!("{missing}"));
    let mut cmd = Command::new(unshare);
    cmd.args([
        "-m",
        "sh",
        "-c",
        r#"mount --bind "$0" /etc/hosts && exec "$@""#,
    ])
    .arg(hosts)
    .arg(program);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

// === impl Tinyproxy ===

impl Tinyproxy {
    /// Starts a proxy and waits until it accepts connections. The test
    /// requires [`tools::tinyproxy`] first. Both run [`off_clock`]: the
    /// proxy is a real process, whose start a paused clock must not race.
    pub async fn start(opts: ProxyOptions) -> Self {
        off_clock(Self::launch(opts)).await
    }

    async fn launch(opts: ProxyOptions) -> Self {
        let bin = tools::tinyproxy().unwrap_or_else(|missing| panic!("{missing}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let port = opts.port.unwrap_or_else(free_port);
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\n\
             MaxClients 64\nAllow 127.0.0.1\nDisableViaHeader Yes\n",
            dir.path().join("tinyproxy.log").display()
        );
        if let Some((user, password)) = opts.basic_auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        for p in &opts.connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy.conf");
        let mut child = own_hosts(dir.path(), &bin)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start unshare + tinyproxy");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                let out = child.wait_with_output().await.expect("output");
                panic!(
                    "tinyproxy exited ({status}) before listening on {port} \
                     (needs `unshare -m`, i.e. root or CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tinyproxy never listened on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port, dir }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }

    /// The request lines it received, in order: `CONNECT host:port HTTP/1.1`,
    /// `GET http://... HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                l.split_once("): ")
                    .filter(|_| l.contains("Request (file descriptor"))
            })
            .map(|(_, request)| request.trim().to_owned())
            .collect()
    }

    /// The `CONNECT` targets it was asked for.
    pub fn connects(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.strip_prefix("CONNECT "))
            .filter_map(|r| r.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    /// Stops it; returns its port (free again) for a restart.
    pub async fn stop(self) -> u16 {
        let Self {
            mut child,
            port,
            dir,
        } = self;
        off_clock(async move {
            let _ = child.kill().await;
            let _ = child.wait().await;
            drop(dir);
        })
        .await;
        port
    }
}
