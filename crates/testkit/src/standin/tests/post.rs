//! The POST exchange's answers: field names, `durationSeconds` bounds, the other fields, the org,
//! the token checks, attributes and the body size.

use super::*;

/// `<iss>:<sub>` of [`TokenSpec::default`].
const PRINCIPAL: &str = "https://oidc.standin.invalid/cluster:system:serviceaccount:default:app";

#[tokio::test]
async fn valid_post_gets_camel_case_credentials() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    assert_eq!(
        standin.post_url(),
        format!("http://{}{POST_PATH}", standin.local_addr())
    );
    assert_eq!(standin.org_id(), "standin-org");
    let jwt = token(&issuer);
    // Keys out of order, to see them echoed in the order received.
    let body = format!(
        r#"{{"durationSeconds":3600,"orgId":"standin-org","oidcToken":"{jwt}","attributes":{{"zeta":"1","name":"pod-a","alpha":"2"}}}}"#
    );
    let before = now_secs();
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.headers["content-type"], "application/json");
    httpdate::parse_http_date(&resp.headers["date"]).expect("Date is an HTTP date");

    let answer = resp.json();
    assert_eq!(
        sorted_keys(&answer),
        [
            "accessKeyId",
            "attributes",
            "expiry",
            "principalName",
            "secretKey"
        ]
    );
    assert_eq!(answer["accessKeyId"], "AKSTANDIN1");
    assert_eq!(answer["secretKey"], SECRET);
    assert_eq!(answer["principalName"], PRINCIPAL);
    assert!(
        resp.body
            .contains(r#""attributes":{"zeta":"1","name":"pod-a","alpha":"2"}"#),
        "{}",
        resp.body
    );
    let delta = parse_expiry(answer["expiry"].as_str().unwrap()) - before;
    assert!((3600..=3602).contains(&delta), "{delta}");

    // The GET names the same principal in `attributes.cw-role`.
    let got = get(&standin, Some(&jwt)).await.json();
    assert_eq!(got["attributes"]["cw-role"], answer["principalName"]);

    assert_eq!(
        (standin.calls(), standin.calls_get(), standin.calls_post()),
        (2, 1, 1)
    );
    assert_eq!(
        (
            standin.successes(),
            standin.successes_get(),
            standin.successes_post()
        ),
        (2, 1, 1)
    );
    let attributes = [("alpha", "2"), ("name", "pod-a"), ("zeta", "1")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    assert_eq!(
        standin.last_post(),
        Some(PostRequest {
            duration_seconds: 3600,
            org_id: "standin-org".to_owned(),
            attributes,
            content_type: Some("application/json".to_owned()),
        })
    );
    assert_eq!(
        standin.last_subject().as_deref(),
        Some("system:serviceaccount:default:app")
    );
}

#[tokio::test]
async fn authorization_header_is_ignored() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let resp = post(&standin, &post_body(&jwt, json!(60)), &[]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(standin.last_authorization_len(), None);

    // Garbage in the header does not matter; the body's token does.
    let auth = [("authorization", "Bearer garbage")];
    assert_eq!(
        post(&standin, &post_body(&jwt, json!(60)), &auth)
            .await
            .status,
        200
    );
    assert_eq!(standin.last_authorization_len(), Some(14));
    // A valid token in the header does not stand in for a bad one in the body.
    let auth = [("authorization", jwt.as_str())];
    let resp = post(&standin, &post_body("not-a-jwt", json!(60)), &auth).await;
    assert_unauthenticated(&resp, &jwt);
    assert_eq!(standin.successes_post(), 2);
}

#[tokio::test]
async fn duration_seconds_bounds() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    standin.set_lifetime(Duration::from_secs(900));
    let jwt = token(&issuer);
    // 0 means the stand-in's default lifetime: the GET's, 900 s here.
    for (asked, lifetime) in [(0, 900), (1, 1), (43_200, 43_200)] {
        let before = now_secs();
        let resp = post(&standin, &post_body(&jwt, json!(asked)), &[]).await;
        assert_eq!(resp.status, 200, "{asked}: {resp:?}");
        let delta = parse_expiry(resp.json()["expiry"].as_str().unwrap()) - before;
        assert!(
            (lifetime..=lifetime + 2).contains(&delta),
            "{asked}: {delta}"
        );
        assert_eq!(standin.last_post().unwrap().duration_seconds, asked);
    }
    for bad in [
        json!(43_201),
        json!(-1),
        json!(1.5),
        json!(3600.0),
        json!("3600"),
        json!(4_294_967_296_u64),
        json!(null),
        json!([3600]),
    ] {
        let resp = post(&standin, &post_body(&jwt, bad.clone()), &[]).await;
        assert_invalid(&resp, "durationSeconds", &jwt);
        assert!(
            resp.json()["message"].as_str().unwrap().contains("43200"),
            "{bad}: {resp:?}"
        );
    }
    let missing = json!({"orgId": "standin-org", "oidcToken": jwt}).to_string();
    assert_invalid(
        &post(&standin, &missing, &[]).await,
        "durationSeconds",
        &jwt,
    );
    // Refused bodies are counted but not recorded.
    assert_eq!(standin.last_post().unwrap().duration_seconds, 43_200);
    assert_eq!((standin.calls_post(), standin.successes_post()), (12, 3));
}

