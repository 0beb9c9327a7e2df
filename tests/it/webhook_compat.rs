//! CoreWeave compatibility against a fake Kubernetes API server (HTTPS,
//! in the test): the ServiceAccount list (two pages), a watch stream
//! (modified, added, bookmark, deleted, then 410 Gone), the relist, a live
//! GET on a cache miss, and a token file rotated between requests; the
//! tokens and the serving key never reach a log line or /metrics.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use credagent::webhook::compat::kube::KubeConfig;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

use crate::support::{metric, request, test_pki, until};
use crate::webhook::{fixture, WebhookRig};

type Body = BoxBody<Bytes, Infallible>;

/// What the fake API server saw and how far it is.
#[derive(Default)]
struct Seen {
    /// (path and query, Authorization) of every request.
    requests: Vec<(String, String)>,
    lists: usize,
    watches: usize,
}

struct Fake {
    seen: Mutex<Seen>,
    /// Lets the first LIST answer.
    allow_list: Notify,
    /// Lets the first watch go on past its bookmark.
    release_watch: Notify,
}

fn account(ns: &str, name: &str, rv: &str, opted_in: bool) -> Value {
    let mut metadata =
        json!({"namespace": ns, "name": name, "resourceVersion": rv, "uid": format!("uid-{name}")});
    if opted_in {
        metadata["annotations"] = json!({"caios.coreweave.com/inject": "true", "other": "x"});
    }
    json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": metadata})
}

fn event(kind: &str, object: Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
}

fn full(status: u16, body: Value) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

async fn handle(fake: Arc<Fake>, req: http::Request<Incoming>) -> http::Response<Body> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    fake.seen.lock().requests.push((target.clone(), auth));
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    if path == "/api/v1/serviceaccounts" && query.contains("watch=true") {
        let n = {
            let mut seen = fake.seen.lock();
            seen.watches += 1;
            seen.watches
        };
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        if n == 1 {
            assert!(query.contains("resourceVersion=100"), "{query}");
            assert!(query.contains("allowWatchBookmarks=true"), "{query}");
            let fake = fake.clone();
            tokio::spawn(async move {
                let _ = tx
                    .send(event("MODIFIED", account("team-a", "plain", "101", true)))
                    .await;
                let _ = tx
                    .send(event("ADDED", account("team-a", "late", "102", true)))
                    .await;
                let _ = tx
                    .send(event("BOOKMARK", json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"resourceVersion": "103"}})))
                    .await;
                fake.release_watch.notified().await;
                let _ = tx
                    .send(event(
                        "DELETED",
                        account("team-a", "s3-reader", "104", true),
                    ))
                    .await;
                let _ = tx
                    .send(event("ERROR", json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410})))
                    .await;
            });
        } else {
            assert!(query.contains("resourceVersion=200"), "{query}");
            // Held open (and silent) until the test ends.
            tokio::spawn(async move {
                tx.closed().await;
            });
        }
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        return http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed())
            .unwrap();
    }
    if path == "/api/v1/serviceaccounts" {
        let first_list = fake.seen.lock().lists == 0;
        if first_list && !query.contains("continue=") {
            fake.allow_list.notified().await;
        }
        if query.contains("continue=") {
            // The token arrives percent-encoded.
            assert!(query.contains("continue=p2%2B%2F%3D"), "{query}");
            fake.seen.lock().lists += 1;
            return full(
                200,
                json!({"kind": "ServiceAccountList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "100"},
                "items": [account("team-a", "plain", "90", false)]}),
            );
        }
        if first_list {
            return full(
                200,
                json!({"kind": "ServiceAccountList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "99", "continue": "p2+/="},
                "items": [account("team-a", "s3-reader", "80", true)]}),
            );
        }
        fake.seen.lock().lists += 1;
        return full(
            200,
            json!({"kind": "ServiceAccountList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "200"},
            "items": [account("team-a", "plain", "150", true), account("team-a", "late", "160", true),
                      account("team-a", "other", "170", false)]}),
        );
    }
    match path {
        "/api/v1/namespaces/team-a/serviceaccounts/brand-new" => {
            full(200, account("team-a", "brand-new", "300", true))
        }
        _ => full(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
        ),
    }
}

async fn start_fake(fake: Arc<Fake>) -> (std::net::SocketAddr, String) {
    let pki = test_pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, fake) = (acceptor.clone(), fake.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let fake = fake.clone();
                    async move { Ok::<_, Infallible>(handle(fake, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, pki.ca_pem)
}

/// `sa-opt-in.json` (a Pod that says nothing itself, in team-a) with the
/// given ServiceAccount, or with its own opt-out label.
fn pod_with(service_account: &str, opt_out: bool) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture("sa-opt-in.json")).unwrap();
    review["request"]["object"]["spec"]["serviceAccountName"] = json!(service_account);
    review["request"]["object"]["spec"]["serviceAccount"] = json!(service_account);
    if opt_out {
        review["request"]["object"]["metadata"]["labels"]["credagent.io/inject"] = json!("false");
    }
    serde_json::to_vec(&review).unwrap()
}

/// The two API tokens kubelet writes (shaped like real ones: never logged).
const TOKEN_1: &str = "eyJhbGciOiJSUzI1NiJ9.compat-api-token-one-7f3a9c.c2lnbmF0dXJl";
const TOKEN_2: &str = "eyJhbGciOiJSUzI1NiJ9.compat-api-token-two-41d8e2.c2lnbmF0dXJl";

