//! Steering the POST exchange: faults, key rotation, refusing it, capping its lifetime, and the
//! counts and records tests read.

use super::*;

#[tokio::test]
async fn faults_apply_to_the_post() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let body = post_body(&jwt, json!(600));

    standin.push_fault(Fault::Status(503));
    standin.push_fault(Fault::Throttle {
        retry_after: Some("2".to_owned()),
    });
    standin.push_fault(Fault::Body {
        status: 200,
        body: r#"{"accessKeyId":"x""#.to_owned(),
    });
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(
        (resp.status, resp.json()["code"].as_str()),
        (503, Some("unavailable"))
    );
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(
        (resp.status, resp.headers["retry-after"].as_str()),
        (429, "2")
    );
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (200, r#"{"accessKeyId":"x""#)
    );
    assert_eq!(post(&standin, &body, &[]).await.status, 200);

    standin.push_fault(Fault::Delay(Duration::from_millis(200)));
    let started = tokio::time::Instant::now();
    assert_eq!(post(&standin, &body, &[]).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let headers = [("content-type", "application/json")];
    for fault in [Fault::CloseConnection, Fault::TruncatedBody] {
        standin.push_fault(fault.clone());
        let sent = request(
            standin.local_addr(),
            None,
            "POST",
            POST_PATH,
            &headers,
            &body,
        )
        .await;
        assert!(sent.is_err(), "{fault:?}: {sent:?}");
    }

    // Sticky faults apply to both exchanges until cleared; queued faults go first.
    standin.set_sticky_fault(Some(Fault::Status(500)));
    standin.push_fault(Fault::Status(502));
    assert_eq!(post(&standin, &body, &[]).await.status, 502);
    assert_eq!(post(&standin, &body, &[]).await.status, 500);
    assert_eq!(get(&standin, Some(&jwt)).await.status, 500);
    standin.clear_faults();
    assert_eq!(post(&standin, &body, &[]).await.status, 200);
    // The faulted requests count as calls, not as successes.
    assert_eq!(
        (
            standin.calls_post(),
            standin.calls_get(),
            standin.successes()
        ),
        (10, 1, 3)
    );
    // They were recorded all the same.
    assert_eq!(standin.last_post().unwrap().duration_seconds, 600);
}

#[tokio::test]
async fn hung_post_is_counted_and_recorded() {
    let issuer = rsa();
    let (standin, shutdown) = start(config(vec![issuer.verifier()])).await;
    standin.push_fault(Fault::Hang);
    let (addr, body) = (standin.local_addr(), post_body(&token(&issuer), json!(120)));
    let pending = tokio::spawn(async move {
        let headers = [("content-type", "application/json")];
        request(addr, None, "POST", POST_PATH, &headers, &body).await
    });
    standin.wait_for_calls(1).await;
    // What it asked for is recorded although it never gets an answer.
    assert_eq!(standin.last_post().unwrap().duration_seconds, 120);
    assert_eq!(standin.calls_post(), 1);
    assert!(!pending.is_finished());
    shutdown.cancel();
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn rotated_keys_and_no_session_token() {
    let issuer = rsa();
    let cfg = StandInConfig {
        session_token: "SESSION-TOKEN".to_owned(),
        ..config(vec![issuer.verifier()])
    };
    let (standin, _shutdown) = start(cfg).await;
    let jwt = token(&issuer);
    let resp = post(&standin, &post_body(&jwt, json!(60)), &[]).await;
    assert!(!resp.body.contains("SESSION-TOKEN"), "{}", resp.body);
    standin.set_keys("AK2", "SK2", "ST2");
    let answer = post(&standin, &post_body(&jwt, json!(60)), &[])
        .await
        .json();
    assert_eq!(
        (answer["accessKeyId"].as_str(), answer["secretKey"].as_str()),
        (Some("AK2"), Some("SK2"))
    );
    assert_eq!(answer.as_object().unwrap().len(), 5, "{answer}");
}

#[tokio::test]
async fn post_can_be_refused_as_not_offered() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let body = post_body(&jwt, json!(60));
    let addr = standin.local_addr();
    assert_eq!(standin.post_exchange(), PostExchange::Offered);

    // Offered: other methods on its path get 405 naming POST.
    let resp = request(addr, None, "GET", POST_PATH, &[], "")
        .await
        .unwrap();
    assert_eq!((resp.status, resp.headers["allow"].as_str()), (405, "POST"));

    standin.set_post_exchange(PostExchange::NotFound);
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(
        (resp.status, resp.json()["code"].as_str()),
        (404, Some("not_found"))
    );
    standin.set_post_exchange(PostExchange::MethodNotAllowed);
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(
        (resp.status, resp.json()["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(resp.headers["allow"], "");
    // The GET is served whatever the POST's mode, and a refused POST reads no body.
    assert_eq!(get(&standin, Some(&jwt)).await.status, 200);
    assert_eq!(standin.last_post(), None);

    standin.set_post_exchange(PostExchange::Offered);
    assert_eq!(post(&standin, &body, &[]).await.status, 200);
    assert_eq!(
        (
            standin.calls_post(),
            standin.calls_get(),
            standin.successes_post()
        ),
        (3, 2, 1)
    );
}

#[tokio::test]
async fn max_lifetime_caps_what_the_post_grants() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    standin.set_post_max_lifetime(Some(Duration::from_secs(600)));
    assert_eq!(standin.post_max_lifetime(), Some(Duration::from_secs(600)));
    // 0 asks for the default (3600 s), which the cap shortens too; the GET is not capped.
    for (asked, granted) in [(3600, 600), (0, 600), (300, 300)] {
        let before = now_secs();
        let resp = post(&standin, &post_body(&jwt, json!(asked)), &[]).await;
        let delta = parse_expiry(resp.json()["expiry"].as_str().unwrap()) - before;
        assert!((granted..=granted + 2).contains(&delta), "{asked}: {delta}");
    }
    let before = now_secs();
    let expiration = get(&standin, Some(&jwt)).await.json()["Expiration"].clone();
    let delta = parse_expiry(expiration.as_str().unwrap()) - before;
    assert!((3600..=3602).contains(&delta), "{delta}");
    standin.set_post_max_lifetime(None);
    let before = now_secs();
    let resp = post(&standin, &post_body(&jwt, json!(3600)), &[]).await;
    let delta = parse_expiry(resp.json()["expiry"].as_str().unwrap()) - before;
    assert!((3600..=3602).contains(&delta), "{delta}");
}

#[test]
fn post_body_debug_has_no_token() {
    let body = crate::standin::post::parse(
        post_body("TOKEN-SECRET.part-two-secret.sig", json!(1)).as_bytes(),
        None,
    )
    .unwrap();
    let dbg = format!("{body:?}");
    assert!(!dbg.contains("TOKEN-SECRET"), "{dbg}");
    assert!(dbg.contains("standin-org"), "{dbg}");
}
