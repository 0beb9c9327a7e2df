//! `credagent webhook` over HTTPS: a fixture AdmissionReview in, a patch
//! out that (applied by an independent JSON Patch implementation) makes a
//! Pod whose injected sidecar, run as the binary with exactly the injected
//! arguments, serves credentials to botocore configured only by the
//! injected app environment. Also: certificate rotation under a kept-alive
//! connection, and every way a request can be wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use credagent::cli::WebhookArgs;
use credagent::webhook::{Webhook, WebhookOptions};
use credagent_testkit::kubelet;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{
    botocore_json, free_port, metric, mint, request, rs256_issuer, test_pki, until, ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
};
use crate::tools::{self, require};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/admission");

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// A webhook on 127.0.0.1 with a test certificate in a Secret-style volume.
pub struct WebhookRig {
    pub dir: tempfile::TempDir,
    pub tls_dir: PathBuf,
    pub ca: CertificateDer<'static>,
    pub webhook: Webhook,
    pub shutdown: CancellationToken,
}

impl WebhookRig {
    pub async fn start(
        flags: &[&str],
        kube: Option<credagent::webhook::compat::kube::KubeConfig>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls_dir = dir.path().join("tls");
        let pki = test_pki();
        secret_swap(&tls_dir, &pki.leaf_pem, &pki.leaf_key_pem);
        let cert = tls_dir.join("tls.crt");
        let key = tls_dir.join("tls.key");
        let mut argv = vec![
            "credagent".to_owned(),
            "webhook".into(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--listen".into(),
            "127.0.0.1:1".into(),
            "--admin-listen".into(),
            "127.0.0.1:2".into(),
        ];
        argv.extend(flags.iter().map(|s| s.to_string()));
        let config = webhook_config(&argv);
        let shutdown = CancellationToken::new();
        let listeners = (
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        );
        let webhook = Webhook::start(
            &config,
            WebhookOptions {
                listeners: Some(listeners),
                kube,
                cert_poll: Some(Duration::from_millis(200)),
                grace: Some(Duration::from_secs(1)),
            },
            shutdown.clone(),
        )
        .await
        .expect("webhook starts");
        WebhookRig {
            dir,
            tls_dir,
            ca: pki.ca_der,
            webhook,
            shutdown,
        }
    }

    /// A webhook with CoreWeave compatibility, reading ServiceAccounts through `kube`.
    pub async fn compat(kube: credagent::webhook::compat::kube::KubeConfig) -> Self {
        Self::start(
            &[
                "--sidecar-image",
                "credagent:test",
                "--org-id",
                "org",
                "--coreweave-compat",
            ],
            Some(kube),
        )
        .await
    }

    pub fn scrape(&self) -> String {
        String::from_utf8(self.webhook.metrics.encode()).unwrap()
    }

    pub fn admissions(&self, outcome: &str, reason: &str) -> f64 {
        let series = format!(
            "credagent_webhook_admissions_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}"
        );
        metric(&self.scrape(), &series).unwrap_or(-1.0)
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.webhook.addr, &self.ca)
            .await
            .expect("TLS connection")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.webhook.wait().await;
    }
}

/// `credagent webhook ARGV...`, parsed and checked as the binary does.
pub fn webhook_config(argv: &[String]) -> WebhookArgs {
    use clap::Parser as _;
    match credagent::cli::Cli::try_parse_from(argv)
        .expect("flags parse")
        .command
    {
        credagent::cli::Command::Webhook(args) => {
            args.validate().expect("valid webhook config");
            args
        }
        _ => unreachable!("a webhook command"),
    }
}