// One thread: the capture is this thread's (capture.rs).
#[tokio::test(flavor = "current_thread")]
async fn compat_mode_follows_the_service_accounts() {
    let logs = crate::capture::start();
    let fake = Arc::new(Fake {
        seen: Mutex::new(Seen::default()),
        allow_list: Notify::new(),
        release_watch: Notify::new(),
    });
    let (addr, ca_pem) = start_fake(fake.clone()).await;
    let sa_dir = tempfile::tempdir().unwrap();
    std::fs::write(sa_dir.path().join("ca.crt"), ca_pem).unwrap();
    std::fs::write(sa_dir.path().join("namespace"), "credagent-system").unwrap();
    credagent_testkit::kubelet::atomic_write(sa_dir.path(), "token", TOKEN_1.as_bytes(), 0o644)
        .unwrap();
    let kube = KubeConfig::from_parts(
        Some("127.0.0.1".into()),
        Some(addr.port().to_string()),
        sa_dir.path(),
    )
    .unwrap();
    let rig = WebhookRig::compat(kube).await;

    // Not ready until the ServiceAccounts are listed.
    let readyz = || async {
        request(rig.webhook.admin_addr, None, "GET", "/readyz", &[], "")
            .await
            .unwrap()
    };
    let r = readyz().await;
    assert_eq!(r.status, 503);
    assert!(
        r.body.contains("ServiceAccounts not listed yet"),
        "{}",
        r.body
    );
    fake.allow_list.notify_one();
    let cached =
        || metric(&rig.scrape(), "credagent_webhook_service_accounts_cached").unwrap_or(0.0);
    // Listed (2), then the watch's MODIFIED and ADDED (3).
    until("the watch's events", || cached() == 3.0).await;
    assert_eq!(readyz().await.status, 200);

    let mut c = rig.client().await;
    let decision = |answer: &Value| {
        if answer["response"].get("patch").is_some() {
            "injected"
        } else {
            "skipped"
        }
    };
    for (sa, want) in [
        ("s3-reader", "injected"), // listed, first page
        ("plain", "injected"),     // listed without, then MODIFIED with the annotation
        ("late", "injected"),      // ADDED by the watch
        ("brand-new", "injected"), // not in the cache: a live GET
        ("missing", "skipped"),    // not in the cache, 404: not opted in
    ] {
        let answer = c.review(pod_with(sa, false)).await;
        assert_eq!(decision(&answer), want, "{sa}: {answer}");
    }
    // The Pod's own "false" decides: no lookup at all.
    let answer = c.review(pod_with("s3-reader", true)).await;
    assert_eq!(decision(&answer), "skipped");
    let lookups = |source: &str| {
        metric(
            &rig.scrape(),
            &format!("credagent_webhook_service_account_lookups_total{{source=\"{source}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(
        (lookups("cache"), lookups("api"), lookups("error")),
        (3.0, 2.0, 0.0)
    );
    let gets: Vec<String> = fake
        .seen
        .lock()
        .requests
        .iter()
        .filter(|(p, _)| p.starts_with("/api/v1/namespaces/"))
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        gets,
        [
            "/api/v1/namespaces/team-a/serviceaccounts/brand-new",
            "/api/v1/namespaces/team-a/serviceaccounts/missing"
        ]
    );

    // kubelet rotates the API token; then the watch deletes one account
    // and expires (410): the reflector lists again, with the new token.
    credagent_testkit::kubelet::atomic_write(sa_dir.path(), "token", TOKEN_2.as_bytes(), 0o644)
        .unwrap();
    fake.release_watch.notify_one();
    until("the relist after 410", || fake.seen.lock().watches == 2).await;
    let restarts = metric(
        &rig.scrape(),
        "credagent_webhook_service_account_watch_restarts_total{reason=\"gone\"}",
    );
    assert_eq!(restarts, Some(1.0));
    assert_eq!(cached(), 3.0, "the second list: plain, late, other");
    // Deleted, and not re-listed: a miss, and the API says 404.
    let answer = c.review(pod_with("s3-reader", false)).await;
    assert_eq!(decision(&answer), "skipped", "{answer}");
    let answer = c.review(pod_with("other", false)).await;
    assert_eq!(
        decision(&answer),
        "skipped",
        "listed without the annotation"
    );

    {
        let seen = fake.seen.lock();
        let tokens: Vec<&str> = seen.requests.iter().map(|(_, a)| a.as_str()).collect();
        assert!(
            tokens[..5]
                .iter()
                .all(|t| *t == format!("Bearer {TOKEN_1}")),
            "{tokens:?}"
        );
        assert_eq!(
            tokens.last().copied(),
            Some(format!("Bearer {TOKEN_2}").as_str()),
            "{tokens:?}"
        );
        let relist = seen
            .requests
            .iter()
            .rposition(|(p, _)| p == "/api/v1/serviceaccounts?limit=500")
            .unwrap();
        assert_eq!(
            seen.requests[relist].1,
            format!("Bearer {TOKEN_2}"),
            "the relist used the rotated token"
        );
    }
    // Nothing secret in any of its log lines (every tracing event, at trace
    // level) or in /metrics: neither API token nor the serving key.
    let key_pem = std::fs::read_to_string(rig.tls_dir.join("tls.key")).unwrap();
    let key_line = key_pem
        .lines()
        .nth(1)
        .expect("a base64 line of the key")
        .to_owned();
    let text = logs.text() + &rig.scrape();
    assert!(text.contains("ServiceAccounts listed"), "the capture works");
    for secret in [TOKEN_1, TOKEN_2, "compat-api-token", key_line.as_str()] {
        assert!(
            !text.contains(secret),
            "a secret reached the logs or metrics: {secret}"
        );
    }
    rig.stop().await;
}
