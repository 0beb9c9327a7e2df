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
