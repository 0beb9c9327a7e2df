//! Tests of the stand-in over real loopback HTTP and HTTPS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::jwt::{Issuer, TokenSpec, Verifier};
use crate::testing::{client_config, request, test_pki, test_tls, TestResponse};

const RSA_PK8: &[u8] = include_bytes!("../../fixtures/rs256-test-key.pk8");
const SECRET: &str = "wJalrXUtnFEMI-standin-SECRET";

fn rsa() -> Issuer {
    Issuer::from_rsa_pkcs8_der("rsa-test", RSA_PK8).expect("fixture key parses")
}

fn config(verifiers: Vec<Verifier>) -> StandInConfig {
    StandInConfig {
        verifiers,
        audience: Some("https://coreweave.com/iam".to_owned()),
        access_key_id: "AKSTANDIN1".to_owned(),
        secret_access_key: SECRET.to_owned(),
        ..StandInConfig::default()
    }
}

async fn start(config: StandInConfig) -> (StandIn, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let standin = StandIn::start(listener, config, None, shutdown.clone()).unwrap();
    (standin, shutdown)
}

fn path(standin: &StandIn) -> String {
    let url = standin.url();
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

async fn get(standin: &StandIn, token: Option<&str>) -> TestResponse {
    let headers: Vec<(&str, &str)> = token.map(|t| ("authorization", t)).into_iter().collect();
    request(
        standin.local_addr(),
        None,
        "GET",
        &path(standin),
        &headers,
        "",
    )
    .await
    .unwrap()
}

async fn control(standin: &StandIn, method: &str, route: &str, body: &str) -> TestResponse {
    let path = format!("/_standin/{route}");
    request(standin.local_addr(), None, method, &path, &[], body)
        .await
        .unwrap()
}

fn token(issuer: &Issuer) -> String {
    issuer
        .service_account_token(&TokenSpec::default(), SystemTime::now())
        .unwrap()
}

fn assert_unauthenticated(resp: &TestResponse, token: &str) {
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(resp.json()["code"], "unauthenticated");
    assert!(resp.json()["message"].is_string());
    if !token.is_empty() {
        assert!(!resp.body.contains(token), "401 body echoes the token");
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(
                !resp.body.contains(part),
                "401 body echoes part of the token"
            );
        }
    }
}

#[tokio::test]
async fn valid_token_gets_credentials() {
    let issuer = rsa();
    let (standin, _shutdown) = start(config(vec![issuer.verifier()])).await;
    assert!(standin.url().starts_with("http://127.0.0.1:"));
    assert!(standin
        .url()
        .ends_with("/v1/cwobject/temporary-credentials/oidc/standin-org"));
    let jwt = token(&issuer);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let resp = get(&standin, Some(&jwt)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.headers["content-type"], "application/json");
    httpdate::parse_http_date(&resp.headers["date"]).expect("Date is an HTTP date");

    let body = resp.json();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
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

#[test]
fn debug_has_no_secrets() {
    let cfg = StandInConfig {
        session_token: "SESSION-SECRET".to_owned(),
        issuer: Some(rsa()),
        ..config(vec![rsa().verifier()])
    };
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains(SECRET) && !dbg.contains("SESSION-SECRET"),
        "{dbg}"
    );
    assert!(
        dbg.contains("AKSTANDIN1") && dbg.contains("rsa-test"),
        "{dbg}"
    );

    let cli = Cli::try_parse_from([
        "x",
        "--access-key",
        "AK",
        "--secret-key",
        SECRET,
        "--session-token",
        "SESSION-SECRET",
    ])
    .unwrap();
    let dbg = format!("{:?}", cli.args);
    assert!(
        !dbg.contains(SECRET) && !dbg.contains("SESSION-SECRET"),
        "{dbg}"
    );
    assert_eq!(cli.args.secret_key.expose(), SECRET);
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: StandInArgs,
}

