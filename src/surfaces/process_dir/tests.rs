//! The credential-process directory's files, their checks and its watch.
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

/// The attack: a script of the binary's exact size written over
/// the copy in place (same inode, same mode) answered as the agent.
#[test]
fn an_in_place_edit_of_the_same_size_is_restored() {
    use std::io::{Seek as _, Write as _};
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("the-agent");
    let genuine = b"\x7fELF the genuine agent binary, padded to some length....";
    std::fs::write(&exe, genuine).unwrap();
    let out = tmp.path().join("shared");
    let dir = ProcessDir::copying(&config(&out), exe.clone()).unwrap();
    assert!(dir.sync().unwrap());
    let bin = out.join(BINARY_NAME);
    let script = b"#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"ATTACKER\"}'\n#";
    let mut forged = script.to_vec();
    forged.resize(genuine.len(), b'#');
    let mut f = std::fs::OpenOptions::new().write(true).open(&bin).unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(&forged).unwrap();
    drop(f);
    assert_eq!(std::fs::read(&bin).unwrap().len(), genuine.len());
    assert!(dir.sync().unwrap(), "the edit is seen");
    assert_eq!(std::fs::read(&bin).unwrap(), genuine);
    assert!(!dir.sync().unwrap());

    // A symlink to a good copy, or a looser mode: written again.
    std::fs::copy(&exe, tmp.path().join("elsewhere")).unwrap();
    std::fs::remove_file(&bin).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &bin).unwrap();
    assert!(dir.sync().unwrap());
    assert!(std::fs::symlink_metadata(&bin).unwrap().is_file());
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(dir.sync().unwrap());
    let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
}

/// A FIFO planted as the config is replaced, never opened for a blocking
/// read (the check would hang on it).
#[test]
fn a_fifo_in_place_of_the_config_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("the-agent");
    std::fs::write(&exe, b"\x7fELF").unwrap();
    let out = tmp.path().join("shared");
    let dir = ProcessDir::copying(&config(&out), exe).unwrap();
    assert!(dir.sync().unwrap());
    std::fs::remove_file(dir.config_path()).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(dir.config_path())
        .status()
        .unwrap()
        .success());
    assert!(dir.sync().unwrap());
    assert!(std::fs::read_to_string(dir.config_path())
        .unwrap()
        .contains("credential_process"));
}

/// Removes `DIR/aws-config` and waits (bounded) until the agent has
/// written it again; returns the number of checks then.
async fn remove_and_await_restore(config: &Path, checks: &AtomicU64) -> u64 {
    std::fs::remove_file(config).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !config.exists() {
        assert!(tokio::time::Instant::now() < deadline, "never restored");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    checks.load(Ordering::Relaxed)
}

/// Issue 21: the watcher reacted to opens, the agent's own included, and
/// checked thousands of times a second whatever the apps did. Now reads of
/// both files wake nothing. Between two identical changes (the config
/// removed and restored) with 2,000 reads in between, the count moves only
/// by the checks the changes themselves explain: the restoring check, the
/// one its own writes wake, and one of each from the previous change that
/// may still be under way when the restored file appears. Counted, not
/// timed.
#[tokio::test]
async fn reads_wake_no_check_only_changes_do() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("the-agent");
    std::fs::write(&exe, vec![0x7f; 64 * 1024]).unwrap();
    let out = tmp.path().join("shared");
    let dir = ProcessDir::copying(&config(&out), exe).unwrap();
    dir.sync().unwrap();
    let (config_path, binary) = (dir.config_path(), out.join(BINARY_NAME));
    let checks = dir.checks();
    let shutdown = CancellationToken::new();
    // No periodic check within the test: only events count.
    let task = tokio::spawn(dir.run_every(Duration::from_secs(3600), shutdown.clone()));
    // The watch is live once a change brings a check.
    let mut seen = checks.load(Ordering::Relaxed);
    for i in 0.. {
        std::fs::create_dir(out.join(format!("barrier-{i}"))).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while checks.load(Ordering::Relaxed) == seen && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if checks.load(Ordering::Relaxed) > seen {
            break;
        }
        seen = checks.load(Ordering::Relaxed);
    }
    let mut before = remove_and_await_restore(&config_path, &checks).await;
    for round in 0..5 {
        for _ in 0..1000 {
            assert!(std::fs::read(&config_path).unwrap().starts_with(b"#"));
            let mut f = std::fs::File::open(&binary).unwrap();
            let mut head = [0u8; 4096];
            f.read_exact(&mut head).unwrap();
        }
        let after = remove_and_await_restore(&config_path, &checks).await;
        assert!(
            after - before <= 4,
            "round {round}: {} checks for 2,000 reads and one change",
            after - before
        );
        before = after;
    }
    shutdown.cancel();
    task.await.unwrap();
}
