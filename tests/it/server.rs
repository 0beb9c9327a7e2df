//! The credentials and admin listeners, end to end through the stand-in.

use credagent_testkit::Fault;

use crate::support::{metric, scrape, Rig, RigOptions, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

fn assert_json_error(rsp: &crate::support::TestResponse, status: u16, code: &str) {
    assert_eq!(rsp.status, status, "{}", rsp.body);
    assert_eq!(
        rsp.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let v = rsp.json();
    assert_eq!(v["Code"], code);
    assert_eq!(v["code"], code);
    assert!(v["Message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(!rsp.body.contains(SECRET_ACCESS_KEY));
}

#[tokio::test]
async fn serves_the_ecs_format_to_authorized_callers() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let rsp = rig.credentials().await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.headers["content-type"], "application/json");
    let v = rsp.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for k in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(v.get(k).is_some(), "{k}");
    }
    assert_eq!(v["AccessKeyId"], ACCESS_KEY_ID);
    assert_eq!(v["SecretAccessKey"], SECRET_ACCESS_KEY);
    assert_eq!(
        v["Token"], "",
        "the upstream's empty token is served as a string"
    );
    let exp = v["Expiration"].as_str().unwrap();
    assert_eq!(exp.len(), 20, "{exp}");
    assert!(exp.ends_with('Z') && exp.as_bytes()[10] == b'T', "{exp}");
    // The raw token went upstream as the whole Authorization value.
    assert!(!rig.standin.last_authorization_had_bearer_prefix());
    assert_eq!(
        rig.standin.calls(),
        1,
        "one exchange, however many requests"
    );
    for _ in 0..20 {
        assert_eq!(rig.credentials().await.status, 200);
    }
    assert_eq!(rig.standin.calls(), 1);
    rig.stop().await;
}

#[tokio::test]
async fn rejects_what_it_should() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    assert_json_error(&rig.get("/v1/credentials", None).await, 401, "Unauthorized");
    assert_json_error(
        &rig.get("/v1/credentials", Some("wrong")).await,
        401,
        "Unauthorized",
    );
    let with_newline = format!("{}x", rig.auth_token());
    assert_json_error(
        &rig.get("/v1/credentials", Some(&with_newline)).await,
        401,
        "Unauthorized",
    );
    assert_json_error(
        &rig.get("/v1/credentials/extra", Some(&rig.auth_token()))
            .await,
        404,
        "NotFound",
    );
    assert_json_error(&rig.get("/", None).await, 404, "NotFound");
    let auth = rig.auth_token();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let rsp = crate::support::request(
            rig.sidecar.credentials_addr,
            None,
            method,
            "/v1/credentials",
            &[("authorization", auth.as_str())],
            "",
        )
        .await
        .unwrap();
        assert_json_error(&rsp, 405, "MethodNotAllowed");
        assert_eq!(rsp.headers["allow"], "GET");
    }
    // A query string does not change the route.
    assert_eq!(
        rig.get("/v1/credentials?x=1", Some(&auth)).await.status,
        200
    );
    let text = scrape(&rig.sidecar);
    assert_eq!(
        metric(
            &text,
            r#"credagent_requests_total{route="credentials",status="401"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"credagent_requests_total{route="credentials",status="405"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"credagent_requests_total{route="other",status="404"}"#
        ),
        Some(2.0)
    );
    rig.stop().await;
}

/// On a paused clock: the retry 1 s after the failed exchange takes no time.
#[tokio::test(start_paused = true)]
async fn not_ready_and_503_until_the_first_exchange_succeeds() {
    let rig = Rig::start(RigOptions {
        write_token: false,
        paused: true,
        ..RigOptions::default()
    })
    .await;
    rig.standin.set_sticky_fault(Some(Fault::Status(503)));
    assert_json_error(&rig.credentials().await, 503, "CredentialsUnavailable");
    assert_eq!(rig.admin("/readyz").await.status, 503);
    assert_eq!(rig.admin("/healthz").await.status, 200);
    // The token appears; the upstream fails once more, then recovers.
    rig.rotate("app");
    rig.standin.wait_for_calls(1).await;
    rig.standin.set_sticky_fault(None);
    rig.sidecar.store.wait_servable().await;
    assert_eq!(rig.admin("/readyz").await.status, 200);
    assert_eq!(rig.credentials().await.status, 200);
    let m = rig.admin("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.headers["content-type"].starts_with("text/plain"));
    assert_eq!(metric(&m.body, "credagent_ready"), Some(1.0));
    assert_eq!(
        metric(
            &m.body,
            &format!(
                r#"credagent_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    assert!(
        !m.body.contains("credagent_node_"),
        "no node-mode series in a sidecar"
    );
    assert_eq!(
        metric(
            &m.body,
            r#"credagent_refreshes_total{result="upstream_error"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m.body, r#"credagent_refreshes_total{result="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m.body,
            r#"credagent_upstream_responses_total{class="5xx"}"#
        ),
        Some(1.0)
    );
    assert!(metric(&m.body, "credagent_credentials_expiry_timestamp_seconds").unwrap() > 1.7e9);
    assert!(metric(&m.body, "credagent_last_refresh_success_timestamp_seconds").unwrap() > 1.7e9);
    assert!(metric(&m.body, "credagent_token_expiry_timestamp_seconds").unwrap() > 1.7e9);
    assert!(m
        .body
        .contains("credagent_refresh_duration_seconds_count 2"));
    assert!(m
        .body
        .contains(r#"credagent_request_duration_seconds_count{route="credentials"}"#));
    rig.stop().await;
}

#[tokio::test]
async fn admin_routes() {
    let rig = Rig::start(RigOptions::default()).await;
    assert_eq!(rig.admin("/nope").await.status, 404);
    let rsp = crate::support::request(rig.sidecar.admin_addr, None, "POST", "/metrics", &[], "")
        .await
        .unwrap();
    assert_eq!(rsp.status, 405);
    rig.stop().await;
}

#[tokio::test]
async fn shutdown_drains_and_stops_listening() {
    let rig = Rig::start(RigOptions::default()).await;
    rig.sidecar.store.wait_servable().await;
    let addr = rig.sidecar.credentials_addr;
    rig.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
