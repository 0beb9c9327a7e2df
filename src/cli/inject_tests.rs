//! `credagent webhook`'s flags: what they parse into (what the mutator
//! reads), and every bad value refused as the binary prints it, one line
//! naming the flag.

use std::time::Duration;

use clap::Parser as _;

use super::{Cli, Command, InjectArgs, WebhookArgs};
use crate::config::{PullPolicy, Upstream};

/// `credagent webhook FLAGS...`, with `--sidecar-image credagent:1` and
/// `--org-id org` unless the flags give an image or an upstream, parsed and
/// checked; the error as `main` prints it.
fn webhook(flags: &[&str]) -> Result<WebhookArgs, String> {
    let gives = |names: &[&str]| flags.iter().any(|f| names.contains(f));
    let mut argv = vec!["credagent", "webhook"];
    if !gives(&["--sidecar-image"]) {
        argv.extend(["--sidecar-image", "credagent:1"]);
    }
    if !gives(&["--org-id", "--exchange-url"]) {
        argv.extend(["--org-id", "org"]);
    }
    argv.extend_from_slice(flags);
    let cli = Cli::try_parse_from(argv).map_err(|e| e.render().to_string())?;
    let Command::Webhook(args) = cli.command else {
        unreachable!("a webhook command")
    };
    args.validate().map_err(|e| format!("error: {e}"))?;
    Ok(args)
}

/// The error's first line, which must name `flag` as a bad value.
fn refused(flags: &[&str], flag: &str) -> String {
    let e = webhook(flags).unwrap_err();
    let line = e.lines().next().unwrap_or("").to_owned();
    assert!(
        line.starts_with(&format!("error: invalid value for {flag}: ")),
        "{flags:?}: {e}"
    );
    line
}

