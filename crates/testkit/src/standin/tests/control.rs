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
    let before = now_secs();
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
            "calls_get": calls,
            "calls_post": 0,
            "successes": standin.successes(),
            "successes_get": standin.successes(),
            "successes_post": 0,
            "last_sub": standin.last_subject(),
            "last_post": null,
            "lifetime_secs": 60,
            "post_max_secs": null,
            "post_exchange": "offered",
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

#[tokio::test]
async fn control_api_for_the_post() {
    let cfg = StandInConfig {
        issuer: Some(Issuer::generate_es256("standin").unwrap()),
        ..config(Vec::new())
    };
    let (standin, _shutdown) = start(cfg).await;
    let jwt = control(&standin, "POST", "token", "").await.body;

    let body = json!({"durationSeconds": 0, "orgId": "standin-org", "oidcToken": jwt,
                      "attributes": {"name": "pod-a", "namespace": "ml"}})
    .to_string();
    let before = now_secs();
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let delta = parse_expiry(resp.json()["expiry"].as_str().unwrap()) - before;
    assert!((3600..=3602).contains(&delta), "{delta}");
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);
    let s = stats(&standin).await;
    assert_eq!(
        (&s["calls"], &s["calls_get"], &s["calls_post"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(
        (&s["successes"], &s["successes_get"], &s["successes_post"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(
        s["last_post"],
        json!({"durationSeconds": 0, "orgId": "standin-org",
               "attributes": {"name": "pod-a", "namespace": "ml"},
               "contentType": "application/json"})
    );
    assert!(!s.to_string().contains(&jwt), "stats hold the token");

    // Lifetimes: the default (GET, and POST for 0) and the POST's cap, apart or together.
    for (req, lifetime, max) in [
        (json!({"post_max_secs": 600}), json!(3600), json!(600)),
        (json!({"secs": 900}), json!(900), json!(600)),
        (json!({"post_max_secs": null}), json!(900), json!(null)),
        (
            json!({"secs": 60, "post_max_secs": 30}),
            json!(60),
            json!(30),
        ),
    ] {
        let resp = control(&standin, "POST", "lifetime", &req.to_string()).await;
        assert_eq!(resp.json(), json!({"ok": true}), "{req}");
        let s = stats(&standin).await;
        assert_eq!(
            (&s["lifetime_secs"], &s["post_max_secs"]),
            (&lifetime, &max),
            "{req}"
        );
    }
    assert_eq!(standin.post_max_lifetime(), Some(Duration::from_secs(30)));
    for bad in [
        "{}",
        r#"{"secs":null}"#,
        r#"{"post_max_secs":-1}"#,
        r#"{"nope":1}"#,
    ] {
        let resp = control(&standin, "POST", "lifetime", bad).await;
        assert_eq!(resp.status, 400, "{bad}");
    }

    // Refusing the POST, and offering it again.
    for (mode, status) in [
        ("not-found", 404),
        ("method-not-allowed", 405),
        ("offered", 200),
    ] {
        let req = json!({ "mode": mode }).to_string();
        let resp = control(&standin, "POST", "post_exchange", &req).await;
        assert_eq!(resp.status, 200, "{mode}");
        assert_eq!(stats(&standin).await["post_exchange"], mode);
        assert_eq!(post(&standin, &body, &[]).await.status, status, "{mode}");
    }
    for bad in ["{}", r#"{"mode":"nope"}"#, r#"{"mode":"offered","x":1}"#] {
        let resp = control(&standin, "POST", "post_exchange", bad).await;
        assert_eq!(resp.status, 400, "{bad}");
    }
    assert_eq!(
        control(&standin, "GET", "post_exchange", "").await.status,
        405
    );
    assert_eq!(stats(&standin).await["calls_post"], 4);
}

async fn stats(standin: &StandIn) -> serde_json::Value {
    control(standin, "GET", "stats", "").await.json()
}
