//! The `/_standin/` control API.

use super::*;

#[tokio::test]
async fn control_api() {
    let cfg = StandInConfig {
        issuer: Some(Issuer::generate_es256("standin").unwrap()),
        ..config(Vec::new())
    };
    let (standin, _shutdown) = start(cfg).await;

    let resp = control(&standin, "POST", "token", "").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers["content-type"], "text/plain");
    assert!(!resp.body.ends_with('\n') && resp.body.split('.').count() == 3);
    assert_eq!(get(&standin, Some(&resp.body)).await.status, 200);

    let body = r#"{"namespace":"ml","service_account":"trainer","lifetime_secs":600}"#;
    let jwt = control(&standin, "POST", "token", body).await.body;
    let claims = standin.issuer().unwrap().verifier().verify(&jwt).unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    let resp = get(&standin, Some(&jwt)).await;
    assert!(resp.json()["attributes"]["cw-role"]
        .as_str()
        .unwrap()
        .ends_with(":system:serviceaccount:ml:trainer"));

    let keys = r#"{"access_key_id":"AK2","secret_access_key":"SK2","session_token":"ST2"}"#;
    assert_eq!(
        control(&standin, "POST", "keys", keys).await.json(),
        json!({"ok": true})
    );
    assert_eq!(
        control(&standin, "POST", "lifetime", r#"{"secs":60}"#)
            .await
            .status,
        200
    );
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = get(&standin, Some(&jwt)).await.json();
    assert_eq!(
        (
            body["AccessKeyId"].as_str(),
            body["SecretAccessKey"].as_str()
        ),
        (Some("AK2"), Some("SK2"))
    );
    assert_eq!(body["Token"], "ST2");
    let expected = respond::expiration(
        UNIX_EPOCH + Duration::from_secs(before + 60),
        Duration::ZERO,
    );
    let next = respond::expiration(
        UNIX_EPOCH + Duration::from_secs(before + 61),
        Duration::ZERO,
    );
    let got = body["Expiration"].as_str().map(str::to_owned);
    assert!(got == expected || got == next, "{got:?}");

    for (fault, status) in [
        (r#"{"status":503}"#, 503),
        (r#"{"throttle_retry_after":"7"}"#, 429),
        (r#"{"status":500,"body":"oops"}"#, 500),
        (r#"{"delay_ms":1}"#, 200),
    ] {
        assert_eq!(
            control(&standin, "POST", "fault", fault).await.status,
            200,
            "{fault}"
        );
        let resp = get(&standin, Some(&jwt)).await;
        assert_eq!(resp.status, status, "{fault}");
        if status == 429 {
            assert_eq!(resp.headers["retry-after"], "7");
        }
    }
    assert_eq!(
        control(&standin, "POST", "fault", r#"{"close":true}"#)
            .await
            .status,
        200
    );
    let auth = [("authorization", jwt.as_str())];
    assert!(request(
        standin.local_addr(),
        None,
        "GET",
        &path(&standin),
        &auth,
        ""
    )
    .await
    .is_err());
    control(&standin, "POST", "fault", r#"{"status":503,"sticky":true}"#).await;
    assert_eq!(get(&standin, Some(&jwt)).await.status, 503);
    assert_eq!(get(&standin, Some(&jwt)).await.status, 503);
    control(&standin, "POST", "fault", r#"{"hang":true}"#).await;
    assert_eq!(
        control(&standin, "POST", "fault", r#"{"clear":true}"#)
            .await
            .status,
        200
    );
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);

    for bad in [
        r#"{}"#,
        r#"{"status":503,"hang":true}"#,
        r#"{"body":"x"}"#,
        r#"{"nope":1}"#,
        "{",
    ] {
        assert_eq!(
            control(&standin, "POST", "fault", bad).await.status,
            400,
            "{bad}"
        );
    }
    let resp = control(
        &standin,
        "POST",
        "keys",
        r#"{"secret_access_key":"LEAKME"}"#,
    )
    .await;
    assert_eq!(resp.status, 400);
    assert!(!resp.body.contains("LEAKME"));

    let stats = control(&standin, "GET", "stats", "").await.json();
    let calls = standin.calls();
    assert_eq!(calls, 11, "control requests are not counted");
    assert_eq!(
        stats,
        json!({
            "calls": calls,
            "successes": standin.successes(),
            "last_sub": standin.last_subject(),
        })
    );
    assert_eq!(control(&standin, "GET", "token", "").await.status, 405);
    assert_eq!(control(&standin, "POST", "stats", "").await.status, 405);
    assert_eq!(control(&standin, "GET", "nope", "").await.status, 404);
    assert_eq!(standin.calls(), calls);
}

#[tokio::test]
async fn token_route_needs_an_issuer() {
    let (standin, _shutdown) = start(config(Vec::new())).await;
    assert_eq!(control(&standin, "POST", "token", "").await.status, 409);
}