#[tokio::test]
async fn required_fields_and_body_shape() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let org = "standin-org";
    for (body, field) in [
        (json!({"durationSeconds": 60, "oidcToken": jwt}), "orgId"),
        (
            json!({"durationSeconds": 60, "orgId": "", "oidcToken": jwt}),
            "orgId",
        ),
        (
            json!({"durationSeconds": 60, "orgId": 7, "oidcToken": jwt}),
            "orgId",
        ),
        (json!({"durationSeconds": 60, "orgId": org}), "oidcToken"),
        (
            json!({"durationSeconds": 60, "orgId": org, "oidcToken": ""}),
            "oidcToken",
        ),
        (
            json!({"durationSeconds": 60, "orgId": org, "oidcToken": null}),
            "oidcToken",
        ),
        (json!([jwt]), "JSON object"),
    ] {
        let resp = post(&standin, &body.to_string(), &[]).await;
        assert_invalid(&resp, field, &jwt);
    }
    // Not JSON, with the token in it: the message says where, never what.
    let cut = format!(r#"{{"oidcToken":"{jwt}", "#);
    assert_invalid(&post(&standin, &cut, &[]).await, "not JSON", &jwt);
    assert_invalid(&post(&standin, "", &[]).await, "not JSON", "");
    // Unknown fields are ignored.
    let extra = json!({"durationSeconds": 60, "orgId": org, "oidcToken": jwt, "extra": 1});
    assert_eq!(post(&standin, &extra.to_string(), &[]).await.status, 200);
    assert_eq!(
        standin.last_post().unwrap().content_type.as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn wrong_org_is_not_found_as_on_the_get() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let body = json!({"durationSeconds": 60, "orgId": "other-org", "oidcToken": jwt});
    let resp = post(&standin, &body.to_string(), &[]).await;
    assert_eq!(
        (resp.status, resp.json()["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_no_echo(&resp, &jwt);
    let wrong_get = request(
        standin.local_addr(),
        None,
        "GET",
        "/v1/cwobject/temporary-credentials/oidc/other-org",
        &[("authorization", &jwt)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(wrong_get.status, resp.status);
    assert_eq!(standin.last_post().unwrap().org_id, "other-org");
    assert_eq!(standin.successes(), 0);
}

#[tokio::test]
async fn bad_tokens_get_the_gets_401s() {
    let issuer = Issuer::generate_es256("ec").unwrap();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let expired = issuer
        .service_account_token(
            &TokenSpec::default(),
            SystemTime::now() - Duration::from_secs(7200),
        )
        .unwrap();
    let other_key = token(&Issuer::generate_es256("ec").unwrap());
    let wrong_aud = issuer
        .service_account_token(
            &TokenSpec {
                audience: "sts.amazonaws.com".to_owned(),
                ..TokenSpec::default()
            },
            SystemTime::now(),
        )
        .unwrap();
    let rsa_signed = token(&rsa());
    for bad in [&expired, &other_key, &wrong_aud, &rsa_signed, "not-a-jwt"] {
        let resp = post(&standin, &post_body(bad, json!(60)), &[]).await;
        assert_unauthenticated(&resp, bad);
        let by_get = get(&standin, Some(bad)).await;
        assert_eq!(resp.json(), by_get.json(), "the same 401 as the GET's");
    }
    assert_eq!(
        post(&standin, &post_body(&expired, json!(60)), &[])
            .await
            .json()["message"],
        "token has expired"
    );
    assert_eq!((standin.calls_post(), standin.successes()), (6, 0));
}

#[tokio::test]
async fn attributes_echoed_and_bounded() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    let with = |attributes: serde_json::Value| {
        json!({"durationSeconds": 60, "orgId": "standin-org", "oidcToken": jwt,
               "attributes": attributes})
        .to_string()
    };
    // Absent or null: `{}`.
    for body in [post_body(&jwt, json!(60)), with(json!(null))] {
        let resp = post(&standin, &body, &[]).await;
        assert_eq!(resp.json()["attributes"], json!({}), "{resp:?}");
        assert!(standin.last_post().unwrap().attributes.is_empty());
    }
    // At the bounds: 64 entries, a key and a value of 1024 bytes each.
    let (long_key, long_value) = ("k".repeat(1024), "v".repeat(1024));
    let mut most: serde_json::Map<String, serde_json::Value> = (0..63)
        .map(|i| (format!("key-{i}"), json!(format!("value-{i}"))))
        .collect();
    most.insert(long_key.clone(), json!(long_value));
    let resp = post(&standin, &with(json!(most)), &[]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["attributes"], json!(most));
    let recorded = standin.last_post().unwrap().attributes;
    assert_eq!((recorded.len(), &recorded[&long_key]), (64, &long_value));

    let secret_value = format!("SECRETVALUE{}", "x".repeat(1024));
    let mut too_many = most.clone();
    too_many.insert("one-more".to_owned(), json!("x"));
    for bad in [
        json!([]),
        json!("name=x"),
        json!({"n": 1}),
        json!({"n": null}),
        json!({"n": ["a"]}),
        json!({"": "x"}),
        json!({ "k".repeat(1025): "x" }),
        json!({ "n": secret_value }),
        json!(too_many),
    ] {
        let resp = post(&standin, &with(bad.clone()), &[]).await;
        assert_invalid(&resp, "attributes", &jwt);
        assert!(!resp.body.contains("SECRETVALUE"), "{bad}: a value echoed");
    }
    let resp = post(&standin, &with(json!({ "k".repeat(1025): "x" })), &[]).await;
    assert!(
        resp.json()["message"]
            .as_str()
            .unwrap()
            .contains("a key of 1025 bytes"),
        "{resp:?}"
    );
    assert_eq!(standin.successes_post(), 3);
}

#[tokio::test]
async fn oversized_body_is_refused_with_413() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    let jwt = token(&issuer);
    // Just over 64 KiB, announced by Content-Length.
    let padding = "x".repeat(64 * 1024);
    let body = json!({"durationSeconds": 60, "orgId": "standin-org", "oidcToken": jwt,
                      "pad": padding})
    .to_string();
    let resp = post(&standin, &body, &[]).await;
    assert_eq!(
        (resp.status, resp.json()["code"].as_str()),
        (413, Some("resource_exhausted"))
    );
    assert_no_echo(&resp, &jwt);

    // Chunked, with no Content-Length: the limit holds while reading.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(standin.local_addr())
        .await
        .unwrap();
    let chunk = "y".repeat(70 * 1024);
    let raw = format!(
        "POST {POST_PATH} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // Under the limit, a body of the same shape is read whole.
    let fits = json!({"durationSeconds": 60, "orgId": "standin-org", "oidcToken": jwt,
                      "pad": "x".repeat(60 * 1024)})
    .to_string();
    assert_eq!(post(&standin, &fits, &[]).await.status, 200);
    assert_eq!((standin.calls_post(), standin.successes_post()), (3, 1));
}
