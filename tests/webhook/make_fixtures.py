#!/usr/bin/env python3
"""Writes tests/fixtures/admission/*.json: the AdmissionReview fixtures and cases.json.

    tests/webhook/make_fixtures.py [--admission BIN]

The fixtures are committed; this script is how they were made (and how to remake them after
changing one). Every request has the exact wire shape of kube.py. `already-injected.json` is
the output of a first pass over `bare-pod.json`: with --admission (the example binary, as
run.sh builds it) it is regenerated through the Rust code and `jsonpatch`, then defaulted as
the API server would before a reinvocation.

cases.json holds the webhook's flags common to every case (`flags`, and `upstream`: the
`--org-id` or `--exchange-url` of `credagent webhook`), and lists, for each case: the fixture,
its own flags (`flags`, added to the common ones; `upstream`, instead of the common one),
the ServiceAccount annotations the server would have looked up, and what is expected: the
decision label, the mode, the containers that get credagent's env (`injected`), those that
must come out byte for byte as they went in (`untouched`), substrings the warnings must
contain (`warnings`; an empty list means none at all) or the refusal must contain (`message`).
"""

import argparse
import base64
import json
import subprocess
import sys
from pathlib import Path

from kube import api_access_mount, api_access_volume, container, default_pod, pod_spec, review

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "admission"

BASE_FLAGS = ["--sidecar-image", "ghcr.io/example/credagent:0.1.0"]
UPSTREAM = ["--org-id", "cw-org-1234"]
LOTA = ["--region", "US-EAST-04A", "--s3-endpoint", "http://cwlota.com"]
KEYS = ["--key-lifetime", "1h", "--key-attribute", "cluster=prod-1", "--key-attribute", "team=ml"]
SIDECAR_PROXY = ["--sidecar-https-proxy", "http://proxy.corp.example:3128",
                 "--sidecar-no-proxy", ".svc,.cluster.local,10.96.0.0/12"]
KAA = "7xk2p"  # the random suffix of the kube-api-access volume


def meta(name=None, namespace=None, labels=None, annotations=None, **extra):
    m = {}
    if name:
        m["name"] = name
    m.update({k: v for k, v in extra.items() if k == "generateName"})
    if namespace:
        m["namespace"] = namespace
    m["creationTimestamp"] = None
    if labels is not None:
        m["labels"] = labels
    if annotations is not None:
        m["annotations"] = annotations
    m.update({k: v for k, v in extra.items() if k != "generateName"})
    return m


def pod(metadata, spec):
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": {}}


def app(name="app", image="amazon/aws-cli:2.34.48", **kw):
    kw.setdefault("mounts", [api_access_mount(KAA)])
    return container(name, image, **kw)


INJECT = {"credagent.io/inject": "true"}


def kubectl_managed_fields(name):
    return [{
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
        "time": "2026-12-01T10:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:credagent.io/inject": {},
                                                      "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                     "f:spec": {"f:containers": {f'k:{{"name":"{name}"}}': {".": {}, "f:image": {}, "f:name": {}}}}},
    }]


def bare_pod():
    last_applied = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "annotations": INJECT, "name": "web", "namespace": "team-a"}, "spec": {"containers": [
            {"image": "amazon/aws-cli:2.34.48", "name": "app"}]}}) + "\n"
    return pod(
        meta("web", "team-a", annotations={**INJECT, "kubectl.kubernetes.io/last-applied-configuration": last_applied},
             managedFields=kubectl_managed_fields("app")),
        pod_spec([app()], volumes=[api_access_volume(KAA)]),
    )


