//! The process side: the command line, `Debug` hygiene, HTTPS and the `credagent-standin` entry
//! point.

use super::*;

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
    assert_eq!(
        (a.post_exchange, a.post_max_lifetime),
        (PostExchange::Offered, None)
    );
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

#[tokio::test]
async fn process_post_options() {
    let mut args = vec!["x", "--access-key", "AK", "--secret-key", "SK"];
    args.extend([
        "--post-exchange",
        "method-not-allowed",
        "--post-max-lifetime",
        "600",
    ]);
    args.extend(["--lifetime", "900"]);
    let cli = Cli::try_parse_from(&args).unwrap();
    assert_eq!(
        (cli.args.post_exchange, cli.args.post_max_lifetime),
        (PostExchange::MethodNotAllowed, Some(600))
    );
    let bad = [
        "x",
        "--access-key",
        "AK",
        "--secret-key",
        "SK",
        "--post-exchange",
        "maybe",
    ];
    assert!(Cli::try_parse_from(bad).is_err());

    // In force from the first request on.
    let shutdown = CancellationToken::new();
    let standin = start_from_args(&cli.args, shutdown.clone()).await.unwrap();
    let jwt = control(&standin, "POST", "token", "").await.body;
    let body = json!({"durationSeconds": 3600, "orgId": "standin-org", "oidcToken": jwt});
    assert_eq!(post(&standin, &body.to_string(), &[]).await.status, 405);
    assert_eq!(standin.post_max_lifetime(), Some(Duration::from_secs(600)));
    assert_eq!(standin.lifetime(), Duration::from_secs(900));
    standin.set_post_exchange(PostExchange::Offered);
    let before = now_secs();
    let resp = post(&standin, &body.to_string(), &[]).await;
    let delta = parse_expiry(resp.json()["expiry"].as_str().unwrap()) - before;
    assert!((600..=602).contains(&delta), "{delta}");
    shutdown.cancel();
    standin.stopped().await;
}
