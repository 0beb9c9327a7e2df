//! `credagent sidecar` and `credagent node`: their cross-flag rules, each
//! error naming its flag, and what the arguments resolve to.

use std::time::Duration;

use clap::Parser as _;

use super::{Cli, Command, NodeArgs, SidecarArgs};
use crate::config::{AddressingStyle, ConfigError};

/// `credagent sidecar --org-id org --no-proxy FLAGS...` (`--no-proxy`: the
/// test's environment says nothing).
fn sidecar(flags: &[&str]) -> SidecarArgs {
    let argv = ["credagent", "sidecar", "--org-id", "org", "--no-proxy"];
    match Cli::try_parse_from(argv.iter().chain(flags))
        .unwrap()
        .command
    {
        Command::Sidecar(args) => args,
        _ => unreachable!("a sidecar command"),
    }
}

/// `credagent node --org-id org --no-proxy FLAGS...`.
fn node(flags: &[&str]) -> NodeArgs {
    let argv = ["credagent", "node", "--org-id", "org", "--no-proxy"];
    match Cli::try_parse_from(argv.iter().chain(flags))
        .unwrap()
        .command
    {
        Command::Node(args) => args,
        _ => unreachable!("a node command"),
    }
}

fn flag(e: ConfigError) -> &'static str {
    e.flag
}

#[test]
fn the_sidecar_resolves_its_flags() {
    let c = sidecar(&[
        "--listen",
        "0.0.0.0:8181",
        "--refresh-margin",
        "5m",
        "--upstream-timeout",
        "2s",
        "--region",
        "US-EAST-04A",
        "--imds-listen",
        "127.0.0.1:8182",
        "--credential-process-dir",
        "/var/run/credagent",
        "--endpoint-url",
        "http://cwlota.com",
        "--s3-addressing-style",
        "virtual",
    ])
    .config()
    .unwrap();
    assert_eq!(c.refresh.margin, Duration::from_secs(300));
    assert_eq!(c.upstream.timeout, Duration::from_secs(2));
    assert_eq!(
        c.upstream.url.to_string(),
        "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/org"
    );
    assert!(c.upstream.proxy.disabled);
    let (_, imds) = c.imds.unwrap();
    assert_eq!(imds.region.as_deref(), Some("US-EAST-04A"));
    let dir = c.credential_process_dir.unwrap();
    // A wildcard listener is reached on loopback.
    assert_eq!(dir.url.to_string(), "http://127.0.0.1:8181/v1/credentials");
    assert_eq!(dir.endpoint_url.unwrap().to_string(), "http://cwlota.com/");
    assert_eq!(dir.addressing_style, Some(AddressingStyle::Virtual));
}

#[test]
fn the_sidecars_cross_flag_rules_name_the_flag() {
    let dir = ["--credential-process-dir", "/var/run/credagent"];
    let e = sidecar(&[&dir[..], &["--auth-token-file", "auth"]].concat())
        .config()
        .unwrap_err();
    assert_eq!(flag(e), "--auth-token-file");
    let e = sidecar(&[&dir[..], &["--auth-token-file", "/a b/auth"]].concat())
        .validate()
        .unwrap_err();
    assert_eq!(e.flag, "--credential-process-dir");
    assert!(e.reason.contains("holds a space"), "{e}");
    // credential-process sends the auth token only over loopback.
    let e = sidecar(&[&dir[..], &["--listen", "10.1.2.3:8181"]].concat())
        .config()
        .unwrap_err();
    assert_eq!(e.flag, "--credential-process-dir");
    assert!(e.reason.contains("10.1.2.3"), "{e}");
    let ok = sidecar(&[&dir[..], &["--listen", "127.0.0.2:8181"]].concat())
        .config()
        .unwrap();
    assert_eq!(
        ok.credential_process_dir.unwrap().url.to_string(),
        "http://127.0.0.2:8181/v1/credentials"
    );
    // Relative is fine without the directory.
    assert!(sidecar(&["--auth-token-file", "auth"]).validate().is_ok());
    let mut both = sidecar(&[]);
    both.tuning.proxy = Some("http://u:hunter2@proxy:3128".parse().unwrap());
    let e = both.validate().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value for --no-proxy: give either --proxy or --no-proxy, not both"
    );
    // Flags clap relates itself.
    let e = Cli::try_parse_from([
        "credagent",
        "sidecar",
        "--org-id",
        "o",
        "--endpoint-url",
        "http://x",
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("--credential-process-dir"), "{e}");
}

#[test]
fn node_mode_resolves_its_flags() {
    let c = node(&[
        "--issuer",
        "https://oidc.example/a,https://oidc.example/b",
        "--jwks-url",
        "https://keys.example/a,http://127.0.0.1:9/b",
        "--negative-cache-ttl",
        "7s",
        "--fill-wait",
        "250ms",
        "--source-miss-burst",
        "5",
    ])
    .config()
    .unwrap();
    let verify = c.verify.unwrap();
    assert_eq!(verify.issuers[0].0, "https://oidc.example/a", "as written");
    assert_eq!(
        verify.issuers[1]
            .1
            .as_ref()
            .map(|u| u.to_string())
            .as_deref(),
        Some("http://127.0.0.1:9/b")
    );
    assert_eq!(verify.audience, "https://coreweave.com/iam");
    assert_eq!(c.cache.policy.denied_backoff, Duration::from_secs(7));
    assert_eq!(c.cache.fill_wait, Duration::from_millis(250));
    assert_eq!(c.sources.miss_burst, 5.0);
    assert!(node(&[]).config().unwrap().verify.is_none());
}

#[test]
fn node_modes_cross_flag_rules_name_the_flag() {
    for (flags, want) in [
        (&["--jwks-url", "https://k"][..], "--jwks-url"),
        (
            &["--issuer", "https://i", "--jwks-url", "https://a,https://b"],
            "--jwks-url",
        ),
        (&["--issuer", "https://i", "--audience", ""], "--audience"),
    ] {
        assert_eq!(node(flags).validate().map_err(flag), Err(want), "{flags:?}");
    }
    let mut no_listener = node(&[]);
    no_listener.listen.clear();
    assert_eq!(no_listener.validate().map_err(flag), Err("--listen"));
}