def deployment_pod(labelled=True):
    return pod(
        meta(generateName="trainer-7d9f8b6c5d-",
             labels={"app.kubernetes.io/name": "trainer", "pod-template-hash": "7d9f8b6c5d",
                     **(INJECT if labelled else {})},
             ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "trainer-7d9f8b6c5d",
                               "uid": "0b7e3a52-8f0c-4a51-9a7e-2f1d8d6c9b10", "controller": True,
                               "blockOwnerDeletion": True}]),
        pod_spec([app("trainer", "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
                      env=[{"name": "HOME", "value": "/tmp"}],
                      resources={"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}})],
                 volumes=[api_access_volume(KAA)], sa="trainer"),
    )


def job_pod():
    uid = "5f8e2c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
    return pod(
        meta(generateName="etl-",
             labels={"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "etl",
                     "controller-uid": uid, "job-name": "etl"},
             annotations={**INJECT, "batch.kubernetes.io/job-completion-index": "0"},
             ownerReferences=[{"apiVersion": "batch/v1", "kind": "Job", "name": "etl", "uid": uid,
                               "controller": True, "blockOwnerDeletion": True}]),
        pod_spec([app("etl", "python:3.12-slim", command=["python", "-m", "etl"])],
                 init=[app("fetch", "amazon/aws-cli:2.34.48", args=["s3", "cp", "s3://b/in", "/work/in"])],
                 volumes=[api_access_volume(KAA)], restart="Never"),
    )


def istio_pod():
    proxy = app("istio-proxy", "docker.io/istio/proxyv2:1.24.2", restart_always=True,
                args=["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
                env=[{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}],
                ports=[{"name": "http-envoy-prom", "containerPort": 15090}],
                mounts=[{"name": "istio-envoy", "mountPath": "/etc/istio/proxy"}, api_access_mount(KAA)])
    proxy["startupProbe"] = {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                             "timeoutSeconds": 3, "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 600}
    init = app("istio-init", "docker.io/istio/proxyv2:1.24.2", args=["istio-iptables", "-p", "15001"])
    return pod(
        meta("mesh-app", "team-a", labels={"app": "mesh-app", "security.istio.io/tlsMode": "istio"},
             annotations={**INJECT, "sidecar.istio.io/status": "{\"initContainers\":[\"istio-init\",\"istio-proxy\"]}"}),
        pod_spec([app(ports=[{"containerPort": 8080}])], init=[init, proxy],
                 volumes=[{"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}, api_access_volume(KAA)]),
    )


def static_keys_pod():
    keys = [{"name": n, "valueFrom": {"secretKeyRef": {"name": "legacy-s3", "key": k}}}
            for n, k in (("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "secret"))]
    return pod(meta("mixed", "team-a", annotations=INJECT),
               pod_spec([app("uploader", env=keys), app("worker")], volumes=[api_access_volume(KAA)]))


def host_network_pod(mode=None):
    annotations = dict(INJECT)
    if mode:
        annotations["credagent.io/mode"] = mode
    return pod(meta("node-exporter-x", "monitoring", annotations=annotations),
               pod_spec([app("exporter", "quay.io/prometheus/node-exporter:v1.8.2")],
                        volumes=[api_access_volume(KAA)], host_network=True))


def minimal_pod():
    return pod(meta("minimal", "team-a", labels=INJECT),
               pod_spec([container("app", "busybox:1.36")], automount=False))


def escaped_keys_pod():
    return pod(
        meta("escapes", "team-a",
             labels={"app.kubernetes.io/name": "escapes", "example.com/tier": "batch"},
             annotations={**INJECT, "credagent.io/audience": "sts.example.com/credagent",
                          "example.com/owner": "team-a", "odd~key/with~tilde": "x~1y", "a/b~c": "d"}),
        pod_spec([app()], volumes=[api_access_volume(KAA)]),
    )


def node_mode_pod():
    return pod(meta("node-client", "team-a", annotations={**INJECT, "credagent.io/mode": "node"}),
               pod_spec([app(env=[{"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"}]), app("second")],
                        volumes=[api_access_volume(KAA)]))


def credential_process_pod():
    return pod(meta("torch", "ml", annotations={**INJECT, "credagent.io/credential-process": "true",
                                                "credagent.io/sidecar-memory-limit": "64Mi"}),
               pod_spec([app("train", "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"),
                         app("own-config", env=[{"name": "AWS_CONFIG_FILE", "value": "/etc/aws/config"}])],
                        volumes=[api_access_volume(KAA)]))


def opt_out_pod():
    return pod(meta("opted-out", "team-a", labels=INJECT, annotations={"credagent.io/inject": "false"}),
               pod_spec([app()], volumes=[api_access_volume(KAA)]))


def namespace_opt_out_pod():
    """In an opted-in namespace: an annotation opts out (a label would keep it from the namespace entry)."""
    return pod(meta("opted-out-ns", "ml", labels={"app": "batch"}, annotations={"credagent.io/inject": "false"}),
               pod_spec([app()], volumes=[api_access_volume(KAA)]))


def plain_pod(name="plain", sa="default"):
    return pod(meta(name, "team-a", labels={"app": name}),
               pod_spec([app()], volumes=[api_access_volume(KAA)], sa=sa))


def coreweave_webhook_pod():
    cw = [{"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://169.254.170.23/v1/credentials"},
          {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
           "value": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"}]
    return pod(meta("cw-injected", "team-a", annotations=INJECT),
               pod_spec([app(env=cw), app("second", env=cw)], volumes=[api_access_volume(KAA)]))


def skip_containers_pod():
    return pod(meta("skips", "team-a", annotations={**INJECT, "credagent.io/skip-containers": "migrate, logger, ghost"}),
               pod_spec([app(), app("logger", "fluent/fluent-bit:3.2")],
                        init=[app("migrate", "migrate/migrate:v4.18.1")], volumes=[api_access_volume(KAA)]))


def env_from_pod():
    return pod(meta("envfrom", "team-a", annotations=INJECT),
               pod_spec([app(env_from=[{"secretRef": {"name": "app-secrets"}}, {"configMapRef": {"name": "aws-env"}}])],
                        volumes=[api_access_volume(KAA)]))


def annotated(name, annotations):
    return pod(meta(name, "team-a", annotations={**INJECT, **annotations}),
               pod_spec([app()], volumes=[api_access_volume(KAA)]))


def port_conflict_pod():
    return pod(meta("ports", "team-a", annotations=INJECT),
               pod_spec([app(ports=[{"name": "metrics", "containerPort": 9464}])], volumes=[api_access_volume(KAA)]))


def deployment():
    template = {"metadata": {"labels": {"app": "d", **INJECT}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}
    return {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "d", "namespace": "team-a", "creationTimestamp": None},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}}, "template": template,
                     "strategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 10,
                     "progressDeadlineSeconds": 600},
            "status": {}}


def binding():
    return {"kind": "Binding", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "team-a", "creationTimestamp": None},
            "target": {"kind": "Node", "name": "node-1"}}


def fixtures():
    """(file, review) for every fixture but already-injected.json."""
    bare = bare_pod()
    updated = json.loads(json.dumps(bare))
    updated["metadata"].update(uid="9c1f0d2e-1111-4c3b-9d8e-7a6b5c4d3e2f", resourceVersion="4242",
                               creationTimestamp="2026-12-01T10:00:00Z", labels={"new": "label"})
    updated["spec"]["nodeName"] = "node-1"
    old = json.loads(json.dumps(updated))
    del old["metadata"]["labels"]
    return {
        "bare-pod.json": review(bare, namespace="team-a"),
        "dry-run.json": review(bare, namespace="team-a", dry_run=True),
        "deployment-pod.json": review(deployment_pod(), namespace="ml"),
        "namespace-deployment-pod.json": review(deployment_pod(labelled=False), namespace="ml"),
        "namespace-opt-out.json": review(namespace_opt_out_pod(), namespace="ml"),
        "job-pod.json": review(job_pod(), namespace="etl"),
        "istio-native-sidecar.json": review(istio_pod(), namespace="team-a"),
        "static-keys.json": review(static_keys_pod(), namespace="team-a"),
        "host-network.json": review(host_network_pod(), namespace="monitoring"),
        "host-network-node-mode.json": review(host_network_pod("node"), namespace="monitoring"),
        "minimal-pod.json": review(minimal_pod(), namespace="team-a"),
        "escaped-keys.json": review(escaped_keys_pod(), namespace="team-a"),
        "node-mode.json": review(node_mode_pod(), namespace="team-a"),
        "credential-process.json": review(credential_process_pod(), namespace="ml"),
        "opt-out.json": review(opt_out_pod(), namespace="team-a"),
        "not-opted-in.json": review(plain_pod(), namespace="team-a"),
        "sa-opt-in.json": review(plain_pod("sa-pod", sa="s3-reader"), namespace="team-a"),
        "coreweave-webhook-injected.json": review(coreweave_webhook_pod(), namespace="team-a"),
        "skip-containers.json": review(skip_containers_pod(), namespace="team-a"),
        "env-from.json": review(env_from_pod(), namespace="team-a"),
        "invalid-token-expiration.json": review(annotated("bad-exp", {"credagent.io/token-expiration": "300"}), namespace="team-a"),
        "invalid-quantity.json": review(annotated("bad-mem", {"credagent.io/sidecar-memory-limit": "64MB"}), namespace="team-a"),
        "port-conflict.json": review(port_conflict_pod(), namespace="team-a"),
        "key-lifetime.json": review(annotated("keys", {"credagent.io/key-lifetime": "90m"}), namespace="team-a"),
        "key-lifetime-off.json": review(annotated("get-keys", {"credagent.io/key-lifetime": "off"}),
                                        namespace="team-a"),
        "key-lifetime-node-mode.json": review(annotated("node-keys", {"credagent.io/key-lifetime": "2h",
                                                                      "credagent.io/mode": "node"}),
                                              namespace="team-a"),
        "invalid-key-lifetime.json": review(annotated("bad-keys", {"credagent.io/key-lifetime": "5m"}),
                                            namespace="team-a"),
        "update.json": review(updated, namespace="team-a", operation="UPDATE", old=old),
        "deployment.json": review(deployment(), namespace="team-a", kind=("apps", "v1", "Deployment"),
                                  resource=("apps", "v1", "deployments")),
        "pod-binding.json": review(binding(), namespace="team-a", name="web", kind=("", "v1", "Binding"),
                                   resource=("", "v1", "pods"), sub_resource="binding"),
    }


def case(name, fixture, expect, **kw):
    return {"name": name, "fixture": fixture, "expect": expect, **kw}


CASES = [
    case("bare pod", "bare-pod.json", "injected", mode="sidecar", injected=["app"], warnings=[]),
    case("dry run", "dry-run.json", "injected", mode="sidecar", injected=["app"], dry_run=True),
    case("exchange url upstream", "bare-pod.json", "injected", mode="sidecar", injected=["app"],
         upstream=["--exchange-url", "https://api.example.com/v1/cwobject/temporary-credentials/oidc/x"]),
    case("deployment's pod (generateName, no namespace)", "deployment-pod.json", "injected", mode="sidecar",
         injected=["trainer"], flags=LOTA, warnings=[]),
    case("job's pod with an init container", "job-pod.json", "injected", mode="sidecar",
         injected=["fetch", "etl"], flags=LOTA),
    case("another native sidecar (istio-proxy)", "istio-native-sidecar.json", "injected", mode="sidecar",
         injected=["istio-init", "istio-proxy", "app"], warnings=["istio-proxy"]),
    case("static keys in one of two containers", "static-keys.json", "injected", mode="sidecar",
         injected=["worker"], untouched=["uploader"],
         warnings=["container uploader left as it is: it sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"]),
    case("hostNetwork, sidecar mode", "host-network.json", "host_network", warnings=["hostNetwork"]),
    case("hostNetwork, node mode", "host-network-node-mode.json", "injected", mode="node", injected=["exporter"]),
    case("already injected (a second pass)", "already-injected.json", "already_injected", warnings=[]),
    case("no initContainers, volumes, env or annotations", "minimal-pod.json", "injected", mode="sidecar",
         injected=["app"], flags=LOTA),
    case("keys with / and ~", "escaped-keys.json", "injected", mode="sidecar", injected=["app"]),
    case("node mode", "node-mode.json", "injected", mode="node", injected=["app", "second"], flags=LOTA),
    case("sidecar proxy (the sidecar's env only)", "job-pod.json", "injected", mode="sidecar",
         injected=["fetch", "etl"], flags=LOTA + SIDECAR_PROXY, warnings=[]),
    case("sidecar proxy, node mode (no sidecar, nothing for the apps)", "node-mode.json", "injected", mode="node",
         injected=["app", "second"], flags=LOTA + SIDECAR_PROXY),
    case("credential process", "credential-process.json", "injected", mode="sidecar",
         injected=["train", "own-config"], flags=LOTA, warnings=["own-config sets AWS_CONFIG_FILE"]),
    case("opt-out annotation beats opt-in label", "opt-out.json", "opted_out"),
    case("not opted in", "not-opted-in.json", "not_opted_in"),
    case("ServiceAccount opt-in, coreweave_compat on", "sa-opt-in.json", "injected", mode="sidecar",
         injected=["app"], flags=["--coreweave-compat"],
         sa_annotations={"caios.coreweave.com/inject": "true"}),
    case("ServiceAccount opt-in, coreweave_compat off", "sa-opt-in.json", "not_opted_in",
         sa_annotations={"caios.coreweave.com/inject": "true"}),
    # The namespace entry (/mutate/namespace): Pods without the label in a labelled namespace.
    case("namespace opt-in: a Deployment's Pod without the label", "namespace-deployment-pod.json", "injected",
         entry="namespace", mode="sidecar", injected=["trainer"], flags=LOTA, warnings=[]),
    case("the same Pod from the Pod entry is not opted in", "namespace-deployment-pod.json", "not_opted_in"),
    case("namespace opt-in: an unlabelled Pod, coreweave_compat on, no ServiceAccount opt-in",
         "not-opted-in.json", "injected", entry="namespace", mode="sidecar", injected=["app"],
         flags=["--coreweave-compat"], sa_annotations={}),
    case("namespace opt-in: the Pod's opt-out annotation wins", "namespace-opt-out.json", "opted_out",
         entry="namespace"),
    case("every container has CoreWeave's container credentials", "coreweave-webhook-injected.json",
         "all_containers_have_credentials", warnings=["container app left as it is", "container second left as it is"]),
    case("skip-containers", "skip-containers.json", "injected", mode="sidecar", injected=["app"],
         untouched=["migrate", "logger"], warnings=['no container "ghost"']),
    case("envFrom", "env-from.json", "injected", mode="sidecar", injected=["app"],
         warnings=["envFrom (secret app-secrets, configMap aws-env)"]),
    case("token expiration below 600", "invalid-token-expiration.json", "refused",
         message='annotation credagent.io/token-expiration: "300" is not accepted'),
    case("memory limit not a quantity", "invalid-quantity.json", "refused",
         message="annotation credagent.io/sidecar-memory-limit"),
    case("a container declares the admin port", "port-conflict.json", "refused", message="port 9464"),
    # The POST exchange: the webhook's --key-lifetime, the Pod's credagent.io/key-lifetime over it.
    case("key lifetime and attributes from the flags", "bare-pod.json", "injected", mode="sidecar",
         injected=["app"], flags=KEYS, key_lifetime="1h", warnings=[]),
    case("key lifetime annotation over the flag", "key-lifetime.json", "injected", mode="sidecar",
         injected=["app"], flags=KEYS, key_lifetime="1h30m"),
    case("key lifetime annotation, no flag: the POST for this Pod", "key-lifetime.json", "injected",
         mode="sidecar", injected=["app"], flags=["--key-attribute", "cluster=prod-1"], key_lifetime="1h30m"),
    case("key lifetime off: the GET for this Pod", "key-lifetime-off.json", "injected", mode="sidecar",
         injected=["app"], flags=KEYS, key_lifetime=None),
    case("key lifetime annotation in node mode (ignored)", "key-lifetime-node-mode.json", "injected",
         mode="node", injected=["app"], flags=KEYS, warnings=["credagent.io/key-lifetime ignored"]),
    case("key lifetime below 15m", "invalid-key-lifetime.json", "refused",
         message='annotation credagent.io/key-lifetime: "5m" is not accepted: a key lifetime from 15m to 12h'),
    case("key lifetime with an exchange URL the POST cannot use", "key-lifetime.json", "refused",
         upstream=["--exchange-url", "https://api.example.com/credentials"], message='only "off"'),
    case("UPDATE", "update.json", "not_pod_create"),
    case("a Deployment", "deployment.json", "not_pod_create"),
    case("pods/binding", "pod-binding.json", "not_pod_create"),
]


def already_injected(admission):
    """bare-pod.json after a first pass through the Rust code, defaulted for the next webhook call."""
    import jsonpatch

    first = fixtures()["bare-pod.json"]
    out = subprocess.run([admission, "-", "--", *BASE_FLAGS, *UPSTREAM], input=json.dumps(first),
                         capture_output=True, text=True, check=True)
    patch = json.loads(base64.b64decode(json.loads(out.stdout)["response"]["patch"]))
    patched = default_pod(jsonpatch.apply_patch(first["request"]["object"], patch))
    return review(patched, namespace="team-a")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--admission", help="the example binary, to regenerate already-injected.json")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    files = fixtures()
    if a.admission:
        files["already-injected.json"] = already_injected(a.admission)
    elif not (OUT / "already-injected.json").exists():
        sys.exit("already-injected.json is missing: run with --admission target/debug/examples/admission")
    for name, body in files.items():
        (OUT / name).write_text(json.dumps(body, indent=2) + "\n")
    cases = {"flags": BASE_FLAGS, "upstream": UPSTREAM, "cases": CASES}
    (OUT / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")
    print(f"wrote {len(files)} fixtures and {len(CASES)} cases to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
