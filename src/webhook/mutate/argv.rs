//! The injected sidecar's command line: `credagent sidecar` with the
//! webhook's upstream, listeners and region, the fixed paths of what it
//! mounts, the POST exchange's key lifetime and attributes, and the
//! credential-process fallback's flags. The sidecar's own clap definition
//! must accept it (checked on every fixture in `fixture_tests`, by the
//! config fuzz target, and with the built binary by `tests/webhook/run.sh`).

use std::time::Duration;

use super::annotations::PodSettings;
use super::names;
use crate::cli::InjectArgs;

/// The sidecar's arguments (after the image's `credagent` entrypoint), for
/// a Pod with these settings: its key lifetime adds `--key-lifetime` and
/// the webhook's `--key-attribute`s; its credential-process fallback, that
/// fallback's flags. Flags not set are not written, so that Pods injected
/// before a flag existed and Pods injected without it look alike.
pub fn sidecar_args(config: &InjectArgs, settings: &PodSettings) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "sidecar".into(),
        "--token-file".into(),
        names::TOKEN_PATH.into(),
    ];
    let [flag, value] = config.upstream.as_flag();
    args.extend(option(flag, value));
    args.extend([
        "--listen".into(),
        format!("127.0.0.1:{}", config.sidecar_port),
        "--admin-listen".into(),
        format!("0.0.0.0:{}", config.sidecar_admin_port),
        "--auth-token-file".into(),
        names::AUTH_TOKEN_PATH.into(),
    ]);
    if let Some(region) = &config.region {
        args.extend(option("--region", region.as_str()));
    }
    if let Some(lifetime) = settings.key_lifetime {
        args.extend(["--key-lifetime".into(), duration_arg(lifetime)]);
        for a in &config.key_attributes {
            // A name may start with '-'.
            args.extend(option(
                "--key-attribute",
                &format!("{}={}", a.name, a.value),
            ));
        }
    }
    if settings.credential_process {
        args.extend(["--credential-process-dir".into(), names::AUTH_DIR.into()]);
        if let Some(endpoint) = &config.s3_endpoint {
            args.extend([
                "--endpoint-url".into(),
                endpoint.as_str().to_owned(),
                "--s3-addressing-style".into(),
                "virtual".into(),
            ]);
        }
    }
    args
}

/// `--flag value`; or `--flag=value` for a value that starts with `-`
/// (an org id or region may), which clap would take for a flag.
fn option(flag: &str, value: &str) -> Vec<String> {
    if value.starts_with('-') {
        vec![format!("{flag}={value}")]
    } else {
        vec![flag.to_owned(), value.to_owned()]
    }
}

