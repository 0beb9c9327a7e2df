//! The GET exchange: answers, token checks, routes, faults and call counting.

use super::*;

#[tokio::test]
async fn valid_token_gets_credentials() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    assert!(standin.url().starts_with("http://127.0.0.1:"));
    assert!(standin
        .url()
        .ends_with("/v1/cwobject/temporary-credentials/oidc/standin-org"));
    let jwt = token(&issuer);
    let before = now_secs();
    let resp = get(&standin, Some(&jwt)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.headers["content-type"], "application/json");
    httpdate::parse_http_date(&resp.headers["date"]).expect("Date is an HTTP date");

    let body = resp.json();
    assert_eq!(
        sorted_keys(&body),
        [
            "AccessKeyId",
            "Expiration",
            "SecretAccessKey",
            "Token",
            "attributes"
        ]
    );
    assert_eq!(body["AccessKeyId"], "AKSTANDIN1");
    assert_eq!(body["SecretAccessKey"], SECRET);
    assert_eq!(body["Token"], "");
    assert_eq!(
        body["attributes"],
        json!({"cw-role": "https://oidc.standin.invalid/cluster:system:serviceaccount:default:app"})
    );
    let expiration = body["Expiration"].as_str().unwrap();
    assert_eq!(
        expiration.len(),
        "2023-11-07T05:31:56Z".len(),
        "{expiration}"
    );
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let at = time::PrimitiveDateTime::parse(expiration, format)
        .unwrap()
        .assume_utc();
    let delta = at.unix_timestamp() as u64 - before;
    assert!((3599..=3602).contains(&delta), "{delta}");

    assert_eq!((standin.calls(), standin.successes()), (1, 1));
    assert_eq!(
        standin.last_subject().as_deref(),
        Some("system:serviceaccount:default:app")
    );
    assert_eq!(standin.last_authorization_len(), Some(jwt.len()));
    assert!(!standin.last_authorization_had_bearer_prefix());
}

#[tokio::test]
async fn rejected_tokens_get_401_without_echo() {
    let issuer = Issuer::generate_es256("ec").unwrap();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;

    let expired = issuer
        .service_account_token(
            &TokenSpec::default(),
            SystemTime::now() - Duration::from_secs(7200),
        )
        .unwrap();
    let resp = get(&standin, Some(&expired)).await;
    assert_unauthenticated(&resp, &expired);
    assert_eq!(resp.json()["message"], "token has expired");

    let resp = get(&standin, None).await;
    assert_unauthenticated(&resp, "");
    assert_eq!(standin.last_authorization_len(), None);

    let jwt = token(&issuer);
    let bearer = format!("Bearer {jwt}");
    assert_unauthenticated(&get(&standin, Some(&bearer)).await, &jwt);
    assert!(standin.last_authorization_had_bearer_prefix());
    assert_eq!(standin.last_authorization_len(), Some(bearer.len()));

    let other_key = token(&Issuer::generate_es256("ec").unwrap());
    assert_unauthenticated(&get(&standin, Some(&other_key)).await, &other_key);

    let unsigned = {
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        parts[0] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        parts[2] = String::new();
        parts.join(".")
    };
    assert_unauthenticated(&get(&standin, Some(&unsigned)).await, &unsigned);

    let spec = TokenSpec {
        audience: "sts.amazonaws.com".to_owned(),
        ..TokenSpec::default()
    };
    let wrong_aud = issuer
        .service_account_token(&spec, SystemTime::now())
        .unwrap();
    let resp = get(&standin, Some(&wrong_aud)).await;
    assert_unauthenticated(&resp, &wrong_aud);
    assert_eq!(resp.json()["message"], "token audience not accepted");

    // A verifier added later is accepted; the rotation of signing keys upstream.
    standin.add_verifier(Issuer::generate_es256("x").unwrap().verifier());
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);
    assert_eq!((standin.calls(), standin.successes()), (7, 1));
}

