//! Configuration: the clap surface (`cli::Cli`), whose value parsers give
//! every flag its final type, and the cross-flag rules and resolution that
//! follow (`SidecarArgs::config`, `NodeArgs::config`,
//! `WebhookArgs::validate`, the `exchange`/`doctor` commands' upstream),
//! plus `config::parse_duration`.
//!
//! The input is argv split on NUL, after a leading `credagent`. `CREDAGENT_*`
//! variables are removed from the environment first, so that only the input
//! decides. `--ca-file` is read: a path that exists is redirected to a
//! fixture file (so the fuzzer can never make the target read `/dev/zero` or
//! block on a FIFO), a missing path stays missing.
//!
//! Checks, besides "never panics": accepted configurations hold what
//! validation promises (https or loopback http, non-zero timeouts, a refresh
//! fraction in (0, 1), roots loaded when `--ca-file` is given; a webhook's
//! listeners and sidecar ports distinct, a token lifetime Kubernetes
//! accepts, an image reference that passes the grammar, no resource request
//! above its limit, and injected sidecar arguments that `credagent sidecar`
//! itself accepts, with and without the credential-process fallback, for the
//! webhook's `--key-lifetime` and a Pod's `credagent.io/key-lifetime` over
//! it: the sidecar then asks for exactly that lifetime with the webhook's
//! `--key-attribute`s), and
//! `parse_duration` accepts exactly `N` or a sequence of `N(ms|s|m|h)`
//! (spaces between parts, surrounding ASCII whitespace allowed), with the
//! value they add up to.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use credagent::cli::{Cli, Command, TuningArgs};
use credagent::config::{
    image_reference, is_loopback_host, parse_duration, parse_key_lifetime, UpstreamConfig,
};
use credagent::webhook::mutate::annotations::settings;
use credagent::webhook::mutate::argv::sidecar_args;
use credagent::webhook::mutate::names::{CREDENTIAL_PROCESS, KEY_LIFETIME};
use libfuzzer_sys::fuzz_target;

/// Fixture CA files: `ca.pem` (one certificate), `bad.pem`, `empty.pem`.
fn fixtures() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Before any thread exists: clap reads these as defaults.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CREDAGENT_") {
                std::env::remove_var(k);
            }
        }
        let dir = std::env::temp_dir().join("credagent-fuzz-fixtures");
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let files: [(&str, &[u8]); 3] = [
            (
                "ca.pem",
                b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZnV6ei1maXh0dXJl\n-----END CERTIFICATE-----\n",
            ),
            (
                "bad.pem",
                b"-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
            ),
            ("empty.pem", b""),
        ];
        for (name, contents) in files {
            let path = dir.join(name);
            if std::fs::read(&path).ok().as_deref() != Some(contents) {
                // Write-and-rename so that parallel fuzz jobs never read a half file.
                let tmp = dir.join(format!("{name}.{}", std::process::id()));
                std::fs::write(&tmp, contents).expect("fixture file");
                std::fs::rename(&tmp, &path).expect("fixture file");
            }
        }
        dir.canonicalize().expect("fixture dir")
    })
}

/// The clap command, built and checked once (clap's debug assertions run
/// at the first build).
fn command() -> &'static Mutex<clap::Command> {
    static CMD: OnceLock<Mutex<clap::Command>> = OnceLock::new();
    CMD.get_or_init(|| {
        let mut cmd = Cli::command();
        cmd.build();
        Mutex::new(cmd)
    })
}

fn contain_ca_file(tuning: &mut TuningArgs) {
    let Some(path) = &tuning.ca_file else { return };
    let inside = path
        .canonicalize()
        .ok()
        .is_some_and(|p| p.parent() == Some(fixtures().as_path()));
    if path.symlink_metadata().is_ok() && !inside {
        tuning.ca_file = Some(fixtures().join("ca.pem"));
    }
}

/// What `parse_duration` is documented to accept, and its value in
/// milliseconds (computed wide, so that overflow is judged independently).
fn duration_shaped(raw: &str) -> Option<u128> {
    let s = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some(s.parse::<u128>().unwrap_or(u128::MAX).saturating_mul(1000));
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut ms: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n = rest[..digits].parse::<u128>().unwrap_or(u128::MAX);
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit: u128 = match &rest[..letters] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        ms = ms.saturating_add(n.saturating_mul(unit));
        rest = rest[letters..].trim_start_matches(' ');
    }
    Some(ms)
}

fn check_duration(raw: &str) {
    // Duration's largest value, in whole milliseconds.
    let max_ms = u128::from(u64::MAX) * 1000 + 999;
    match (parse_duration(raw), duration_shaped(raw)) {
        (Ok(d), Some(ms)) => assert_eq!(d.as_millis(), ms, "{raw:?}"),
        (Ok(d), None) => panic!("parse_duration accepted {raw:?} as {d:?}"),
        (Err(msg), Some(ms)) => assert!(
            ms > max_ms && msg.contains("out of range"),
            "parse_duration rejected {raw:?}: {msg}"
        ),
        (Err(_), None) => {}
    }
}

fn check_upstream(u: &UpstreamConfig, ca_file_given: bool) {
    let host = u.url.host().expect("accepted URL has a host");
    match u.url.scheme_str() {
        Some("https") => {}
        Some("http") => assert!(is_loopback_host(host), "plain http to {host}"),
        other => panic!("accepted scheme {other:?}"),
    }
    assert!(!u.timeout.is_zero() && !u.connect_timeout.is_zero());
    assert_eq!(!u.extra_roots.is_empty(), ca_file_given);
}

fn check_refresh(f: f64) {
    assert!(f > 0.0 && f < 1.0, "accepted refresh fraction {f}");
}

