//! Tests of the stand-in over real loopback HTTP and HTTPS: the helpers they share here, the
//! tests by topic in `tests/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::jwt::{Issuer, TokenSpec, Verifier};
use crate::testing::{client_config, request, test_pki, test_tls, TestResponse};

mod control;
mod get;
mod post;
mod post_steering;
mod process;

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

/// The POST exchange's path.
const POST_PATH: &str = "/v1/cwobject/temporary-credentials/oidc";

/// `POST`s `body` to the POST exchange with `Content-Type: application/json` and `extra` headers.
async fn post(standin: &StandIn, body: &str, extra: &[(&str, &str)]) -> TestResponse {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    request(
        standin.local_addr(),
        None,
        "POST",
        POST_PATH,
        &headers,
        body,
    )
    .await
    .unwrap()
}

/// A POST body for `token` asking for `duration` (any JSON) in `standin-org`, no attributes.
fn post_body(token: &str, duration: serde_json::Value) -> String {
    json!({"durationSeconds": duration, "orgId": "standin-org", "oidcToken": token}).to_string()
}

/// An answer's field names, sorted.
fn sorted_keys(answer: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = answer
        .as_object()
        .expect("the answer is a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Seconds since the epoch, now.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `YYYY-MM-DDTHH:MM:SSZ` (the format both exchanges send) as seconds since the epoch.
fn parse_expiry(at: &str) -> u64 {
    assert_eq!(at.len(), "2023-11-07T05:31:56Z".len(), "{at}");
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let at = time::PrimitiveDateTime::parse(at, format)
        .unwrap()
        .assume_utc();
    u64::try_from(at.unix_timestamp()).unwrap()
}

/// Asserts that `resp` is a 400 `invalid_argument` whose message names `field` and that the body
/// repeats no part of `token`.
fn assert_invalid(resp: &TestResponse, field: &str, token: &str) {
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.json()["code"], "invalid_argument", "{resp:?}");
    let message = resp.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains(field), "{message:?} does not name {field}");
    assert_no_echo(resp, token);
}

/// Asserts that `resp`'s body repeats neither `token` nor any longer part of it.
fn assert_no_echo(resp: &TestResponse, token: &str) {
    if token.is_empty() {
        return;
    }
    assert!(!resp.body.contains(token), "body echoes the token");
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!resp.body.contains(part), "body echoes part of the token");
    }
}