#[tokio::test]
async fn wrong_path_and_method() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let auth = [("authorization", jwt.as_str())];
    let addr = standin.local_addr();
    let wrong_org = "/v1/cwobject/temporary-credentials/oidc/other-org";
    for p in [wrong_org, "/", "/v1/credentials"] {
        let resp = request(addr, None, "GET", p, &auth, "").await.unwrap();
        assert_eq!(resp.status, 404, "{p}");
        assert_eq!(resp.json()["code"], "not_found");
    }
    let resp = request(addr, None, "POST", &path(&standin), &auth, "{}")
        .await
        .unwrap();
    assert_eq!(resp.status, 405);
    assert_eq!(resp.headers["allow"], "GET");
    assert_eq!(standin.calls(), 4);
    assert_eq!(standin.successes(), 0);
}

#[tokio::test]
async fn faults_behave_as_specified() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);

    standin.push_fault(Fault::Status(503));
    standin.push_fault(Fault::Throttle {
        retry_after: Some("2".to_owned()),
    });
    standin.push_fault(Fault::Throttle { retry_after: None });
    standin.push_fault(Fault::Body {
        status: 200,
        body: r#"{"AccessKeyId":"x""#.to_owned(),
    });
    let resp = get(&standin, Some(&jwt)).await;
    assert_eq!(
        (resp.status, resp.json()["code"].as_str()),
        (503, Some("unavailable"))
    );
    let resp = get(&standin, Some(&jwt)).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.headers["retry-after"], "2");
    let resp = get(&standin, Some(&jwt)).await;
    assert_eq!(resp.status, 429);
    assert!(!resp.headers.contains_key("retry-after"));
    let resp = get(&standin, Some(&jwt)).await;
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (200, r#"{"AccessKeyId":"x""#)
    );
    assert_eq!(resp.headers["content-type"], "application/json");
    // The queue is empty again: a normal answer.
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);

    standin.push_fault(Fault::Delay(Duration::from_millis(200)));
    let started = tokio::time::Instant::now();
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    standin.push_fault(Fault::CloseConnection);
    let path = path(&standin);
    let auth = [("authorization", jwt.as_str())];
    let err = request(standin.local_addr(), None, "GET", &path, &auth, "")
        .await
        .unwrap_err();
    assert!(!err.is_empty());

    // Sticky faults apply until cleared, and queued faults go first.
    standin.set_sticky_fault(Some(Fault::Status(500)));
    standin.push_fault(Fault::Status(502));
    assert_eq!(get(&standin, Some(&jwt)).await.status, 502);
    assert_eq!(get(&standin, Some(&jwt)).await.status, 500);
    assert_eq!(get(&standin, Some(&jwt)).await.status, 500);
    standin.set_sticky_fault(None);
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);
    assert_eq!((standin.calls(), standin.successes()), (11, 3));
}

#[tokio::test]
async fn hang_lasts_until_shutdown() {
    let issuer = rsa();
    let (standin, shutdown) = start(config(vec![issuer.verifier()])).await;
    standin.push_fault(Fault::Hang);
    let (addr, path, jwt) = (standin.local_addr(), path(&standin), token(&issuer));
    let pending = tokio::spawn(async move {
        request(addr, None, "GET", &path, &[("authorization", &jwt)], "").await
    });
    standin.wait_for_calls(1).await;
    assert!(!pending.is_finished());
    shutdown.cancel();
    assert!(
        pending.await.unwrap().is_err(),
        "a hung request ends without a response"
    );
    standin.stopped().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn wait_for_calls_resolves() {
    let (standin, _shutdown) = start(config(Vec::new())).await;
    standin.wait_for_calls(0).await;
    let waiter = tokio::spawn({
        let standin = standin.clone();
        async move { standin.wait_for_calls(3).await }
    });
    for _ in 0..3 {
        assert_eq!(get(&standin, None).await.status, 401);
    }
    waiter.await.unwrap();
    assert_eq!(standin.calls(), 3);
}

#[test]
fn expiration_format() {
    let t = UNIX_EPOCH + Duration::from_millis(1_699_999_999_600);
    assert_eq!(
        respond::expiration(t, Duration::from_secs(1)).unwrap(),
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(respond::expiration(t, Duration::from_secs(u64::MAX)), None);
}
