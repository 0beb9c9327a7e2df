//! The webhook configuration: defaults, deserialisation, validation, sidecar arguments.

use super::config::{InjectConfig, Resources, Upstream};

fn config() -> InjectConfig {
    InjectConfig::new(
        "registry.example/credagent:1.0",
        Upstream::OrgId("org-1".into()),
    )
}

#[test]
fn defaults_validate_and_build_the_documented_args() {
    let c = config();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(
        c.sidecar_args(false),
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
    let c = InjectConfig {
        region: Some("US-EAST-04A".into()),
        s3_endpoint: Some("http://cwlota.com".into()),
        upstream: Upstream::ExchangeUrl("https://up.example/x".into()),
        ..config()
    };
    let args = c.sidecar_args(true).join(" ");
    assert!(
        args.contains("--exchange-url https://up.example/x"),
        "{args}"
    );
    assert!(args.ends_with("--region US-EAST-04A --credential-process-dir /var/run/credagent --endpoint-url http://cwlota.com --s3-addressing-style virtual"), "{args}");
}

#[test]
fn deserialises_with_defaults_and_refuses_unknown_keys() {
    let c: InjectConfig = serde_json::from_str(
        r#"{"image": "registry.example/credagent:1.0", "upstream": {"org_id": "org-1"}}"#,
    )
    .unwrap();
    assert_eq!(c, config());
    let c: InjectConfig = serde_json::from_str(
        r#"{"image": "i", "upstream": {"exchange_url": "https://x"}, "image_pull_policy": "Always",
            "resources": {"cpu_limit": null}, "coreweave_compat": true}"#,
    )
    .unwrap();
    assert_eq!(c.resources.cpu_limit, None);
    assert_eq!(c.resources.memory_limit.as_deref(), Some("32Mi"));
    assert_eq!(c.image_pull_policy.as_str(), "Always");
    assert!(c.coreweave_compat);
    for bad in [
        r#"{"image": "i", "upstream": {"org_id": "o"}, "imag": "x"}"#,
        r#"{"image": "i"}"#,
        r#"{"image": "i", "upstream": {"org_id": "o", "exchange_url": "https://x"}}"#,
    ] {
        assert!(serde_json::from_str::<InjectConfig>(bad).is_err(), "{bad}");
    }
}

#[test]
fn refuses_bad_values_naming_the_field() {
    let cases: Vec<(InjectConfig, &str)> = vec![
        (
            InjectConfig {
                image: String::new(),
                ..config()
            },
            "image",
        ),
        (
            InjectConfig {
                image: "a b".into(),
                ..config()
            },
            "image",
        ),
        (
            InjectConfig {
                upstream: Upstream::OrgId("a/b".into()),
                ..config()
            },
            "upstream.org_id",
        ),
        (
            InjectConfig {
                upstream: Upstream::ExchangeUrl("http://up.example/x".into()),
                ..config()
            },
            "upstream.exchange_url",
        ),
        (
            InjectConfig {
                upstream: Upstream::ExchangeUrl("ftp://x".into()),
                ..config()
            },
            "upstream.exchange_url",
        ),
        (
            InjectConfig {
                audience: " ".into(),
                ..config()
            },
            "audience",
        ),
        (
            InjectConfig {
                token_expiration: 599,
                ..config()
            },
            "token_expiration",
        ),
        (
            InjectConfig {
                token_expiration: 86_401,
                ..config()
            },
            "token_expiration",
        ),
        (
            InjectConfig {
                admin_port: 8181,
                ..config()
            },
            "sidecar_port",
        ),
        (
            InjectConfig {
                region: Some("us east".into()),
                ..config()
            },
            "region",
        ),
        (
            InjectConfig {
                s3_endpoint: Some("cwlota.com".into()),
                ..config()
            },
            "s3_endpoint",
        ),
        (
            InjectConfig {
                node_url: "169.254.170.23".into(),
                ..config()
            },
            "node_url",
        ),
        (
            InjectConfig {
                sidecar_https_proxy: Some("https://proxy.corp:3128".into()),
                ..config()
            },
            "sidecar_https_proxy",
        ),
        (
            InjectConfig {
                sidecar_https_proxy: Some("http://user:pw@proxy.corp:3128".into()),
                ..config()
            },
            "sidecar_https_proxy",
        ),
        (
            InjectConfig {
                sidecar_no_proxy: Some(".svc,internal corp".into()),
                ..config()
            },
            "sidecar_no_proxy",
        ),
        (
            InjectConfig {
                startup_failure_threshold: 0,
                ..config()
            },
            "startup_failure_threshold",
        ),
        (
            InjectConfig {
                resources: Resources {
                    cpu_limit: Some("lots".into()),
                    ..Resources::default()
                },
                ..config()
            },
            "resources.cpu_limit",
        ),
        (
            InjectConfig {
                resources: Resources {
                    memory_request: Some("1Gi".into()),
                    ..Resources::default()
                },
                ..config()
            },
            "resources.memory_request",
        ),
    ];
    for (c, field) in cases {
        assert_eq!(c.validate().map_err(|e| e.field), Err(field), "{c:?}");
    }
    let loopback = InjectConfig {
        upstream: Upstream::ExchangeUrl("http://127.0.0.1:9000/x".into()),
        ..config()
    };
    assert_eq!(loopback.validate(), Ok(()));
    let proxied = InjectConfig {
        sidecar_https_proxy: Some("http://proxy.corp:3128".into()),
        sidecar_no_proxy: Some(".svc,10.96.0.0/12".into()),
        ..config()
    };
    assert_eq!(proxied.validate(), Ok(()));
    let e = InjectConfig {
        sidecar_https_proxy: Some("http://user:hunter2@proxy.corp:3128".into()),
        ..config()
    }
    .validate()
    .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(
        e.reason.contains("readable by anyone who can read Pods"),
        "{e}"
    );
}

#[test]
fn the_proxy_deserialises_and_stays_out_of_the_args() {
    let c: InjectConfig = serde_json::from_str(
        r#"{"image": "i", "upstream": {"org_id": "o"},
            "sidecar_https_proxy": "http://proxy.corp:3128", "sidecar_no_proxy": ".svc"}"#,
    )
    .unwrap();
    assert_eq!(
        c.sidecar_https_proxy.as_deref(),
        Some("http://proxy.corp:3128")
    );
    assert_eq!(c.sidecar_no_proxy.as_deref(), Some(".svc"));
    // The sidecar reads it from its env, not from a flag.
    assert!(!c.sidecar_args(true).iter().any(|a| a.contains("proxy")));
}