/// Writes `tls.crt` and `tls.key` into `dir` in one swap, as kubelet
/// updates a Secret volume: a new timestamped directory, `..data_tmp`
/// renamed over `..data`, user-visible links into `..data`.
pub fn secret_swap(dir: &Path, cert: &str, key: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let old = std::fs::read_link(dir.join(kubelet::DATA_DIR_NAME)).ok();
    let ts = format!("..{}", rand::random::<u64>());
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join(&ts).join("tls.key"), key).unwrap();
    std::os::unix::fs::symlink(&ts, dir.join(kubelet::DATA_DIR_TMP_NAME)).unwrap();
    std::fs::rename(
        dir.join(kubelet::DATA_DIR_TMP_NAME),
        dir.join(kubelet::DATA_DIR_NAME),
    )
    .unwrap();
    for name in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// One kept-alive HTTPS connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The leaf certificate the server presented.
    pub leaf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, ca: &CertificateDer<'static>) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(credagent_testkit::testing::client_config(ca))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Self { sender, leaf })
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        self.sender.ready().await.expect("connection usable");
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let rsp = self.sender.send_request(req).await.expect("an answer");
        let status = rsp.status().as_u16();
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn review(&mut self, body: Vec<u8>) -> Value {
        let (status, answer) = self.send("POST", "/mutate", "application/json", body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

/// The patch of an answer, decoded; `None` when absent.
pub fn patch_of(answer: &Value) -> Option<json_patch::Patch> {
    let b64 = answer["response"]["patch"].as_str()?;
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    Some(serde_json::from_slice(&raw).expect("a JSON Patch"))
}

/// `request.object` of `review` with the answer's patch applied.
pub fn patched(review: &[u8], answer: &Value) -> Value {
    let review: Value = serde_json::from_slice(review).unwrap();
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    let mut pod = review["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch_of(answer).expect("a patch")).expect("the patch applies");
    pod
}

/// Rewrites a path inside the Pod to the test's directory for it.
pub fn remap(value: &str, dirs: &[(&str, &Path)]) -> String {
    for (pod_dir, host_dir) in dirs {
        if let Some(rest) = value.strip_prefix(pod_dir) {
            return format!("{}{rest}", host_dir.display());
        }
    }
    value.to_owned()
}

/// The injected sidecar's arguments, its paths inside the Pod rewritten by
/// [`remap`].
pub fn injected_args(sidecar: &Value, dirs: &[(&str, &Path)]) -> Vec<String> {
    sidecar["args"]
        .as_array()
        .expect("the sidecar has args")
        .iter()
        .map(|a| remap(a.as_str().expect("an arg is a string"), dirs))
        .collect()
}

pub fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

const BOTOCORE: &str = r#"
import json, os, sys, botocore.session
s = botocore.session.get_session()
c = s.get_credentials()
f = c.get_frozen_credentials()
print(json.dumps({"method": c.method, "access_key": f.access_key,
                  "secret_ok": f.secret_key == os.environ["EXPECTED_SECRET"],
                  "region": s.get_config_variable("region"),
                  "endpoint": os.environ.get("AWS_ENDPOINT_URL_S3")}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injected_sidecar_serves_botocore_configured_by_the_injected_env() {
    require!(tools::python());
    let shutdown = CancellationToken::new();
    let issuer = rs256_issuer();
    let standin = crate::support::hour_standin(&issuer, &shutdown).await;
    let (port, admin_port) = (free_port(), free_port());
    let rig = WebhookRig::start(
        &[
            "--sidecar-image",
            "registry.example.com/credagent:test",
            "--exchange-url",
            &standin.url(),
            "--region",
            "US-EAST-04A",
            "--s3-endpoint",
            "http://127.0.0.1:9",
            "--sidecar-port",
            &port.to_string(),
            "--sidecar-admin-port",
            &admin_port.to_string(),
        ],
        None,
    )
    .await;
    let review = fixture("deployment-pod.json");
    let answer = rig.client().await.review(review.clone()).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let pod = patched(&review, &answer);
    assert_eq!(rig.admissions("injected", "sidecar"), 1.0);

    // The Pod as kubelet would run it, its two volumes mapped to directories here.
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "credagent");
    assert_eq!(sidecar["image"], "registry.example.com/credagent:test");
    assert_eq!(sidecar["restartPolicy"], "Always");
    let token_dir = rig.dir.path().join("pod/token");
    let auth_dir = rig.dir.path().join("pod/auth");
    std::fs::create_dir_all(&auth_dir).unwrap();
    let dirs = [
        ("/var/run/secrets/credagent", token_dir.as_path()),
        ("/var/run/credagent", auth_dir.as_path()),
    ];
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "credagent-token")
        .expect("the token volume");
    let projected = &volume["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(projected["audience"], crate::support::AUDIENCE);
    kubelet::atomic_write(
        &token_dir,
        projected["path"].as_str().unwrap(),
        mint(&issuer, "trainer", Duration::from_secs(3600)).as_bytes(),
        0o644,
    )
    .unwrap();
    let args = injected_args(sidecar, &dirs);
    assert_eq!(args[0], "sidecar");
    let sidecar_log = rig.dir.path().join("sidecar.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credagent"))
        .args(&args)
        .env_clear()
        .envs(
            env_of(sidecar)
                .into_iter()
                .map(|(k, v)| (k, remap(&v, &dirs))),
        )
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&sidecar_log).unwrap())
        .spawn()
        .expect("the sidecar starts");
    // Its startupProbe, as kubelet runs it.
    let probe = &sidecar["startupProbe"]["httpGet"];
    let probe_addr: SocketAddr = format!("127.0.0.1:{}", probe["port"]).parse().unwrap();
    let path = probe["path"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ok = request(probe_addr, None, "GET", &path, &[], "")
            .await
            .is_ok_and(|r| r.status == 200);
        if ok {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(&sidecar_log).unwrap_or_default();
            panic!("the sidecar exited ({status}): {log}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sidecar never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // botocore with nothing but the app container's injected environment.
    let app = &pod["spec"]["containers"][0];
    let mut env: Vec<(String, String)> = env_of(app)
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k, remap(&v, &dirs)))
        .collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL_S3"
        ]
    );
    assert!(app["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "credagent-auth" && m["readOnly"] == true));
    env.push(("EXPECTED_SECRET".into(), SECRET_ACCESS_KEY.into()));
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let home = rig.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let v = botocore_json(BOTOCORE, &home, &env).await;
    assert_eq!(v["method"], "container-role", "{v}");
    assert_eq!(v["access_key"], ACCESS_KEY_ID);
    assert_eq!(v["secret_ok"], true);
    assert_eq!(v["region"], "US-EAST-04A");
    assert_eq!(standin.successes(), 1, "one exchange, by the sidecar");

    child.kill().await.unwrap();
    rig.stop().await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_on_new_handshakes_while_old_connections_stay() {
    let rig = WebhookRig::start(
        &["--sidecar-image", "credagent:test", "--org-id", "org"],
        None,
    )
    .await;
    let review = fixture("bare-pod.json");
    let mut kept = rig.client().await;
    kept.review(review.clone()).await;
    let first_leaf = kept.leaf.clone();
    let reloads = |rig: &WebhookRig, r: &str| {
        metric(
            &rig.scrape(),
            &format!("credagent_webhook_certificate_reloads_total{{result=\"{r}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(reloads(&rig, "ok"), 1.0);

    // cert-manager renews: a new pair from a new CA, swapped in like a Secret.
    let next = test_pki();
    secret_swap(&rig.tls_dir, &next.leaf_pem, &next.leaf_key_pem);
    until("the new pair is loaded", || reloads(&rig, "ok") == 2.0).await;
    let answer = kept.review(review.clone()).await;
    assert_eq!(
        answer["response"]["allowed"], true,
        "the kept-alive connection still works"
    );
    let fresh = Client::connect(rig.webhook.addr, &next.ca_der)
        .await
        .expect("the new certificate verifies");
    assert_ne!(fresh.leaf, first_leaf);
    assert!(
        Client::connect(rig.webhook.addr, &rig.ca).await.is_err(),
        "the old certificate is gone from new handshakes"
    );

    // A broken pair: counted, and the good one stays in service.
    let broken = test_pki();
    secret_swap(&rig.tls_dir, &broken.leaf_pem, &next.leaf_key_pem);
    until("the bad pair is refused", || reloads(&rig, "error") == 1.0).await;
    let mut again = Client::connect(rig.webhook.addr, &next.ca_der)
        .await
        .expect("still the good pair");
    again.review(review.clone()).await;
    kept.review(review).await;
    let expiry = metric(
        &rig.scrape(),
        "credagent_webhook_certificate_expiry_timestamp_seconds",
    )
    .unwrap();
    assert!(expiry > 1.7e9, "{expiry}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_request_gets_its_status_and_non_pods_pass_unchanged() {
    let rig = WebhookRig::start(
        &[
            "--sidecar-image",
            "credagent:test",
            "--org-id",
            "org",
            "--max-body-bytes",
            "65536",
            "--body-timeout",
            "1s",
        ],
        None,
    )
    .await;
    let mut c = rig.client().await;
    let (status, body) = c
        .send("POST", "/mutate", "application/json", b"not json".to_vec())
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );
    let (status, _) = c
        .send(
            "POST",
            "/mutate",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = c
        .send("GET", "/mutate", "application/json", Vec::new())
        .await;
    assert_eq!(status, 405);
    let (status, _) = c
        .send("POST", "/validate", "application/json", Vec::new())
        .await;
    assert_eq!(status, 404);
    // Answered without reading the body: hyper closes those connections.
    let (status, _) = rig
        .client()
        .await
        .send("POST", "/mutate", "text/plain", fixture("bare-pod.json"))
        .await;
    assert_eq!(status, 415);
    // Over --max-body-bytes, by Content-Length (answered before reading)
    // and chunked (while reading). The server closes such a connection
    // with the body unread, so the client may see a reset instead of the
    // 413: the counter says the server refused both.
    let mut big = fixture("bare-pod.json");
    big.resize(70_000, b' ');
    let head = |framing: &str| {
        format!("POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n{framing}\r\n\r\n")
    };
    let by_length = [
        head(&format!("content-length: {}", big.len())).into_bytes(),
        big,
    ]
    .concat();
    let chunked = format!(
        "{}{:x}\r\n{}\r\n0\r\n\r\n",
        head("transfer-encoding: chunked"),
        70_000,
        " ".repeat(70_000)
    );
    for request in [by_length, chunked.into_bytes()] {
        let answer = raw(rig.webhook.addr, &rig.ca, &request).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
            "{answer}"
        );
    }
    until("both refused", || {
        rig.admissions("error", "body_too_large") == 2.0
    })
    .await;
    // A body well over the 32 KiB read buffer but under the limit is read whole.
    let mut padded = fixture("bare-pod.json");
    padded.resize(60_000, b' ');
    let answer = rig.client().await.review(padded).await;
    assert!(patch_of(&answer).is_some());

    // Anything but a Pod CREATE: allowed, no patch.
    let mut c = rig.client().await;
    for name in ["deployment.json", "update.json", "pod-binding.json"] {
        let answer = c.review(fixture(name)).await;
        assert_eq!(answer["response"]["allowed"], true, "{name}");
        assert!(
            answer["response"].get("patch").is_none(),
            "{name}: {answer}"
        );
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    }
    // dryRun: the same answer as without it.
    let dry = fixture("dry-run.json");
    let answer = c.review(dry.clone()).await;
    let mut wet: Value = serde_json::from_slice(&dry).unwrap();
    wet["request"]["dryRun"] = json!(false);
    let wet_answer = c.review(serde_json::to_vec(&wet).unwrap()).await;
    assert!(patch_of(&answer).is_some());
    assert_eq!(answer, wet_answer);
    // A refusal is a 200 with allowed: false.
    let refused = c.review(fixture("invalid-quantity.json")).await;
    assert_eq!(refused["response"]["allowed"], false);

    // A body that never finishes: 408 after --body-timeout.
    let slow = slow_body(rig.webhook.addr, &rig.ca).await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");

    for (outcome, reason, n) in [
        ("error", "not_a_review", 2.0),
        ("error", "unsupported_media_type", 1.0),
        ("error", "body_too_large", 2.0),
        ("error", "body_timeout", 1.0),
        ("skipped", "not_pod_create", 3.0),
        ("injected", "sidecar", 3.0),
        ("refused", "invalid_annotation", 1.0),
    ] {
        assert_eq!(
            rig.admissions(outcome, reason),
            n,
            "{outcome}/{reason}: {}",
            rig.scrape()
                .lines()
                .filter(
                    |l| l.starts_with("credagent_webhook_admissions_total") && !l.ends_with(" 0")
                )
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let text = rig.scrape();
    assert_eq!(
        metric(&text, "credagent_webhook_admission_duration_seconds_count"),
        Some(13.0),
        "{text}"
    );
    // The admin listener.
    let admin = rig.webhook.admin_addr;
    assert_eq!(
        request(admin, None, "GET", "/readyz", &[], "")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        request(admin, None, "GET", "/healthz", &[], "")
            .await
            .unwrap()
            .status,
        200
    );
    let m = request(admin, None, "GET", "/metrics", &[], "")
        .await
        .unwrap();
    assert!(m.body.contains("credagent_webhook_admissions_total"));
    rig.stop().await;
}

/// Sends a head announcing 1000 bytes and only 10 of them; returns what
/// the server answers.
async fn slow_body(addr: SocketAddr, ca: &CertificateDer<'static>) -> String {
    raw(addr, ca, b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"apiVersi").await
}

/// Writes `bytes` on a new TLS connection; returns the start of the answer.
async fn raw(addr: SocketAddr, ca: &CertificateDer<'static>, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(credagent_testkit::testing::client_config(ca))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // The server may answer (and close) before reading it all.
    let _ = tls.write_all(bytes).await;
    let mut out = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut out))
        .await
        .expect("an answer in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&out[..n]).into_owned()
}
