//! The POST exchange (`--key-lifetime`) end to end through the stand-in:
//! what the agent asks for, how the answer is served, how refusals are
//! classified, and the audit trail.

use std::time::Duration;

use credagent::config::{parse_key_attribute, KeyRequest};
use credagent_testkit::standin::PostExchange;
use credagent_testkit::Fault;

use crate::support::{metric, scrape, Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

fn key(lifetime: Duration, attributes: &[&str]) -> Option<KeyRequest> {
    Some(KeyRequest {
        lifetime,
        attributes: attributes
            .iter()
            .map(|a| parse_key_attribute(a).unwrap())
            .collect(),
    })
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn asks_for_the_lifetime_and_tags_the_key_with_the_pod() {
    let rig = Rig::start(RigOptions {
        key: key(HOUR, &["cluster=prod-1"]),
        ..RigOptions::default()
    })
    .await;
    rig.sidecar.store.wait_servable().await;
    assert_eq!(
        (rig.standin.calls_post(), rig.standin.calls_get()),
        (1, 0),
        "the POST only"
    );
    let asked = rig.standin.last_post().expect("a well-formed POST");
    assert_eq!(asked.duration_seconds, 3600);
    assert_eq!(asked.org_id, "org");
    assert_eq!(asked.content_type.as_deref(), Some("application/json"));
    let attrs = &asked.attributes;
    // The rig's token is for ServiceAccount `app` in `default`, in Pod
    // `app-standin` (the test kit's issuer).
    assert_eq!(attrs["name"], "default/app-standin");
    assert_eq!(attrs["k8s-namespace"], "default");
    assert_eq!(attrs["k8s-pod"], "app-standin");
    assert_eq!(attrs["k8s-service-account"], "app");
    assert_eq!(attrs["k8s-pod-uid"].len(), 36, "{attrs:?}");
    assert_eq!(attrs["cluster"], "prod-1");
    assert!(attrs["agent"].starts_with("credagent/"));
    assert!(!attrs.contains_key("k8s-node"), "the token names no node");

    // Served exactly as a GET answer would be.
    let v = rig.credentials().await.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
    );
    assert_eq!(v["AccessKeyId"], ACCESS_KEY_ID);
    assert_eq!(v["SecretAccessKey"], SECRET_ACCESS_KEY);
    assert_eq!(v["Token"], "");
    let text = scrape(&rig.sidecar);
    assert_eq!(
        metric(&text, "credagent_keys_issued_total{exchange=\"post\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "credagent_keys_issued_total{exchange=\"get\"}"),
        Some(0.0)
    );
    let granted = metric(&text, "credagent_key_lifetime_seconds").unwrap();
    assert!((3590.0..=3600.0).contains(&granted), "{granted}");
    rig.stop().await;
}

#[tokio::test]
async fn serves_what_the_upstream_granted_when_it_grants_less() {
    let rig = Rig::start(RigOptions {
        key: key(HOUR, &[]),
        write_token: false,
        ..RigOptions::default()
    })
    .await;
    rig.standin
        .set_post_max_lifetime(Some(Duration::from_secs(20 * 60)));
    rig.rotate("app");
    rig.sidecar.store.wait_servable().await;
    let text = scrape(&rig.sidecar);
    let granted = metric(&text, "credagent_key_lifetime_seconds").unwrap();
    assert!((1190.0..=1200.0).contains(&granted), "{granted}");
    assert_eq!(rig.standin.last_post().unwrap().duration_seconds, 3600);
    let v = rig.credentials().await.json();
    let expires = time::OffsetDateTime::parse(
        v["Expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left <= time::Duration::minutes(20), "{left}");
    rig.stop().await;
}

#[tokio::test]
async fn an_upstream_without_the_post_is_reported_and_never_falls_back_to_the_get() {
    for (mode, status) in [
        (PostExchange::NotFound, 404),
        (PostExchange::MethodNotAllowed, 405),
    ] {
        let rig = Rig::start(RigOptions {
            key: key(HOUR, &[]),
            write_token: false,
            ..RigOptions::default()
        })
        .await;
        rig.standin.set_post_exchange(mode);
        rig.rotate("app");
        rig.standin.wait_for_calls(1).await;
        let text = loop {
            let text = scrape(&rig.sidecar);
            if metric(
                &text,
                "credagent_refreshes_total{result=\"post_not_offered\"}",
            )
            .is_some_and(|n| n >= 1.0)
            {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(metric(&text, "credagent_ready"), Some(0.0), "{status}");
        assert_eq!(
            rig.standin.calls_get(),
            0,
            "no fallback to the GET ({status})"
        );
        assert_eq!(rig.credentials().await.status, 503, "{status}");
        rig.stop().await;
    }
}

#[tokio::test]
async fn a_refused_key_request_is_classified() {
    let rig = Rig::start(RigOptions {
        key: key(HOUR, &[]),
        write_token: false,
        ..RigOptions::default()
    })
    .await;
    rig.standin.push_fault(Fault::Status(400));
    rig.rotate("app");
    rig.standin.wait_for_calls(1).await;
    loop {
        let text = scrape(&rig.sidecar);
        if metric(
            &text,
            "credagent_refreshes_total{result=\"key_request_refused\"}",
        )
        .is_some_and(|n| n >= 1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The retry (the fault was one answer) succeeds.
    rig.sidecar.store.wait_servable().await;
    rig.stop().await;
}

// One thread: the capture is this thread's (capture.rs).
#[tokio::test(flavor = "current_thread")]
async fn every_key_issued_has_one_audit_line_without_secrets() {
    let logs = crate::capture::start();
    let rig = Rig::start(RigOptions {
        key: key(HOUR, &["cluster=prod-1"]),
        ..RigOptions::default()
    })
    .await;
    let captured = || logs.text();
    let within = Duration::from_secs(30);
    tokio::time::timeout(within, rig.sidecar.store.wait_servable())
        .await
        .unwrap_or_else(|_| panic!("no first key within 30 s; captured: {}", captured()));
    let rotated = rig.rotate("app");
    tokio::time::timeout(within, async {
        rig.standin.wait_for_calls(2).await;
        while rig.standin.successes() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no exchange after the rotation within 30 s; captured: {}",
            captured()
        )
    });
    // The second key's line is written right after its exchange.
    let audit = tokio::time::timeout(within, async {
        loop {
            let text = logs.text();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|v: &serde_json::Value| v["target"] == "credagent::audit")
                .collect();
            if lines.len() >= 2 {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no second audit line within 30 s; captured: {}", captured()));
    assert_eq!(audit.len(), 2, "one line per key: {audit:?}");
    let line = &audit[0];
    assert_eq!(line["event"], "key_issued");
    assert_eq!(line["exchange"], "post");
    assert_eq!(line["access_key_id"], ACCESS_KEY_ID);
    assert!(
        line["principal"]
            .as_str()
            .is_some_and(|p| p.ends_with("system:serviceaccount:default:app")),
        "{line}"
    );
    assert_eq!(line["namespace"], "default");
    assert_eq!(line["pod"], "app-standin");
    assert_eq!(line["service_account"], "app");
    assert!(line["expiration"]
        .as_str()
        .is_some_and(|e| e.ends_with('Z')));
    assert!((3590..=3600).contains(&line["lifetime_s"].as_u64().unwrap()));
    let all = logs.text();
    assert!(!all.contains(SECRET_ACCESS_KEY), "the secret was logged");
    assert!(!all.contains(&rotated), "the token was logged");
    // Every JWT's header starts `{"alg"`: no token's first segment either.
    assert!(!all.contains("eyJhbGci"), "a token was logged");
    rig.stop().await;
}