/// `argv` through the shared clap command: `Cli::try_parse_from`, minus
/// rebuilding (and re-asserting) the command for every input: clap supports
/// reusing a command (REPLs).
fn parse<I: IntoIterator<Item = T>, T: Into<OsString> + Clone>(argv: I) -> Result<Cli, clap::Error> {
    command()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .try_get_matches_from_mut(argv)
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
}

fuzz_target!(|data: &[u8]| {
    fixtures();
    let argv: Vec<OsString> = std::iter::once(OsString::from("credagent"))
        .chain(
            data.split(|b| *b == 0)
                .map(|a| OsString::from_vec(a.to_vec())),
        )
        .collect();
    for arg in &argv {
        if let Some(s) = arg.to_str() {
            check_duration(s);
            if let Some((_, value)) = s.split_once('=') {
                check_duration(value);
            }
        }
    }
    let cli = match parse(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = (e.kind(), e.render().to_string());
            return;
        }
    };
    match cli.command {
        Command::Sidecar(mut a) => {
            check_refresh(a.tuning.refresh_fraction);
            contain_ca_file(&mut a.tuning);
            if let Ok(c) = a.config() {
                check_upstream(&c.upstream, a.tuning.ca_file.is_some());
                check_refresh(c.refresh.fraction);
                assert!(c.token_file.file_name().is_some());
                assert!(c.auth_token_file.file_name().is_some());
            }
        }
        Command::Doctor(mut d) => {
            contain_ca_file(&mut d.sidecar.tuning);
            let _ = d.sidecar.config().map_err(|e| e.to_string());
        }
        Command::Node(mut a) if a.command.is_none() => {
            contain_ca_file(&mut a.tuning);
            if let Ok(c) = a.config() {
                check_upstream(&c.upstream, a.tuning.ca_file.is_some());
                check_refresh(c.cache.policy.fraction);
                assert!(!c.listen.is_empty());
                assert!(c.cache.max_identities > 0 && c.cache.upstream_concurrency > 0);
                assert!(!c.cache.fill_wait.is_zero());
            }
        }
        Command::Exchange(mut a) => {
            check_refresh(a.tuning.refresh_fraction);
            contain_ca_file(&mut a.tuning);
            if let Ok(u) = a.tuning.upstream_config(&a.upstream) {
                check_upstream(&u, a.tuning.ca_file.is_some());
            }
        }
        Command::Webhook(a) => {
            if a.validate().is_ok() {
                assert_ne!(a.listen, a.admin_listen);
                assert!(!a.body_timeout.is_zero() && a.max_connections > 0);
                let i = &a.inject;
                assert!((600..=86_400).contains(&i.token_expiration.secs()));
                assert!(i.sidecar_port != 0 && i.sidecar_port != i.sidecar_admin_port);
                assert!(image_reference(i.sidecar_image.as_str()).is_ok());
                let r = &i.resources;
                for (request, limit) in [(&r.cpu_request, &r.cpu_limit), (&r.memory_request, &r.memory_limit)] {
                    if let (Some(q), Some(l)) = (request, limit) {
                        assert!(!q.exceeds(l), "request {q:?} above limit {l:?}");
                    }
                }
                // What is injected is what `credagent sidecar` accepts, for
                // every Pod annotation that changes the arguments: the
                // credential-process fallback, and the key lifetime (none:
                // the flag's; fixed values; the input's last argument). An
                // annotation the webhook refuses injects nothing.
                let mut lifetimes = vec![None, Some("off"), Some("15m"), Some("12h"), Some("1h30m")];
                lifetimes.extend(argv.last().and_then(|a| a.to_str()).filter(|a| a.len() <= 64).map(Some));
                for credential_process in [false, true] {
                    for &lifetime in &lifetimes {
                        let mut a = serde_json::Map::new();
                        if credential_process {
                            a.insert(CREDENTIAL_PROCESS.into(), "true".into());
                        }
                        if let Some(l) = lifetime {
                            a.insert(KEY_LIFETIME.into(), l.into());
                        }
                        let Ok(pod) = settings(Some(&a), i) else {
                            // Only a lifetime out of range, or one the upstream cannot take.
                            let refusable = |l: &str| parse_key_lifetime(l).is_err() || i.post_target().is_err();
                            assert!(lifetime.is_some_and(|l| l != "off" && refusable(l)), "{a:?}");
                            continue;
                        };
                        assert_eq!(pod.key_lifetime.is_some(), lifetime.map_or(i.key_lifetime.is_some(), |l| l != "off"));
                        let args = sidecar_args(i, &pod);
                        let sidecar = parse(std::iter::once("credagent".to_owned()).chain(args.clone()));
                        match sidecar.map(|c| c.command) {
                            Ok(Command::Sidecar(s)) => {
                                assert!(s.validate().is_ok(), "{args:?}");
                                // The sidecar asks for the Pod's lifetime with the webhook's attributes.
                                assert_eq!(s.tuning.key_lifetime, pod.key_lifetime, "{args:?}");
                                if pod.key_lifetime.is_some() {
                                    assert_eq!(s.tuning.key_attributes, i.key_attributes, "{args:?}");
                                    assert!(s.tuning.exchange(&s.upstream).is_ok(), "{args:?}");
                                }
                            }
                            other => panic!("the sidecar refuses {args:?}: {other:?}"),
                        }
                    }
                }
            }
        }
        Command::Demo(a) => {
            assert!(a.credential_lifetime >= Duration::from_secs(1));
            assert!(a.rotate_every >= Duration::from_secs(1));
            assert!(a.duration.is_none_or(|d| d >= Duration::from_secs(1)));
        }
        _ => {}
    }
});
