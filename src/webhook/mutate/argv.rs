//! The injected sidecar's command line: `credagent sidecar` with the
//! webhook's upstream, listeners and region, the fixed paths of what it
//! mounts, and the credential-process fallback's flags. The sidecar's own
//! clap definition must accept it (checked on every fixture in
//! `fixture_tests`, and with the built binary by `tests/webhook/run.sh`).

use super::names;
use crate::cli::InjectArgs;

/// The sidecar's arguments (after the image's `credagent` entrypoint).
/// `credential_process` adds the fallback's flags.
pub fn sidecar_args(config: &InjectArgs, credential_process: bool) -> Vec<String> {
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
    if credential_process {
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

/// What the apps' `AWS_CONTAINER_CREDENTIALS_FULL_URI` is in sidecar mode.
pub fn sidecar_url(config: &InjectArgs) -> String {
    format!("http://127.0.0.1:{}/v1/credentials", config.sidecar_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> InjectArgs {
        let base = ["--sidecar-image", "registry.example/credagent:1.0"];
        InjectArgs::from_flags(base.iter().chain(flags)).unwrap()
    }

    #[test]
    fn the_defaults_make_the_documented_args() {
        assert_eq!(
            sidecar_args(&config(&["--org-id", "org-1"]), false),
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
        let args = sidecar_args(&c, true).join(" ");
        assert!(
            args.contains("--exchange-url https://up.example/x"),
            "{args}"
        );
        assert!(args.contains("--listen 127.0.0.1:8282"), "{args}");
        assert!(args.ends_with("--region US-EAST-04A --credential-process-dir /var/run/credagent --endpoint-url http://cwlota.com --s3-addressing-style virtual"), "{args}");
        // The sidecar reads its proxy from its env, not from a flag.
        assert!(!args.contains("proxy"), "{args}");
        assert!(!sidecar_args(&c, false).join(" ").contains("--endpoint-url"));
        assert_eq!(sidecar_url(&c), "http://127.0.0.1:8282/v1/credentials");
    }

    #[test]
    fn a_value_like_a_flag_stays_a_value() {
        // The webhook accepts `--org-id=-org`; injected as `--org-id -org`,
        // the sidecar's clap refused `-org` as an unknown flag.
        let c = config(&["--org-id=-org", "--region=-r"]);
        let args = sidecar_args(&c, false);
        assert!(args.contains(&"--org-id=-org".to_owned()), "{args:?}");
        assert!(args.contains(&"--region=-r".to_owned()), "{args:?}");
        use clap::Parser as _;
        let argv = std::iter::once("credagent".to_owned()).chain(args);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Sidecar(s) = cli.command else {
            panic!("not a sidecar")
        };
        assert_eq!(s.upstream.as_flag(), ["--org-id", "-org"]);
        assert_eq!(
            s.region.map(|r| r.as_str().to_owned()).as_deref(),
            Some("-r")
        );
    }
}