#[test]
fn cli_defaults_and_tls_pair() {
    let cli = Cli::try_parse_from(["x", "--access-key", "AK", "--secret-key", "SK"]).unwrap();
    let a = cli.args;
    assert_eq!(a.listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!((a.org_id.as_str(), a.lifetime), ("standin-org", 3600));
    assert!(a.session_token.is_empty() && a.audience.is_none() && a.addr_file.is_none());
    assert!(
        Cli::try_parse_from(["x", "--access-key", "AK"]).is_err(),
        "secret key required"
    );
    let half = [
        "x",
        "--access-key",
        "AK",
        "--secret-key",
        "SK",
        "--tls-cert",
        "c.pem",
    ];
    assert!(
        Cli::try_parse_from(half).is_err(),
        "--tls-cert needs --tls-key"
    );
}

#[tokio::test]
async fn https_round_trip() {
    let pki = test_pki();
    let issuer = rsa();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let cfg = config(vec![issuer.verifier()]);
    let standin =
        StandIn::start(listener, cfg, Some(pki.server.clone()), shutdown.clone()).unwrap();
    assert!(standin.url().starts_with("https://127.0.0.1:"));
    let jwt = token(&issuer);
    let client = Some(client_config(&pki.ca_der));
    let auth = [("authorization", jwt.as_str())];
    let resp = request(
        standin.local_addr(),
        client,
        "GET",
        &path(&standin),
        &auth,
        "",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["SecretAccessKey"], SECRET);
    // A client that does not trust the CA fails the handshake.
    let other = client_config(&test_pki().ca_der);
    let err = request(standin.local_addr(), Some(other), "GET", "/", &[], "").await;
    assert!(err.is_err());
    assert_eq!(standin.successes(), 1);
    let (_config, ca_pem) = test_tls();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn process_entry_point_with_tls_and_addr_file() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, addr_file) = (
        dir.path().join("c.pem"),
        dir.path().join("k.pem"),
        dir.path().join("addr"),
    );
    std::fs::write(&cert, &pki.leaf_pem).unwrap();
    std::fs::write(&key, &pki.leaf_key_pem).unwrap();
    let cli = Cli::try_parse_from([
        "x",
        "--access-key",
        "AK",
        "--secret-key",
        SECRET,
        "--lifetime",
        "900",
        "--org-id",
        "org-1",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--addr-file",
        addr_file.to_str().unwrap(),
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let standin = start_from_args(&cli.args, shutdown.clone()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&addr_file).unwrap(),
        standin.local_addr().to_string()
    );
    assert!(standin.url().ends_with("/oidc/org-1") && standin.url().starts_with("https://"));

    let jwt = control_token_over_tls(&standin, &pki.ca_der).await;
    let client = Some(client_config(&pki.ca_der));
    let auth = [("authorization", jwt.as_str())];
    let resp = request(
        standin.local_addr(),
        client,
        "GET",
        &path(&standin),
        &auth,
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (resp.status, resp.json()["AccessKeyId"].as_str()),
        (200, Some("AK"))
    );
    shutdown.cancel();
    standin.stopped().await;

    // `run` returns once shutdown is cancelled (here: already cancelled).
    let cli = Cli::try_parse_from(["x", "--access-key", "AK", "--secret-key", "SK"]).unwrap();
    run(cli.args, shutdown).await.unwrap();

    let bad = Cli::try_parse_from([
        "x",
        "--access-key",
        "AK",
        "--secret-key",
        "SK",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        dir.path().join("missing.pem").to_str().unwrap(),
    ])
    .unwrap();
    let err = start_from_args(&bad.args, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
}

async fn control_token_over_tls(
    standin: &StandIn,
    ca: &rustls_pki_types::CertificateDer<'static>,
) -> String {
    let client = Some(client_config(ca));
    let resp = request(
        standin.local_addr(),
        client,
        "POST",
        "/_standin/token",
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    resp.body
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
