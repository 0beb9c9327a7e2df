//! The HTTPS exchange client against the stand-in: every answer class.

use std::time::Duration;

use credagent::config::UpstreamConfig;
use credagent::exchange::{Exchange, ExchangeError, HttpExchanger};
use credagent::secret::Secret;
use credagent_testkit::{Fault, StandIn};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{mint, rs256_issuer, test_pki, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

struct Upstream {
    standin: StandIn,
    token: Secret,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn upstream(bind: &str, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> Upstream {
    let issuer = rs256_issuer();
    let shutdown = CancellationToken::new();
    let standin = StandIn::start(
        TcpListener::bind(bind).await.unwrap(),
        crate::support::standin_config(&issuer, Duration::from_secs(3600), ""),
        tls,
        shutdown.clone(),
    )
    .unwrap();
    let token = Secret::new(mint(&issuer, "app", Duration::from_secs(3600)));
    Upstream {
        standin,
        token,
        _shutdown: shutdown.drop_guard(),
    }
}

fn client(url: &str, roots: Vec<CertificateDer<'static>>) -> HttpExchanger {
    HttpExchanger::new(&UpstreamConfig {
        url: url.parse().unwrap(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        extra_roots: roots,
        proxy: Default::default(),
        method: credagent::config::ExchangeMethod::Get,
    })
    .unwrap()
}

#[tokio::test]
async fn classifies_every_kind_of_answer() {
    let up = upstream("127.0.0.1:0", None).await;
    let c = client(&up.standin.url(), vec![]);
    let ok = c.exchange(&up.token).await.unwrap();
    assert_eq!(ok.access_key_id, ACCESS_KEY_ID);
    assert_eq!(ok.secret_access_key.expose(), SECRET_ACCESS_KEY);
    assert!(ok.session_token.is_empty());
    assert_eq!(
        ok.role.as_deref(),
        Some("https://oidc.standin.invalid/cluster:system:serviceaccount:default:app")
    );
    assert!(ok.server_date.is_some(), "the Date header is read");

    let past = "2001-01-01T00:00:00Z";
    let cases: Vec<(Fault, &str)> = vec![
        (Fault::Status(401), "auth_rejected"),
        (Fault::Status(403), "auth_rejected"),
        (Fault::Throttle { retry_after: Some("7".into()) }, "throttled"),
        (Fault::Status(500), "upstream_error"),
        (Fault::Status(503), "upstream_error"),
        (Fault::Status(404), "unexpected_status"),
        (Fault::Body { status: 200, body: "{not json".into() }, "malformed"),
        (Fault::Body { status: 200, body: format!(r#"{{"AccessKeyId":"A","SecretAccessKey":"S","Token":"","Expiration":"{past}"}}"#) }, "expired"),
        (Fault::Body { status: 200, body: r#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2099-01-01T00:00:00"}"#.into() }, "malformed"),
        (Fault::Body { status: 200, body: format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024)) }, "malformed"),
        (Fault::CloseConnection, "transport"),
        (Fault::Hang, "timeout"),
    ];
    for (fault, class) in cases {
        up.standin.push_fault(fault.clone());
        let result = c.exchange(&up.token).await;
        // `Expired` is decided against the clock by the refresher; the
        // client hands back what it parsed.
        let err = match result {
            Ok(creds) => creds
                .lifetime(std::time::SystemTime::now())
                .unwrap_err()
                .into(),
            Err(e) => e,
        };
        assert_eq!(err.class(), class, "{fault:?}: {err}");
        let msg = err.to_string();
        assert!(
            !msg.contains(up.token.expose()) && !msg.contains(SECRET_ACCESS_KEY),
            "{msg}"
        );
        if let ExchangeError::Throttled { retry_after } = err {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
    }
    // A forged token (right shape, wrong key) is rejected by the upstream.
    let forged = Secret::new(mint(
        &credagent_testkit::Issuer::generate_es256("evil").unwrap(),
        "app",
        Duration::from_secs(60),
    ));
    assert!(matches!(
        c.exchange(&forged).await,
        Err(ExchangeError::AuthRejected { status: 401 })
    ));
    // A token that cannot be a header value never leaves the process.
    let calls = up.standin.calls();
    let bad = Secret::new(format!("{}\n", up.token.expose()));
    assert_eq!(
        c.exchange(&bad).await.unwrap_err(),
        ExchangeError::InvalidToken
    );
    assert_eq!(up.standin.calls(), calls);
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let pki = test_pki();
    let up = upstream("127.0.0.1:0", Some(pki.server.clone())).await;
    let url = up.standin.url();
    assert!(url.starts_with("https://"), "{url}");
    let ok = client(&url, vec![pki.ca_der.clone()])
        .exchange(&up.token)
        .await
        .unwrap();
    assert_eq!(ok.access_key_id, ACCESS_KEY_ID);

    // Without the CA: the webpki roots do not know it.
    let err = client(&url, vec![]).exchange(&up.token).await.unwrap_err();
    assert_eq!(err.class(), "transport");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn https_hostname_mismatch_is_refused() {
    let pki = test_pki();
    // The certificate names localhost and 127.0.0.1, not 127.0.0.2.
    let up = upstream("127.0.0.2:0", Some(pki.server.clone())).await;
    let url = up.standin.url();
    assert!(url.contains("127.0.0.2"), "{url}");
    let err = client(&url, vec![pki.ca_der.clone()])
        .exchange(&up.token)
        .await
        .unwrap_err();
    assert_eq!(err.class(), "transport");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(&format!("http://127.0.0.1:{port}/v1/x"), vec![]);
    let err = c.exchange(&Secret::new("a.b.c")).await.unwrap_err();
    assert_eq!(err.class(), "transport", "{err}");
}

#[tokio::test]
async fn https_with_an_expired_certificate_is_refused() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        leaf_key.serialize_der(),
    ));
    let server =
        credagent_testkit::standin::tls_server_config(vec![leaf.der().clone()], key).unwrap();
    let up = upstream("127.0.0.1:0", Some(server)).await;
    let err = client(&up.standin.url(), vec![ca.der().clone()])
        .exchange(&up.token)
        .await
        .unwrap_err();
    assert_eq!(err.class(), "transport");
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    assert_eq!(up.standin.successes(), 0);
}