/// A whole-second duration as `1h30m`, `45m`, `20m30s` (read back exactly
/// by the sidecar's duration parser).
fn duration_arg(d: Duration) -> String {
    let s = d.as_secs();
    let mut out = String::new();
    for (n, unit) in [(s / 3600, "h"), (s % 3600 / 60, "m"), (s % 60, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// What the apps' `AWS_CONTAINER_CREDENTIALS_FULL_URI` is in sidecar mode.
pub fn sidecar_url(config: &InjectArgs) -> String {
    format!("http://127.0.0.1:{}/v1/credentials", config.sidecar_port)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::webhook::mutate::annotations::settings;

    fn config(flags: &[&str]) -> InjectArgs {
        let base = ["--sidecar-image", "registry.example/credagent:1.0"];
        InjectArgs::from_flags(base.iter().chain(flags)).unwrap()
    }

    /// The args for a Pod with these annotations.
    fn args_for(c: &InjectArgs, annotations: serde_json::Value) -> Vec<String> {
        let s = settings(annotations.as_object(), c).unwrap();
        sidecar_args(c, &s)
    }

    /// `args` through the sidecar's own command line.
    fn sidecar(args: Vec<String>) -> crate::cli::SidecarArgs {
        use clap::Parser as _;
        let argv = std::iter::once("credagent".to_owned()).chain(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Sidecar(s) => s,
            _ => panic!("not a sidecar"),
        }
    }

    #[test]
    fn the_defaults_make_the_documented_args() {
        assert_eq!(
            args_for(&config(&["--org-id", "org-1"]), json!({})),
            [
                "sidecar",
                "--token-file",
                "/var/run/secrets/credagent/oidc-token",
                "--org-id",
                "org-1",
                "--listen",
                "127.0.0.1:8181",
                "--admin-listen",
                "0.0.0.0:9464",
                "--auth-token-file",
                "/var/run/credagent/auth-token",
            ]
        );
    }

    #[test]
    fn region_endpoint_and_the_fallback() {
        let c = config(&[
            "--exchange-url",
            "https://up.example/x",
            "--region",
            "US-EAST-04A",
            "--s3-endpoint",
            "http://cwlota.com",
            "--sidecar-port",
            "8282",
            "--sidecar-https-proxy",
            "http://proxy.corp:3128",
        ]);
        let fallback = json!({"credagent.io/credential-process": "true"});
        let args = args_for(&c, fallback).join(" ");
        assert!(
            args.contains("--exchange-url https://up.example/x"),
            "{args}"
        );
        assert!(args.contains("--listen 127.0.0.1:8282"), "{args}");
        assert!(args.ends_with("--region US-EAST-04A --credential-process-dir /var/run/credagent --endpoint-url http://cwlota.com --s3-addressing-style virtual"), "{args}");
        // The sidecar reads its proxy from its env, not from a flag.
        assert!(!args.contains("proxy"), "{args}");
        assert!(!args_for(&c, json!({})).join(" ").contains("--endpoint-url"));
        assert_eq!(sidecar_url(&c), "http://127.0.0.1:8282/v1/credentials");
    }

    #[test]
    fn a_value_like_a_flag_stays_a_value() {
        // The webhook accepts `--org-id=-org`; injected as `--org-id -org`,
        // the sidecar's clap refused `-org` as an unknown flag.
        let c = config(&[
            "--org-id=-org",
            "--region=-r",
            "--key-lifetime=1h",
            "--key-attribute=-x=-y",
        ]);
        let args = args_for(&c, json!({}));
        for flag in ["--org-id=-org", "--region=-r", "--key-attribute=-x=-y"] {
            assert!(args.contains(&flag.to_owned()), "{args:?}");
        }
        let s = sidecar(args);
        assert_eq!(s.upstream.as_flag(), ["--org-id", "-org"]);
        assert_eq!(
            s.region.map(|r| r.as_str().to_owned()).as_deref(),
            Some("-r")
        );
        assert_eq!(s.tuning.key_attributes, c.key_attributes);
    }

    #[test]
    fn the_key_lifetime_and_attributes() {
        let flags = [
            "--org-id",
            "org-1",
            "--key-attribute",
            "cluster=prod-1",
            "--key-attribute",
            "team=ml a",
        ];
        // Without --key-lifetime: the GET, no key flags (the attributes
        // wait for a Pod that asks for the POST).
        let get = config(&flags);
        let args = args_for(&get, json!({})).join(" ");
        assert!(!args.contains("--key-"), "{args}");
        let args = args_for(&get, json!({"credagent.io/key-lifetime": "90m"}));
        let tail = [
            "--key-lifetime",
            "1h30m",
            "--key-attribute",
            "cluster=prod-1",
        ];
        assert!(
            args.join(" ").ends_with(
                "--key-lifetime 1h30m --key-attribute cluster=prod-1 --key-attribute team=ml a"
            ),
            "{args:?}"
        );
        assert!(args.windows(4).any(|w| w == tail), "{args:?}");
        let s = sidecar(args);
        assert_eq!(s.tuning.key_lifetime, Some(Duration::from_secs(5400)));
        assert_eq!(s.tuning.key_attributes, get.key_attributes);

        // With it: the POST for every Pod, but one that says "off".
        let post = config(&[&flags[..], &["--key-lifetime", "1h"]].concat());
        let args = args_for(&post, json!({})).join(" ");
        assert!(
            args.ends_with(
                "--key-lifetime 1h --key-attribute cluster=prod-1 --key-attribute team=ml a"
            ),
            "{args}"
        );
        let args = args_for(&post, json!({"credagent.io/key-lifetime": "12h"})).join(" ");
        assert!(
            args.contains("--key-lifetime 12h --key-attribute"),
            "{args}"
        );
        let off = args_for(&post, json!({"credagent.io/key-lifetime": "off"}));
        assert_eq!(off, args_for(&get, json!({})));
        assert!(sidecar(off).tuning.key_lifetime.is_none());
    }

    #[test]
    fn every_key_lifetime_reads_back_exactly() {
        use crate::config::{parse_key_lifetime, MAX_KEY_LIFETIME, MIN_KEY_LIFETIME};
        for secs in MIN_KEY_LIFETIME.as_secs()..=MAX_KEY_LIFETIME.as_secs() {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_key_lifetime(&duration_arg(d)), Ok(d), "{secs}");
        }
        assert_eq!(duration_arg(Duration::from_secs(3600)), "1h");
        assert_eq!(duration_arg(Duration::from_secs(1230)), "20m30s");
        assert_eq!(duration_arg(Duration::from_secs(43_199)), "11h59m59s");
    }
}
