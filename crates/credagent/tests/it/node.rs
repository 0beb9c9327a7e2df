//! Node mode: many Pods, each served by its own token, through the
//! identity cache, against the stand-in upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use credagent::node::{Node, NodeOptions};
use credagent_testkit::{Fault, Issuer, StandIn};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{metric, mint, request, TestResponse, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

struct NodeRig {
    standin: StandIn,
    issuer: Issuer,
    node: Node,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

async fn start(flags: &[&str]) -> NodeRig {
    let issuer = Issuer::generate_es256("pods").unwrap();
    let shutdown = CancellationToken::new();
    let standin = StandIn::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        crate::support::standin_config(&issuer, Duration::from_secs(3600), ""),
        None,
        shutdown.child_token(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = standin.url();
    let listen = addr.to_string();
    let mut argv = vec![
        "--exchange-url",
        &url,
        "--listen",
        &listen,
        "--upstream-timeout",
        "5s",
    ];
    argv.extend_from_slice(flags);
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
    NodeRig {
        standin,
        issuer,
        node,
        addr,
        shutdown,
    }
}

impl NodeRig {
    async fn get(&self, token: Option<&str>, host: Option<&str>) -> TestResponse {
        let host = host
            .map(str::to_owned)
            .unwrap_or_else(|| self.addr.to_string());
        let mut headers = vec![("host", host.as_str())];
        if let Some(t) = token {
            headers.push(("authorization", t));
        }
        request(self.addr, None, "GET", "/v1/credentials", &headers, "")
            .await
            .expect("node answers")
    }

    fn token(&self, sa: &str) -> String {
        mint(&self.issuer, sa, Duration::from_secs(3600))
    }

    fn metrics(&self) -> String {
        String::from_utf8(self.node.metrics.encode()).unwrap()
    }

    fn count(&self, series: &str) -> f64 {
        metric(&self.metrics(), series).unwrap_or(0.0)
    }
}

impl Drop for NodeRig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_herd_makes_exactly_one_exchange_per_identity() {
    let rig = Arc::new(start(&[]).await);
    // Slow the upstream a little so that a token's ten requests overlap.
    rig.standin
        .set_sticky_fault(Some(Fault::Delay(Duration::from_millis(20))));
    let tokens: Vec<String> = (0..500).map(|i| rig.token(&format!("pod-{i}"))).collect();
    for wave in 0..2 {
        let gate = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = tokio::task::JoinSet::new();
        for token in &tokens {
            let (rig, gate, token) = (rig.clone(), gate.clone(), token.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let mut herd = tokio::task::JoinSet::new();
                for _ in 0..10 {
                    let (rig, token) = (rig.clone(), token.clone());
                    herd.spawn(async move { rig.get(Some(&token), None).await });
                }
                herd.join_all().await
            });
        }
        let mut statuses = std::collections::HashMap::new();
        while let Some(done) = tasks.join_next().await {
            for rsp in done.unwrap() {
                if rsp.status == 200 {
                    assert_eq!(rsp.json()["AccessKeyId"], ACCESS_KEY_ID);
                }
                *statuses.entry(rsp.status).or_insert(0) += 1;
            }
        }
        assert_eq!(statuses.get(&200), Some(&5000), "wave {wave}: {statuses:?}");
        assert_eq!(
            rig.standin.calls(),
            500,
            "wave {wave}: one exchange per identity"
        );
    }
    assert_eq!(rig.node.cache.len(), 500);
    assert_eq!(rig.count("credagent_node_identities"), 500.0);
    assert_eq!(
        rig.count("credagent_node_cache_hits_total")
            + rig.count("credagent_node_cache_misses_total"),
        10_000.0
    );
    assert!(rig.count("credagent_node_singleflight_joins_total") > 0.0);
    assert_eq!(
        rig.count(r#"credagent_refreshes_total{result="ok"}"#),
        500.0
    );
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_upstream_call() {
    let rig = start(&[]).await;
    let good = rig.token("app");
    let expired = credagent_testkit::TokenSpec {
        lifetime: Duration::from_secs(1),
        ..Default::default()
    };
    let expired = rig
        .issuer
        .service_account_token(
            &expired,
            std::time::SystemTime::now() - Duration::from_secs(60),
        )
        .unwrap();
    let cases: Vec<(Option<String>, Option<&str>, u16, &str)> = vec![
        (None, None, 401, "missing_token"),
        (Some("not-a-jwt".into()), None, 400, "malformed_token"),
        (Some(format!("{good}x.y")), None, 400, "malformed_token"),
        (Some("a".repeat(17 * 1024)), None, 400, "malformed_token"),
        (Some(expired), None, 401, "expired_token"),
        (Some(good.clone()), Some("evil.example"), 403, "bad_host"),
        (Some(good.clone()), Some("169.254.170.23"), 403, "bad_host"),
    ];
    for (token, host, status, reason) in cases {
        let rsp = rig.get(token.as_deref(), host).await;
        assert_eq!(rsp.status, status, "{reason}: {}", rsp.body);
        assert!(rsp.json()["Code"].is_string());
        assert!(
            rig.count(&format!(
                r#"credagent_node_rejected_requests_total{{reason="{reason}"}}"#
            )) >= 1.0,
            "{reason}"
        );
    }
    assert_eq!(rig.standin.calls(), 0, "nothing reached the upstream");
    assert_eq!(rig.get(Some(&good), None).await.status, 200);
    assert_eq!(rig.standin.calls(), 1);
}

#[tokio::test]
async fn forged_tokens_get_nothing_and_are_negatively_cached() {
    let rig = start(&[]).await;
    let real = rig.token("app");
    assert_eq!(rig.get(Some(&real), None).await.status, 200);
    // Same claims shape and sub, another key: the upstream refuses it, and
    // the cache never hands it the real Pod's credentials.
    let evil = Issuer::generate_es256("pods").unwrap();
    let forged = mint(&evil, "app", Duration::from_secs(3600));
    for _ in 0..5 {
        let rsp = rig.get(Some(&forged), None).await;
        assert_eq!(rsp.status, 403, "{}", rsp.body);
        assert!(!rsp.body.contains(SECRET_ACCESS_KEY));
    }
    assert_eq!(
        rig.standin.calls(),
        2,
        "one upstream call for the forged token, then the negative cache"
    );
    assert_eq!(rig.count("credagent_node_negative_cache_hits_total"), 4.0);
    // Tampering with the real token's payload is also a different identity.
    let mut parts: Vec<&str> = real.split('.').collect();
    let payload = parts[1].to_owned() + "A";
    parts[1] = &payload;
    let tampered = parts.join(".");
    assert_ne!(rig.get(Some(&tampered), None).await.status, 200);
    assert_eq!(rig.get(Some(&real), None).await.status, 200);
}

#[tokio::test]
async fn a_rotated_token_costs_one_exchange() {
    let rig = start(&[]).await;
    let first = rig.token("app");
    for _ in 0..3 {
        assert_eq!(rig.get(Some(&first), None).await.status, 200);
    }
    let second = rig.token("app");
    for _ in 0..3 {
        assert_eq!(rig.get(Some(&second), None).await.status, 200);
    }
    assert_eq!(rig.standin.calls(), 2);
}

#[tokio::test]
async fn the_cache_stays_within_its_bound() {
    let rig = start(&["--max-identities", "10"]).await;
    let tokens: Vec<String> = (0..15).map(|i| rig.token(&format!("pod-{i}"))).collect();
    for t in &tokens {
        assert_eq!(rig.get(Some(t), None).await.status, 200);
    }
    assert_eq!(rig.node.cache.len(), 10);
    assert_eq!(
        rig.count(r#"credagent_node_cache_evictions_total{reason="lru"}"#),
        5.0
    );
    // The most recent ten are cached; the first five were evicted.
    let calls = rig.standin.calls();
    assert_eq!(rig.get(Some(&tokens[14]), None).await.status, 200);
    assert_eq!(rig.standin.calls(), calls);
    assert_eq!(rig.get(Some(&tokens[0]), None).await.status, 200);
    assert_eq!(rig.standin.calls(), calls + 1);
    assert_eq!(rig.node.cache.len(), 10);
}

#[tokio::test]
async fn upstream_failures_are_503_and_shared_by_waiters() {
    let rig = start(&[]).await;
    rig.standin.set_sticky_fault(Some(Fault::Status(503)));
    let token = rig.token("app");
    let rsp = rig.get(Some(&token), None).await;
    assert_eq!(rsp.status, 503);
    assert_eq!(rsp.json()["Code"], "CredentialsUnavailable");
    let retry_after: u64 = rsp.headers["retry-after"].parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    rig.standin.set_sticky_fault(None);
    // Within the backoff the identity is answered at once, without a call.
    let calls = rig.standin.calls();
    let during = rig.get(Some(&token), None).await;
    assert_eq!((during.status, rig.standin.calls()), (503, calls));
    assert!(during.headers.contains_key("retry-after"));
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(rig.get(Some(&token), None).await.status, 200);
    assert_eq!(rig.node.cache.len(), 1);
}

#[tokio::test]
async fn admin_is_ready_and_serves_node_metrics() {
    let rig = start(&[]).await;
    let r = request(rig.node.admin_addr, None, "GET", "/readyz", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let m = request(rig.node.admin_addr, None, "GET", "/metrics", &[], "")
        .await
        .unwrap();
    for name in [
        "credagent_node_identities",
        "credagent_node_max_identities 4096",
        "credagent_node_cache_hits_total",
        "credagent_node_cache_misses_total",
        "credagent_node_cache_evictions_total",
        "credagent_node_singleflight_joins_total",
        "credagent_node_negative_cache_hits_total",
        "credagent_node_rejected_requests_total",
    ] {
        assert!(m.body.contains(name), "{name}");
    }
}
