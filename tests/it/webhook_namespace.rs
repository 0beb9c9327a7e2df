//! The namespace-wide opt-in over HTTPS: the namespace entry of the
//! MutatingWebhookConfiguration posts to `/mutate/namespace`, and every Pod
//! it sends is injected unless the Pod opts out; the same Pod on `/mutate`
//! is not. With CoreWeave compatibility on, the namespace entry's Pods need
//! no ServiceAccount lookup, so an unreachable API server changes nothing.

use credagent::webhook::compat::kube::KubeConfig;
use credagent::webhook::MUTATE_NAMESPACE_PATH;
use serde_json::Value;

use crate::support::{free_port, test_pki};
use crate::webhook::{fixture, patched, Client, WebhookRig};

async fn post(c: &mut Client, path: &str, body: Vec<u8>) -> Value {
    let (status, answer) = c.send("POST", path, "application/json", body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    assert_eq!(answer["response"]["allowed"], true, "{path}: {answer}");
    answer
}

fn injected_containers(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["env"].as_array().into_iter().flatten().any(|e| {
                e["name"] == "AWS_CONTAINER_CREDENTIALS_FULL_URI"
                    && e["value"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("http://127.0.0.1:")
            })
        })
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_entry_injects_every_pod_that_does_not_opt_out() {
    let rig = WebhookRig::start(
        &["--sidecar-image", "credagent:test", "--org-id", "org"],
        None,
    )
    .await;
    let mut c = rig.client().await;
    let unlabelled = fixture("namespace-deployment-pod.json");

    // From the Pod entry, an unlabelled Pod is not opted in.
    let answer = post(&mut c, "/mutate", unlabelled.clone()).await;
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    assert_eq!(rig.admissions("skipped", "not_opted_in"), 1.0);

    // From the namespace entry, it is injected.
    let answer = post(&mut c, MUTATE_NAMESPACE_PATH, unlabelled.clone()).await;
    let pod = patched(&unlabelled, &answer);
    assert_eq!(injected_containers(&pod), ["trainer"]);
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "credagent");
    assert_eq!(rig.admissions("injected", "sidecar"), 1.0);

    // The Pod's own opt-out annotation wins there too.
    let answer = post(
        &mut c,
        MUTATE_NAMESPACE_PATH,
        fixture("namespace-opt-out.json"),
    )
    .await;
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    assert_eq!(rig.admissions("skipped", "opted_out"), 1.0);

    // Anything else under /mutate is unknown.
    let (status, _) = c
        .send("POST", "/mutate/namespaces", "application/json", unlabelled)
        .await;
    assert_eq!(status, 404);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_compat_on_the_namespace_entry_needs_no_service_account() {
    // An API server nobody answers: any ServiceAccount lookup fails.
    let sa_dir = tempfile::tempdir().unwrap();
    std::fs::write(sa_dir.path().join("ca.crt"), test_pki().ca_pem).unwrap();
    std::fs::write(sa_dir.path().join("namespace"), "credagent-system").unwrap();
    std::fs::write(sa_dir.path().join("token"), "not-a-real-token").unwrap();
    let kube = KubeConfig::from_parts(
        Some("127.0.0.1".into()),
        Some(free_port().to_string()),
        sa_dir.path(),
    )
    .unwrap();
    let rig = WebhookRig::compat(kube).await;
    let mut c = rig.client().await;
    let plain = fixture("not-opted-in.json");

    // The Pod entry asks for the ServiceAccount, which cannot be read.
    let answer = post(&mut c, "/mutate", plain.clone()).await;
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    assert_eq!(rig.admissions("error", "service_account_lookup"), 1.0);

    // The namespace entry does not.
    let answer = post(&mut c, MUTATE_NAMESPACE_PATH, plain.clone()).await;
    assert_eq!(injected_containers(&patched(&plain, &answer)), ["app"]);
    assert_eq!(rig.admissions("injected", "sidecar"), 1.0);
    assert_eq!(rig.admissions("error", "service_account_lookup"), 1.0);
    rig.stop().await;
}
