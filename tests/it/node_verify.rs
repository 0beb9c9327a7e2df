//! Node mode with local token verification (`--issuer`): tokens are checked
//! against the issuer's published keys before any upstream call.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use credagent::node::{Node, NodeOptions};
use credagent_testkit::oidc::OidcIssuer;
use credagent_testkit::{Issuer, StandIn, TokenSpec};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use credagent_testkit::testing::request_from;

use crate::support::{metric, request, TestResponse, ACCESS_KEY_ID, AUDIENCE};

struct Rig {
    oidc: OidcIssuer,
    keys: Issuer,
    standin: StandIn,
    node: Node,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

/// A node verifying tokens of an OIDC issuer signed with `keys`, whose
/// upstream (the stand-in) accepts the same tokens.
async fn start(keys: Issuer, flags: impl FnOnce(&OidcIssuer) -> Vec<String>) -> Rig {
    let shutdown = CancellationToken::new();
    let oidc = OidcIssuer::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        &[&keys],
        shutdown.child_token(),
    )
    .unwrap();
    let standin = crate::support::hour_standin(&keys, &shutdown).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = standin.url();
    let listen = addr.to_string();
    let extra = flags(&oidc);
    let mut argv: Vec<&str> = vec!["--exchange-url", &url, "--listen", &listen];
    argv.extend(extra.iter().map(String::as_str));
    let config = crate::support::node_config(&argv);
    let node = Node::start(
        &config,
        NodeOptions {
            listeners: Some(vec![listener]),
            admin_listener: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            ..NodeOptions::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    Rig {
        oidc,
        keys,
        standin,
        node,
        addr,
        shutdown,
    }
}

fn discovery(oidc: &OidcIssuer) -> Vec<String> {
    vec!["--issuer".into(), oidc.url().into()]
}

impl Rig {
    fn token_by(&self, signer: &Issuer, spec: TokenSpec) -> String {
        signer
            .service_account_token(&spec, SystemTime::now())
            .unwrap()
    }

    fn token(&self, sa: &str) -> String {
        self.token_by(&self.keys, self.oidc.token_spec("ns", sa))
    }

    async fn get(&self, token: &str) -> TestResponse {
        request(
            self.addr,
            None,
            "GET",
            "/v1/credentials",
            &[("host", &self.addr.to_string()), ("authorization", token)],
            "",
        )
        .await
        .expect("node answers")
    }

    async fn ready(&self) -> TestResponse {
        request(self.node.admin_addr, None, "GET", "/readyz", &[], "")
            .await
            .unwrap()
    }

    async fn until_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.ready().await.status != 200 {
            assert!(tokio::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn count(&self, series: &str) -> f64 {
        metric(
            &String::from_utf8(self.node.metrics.encode()).unwrap(),
            series,
        )
        .unwrap_or(0.0)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn verified_tokens_are_exchanged_and_others_cost_no_upstream_call() {
    for keys in [
        Issuer::generate_es256("cluster-es").unwrap(),
        Issuer::from_rsa_pkcs8_der("cluster-rs", credagent_testkit::RS256_TEST_KEY).unwrap(),
    ] {
        let alg = keys.alg();
        let rig = start(keys, discovery).await;
        rig.until_ready().await;
        let good = rig.get(&rig.token("app")).await;
        assert_eq!(good.status, 200, "{alg:?}: {}", good.body);
        assert_eq!(good.json()["AccessKeyId"], ACCESS_KEY_ID);
        assert_eq!(rig.standin.calls(), 1);

        let stranger = Issuer::generate_es256("cluster-es").unwrap();
        let refused = [
            // The issuer's name, someone else's key (same kid).
            rig.token_by(&stranger, rig.oidc.token_spec("ns", "forged")),
            // The right key, the wrong audience.
            rig.token_by(
                &rig.keys,
                TokenSpec {
                    audience: "https://kubernetes.default.svc".into(),
                    ..rig.oidc.token_spec("ns", "aud")
                },
            ),
            // Another issuer altogether.
            rig.token_by(
                &rig.keys,
                TokenSpec {
                    issuer: "https://oidc.elsewhere.example".into(),
                    ..rig.oidc.token_spec("ns", "other")
                },
            ),
        ];
        for token in &refused {
            for _ in 0..3 {
                let r = rig.get(token).await;
                assert_eq!(r.status, 403, "{alg:?}: {}", r.body);
                assert_eq!(r.json()["Code"], "AccessDenied");
            }
        }
        assert_eq!(
            rig.standin.calls(),
            1,
            "{alg:?}: no upstream call for a refused token"
        );
        assert_eq!(
            rig.count(r#"credagent_token_verifications_total{result="accepted"}"#),
            1.0
        );
        assert!(rig.count(r#"credagent_token_verifications_total{result="audience"}"#) >= 1.0);
        assert!(rig.count(r#"credagent_token_verifications_total{result="issuer"}"#) >= 1.0);
        assert!(
            rig.count(r#"credagent_node_rejected_requests_total{reason="unverified_token"}"#)
                >= 3.0
        );
    }
}

/// 300 forged tokens (the right issuer name, a key of the attacker's own)
/// cost the upstream nothing and the key set at most one extra fetch.
#[tokio::test]
async fn a_forged_flood_never_reaches_the_upstream() {
    let rig = start(Issuer::generate_es256("k1").unwrap(), discovery).await;
    rig.until_ready().await;
    let fetches = rig.oidc.jwks_fetches();
    for i in 0..300 {
        let attacker = Issuer::generate_es256(&format!("made-up-{i}")).unwrap();
        let forged = rig.token_by(&attacker, rig.oidc.token_spec("ns", &format!("f{i}")));
        assert_eq!(rig.get(&forged).await.status, 403);
    }
    assert_eq!(rig.standin.calls(), 0);
    assert!(
        rig.oidc.jwks_fetches() <= fetches + 1,
        "unknown key ids refetched the key set {} times",
        rig.oidc.jwks_fetches() - fetches
    );
    // Another Pod (another source address) is not held back by the flood
    // (the flood's own address has spent its miss budget).
    let other = request_from(
        "127.0.0.2".parse().unwrap(),
        rig.addr,
        "GET",
        "/v1/credentials",
        &[
            ("host", &rig.addr.to_string()),
            ("authorization", &rig.token("real")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(other.status, 200, "{}", other.body);
}

/// A new key the issuer starts signing with is picked up on the first token
/// that names it.
#[tokio::test]
async fn rotated_keys_are_fetched_on_an_unknown_key_id() {
    let rig = start(Issuer::generate_es256("old").unwrap(), discovery).await;
    rig.until_ready().await;
    let new = Issuer::generate_es256("new").unwrap();
    rig.oidc.publish(&[&rig.keys, &new]);
    rig.standin.add_verifier(new.verifier());
    let token = rig.token_by(&new, rig.oidc.token_spec("ns", "rotated"));
    let r = rig.get(&token).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_named_key_set_needs_no_discovery() {
    let rig = start(Issuer::generate_es256("k").unwrap(), |oidc| {
        vec![
            "--issuer".into(),
            oidc.url().into(),
            "--jwks-url".into(),
            oidc.jwks_url(),
            "--audience".into(),
            AUDIENCE.into(),
        ]
    })
    .await;
    rig.until_ready().await;
    assert_eq!(rig.get(&rig.token("app")).await.status, 200);
    assert_eq!(rig.oidc.discovery_fetches(), 0);
}

/// Not ready until the keys are loaded: an issuer that cannot be reached
/// keeps `/readyz` at 503 saying so.
#[tokio::test]
async fn readiness_waits_for_the_keys() {
    let rig = start(Issuer::generate_es256("k").unwrap(), |_| {
        vec!["--issuer".into(), "http://127.0.0.1:1".into()]
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = rig.ready().await;
        assert_eq!(r.status, 503);
        if r.body.contains("not loaded") && r.body.contains("127.0.0.1:1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn verification_flags_are_validated() {
    let bad = |args: &[&str]| {
        let mut argv = vec!["credagent", "node", "--org-id", "o"];
        argv.extend_from_slice(args);
        argv.push("--check-config");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
            .args(&argv[1..])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (args, flag) in [
        (&["--issuer", "http://oidc.example"][..], "--issuer"),
        (&["--issuer", "not a url"][..], "--issuer"),
        (&["--jwks-url", "https://x/jwks"][..], "--jwks-url"),
        (
            &[
                "--issuer",
                "https://a",
                "--issuer",
                "https://b",
                "--jwks-url",
                "https://a/jwks",
            ][..],
            "--jwks-url",
        ),
        (
            &[
                "--issuer",
                "https://a",
                "--jwks-url",
                "http://a.example/jwks",
            ][..],
            "--jwks-url",
        ),
    ] {
        let (code, err) = bad(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let (code, err) = bad(&["--issuer", "https://oidc.example/id/abc"]);
    assert_eq!(code, Some(0), "{err}");
}