#[test]
fn defaults() {
    let c = webhook(&[]).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9464");
    assert_eq!(c.max_body_bytes, 3 * 1024 * 1024);
    assert_eq!(c.body_timeout, Duration::from_secs(10));
    assert_eq!(c.shutdown_delay, Duration::from_secs(5));
    let i = &c.inject;
    assert_eq!(i.sidecar_image.as_str(), "credagent:1");
    assert_eq!(i.upstream, Upstream::OrgId("org".parse().unwrap()));
    assert_eq!(i.audience.as_str(), "https://coreweave.com/iam");
    assert_eq!(i.token_expiration.secs(), 3600);
    assert_eq!((i.sidecar_port, i.sidecar_admin_port), (8181, 9464));
    let quantity = |q: &Option<crate::config::Quantity>| q.as_ref().map(|q| q.as_str().to_owned());
    assert_eq!(quantity(&i.resources.cpu_request).as_deref(), Some("5m"));
    assert_eq!(quantity(&i.resources.cpu_limit).as_deref(), Some("100m"));
    assert_eq!(
        quantity(&i.resources.memory_request).as_deref(),
        Some("16Mi")
    );
    assert_eq!(quantity(&i.resources.memory_limit).as_deref(), Some("32Mi"));
    assert_eq!(i.image_pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(i.node_url.as_str(), "http://169.254.170.23/v1/credentials");
    assert!(!i.coreweave_compat && i.region.is_none() && i.s3_endpoint.is_none());
    assert_eq!(
        (&i.sidecar_https_proxy, &i.sidecar_no_proxy),
        (&None, &None)
    );
    let blank = webhook(&[
        "--sidecar-https-proxy",
        "",
        "--sidecar-no-proxy",
        " ",
        "--region",
        "",
    ])
    .unwrap();
    assert_eq!(&blank.inject, i, "blank is unset");
}

#[test]
fn flags_reach_what_is_injected() {
    let i = InjectArgs::from_flags([
        "--sidecar-image",
        "credagent:1",
        "--exchange-url",
        "http://127.0.0.1:9/v1/x",
        "--region",
        " US-EAST-04A ",
        "--s3-endpoint",
        "http://cwlota.com",
        "--sidecar-port",
        "8282",
        "--image-pull-policy",
        "Always",
        "--coreweave-compat",
        "--sidecar-memory-limit",
        "",
        "--token-expiration",
        "86400",
        "--audience",
        "sts.example",
    ])
    .unwrap();
    assert_eq!(
        i.upstream.as_flag(),
        ["--exchange-url", "http://127.0.0.1:9/v1/x"]
    );
    assert_eq!(i.region.as_ref().map(|r| r.as_str()), Some("US-EAST-04A"));
    assert_eq!(
        i.s3_endpoint.as_ref().map(|u| u.as_str()),
        Some("http://cwlota.com")
    );
    assert_eq!(i.sidecar_port, 8282);
    assert_eq!(i.image_pull_policy.as_str(), "Always");
    assert!(i.coreweave_compat);
    assert_eq!(i.resources.memory_limit, None);
    assert_eq!(i.token_expiration.secs(), 86_400);
    assert_eq!(i.audience.as_str(), "sts.example");
    let e = InjectArgs::from_flags(["--org-id", "org"]).unwrap_err();
    assert!(e.contains("--sidecar-image"), "{e}");
}

#[test]
fn every_bad_value_names_its_flag() {
    for (flags, flag) in [
        (&["--admin-listen", "0.0.0.0:8443"][..], "--admin-listen"),
        (&["--token-expiration", "5m"], "--token-expiration"),
        (&["--token-expiration", "25h"], "--token-expiration"),
        (&["--token-expiration", "599"], "--token-expiration"),
        (&["--sidecar-admin-port", "8181"], "--sidecar-admin-port"),
        (&["--sidecar-port", "0"], "--sidecar-port"),
        (&["--max-body-bytes", "100"], "--max-body-bytes"),
        (&["--body-timeout", "0s"], "--body-timeout"),
        (&["--tls-cert-file", "/"], "--tls-cert-file"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--shutdown-delay", "2m"], "--shutdown-delay"),
        (&["--sidecar-image", "Credagent"], "--sidecar-image"),
        (&["--sidecar-cpu-request", "lots"], "--sidecar-cpu-request"),
        (&["--sidecar-cpu-limit", "lots"], "--sidecar-cpu-limit"),
        (
            &["--sidecar-memory-request", "1Gi"],
            "--sidecar-memory-request",
        ),
        (&["--region", "us east"], "--region"),
        (&["--s3-endpoint", "cwlota.com"], "--s3-endpoint"),
        (&["--node-url", "ftp://x"], "--node-url"),
        (&["--node-url", "169.254.170.23"], "--node-url"),
        (&["--audience", "a b"], "--audience"),
        (&["--org-id", "a/b"], "--org-id"),
        (&["--exchange-url", "ftp://x"], "--exchange-url"),
        (&["--key-lifetime", "5m"], "--key-lifetime"),
        (&["--key-attribute", "k8s-pod=x"], "--key-attribute"),
        (
            &["--exchange-url", "https://a/b", "--key-lifetime", "1h"],
            "--exchange-url",
        ),
    ] {
        refused(flags, flag);
    }
    assert_eq!(
        refused(
            &["--sidecar-cpu-request", "1", "--sidecar-cpu-limit", "500m"],
            "--sidecar-cpu-request"
        ),
        "error: invalid value for --sidecar-cpu-request: exceeds --sidecar-cpu-limit"
    );
    let e = refused(
        &["--exchange-url", "http://example.com/x"],
        "--exchange-url",
    );
    assert!(e.contains("loopback"), "{e}");
    // Both upstreams: clap's own error, naming both.
    let e = webhook(&["--org-id", "o", "--exchange-url", "https://a/b"]).unwrap_err();
    assert!(
        e.contains("--org-id") && e.contains("--exchange-url"),
        "{e}"
    );
}

#[test]
fn the_sidecar_proxy_is_checked_as_the_sidecar_reads_it() {
    let c = webhook(&[
        "--sidecar-https-proxy",
        "proxy.corp.example:3128",
        "--sidecar-no-proxy",
        ".svc, .cluster.local,10.96.0.0/12",
    ])
    .unwrap();
    let i = &c.inject;
    assert_eq!(
        i.sidecar_https_proxy.as_ref().map(|p| p.as_str()),
        Some("http://proxy.corp.example:3128")
    );
    assert_eq!(
        i.sidecar_no_proxy.as_ref().map(|p| p.as_str()),
        Some(".svc,.cluster.local,10.96.0.0/12")
    );
    // What --check-config prints (the chart's check reads it).
    let printed = format!("{c:?}");
    assert!(
        printed.contains(r#"sidecar_https_proxy: Some("http://proxy.corp.example:3128")"#),
        "{printed}"
    );
    // NO_PROXY alone is written too (for a proxy set by other means).
    let c = webhook(&["--sidecar-no-proxy", ".svc"]).unwrap();
    assert_eq!(c.inject.sidecar_https_proxy, None);
    for (flags, why) in [
        (
            ["--sidecar-https-proxy", "https://proxy:3128"],
            "TLS to the proxy",
        ),
        (["--sidecar-https-proxy", "socks5://proxy:1080"], "SOCKS"),
        (["--sidecar-https-proxy", "http://proxy:3128/x"], "no path"),
        (["--sidecar-https-proxy", "http://proxy:99999"], "port"),
        (
            ["--sidecar-https-proxy", "http://u:hunter2@proxy:3128"],
            "readable by anyone who can read Pods",
        ),
        (["--sidecar-no-proxy", ".svc,a b"], "entry 2 contains ' '"),
        (["--sidecar-no-proxy", "http://x.corp"], "is a URL"),
        (["--sidecar-no-proxy", ","], "names no host"),
    ] {
        let e = refused(&flags, flags[0]);
        assert!(e.contains(why), "{flags:?}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    let long = format!("--sidecar-no-proxy={}", "a,".repeat(2100));
    refused(&[long.as_str()], "--sidecar-no-proxy");
}

#[test]
fn check_config_shows_the_key_lifetime_and_attributes() {
    let printed = format!("{:?}", webhook(&[]).unwrap());
    assert!(
        printed.contains("key_lifetime: None, key_attributes: []"),
        "{printed}"
    );
    let c = webhook(&["--key-lifetime", "1h", "--key-attribute", "cluster=prod-1"]).unwrap();
    let printed = format!("{c:?}");
    assert!(
        printed.contains(
            r#"key_lifetime: Some(3600s), key_attributes: [KeyAttribute { name: "cluster", value: "prod-1" }]"#
        ),
        "{printed}"
    );
}
