#!/usr/bin/env python3
"""Offline checks of the deployment artefacts: manifests/, the Dockerfile, the monitoring.

Run by scripts/check-manifests.sh, which installs the tools first (a venv with
tests/manifests/requirements.txt, `npm ci` of tests/manifests/package.json) and
builds the binary. Each check prints one line, `ok` or `FAIL` (with details
below it) or `skip` (with the reason); the last line is
`manifests: N passed, M failed` and the exit status is 1 if anything failed.

Checks:
  render       every kustomization under manifests/ builds with the pinned
               kustomize and, when a kubectl with kustomize v5 is on PATH, with
               `kubectl kustomize` too, to the same objects
  validate     kubernetes-validate --strict for Kubernetes 1.29 and for the
               newest version it bundles
  crd          PodMonitor / PrometheusRule / Issuer / Certificate against the
               prometheus-operator and cert-manager models (schema and unknown
               fields); the dashboard's structure
  policy       what the issue asks of every container and Pod (non-root,
               read-only root, no escalation, capabilities, seccomp, resources,
               projected token, native sidecar and its probes, app env)
  webhook      the injection webhook's Deployment, PodDisruptionBudget, Service,
               Certificate and MutatingWebhookConfiguration agree (ports, TLS
               Secret, DNS name, caBundle source, selectors, failurePolicy)
  check-config `credagent sidecar|node|webhook --check-config` with the exact args and
               env of every credagent container; CREDAGENT_* names the binary
               knows; the sidecar's effective addresses match the apps' env
  node-live    (root only) the DaemonSet's two containers, run in a throwaway
               network namespace with exactly their UID and capabilities
  lint         yamllint, hadolint; the Dockerfile's build context loads with
               `cargo fetch --locked` (Cargo.toml, Cargo.lock, src/ alone)
  metrics      every metric and label used in the alerts and the dashboard
               exists in the /metrics of a running sidecar and node agent
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
HERE = Path(__file__).resolve().parent

AUDIENCE = "https://coreweave.com/iam"
TOKEN_EXPIRATION = 3600
LOTA = "http://cwlota.com"
NODE_ADDR = "169.254.170.23"
# credagent's defaults (docs/configuration.md; `credagent sidecar --check-config` confirms them).
DEFAULT_SIDECAR_LISTEN = "127.0.0.1:8181"
DEFAULT_ADMIN_LISTEN = "0.0.0.0:9464"
DEFAULT_AUTH_TOKEN_FILE = "/var/run/credagent/auth-token"
DEFAULT_TOKEN_FILE = "/var/run/secrets/tokens/oidc-token"

# The two documented exceptions to "runAsNonRoot, drop ALL": the node agent's
# containers run as UID 0 holding exactly one capability (docs/deploy.md,
# "Capabilities"). Keyed by (kind, name, container).
ROOT_WITH_ONE_CAP = {
    ("DaemonSet", "credagent-node", "setup-link"): {"NET_ADMIN"},
    ("DaemonSet", "credagent-node", "credagent"): {"NET_BIND_SERVICE"},
}
# Placeholders for env values Kubernetes fills in at run time.
FIELD_PLACEHOLDERS = {
    "status.hostIP": "10.0.0.10",
    "status.podIP": "10.0.0.11",
    "spec.nodeName": "node-1",
    "metadata.name": "pod-1",
    "metadata.namespace": "default",
    "spec.serviceAccountName": "default",
}
# Custom resources kubernetes-validate has no schema for, checked under `crd`
# against the operators' published models instead.
CRD_GROUPS = {"monitoring.coreos.com": "monitoring.coreos.com/v1", "cert-manager.io": "cert-manager.io/v1"}
# Labels Prometheus attaches to every series of a PodMonitor target, plus the
# ones the PodMonitors add by relabeling.
TARGET_LABELS = {"namespace", "pod", "container", "job", "instance", "endpoint", "node", "mode"}
SYNTHETIC_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    @staticmethod
    def section(title):
        print(f"\n== {title}", flush=True)

    def check(self, name, ok, details=()):
        if isinstance(details, str):
            details = [details] if details else []
        if ok:
            self.passed += 1
            print(f"  ok    {name}", flush=True)
        else:
            self.failed += 1
            print(f"  FAIL  {name}", flush=True)
        for d in details:
            print(f"          {d}", flush=True)

    def problems(self, name, problems):
        self.check(name, not problems, problems)

    def skip(self, name, why):
        self.skipped += 1
        print(f"  skip  {name}: {why}", flush=True)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], **kw)


# ---------------------------------------------------------------- rendering


def overlays():
    return sorted(p.parent for p in MANIFESTS.rglob("kustomization.yaml"))


def load_docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def kubectl_kustomize():
    """Returns (argv prefix, description) for `kubectl kustomize` if a kubectl
    with kustomize v5 (kubectl >= 1.27) is on PATH, else (None, why)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None, "no kubectl on PATH"
    p = run([kubectl, "version", "--client", "-o", "json"])
    try:
        info = json.loads(p.stdout)
    except ValueError:
        return None, f"`kubectl version` failed: {p.stderr.strip()[:200]}"
    kv = info.get("kustomizeVersion", "")
    git = info.get("clientVersion", {}).get("gitVersion", "?")
    m = re.match(r"v(\d+)", kv)
    if not m or int(m.group(1)) < 5:
        return None, f"kubectl {git} embeds kustomize {kv or 'unknown'}, older than v5"
    return [kubectl, "kustomize"], f"kubectl {git} (kustomize {kv})"


def render_all(report, tools, out_dir):
    report.section("render")
    kustomize = tools / "node_modules" / "@install-binary" / "kustomize-linux-x64" / "kustomize-linux-x64"
    v = run([kustomize, "version"]).stdout.strip()
    kz_version = re.search(r"kustomize/(v[\d.]+)", v)
    kz_desc = f"kustomize {kz_version.group(1) if kz_version else v}"
    kubectl, kubectl_desc = kubectl_kustomize()
    if kubectl is None:
        report.skip("kubectl kustomize", f"{kubectl_desc}; rendering with {kz_desc} only")
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = {}
    for d in overlays():
        name = str(d.relative_to(MANIFESTS))
        p = run([kustomize, "build", d])
        if p.returncode != 0:
            report.check(f"{name}: {kz_desc} build", False, p.stderr.strip().splitlines()[-5:])
            continue
        text = p.stdout
        docs = load_docs(text)
        report.check(f"{name}: {kz_desc} build ({len(docs)} objects)", True)
        if kubectl:
            q = run(kubectl + [d])
            if q.returncode != 0:
                report.check(f"{name}: {kubectl_desc}", False, q.stderr.strip().splitlines()[-5:])
                continue
            same = load_docs(q.stdout) == docs
            report.check(f"{name}: {kubectl_desc} renders the same objects", same,
                         [] if same else ["the two kustomize versions disagree; diff the files in " + str(out_dir)])
            if not same:
                (out_dir / (name.replace("/", "-") + ".kubectl.yaml")).write_text(q.stdout)
            text = q.stdout
            docs = load_docs(text)
        path = out_dir / (name.replace("/", "-") + ".yaml")
        path.write_text(text)
        rendered[name] = (path, docs)
    return rendered


# --------------------------------------------------------------- validation


def validate_all(report, rendered, venv_bin):
    report.section("validate (kubernetes-validate --strict)")
    from kubernetes_validate.utils import latest_version

    newest = latest_version()
    tool = venv_bin / "kubernetes-validate"
    for version in dict.fromkeys(["1.29.0", newest]):
        for name, (path, docs) in rendered.items():
            ok, passed, crd, problems = kubernetes_validate(tool, version, path, docs)
            note = f"{passed} objects" + (f"; {crd} CRD objects checked under crd" if crd else "")
            report.check(f"{name}: Kubernetes {version} ({note})", ok, problems)


def kubernetes_validate(tool, version, path, docs):
    """kubernetes-validate --strict on one rendered file of `docs`: (ok, objects passed, custom
    resources left to the crd section, problems). Its only expected warnings are those of the custom
    resources (it has no schema for them); every other object must pass."""
    p = run([tool, "--strict", "-k", version, path])
    lines = p.stdout.splitlines() + p.stderr.splitlines()
    bad = [ln for ln in lines if ln.startswith(("ERROR", "FATAL"))]
    crd = [d for d in docs if d["apiVersion"].split("/")[0] in CRD_GROUPS]
    warns = [ln for ln in lines if ln.startswith("WARN")]
    unexplained = [w for w in warns if not any(f"kind {d['kind']} " in w for d in crd)]
    passed = sum(1 for ln in lines if ln.startswith("INFO") and "passed" in ln)
    ok = p.returncode == 0 and not bad and not unexplained and passed + len(crd) == len(docs)
    return ok, passed, len(crd), bad + unexplained


def crd_check(report, rendered, tools, work):
    report.section("crd (prometheus-operator and cert-manager models) and dashboard")
    objects = [d for _, docs in rendered.values() for d in docs if d["apiVersion"].split("/")[0] in CRD_GROUPS]
    if objects:
        f = work / "crd-objects.json"
        f.write_text(json.dumps(objects))
        p = run(["node", HERE / "validate_crds.mjs", tools, f])
        results = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or len(results) != len(objects):
            report.check("validate_crds.mjs ran", False, (p.stderr or p.stdout).strip().splitlines()[-10:])
        for o, r in zip(objects, results):
            report.check(f"{r['kind']} {r['name']}: schema and fields ({o['apiVersion']})", r["ok"], r["errors"])
    for name, (_, docs) in rendered.items():
        for d in docs:
            for key, dash in dashboards_in(d):
                report.check(f"{name}: dashboard {d['metadata']['name']}/{key} structure", *dashboard_problems(dash))


def dashboards_in(doc):
    if doc.get("kind") != "ConfigMap" or "grafana_dashboard" not in doc.get("metadata", {}).get("labels", {}):
        return []
    out = []
    for key, value in (doc.get("data") or {}).items():
        out.append((key, json.loads(value)))
    return out


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []):
            yield q


def dashboard_problems(dash):
    problems = []
    for k in ("uid", "title", "panels", "schemaVersion"):
        if k not in dash:
            problems.append(f"missing {k}")
    ids = [p.get("id") for p in all_panels(dash)]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    for p in all_panels(dash):
        g = p.get("gridPos", {})
        if not all(k in g for k in ("h", "w", "x", "y")) or g["x"] + g["w"] > 24:
            problems.append(f"panel {p.get('title')!r}: bad gridPos {g}")
        if p.get("type") != "row":
            if not p.get("targets"):
                problems.append(f"panel {p.get('title')!r}: no targets")
            for t in p.get("targets", []):
                if not t.get("expr") or not t.get("refId"):
                    problems.append(f"panel {p.get('title')!r}: target without expr/refId")
    return not problems, problems


# ------------------------------------------------------------------- policy


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec", {})
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec.get("template", {}).get("spec")
    return None


def workloads(rendered):
    for overlay, (_, docs) in rendered.items():
        configmaps = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
                      for d in docs if d.get("kind") == "ConfigMap"}
        for d in docs:
            spec = pod_spec(d)
            if spec is not None:
                yield overlay, d, spec, configmaps


def containers(spec):
    for c in spec.get("initContainers", []) or []:
        yield "initContainers", c
    for c in spec.get("containers", []) or []:
        yield "containers", c


def is_credagent(c):
    repo = c.get("image", "").split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return repo == "credagent"


def expand(value, env):
    # Kubernetes' $(VAR) expansion; $$ escapes; unknown references stay as they are.
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def container_env(c, namespace, configmaps):
    """The container's environment as Kubernetes would build it. Returns
    (env, placeholders, problems): placeholders names the variables whose value
    only exists at run time (fieldRef, secretKeyRef, ...)."""
    env, placeholders, problems = {}, [], []
    for ef in c.get("envFrom", []) or []:
        prefix = ef.get("prefix", "")
        if "configMapRef" in ef:
            ref = ef["configMapRef"]
            cm = configmaps.get((namespace, ref["name"]))
            if cm is None:
                if not ref.get("optional"):
                    problems.append(f"envFrom configMap {ref['name']} is not in the overlay")
                continue
            for k, v in (cm.get("data") or {}).items():
                env[prefix + k] = v
        elif "secretRef" in ef:
            problems.append(f"envFrom secret {ef['secretRef'].get('name')}: cannot be resolved offline")
    for e in c.get("env", []) or []:
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                cm = configmaps.get((namespace, ref["name"]))
                if cm is not None and ref["key"] in (cm.get("data") or {}):
                    env[name] = cm["data"][ref["key"]]
                    continue
                if not ref.get("optional"):
                    problems.append(f"env {name}: configMap key {ref['name']}/{ref['key']} is not in the overlay")
                continue
            if "fieldRef" in vf:
                env[name] = FIELD_PLACEHOLDERS.get(vf["fieldRef"]["fieldPath"], "placeholder")
            else:
                env[name] = "placeholder"
            placeholders.append(name)
        else:
            env[name] = ""
    return env, placeholders, problems


def effective(c, spec, key):
    sc = c.get("securityContext") or {}
    if key in sc:
        return sc[key]
    return (spec.get("securityContext") or {}).get(key)


QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
         "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def quantity(q):
    m = QUANTITY.match(str(q))
    return float(m.group(1)) * SCALE[m.group(2)] if m else None


def container_problems(kind, name, c, spec):
    problems = []
    exception = ROOT_WITH_ONE_CAP.get((kind, name, c["name"]))
    sc = c.get("securityContext") or {}
    non_root = effective(c, spec, "runAsNonRoot")
    uid = effective(c, spec, "runAsUser")
    if exception:
        if not (uid == 0 and non_root is False):
            problems.append("documented exception: must state runAsUser: 0 and runAsNonRoot: false")
    else:
        if non_root is not True:
            problems.append("runAsNonRoot is not true")
        if uid in (None, 0):
            problems.append("runAsUser must be a non-zero UID (the image's own user may be root)")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        problems.append("privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append("capabilities.drop lacks ALL")
    added = set(caps.get("add") or [])
    allowed = exception or set()
    if added != allowed:
        problems.append(f"capabilities.add is {sorted(added)}, expected {sorted(allowed)}")
    seccomp = effective(c, spec, "seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                problems.append(f"resources.{part}.{r} missing")
            elif quantity(res[part][r]) is None:
                problems.append(f"resources.{part}.{r}: cannot parse {res[part][r]!r}")
    for r in ("cpu", "memory"):
        req, lim = (res.get("requests") or {}).get(r), (res.get("limits") or {}).get(r)
        if req and lim and quantity(req) and quantity(lim) and quantity(req) > quantity(lim):
            problems.append(f"resources: {r} request {req} above limit {lim}")
    return problems


def token_volumes(spec):
    out = {}
    for v in spec.get("volumes", []) or []:
        for s in (v.get("projected") or {}).get("sources", []) or []:
            if "serviceAccountToken" in s:
                out[v["name"]] = s["serviceAccountToken"]
    return out


def mount_for(c, path):
    """The volume mount of container c that holds file `path`, if any."""
    best = None
    for m in c.get("volumeMounts", []) or []:
        mp = m["mountPath"].rstrip("/")
        if path.startswith(mp + "/") and (best is None or len(mp) > len(best["mountPath"].rstrip("/"))):
            best = m
    return best


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def probe_problems(c, probe, path):
    p = c.get(probe)
    if not p:
        return [f"no {probe}"]
    get = p.get("httpGet") or {}
    problems = []
    if get.get("path") != path:
        problems.append(f"{probe} path is {get.get('path')!r}, expected {path}")
    port = get.get("port")
    names = {q.get("name"): q.get("containerPort") for q in c.get("ports", []) or []}
    if isinstance(port, str) and port not in names:
        problems.append(f"{probe} port {port!r} names no container port")
    return problems


def aws_problems(c, env, spec, configmaps, namespace, sidecar=None):
    """`sidecar` is (the sidecar container, its env), if there is one: an
    AWS_CONFIG_FILE it writes with --credential-process-dir is checked
    through the sidecar's flags instead of a ConfigMap."""
    problems = []
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        if k in env:
            problems.append(f"{k} is set: it outranks the container credentials provider")
    if not env.get("AWS_DEFAULT_REGION"):
        problems.append("AWS_DEFAULT_REGION is not set")
    if env.get("AWS_ENDPOINT_URL_S3") != LOTA:
        problems.append(f"AWS_ENDPOINT_URL_S3 is {env.get('AWS_ENDPOINT_URL_S3')!r}, expected {LOTA} (LOTA inside CKS)")
    cfg = env.get("AWS_CONFIG_FILE")
    if not cfg:
        problems.append("AWS_CONFIG_FILE is not set (virtual addressing)")
        return problems
    m = mount_for(c, cfg)
    vols = {v["name"]: v for v in spec.get("volumes", []) or []}
    if sidecar and sidecar[1].get("CREDAGENT_CREDENTIAL_PROCESS_DIR"):
        sc, senv = sidecar
        pdir = senv["CREDAGENT_CREDENTIAL_PROCESS_DIR"].rstrip("/")
        if cfg == pdir + "/aws-config":
            sm = mount_for(sc, cfg)
            if not m or not sm or m["name"] != sm["name"] or m["mountPath"] != sm["mountPath"]:
                problems.append(f"{pdir} is not on a volume shared with the sidecar at the same path")
            elif m.get("readOnly") is not True:
                problems.append(f"{pdir} should be mounted readOnly in apps")
            if not (vols.get(sm["name"] if sm else "") or {}).get("emptyDir"):
                problems.append(f"{pdir} is not an emptyDir (the sidecar writes a ~7 MB binary copy there)")
            if senv.get("CREDAGENT_S3_ADDRESSING_STYLE") != "virtual":
                problems.append("the credential-process profile has no s3 addressing_style = virtual "
                                "(CREDAGENT_S3_ADDRESSING_STYLE)")
            if senv.get("CREDAGENT_ENDPOINT_URL") != LOTA:
                problems.append(f"the credential-process profile's endpoint is "
                                f"{senv.get('CREDAGENT_ENDPOINT_URL')!r}, expected {LOTA}")
            return problems
    cm_name = ((vols.get(m["name"]) or {}).get("configMap") or {}).get("name") if m else None
    if not cm_name:
        problems.append(f"AWS_CONFIG_FILE {cfg} is not in a mounted ConfigMap")
        return problems
    cm = configmaps.get((namespace, cm_name))
    key = m.get("subPath") or cfg[len(m["mountPath"].rstrip("/")) + 1:]
    text = ((cm or {}).get("data") or {}).get(key, "")
    if not re.search(r"^\s*addressing_style\s*=\s*virtual\s*$", text, re.M):
        problems.append(f"the AWS config {cm_name}/{key} does not set s3 addressing_style = virtual")
    return problems


def needs_api_token(spec, namespace, configmaps):
    """The one documented user of the Kubernetes API: the webhook with CoreWeave
    compatibility (it watches ServiceAccounts)."""
    for _, c in containers(spec):
        if is_credagent(c) and (c.get("args") or [None])[0] == "webhook":
            env, _, _ = container_env(c, namespace, configmaps)
            if env.get("CREDAGENT_COREWEAVE_COMPAT", "").lower() in ("true", "1", "yes", "on") \
                    or "--coreweave-compat" in (c.get("args") or []):
                return True
    return False


def policy(report, rendered):
    report.section("policy")
    for overlay, doc, spec, configmaps in workloads(rendered):
        kind, name = doc["kind"], doc["metadata"]["name"]
        ns = doc["metadata"].get("namespace", "default")
        where = f"{overlay}: {kind} {name}"
        # Every container.
        for _, c in containers(spec):
            report.problems(f"{where}/{c['name']}: securityContext and resources",
                            container_problems(kind, name, c, spec))
        # The Pod.
        pod_problems = []
        if spec.get("automountServiceAccountToken") is not False and not needs_api_token(spec, ns, configmaps):
            pod_problems.append("automountServiceAccountToken is not false (no API token is needed)")
        tvols = token_volumes(spec)
        for vname, t in tvols.items():
            if t.get("audience") != AUDIENCE:
                pod_problems.append(f"token volume {vname}: audience {t.get('audience')!r}, expected {AUDIENCE}")
            if t.get("expirationSeconds") != TOKEN_EXPIRATION:
                pod_problems.append(f"token volume {vname}: expirationSeconds {t.get('expirationSeconds')}, "
                                    f"expected {TOKEN_EXPIRATION}")
        for _, c in containers(spec):
            for m in c.get("volumeMounts", []) or []:
                if m["name"] in tvols and m.get("subPath"):
                    pod_problems.append(f"{c['name']}: token volume mounted with subPath (kubelet never updates it)")
        sidecars = [c for _, c in containers(spec) if is_credagent(c) and (c.get("args") or [None])[0] == "sidecar"]
        agent = [c for _, c in containers(spec) if is_credagent(c) and (c.get("args") or [None])[0] == "node"]
        apps = [c for _, c in containers(spec) if not is_credagent(c)]
        report.problems(f"{where}: Pod (service-account token, projected token volume)", pod_problems)

        # credagent containers.
        for c in sidecars + agent:
            env, _, env_problems = container_env(c, ns, configmaps)
            problems = list(env_problems)
            mode = c["args"][0]
            if mode == "sidecar":
                if c not in (spec.get("initContainers") or []) or c.get("restartPolicy") != "Always":
                    problems.append("not a native sidecar (an init container with restartPolicy: Always)")
                problems += probe_problems(c, "startupProbe", "/readyz")
                token = env.get("CREDAGENT_TOKEN_FILE", DEFAULT_TOKEN_FILE)
                m = mount_for(c, token)
                if not m or m["name"] not in tvols or m.get("subPath"):
                    problems.append(f"token file {token} is not in a directory mount of a projected token volume")
                elif tvols[m["name"]].get("path") != token[len(m["mountPath"].rstrip("/")) + 1:]:
                    problems.append(f"token file {token} is not the volume's path {tvols[m['name']].get('path')!r}")
            if c.get("args", [None])[1:2] == ["setup-link"]:
                continue
            if mode == "sidecar":
                # Readiness after start must not follow the upstream: an outage
                # would pull the whole Pod out of its Services while the last
                # good credentials are still served. The startupProbe gates
                # the app's start instead (docs/deploy.md, "Health probes").
                rp = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
                if rp == "/readyz":
                    problems.append("readinessProbe on /readyz: an upstream outage would make the app's Pod unready")
            else:
                problems += probe_problems(c, "readinessProbe", "/readyz")
            admin = env.get("CREDAGENT_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN)
            ports = {q.get("name"): q.get("containerPort") for q in c.get("ports", []) or []}
            if ports.get("credagent-admin") != port_of(admin):
                problems.append(f"container port credagent-admin is {ports.get('credagent-admin')}, "
                                f"but CREDAGENT_ADMIN_LISTEN is {admin}")
            report.problems(f"{where}/{c['name']}: credagent {mode} (probes, admin port, token mount)", problems)

        if kind == "DaemonSet" and agent:
            problems = []
            if spec.get("hostNetwork") is not True:
                problems.append("hostNetwork is not true")
            if spec.get("dnsPolicy") != "ClusterFirstWithHostNet":
                problems.append("dnsPolicy is not ClusterFirstWithHostNet")
            if spec.get("priorityClassName") != "system-node-critical":
                problems.append("priorityClassName is not system-node-critical")
            if not spec.get("tolerations"):
                problems.append("no tolerations")
            us = doc["spec"].get("updateStrategy") or {}
            ru = us.get("rollingUpdate") or {}
            if us.get("type") != "RollingUpdate" or "maxUnavailable" not in ru:
                problems.append("updateStrategy is not RollingUpdate with maxUnavailable")
            if str(ru.get("maxSurge", 0)) not in ("0", "0%"):
                problems.append("maxSurge must be 0 (two Pods cannot bind the node addresses)")
            inits = [c for c in spec.get("initContainers") or [] if is_credagent(c)]
            if [c.get("args") for c in inits] != [["node", "setup-link"]]:
                problems.append("the init container must run `node setup-link`")
            report.problems(f"{where}: node DaemonSet (hostNetwork, DNS, priority, tolerations, rollout)", problems)

        # App containers.
        for c in apps:
            env, _, problems = container_env(c, ns, configmaps)
            uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
            token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "")
            if sidecars:
                senv, _, _ = container_env(sidecars[0], ns, configmaps)
                listen = senv.get("CREDAGENT_LISTEN", DEFAULT_SIDECAR_LISTEN)
                auth = senv.get("CREDAGENT_AUTH_TOKEN_FILE", DEFAULT_AUTH_TOKEN_FILE)
                if uri != f"http://{listen}/v1/credentials":
                    problems.append(f"AWS_CONTAINER_CREDENTIALS_FULL_URI is {uri!r}, "
                                    f"expected http://{listen}/v1/credentials")
                if token != auth:
                    problems.append(f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is {token!r}, expected {auth}")
                am, sm = mount_for(c, auth), mount_for(sidecars[0], auth)
                if not am or not sm or am["name"] != sm["name"] or am["mountPath"] != sm["mountPath"]:
                    problems.append(f"{auth} is not on a volume shared with the sidecar at the same path")
                elif am.get("readOnly") is not True:
                    problems.append("the auth token volume should be mounted readOnly in apps")
                if any(m["name"] in tvols for m in c.get("volumeMounts", []) or []):
                    problems.append("the app mounts the projected token: in sidecar mode only credagent needs it")
            elif uri.startswith(f"http://{NODE_ADDR}"):
                if uri != f"http://{NODE_ADDR}/v1/credentials":
                    problems.append(f"AWS_CONTAINER_CREDENTIALS_FULL_URI is {uri!r}")
                m = mount_for(c, token)
                if not m or m["name"] not in tvols or m.get("subPath"):
                    problems.append(f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {token!r} is not in a directory "
                                    "mount of a projected token volume")
                if NODE_ADDR not in env.get("NO_PROXY", ""):
                    problems.append(f"NO_PROXY does not list {NODE_ADDR}")
            else:
                continue
            if sidecars and "AWS_CONTAINER_AUTHORIZATION_TOKEN" in {e["name"] for e in c.get("env", []) or []}:
                # The variable can only be the sidecar's token if both come
                # from one Secret: the sidecar's file is that Secret's key.
                ref = next(e for e in c["env"] if e["name"] == "AWS_CONTAINER_AUTHORIZATION_TOKEN")
                sref = ((ref.get("valueFrom") or {}).get("secretKeyRef")) or {}
                sm = mount_for(sidecars[0], auth)
                vol = ({v["name"]: v for v in spec.get("volumes", []) or []}.get(sm["name"]) or {}) if sm else {}
                secret = (vol.get("secret") or {}).get("secretName")
                key = auth[len(sm["mountPath"].rstrip("/")) + 1:] if sm else None
                if not sref or sref.get("name") != secret or sref.get("key") != key:
                    problems.append("AWS_CONTAINER_AUTHORIZATION_TOKEN is not the Secret key the sidecar's "
                                    f"auth token file {auth} is mounted from")
            problems += aws_problems(c, env, spec, configmaps, ns,
                                     (sidecars[0], container_env(sidecars[0], ns, configmaps)[0]) if sidecars else None)
            report.problems(f"{where}/{c['name']}: app env (credentials endpoint, token, region, LOTA, addressing)",
                            problems)


# ------------------------------------------------------------------ webhook

WEBHOOK_LISTEN = "0.0.0.0:8443"
WEBHOOK_TLS_DIR = "/etc/credagent/tls"
INJECT_LABEL = "credagent.io/inject"


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def webhook_check(report, rendered):
    """The injection webhook's objects agree with each other and with the
    choices docs/webhook.md argues for."""
    report.section("webhook (Deployment, Service, certificate, MutatingWebhookConfiguration agree)")
    for overlay, (_, docs) in rendered.items():
        kind = lambda k: [d for d in docs if d.get("kind") == k]  # noqa: E731
        configmaps = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
                      for d in kind("ConfigMap")}
        for dep in kind("Deployment"):
            spec = pod_spec(dep)
            hooks = [c for _, c in containers(spec) if is_credagent(c) and (c.get("args") or [None])[0] == "webhook"]
            if not hooks:
                continue
            c, ns, name = hooks[0], dep["metadata"].get("namespace", "default"), dep["metadata"]["name"]
            where = f"{overlay}: Deployment {name}"
            env, _, _ = container_env(c, ns, configmaps)
            pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
            compat = needs_api_token(spec, ns, configmaps)

            problems = []
            replicas = dep["spec"].get("replicas", 1)
            if replicas < 2:
                problems.append(f"replicas is {replicas}: with failurePolicy Fail one replica is a single point of failure")
            ru = (dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}
            if str(ru.get("maxUnavailable", "25%")) not in ("0", "0%"):
                problems.append("rollingUpdate.maxUnavailable is not 0")
            anti = (spec.get("affinity") or {}).get("podAntiAffinity")
            if not spec.get("topologySpreadConstraints") and not anti:
                problems.append("neither topologySpreadConstraints nor podAntiAffinity: both replicas may share a node")
            pdbs = [p for p in kind("PodDisruptionBudget") if p["metadata"].get("namespace") == ns
                    and selects(p["spec"].get("selector", {}).get("matchLabels"), pod_labels)]
            if not any(1 <= int(p["spec"].get("minAvailable", 0)) < replicas for p in pdbs):
                problems.append("no PodDisruptionBudget with 1 <= minAvailable < replicas selects its Pods")
            report.problems(f"{where}: 2+ replicas, spread over nodes, maxUnavailable 0, PodDisruptionBudget", problems)

            problems = probe_problems(c, "readinessProbe", "/readyz") + probe_problems(c, "livenessProbe", "/healthz")
            ports = {q.get("name"): q.get("containerPort") for q in c.get("ports", []) or []}
            admin = env.get("CREDAGENT_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN)
            listen = env.get("CREDAGENT_LISTEN", WEBHOOK_LISTEN)
            if ports.get("credagent-admin") != port_of(admin):
                problems.append(f"container port credagent-admin is {ports.get('credagent-admin')}, admin listener {admin}")
            if ports.get("https") != port_of(listen):
                problems.append(f"container port https is {ports.get('https')}, listener {listen}")
            if env.get("CREDAGENT_SIDECAR_IMAGE") != c.get("image"):
                problems.append(f"CREDAGENT_SIDECAR_IMAGE {env.get('CREDAGENT_SIDECAR_IMAGE')!r} is not the "
                                f"webhook's own image {c.get('image')!r}")
            pull = env.get("CREDAGENT_IMAGE_PULL_POLICY", "IfNotPresent")  # the webhook's default
            if c.get("imagePullPolicy") and pull != c["imagePullPolicy"]:
                problems.append(f"CREDAGENT_IMAGE_PULL_POLICY {pull!r} is not the webhook's own imagePullPolicy "
                                f"{c['imagePullPolicy']!r}")
            report.problems(f"{where}/{c['name']}: probes, ports, injected image = its own image, pulled the same way",
                            problems)

            problems = []
            cert_file = env.get("CREDAGENT_TLS_CERT_FILE", WEBHOOK_TLS_DIR + "/tls.crt")
            key_file = env.get("CREDAGENT_TLS_KEY_FILE", WEBHOOK_TLS_DIR + "/tls.key")
            vols = {v["name"]: v for v in spec.get("volumes", []) or []}
            secret = None
            for f in (cert_file, key_file):
                m = mount_for(c, f)
                if not m or m.get("subPath") or "secret" not in vols.get(m["name"], {}):
                    problems.append(f"{f} is not in a directory mount of a Secret (a subPath is never updated)")
                    continue
                secret = vols[m["name"]]["secret"]["secretName"]
            certs = [d for d in kind("Certificate") if d["metadata"].get("namespace") == ns
                     and d["spec"].get("secretName") == secret]
            if secret and not certs:
                problems.append(f"no cert-manager Certificate writes the Secret {secret}")
            services = [d for d in kind("Service") if d["metadata"].get("namespace") == ns
                        and selects(d["spec"].get("selector"), pod_labels)]
            svc = services[0] if services else None
            if not svc:
                problems.append("no Service selects its Pods")
            else:
                p443 = [p for p in svc["spec"]["ports"] if p["port"] == 443]
                if not p443 or p443[0].get("targetPort") not in ("https", port_of(listen)):
                    problems.append("the Service has no port 443 to the https container port")
                want = f"{svc['metadata']['name']}.{ns}.svc"
                for cert in certs:
                    if want not in cert["spec"].get("dnsNames", []):
                        problems.append(f"Certificate {cert['metadata']['name']} does not name {want}")
            report.problems(f"{where}: TLS Secret mounted as a directory, issued by a Certificate for the Service", problems)

            for mwc in kind("MutatingWebhookConfiguration"):
                problems = []
                ann = mwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
                if ann not in [f"{ns}/{cert['metadata']['name']}" for cert in certs]:
                    problems.append(f"cert-manager.io/inject-ca-from is {ann!r}, not {ns}/<the serving Certificate>")
                unlabelled = namespace_entries = 0
                for w in mwc.get("webhooks", []):
                    wn = w.get("name")
                    ref = (w.get("clientConfig") or {}).get("service") or {}
                    if svc and (ref.get("name"), ref.get("namespace")) != (svc["metadata"]["name"], ns):
                        problems.append(f"{wn}: clientConfig.service is not {ns}/{svc['metadata']['name']}")
                    # The namespace entry selects labelled namespaces and says so by its path: the
                    # API server never sends a namespace's labels.
                    ns_labelled = ((w.get("namespaceSelector") or {}).get("matchLabels") or {}).get(INJECT_LABEL) == "true"
                    path = "/mutate/namespace" if ns_labelled else "/mutate"
                    if ref.get("path") != path or ref.get("port", 443) != 443:
                        problems.append(f"{wn}: not port 443, path {path}")
                    for key, want in (("admissionReviewVersions", ["v1"]), ("sideEffects", "None"),
                                      ("matchPolicy", "Equivalent"), ("reinvocationPolicy", "IfNeeded")):
                        if w.get(key) != want:
                            problems.append(f"{wn}: {key} is {w.get(key)!r}, expected {want!r}")
                    if not 1 <= w.get("timeoutSeconds", 10) <= 10:
                        problems.append(f"{wn}: timeoutSeconds {w.get('timeoutSeconds')} (keep it small)")
                    rules = w.get("rules", [])
                    if [(r.get("operations"), r.get("apiGroups"), r.get("resources")) for r in rules] != \
                            [(["CREATE"], [""], ["pods"])]:
                        problems.append(f"{wn}: rules are not exactly pods CREATE")
                    excluded = set()
                    for e in (w.get("namespaceSelector") or {}).get("matchExpressions", []):
                        if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn":
                            excluded |= set(e.get("values", []))
                    if not {ns, "kube-system"} <= excluded:
                        problems.append(f"{wn}: the namespaceSelector does not exclude {ns} and kube-system")
                    labelled = (w.get("objectSelector") or {}).get("matchLabels", {}).get(INJECT_LABEL) == "true"
                    no_label = {"key": INJECT_LABEL, "operator": "DoesNotExist"} in \
                        ((w.get("objectSelector") or {}).get("matchExpressions") or [])
                    if ns_labelled:
                        namespace_entries += 1
                        if labelled or not no_label:
                            problems.append(f"{wn}: the namespace entry must take only Pods without the "
                                            f"{INJECT_LABEL} label (labelled ones are the first entry's, or opted out)")
                    elif not labelled:
                        unlabelled += 1
                        if w.get("failurePolicy") != "Ignore":
                            problems.append(f"{wn}: sees Pods that did not ask for credagent, so failurePolicy "
                                            f"must be Ignore (is {w.get('failurePolicy')!r})")
                if namespace_entries != 1:
                    problems.append(f"{namespace_entries} namespace-wide entries, expected 1")
                if compat and unlabelled != 1:
                    problems.append("compat mode needs exactly one entry for Pods without the label")
                if not compat and unlabelled:
                    problems.append("an entry without the label objectSelector, but compat mode is off")
                report.problems(f"{overlay}: MutatingWebhookConfiguration {mwc['metadata']['name']} "
                                f"({len(mwc.get('webhooks', []))} entries)", problems)

            if compat:
                sa = spec.get("serviceAccountName", "default")
                roles = {r["metadata"]["name"]: r for r in kind("ClusterRole")}
                granted = set()
                for b in kind("ClusterRoleBinding"):
                    if any(s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace") == ns
                           for s in b.get("subjects", [])):
                        for r in (roles.get(b["roleRef"]["name"]) or {}).get("rules", []):
                            if "serviceaccounts" in r.get("resources", []) and r.get("apiGroups") == [""]:
                                granted |= set(r.get("verbs", []))
                writes = granted - {"get", "list", "watch"}
                report.check(f"{where}: compat mode may get, list and watch ServiceAccounts, nothing more",
                             granted >= {"get", "list", "watch"} and not writes,
                             [f"granted {sorted(granted)}"])


# ------------------------------------------------------------- check-config


def known_env_names(binary, args):
    """CREDAGENT_* names documented in --help for this subcommand (and globally)."""
    names = set()
    path = [a for a in args if not a.startswith("-")][:2]
    for cmd in ([], path[:1], path):
        out = run([binary] + cmd + ["--help"]).stdout
        names |= set(re.findall(r"\[env: (CREDAGENT_[A-Z0-9_]+)", out))
    return names


def check_config(report, rendered, binary):
    report.section("check-config (exact args and env of every credagent container)")
    node_specs = []
    for overlay, doc, spec, configmaps in workloads(rendered):
        ns = doc["metadata"].get("namespace", "default")
        for field, c in containers(spec):
            if not is_credagent(c):
                continue
            where = f"{overlay}: {doc['kind']} {doc['metadata']['name']}/{c['name']}"
            env, placeholders, problems = container_env(c, ns, configmaps)
            if c.get("command") not in (None, ["/credagent"]):
                report.check(f"{where}: command", False, f"command {c['command']} bypasses the image entrypoint")
                continue
            args = [expand(str(a), env) for a in c.get("args") or []]
            unknown = sorted(k for k in env if k.startswith("CREDAGENT_") and k not in known_env_names(binary, args))
            report.problems(f"{where}: CREDAGENT_* variables are ones credagent reads",
                            ([f"unknown: {', '.join(unknown)}"] if unknown else []) + problems)
            note = f" (placeholders for {', '.join(placeholders)})" if placeholders else ""
            if args[:2] == ["node", "setup-link"]:
                node_specs.append((doc, spec, env, configmaps))
                continue
            if args[:1] not in (["sidecar"], ["node"], ["webhook"]):
                report.skip(where, f"args {args} are not a long-running mode")
                continue
            p = run([binary] + args + ["--check-config"], env=env)
            ok = p.returncode == 0 and "configuration ok" in p.stdout
            report.check(f"{where}: credagent {' '.join(args)} --check-config{note}", ok,
                         [] if ok else [f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[:400]}"])
            if ok and args[0] == "sidecar":
                sidecar_matches_apps(report, where, p.stdout, spec, c, ns, configmaps)
    return node_specs


def sidecar_matches_apps(report, where, printed, spec, sidecar, ns, configmaps):
    """The sidecar's effective addresses (as --check-config prints them) are the
    ones the app containers are configured with."""
    listen = re.search(r"\blisten: ([0-9a-fA-F.:\[\]]+)", printed)
    auth = re.search(r'\bauth_token_file: "([^"]+)"', printed)
    if not listen or not auth:
        report.skip(f"{where}: effective addresses", "--check-config output format not recognised")
        return
    problems = []
    for _, c in containers(spec):
        if is_credagent(c):
            continue
        env, _, _ = container_env(c, ns, configmaps)
        if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") != f"http://{listen.group(1)}/v1/credentials":
            problems.append(f"{c['name']}: AWS_CONTAINER_CREDENTIALS_FULL_URI is not http://{listen.group(1)}/...")
        if env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") != auth.group(1):
            problems.append(f"{c['name']}: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is not {auth.group(1)}")
    report.problems(f"{where}: the apps use the sidecar's effective listen address ({listen.group(1)}) "
                    f"and auth token file ({auth.group(1)})", problems)


# ---------------------------------------------------------------- node-live


def setpriv_argv(c, spec):
    sc = c.get("securityContext") or {}
    uid = effective(c, spec, "runAsUser")
    gid = effective(c, spec, "runAsGroup")
    uid = 65532 if uid is None else uid  # the image's USER
    gid = 65532 if gid is None else gid
    caps = ",".join("+" + x.lower() for x in sorted((sc.get("capabilities") or {}).get("add") or []))
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all" + ("," + caps if caps else "")]
    if sc.get("allowPrivilegeEscalation") is False:
        argv.append("--no-new-privs")
    return argv


def node_live(report, node_specs, binary, python):
    report.section("node-live (the DaemonSet's containers with exactly their UID and capabilities)")
    if not node_specs:
        return
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        report.skip("node-live", "needs root, unshare and setpriv (util-linux)")
        return
    for doc, spec, _, configmaps in node_specs:
        ns = doc["metadata"].get("namespace", "default")
        where = f"DaemonSet {doc['metadata']['name']}"
        init = [c for c in spec.get("initContainers") or [] if is_credagent(c)][0]
        main = [c for c in spec.get("containers") or [] if is_credagent(c)][0]
        ienv, _, _ = container_env(init, ns, configmaps)
        menv, _, _ = container_env(main, ns, configmaps)
        plan = {
            "binary": str(binary),
            "init": {"argv": setpriv_argv(init, spec) + ["--", str(binary)] + init["args"], "env": ienv},
            "main": {"argv": setpriv_argv(main, spec) + ["--", str(binary)] + main["args"], "env": menv},
            "admin": port_of(menv.get("CREDAGENT_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN)),
        }
        # The same main container as a non-root user: the reason for UID 0.
        nonroot = dict(main, securityContext=dict(main["securityContext"], runAsUser=65532, runAsGroup=65532))
        plan["nonroot"] = {"argv": setpriv_argv(nonroot, spec) + ["--", str(binary)] + main["args"], "env": menv}
        p = run(["unshare", "--net", python, __file__, "--node-live-inner", json.dumps(plan)], timeout=60)
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            report.check(f"{where}: node-live", False, (p.stderr or p.stdout).strip().splitlines()[-10:])
            continue
        ok = res["init_rc"] == 0
        report.check(f"{where}/setup-link as UID {effective(init, spec, 'runAsUser')} with only "
                     f"{init['securityContext']['capabilities']['add']}: exit 0", ok, [] if ok else res["init_out"])
        ok = res["readyz"] == 200 and res["creds"] == 401
        report.check(f"{where}/credagent as UID {effective(main, spec, 'runAsUser')} with only "
                     f"{main['securityContext']['capabilities']['add']}: /readyz 200 on :{plan['admin']}, "
                     f"{NODE_ADDR}:80 answers (401 without a token)",
                     ok, [] if ok else res["main_out"] + [f"readyz {res['readyz']}, credentials {res['creds']}"])
        out = "\n".join(res["nonroot_out"])
        ok = res["nonroot_rc"] not in (None, 0) and "Permission denied" in out
        report.check(f"{where}/credagent as UID 65532 with the same capability cannot bind port 80 "
                     "(the reason it runs as UID 0)", ok, [] if ok else res["nonroot_out"])


def serve_local_issuer():
    """Serves an OIDC issuer's discovery document and an empty key set on
    127.0.0.1 from a thread; returns the issuer URL."""
    import http.server
    import threading

    class Issuer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_port}"
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": base, "jwks_uri": base + "/openid/v1/jwks"}
            elif self.path == "/openid/v1/jwks":
                body = {"keys": []}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Issuer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def node_live_inner(plan):
    """Runs inside `unshare --net`: a fresh network namespace, only lo."""
    import fcntl
    import struct

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0)))[1]  # SIOCGIFFLAGS
    fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP
    res = {}
    p = run(plan["init"]["argv"], env=plan["init"]["env"], timeout=20)
    res["init_rc"] = p.returncode
    res["init_out"] = (p.stdout + p.stderr).strip().splitlines()[-4:]

    def get(url):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    env = dict(plan["main"]["env"])
    if env.get("CREDAGENT_ISSUER"):
        # The manifest's issuer is a placeholder to fill in; in this network
        # namespace a local issuer (discovery and an empty key set) stands in,
        # so that verification is on, as shipped, and /readyz can pass.
        env["CREDAGENT_ISSUER"] = serve_local_issuer()
    main = subprocess.Popen(plan["main"]["argv"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 10
    res["readyz"] = None
    while time.time() < deadline and main.poll() is None:
        res["readyz"] = get(f"http://127.0.0.1:{plan['admin']}/readyz")
        if res["readyz"] == 200:
            break
        time.sleep(0.1)
    res["creds"] = get(f"http://{NODE_ADDR}/v1/credentials")
    main.terminate()
    try:
        out, _ = main.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        main.kill()
        out, _ = main.communicate()
    res["main_out"] = out.strip().splitlines()[-3:] if res["readyz"] != 200 else []
    p = run(plan["nonroot"]["argv"], env=plan["nonroot"]["env"], timeout=10)
    res["nonroot_rc"] = p.returncode
    res["nonroot_out"] = (p.stdout + p.stderr).strip().splitlines()[-3:]
    print(json.dumps(res))


# -------------------------------------------------------------------- lint


def lint(report, venv_bin):
    report.section("lint")
    config = MANIFESTS / ".yamllint.yaml"
    files = sorted(str(p) for base in (MANIFESTS, HERE) for p in base.rglob("*") if p.suffix in (".yaml", ".yml"))
    p = run([venv_bin / "yamllint", "-c", config, "-f", "parsable"] + files)
    report.check(f"yamllint ({len(files)} files, {config.relative_to(ROOT)})", p.returncode == 0,
                 p.stdout.strip().splitlines())
    p = run([venv_bin / "hadolint", ROOT / "Dockerfile"])
    report.check("hadolint Dockerfile", p.returncode == 0, (p.stdout + p.stderr).strip().splitlines())
    docker_context(report)


def docker_context(report):
    """The image builds from the few paths the Dockerfile copies from the build
    context: they must pass .dockerignore, and cargo must load the package from
    them alone with the lockfile as it is (`--locked`), e.g. no target that
    Cargo.toml declares may live outside them."""
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w.rstrip("/") for w in words[1:-1] if not w.startswith("--")]
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    problems = [f"{src} is excluded by .dockerignore" for src in sources
                if "*" in ignore and f"!{src}" not in ignore and f"!{src}/" not in ignore]
    with tempfile.TemporaryDirectory(prefix="docker-context-") as tmp:
        for src in sources:
            (Path(tmp) / src).parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (ROOT / src).is_dir() else shutil.copy2)(ROOT / src, Path(tmp) / src)
        p = run(["cargo", "fetch", "--locked", "--manifest-path", Path(tmp) / "Cargo.toml"])
        if p.returncode != 0:
            problems += p.stderr.strip().splitlines()[-6:]
        # What the image's build compiles: the product without its default
        # `demo` feature, so the test kit (the stand-in) must not be in it.
        p = run(["cargo", "tree", "--locked", "--offline", "--manifest-path", Path(tmp) / "Cargo.toml",
                 "-p", "credagent", "--no-default-features", "-e", "normal,build", "--prefix", "none"])
        if p.returncode != 0:
            problems += p.stderr.strip().splitlines()[-6:]
        elif "credagent-testkit" in p.stdout:
            problems.append("the image's build (--no-default-features) still depends on credagent-testkit")
    report.problems(f"Dockerfile build context ({', '.join(sources)}): passes .dockerignore, "
                    "`cargo fetch --locked` loads it, the image's build has no test kit", problems)


# ----------------------------------------------------------------- metrics


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, method="GET", body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(url, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if http(url)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text, series):
    """series: sample name -> {label name -> set of values}."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = series.setdefault(m.group(1), {})
        for k, v in LABEL.findall(m.group(3) or ""):
            labels.setdefault(k, set()).add(v)


def exercise_agents(binary, work):
    """Runs a stand-in upstream, a sidecar and a node agent; drives traffic that
    produces the label values the alerts use; returns the merged scrape."""
    procs = []
    series = {}
    try:
        addr_file = work / "standin.addr"
        procs.append(subprocess.Popen(
            [Path(binary).with_name("credagent-standin"), "--listen", "127.0.0.1:0", "--access-key", "AKCHECK", "--secret-key", "SKCHECK",
             "--audience", AUDIENCE, "--addr-file", addr_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 15
        while not addr_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        standin = "http://" + addr_file.read_text().strip()
        exchange = standin + "/v1/cwobject/temporary-credentials/oidc/standin-org"

        def mint(sa, audience=AUDIENCE):
            return http(standin + "/_standin/token", "POST", json.dumps(
                {"namespace": "default", "service_account": sa, "audience": audience,
                 "lifetime_secs": 3600}).encode())[1]

        def fault(body):
            http(standin + "/_standin/fault", "POST", json.dumps(body).encode())

        # Sidecar.
        tokdir = work / "tokens"
        tokdir.mkdir()
        (tokdir / "oidc-token").write_text(mint("app"))
        listen, admin = free_port(), free_port()
        auth = work / "auth-token"
        procs.append(subprocess.Popen(
            [binary, "sidecar", "--exchange-url", exchange, "--token-file", tokdir / "oidc-token",
             "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}", "--auth-token-file", auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_for(f"http://127.0.0.1:{admin}/readyz"):
            raise RuntimeError("the sidecar did not become ready")
        http(f"http://127.0.0.1:{listen}/v1/credentials", headers={"Authorization": auth.read_text().strip()})
        http(f"http://127.0.0.1:{listen}/v1/credentials")
        http(f"http://127.0.0.1:{admin}/healthz")
        status, text = http(f"http://127.0.0.1:{admin}/metrics")
        parse_exposition(text, series)

        # Node agent, with a tiny cache so that an LRU eviction happens.
        nlisten, nadmin = free_port(), free_port()
        procs.append(subprocess.Popen(
            [binary, "node", "--exchange-url", exchange, "--listen", f"127.0.0.1:{nlisten}",
             "--admin-listen", f"127.0.0.1:{nadmin}", "--max-identities", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_for(f"http://127.0.0.1:{nadmin}/readyz"):
            raise RuntimeError("the node agent did not become ready")
        url = f"http://127.0.0.1:{nlisten}/v1/credentials"
        hot = mint("node-0")
        for t in (hot, hot, mint("node-1"), mint("node-2")):  # ok, hit, then an LRU eviction
            http(url, headers={"Authorization": t})
        http(url)  # missing_token
        http(url, headers={"Authorization": "not-a-jwt"})  # malformed_token
        http(url, headers={"Authorization": mint("node-3", "https://wrong.example")})  # auth_rejected
        fault({"throttle_retry_after": "1"})
        http(url, headers={"Authorization": mint("node-4")})  # throttled
        fault({"status": 503})
        http(url, headers={"Authorization": mint("node-5")})  # upstream_error
        fault({"clear": True})
        # Short-lived credentials for one more identity, so that it is refreshed
        # ahead of expiry (at a quarter to a half of its lifetime) while we wait.
        http(standin + "/_standin/lifetime", "POST", json.dumps({"secs": 8}).encode())
        http(url, headers={"Authorization": mint("node-6")})
        deadline = time.time() + 15
        while True:
            status, text = http(f"http://127.0.0.1:{nadmin}/metrics")
            # Four fills succeeded; a fifth success is node-6's refresh ahead.
            ok = re.search(r'^credagent_refreshes_total\{result="ok"\} (\d+)', text, re.M)
            if (ok and int(ok.group(1)) >= 5) or time.time() > deadline:
                break
            time.sleep(0.5)
        parse_exposition(text, series)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return series


GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")


def promql_sources(rendered):
    for overlay, (_, docs) in rendered.items():
        for d in docs:
            if d.get("kind") == "PrometheusRule":
                for g in d["spec"]["groups"]:
                    for r in g["rules"]:
                        yield f"{overlay}: rule {r.get('alert') or r.get('record')}", str(r["expr"]), False
            for key, dash in dashboards_in(d):
                for p in all_panels(dash):
                    for t in p.get("targets", []):
                        yield f"{overlay}: panel {p.get('title')!r} {t.get('refId')}", t["expr"], True
                for v in dash.get("templating", {}).get("list", []):
                    if v.get("type") == "query":
                        q = v.get("query")
                        q = q.get("query") if isinstance(q, dict) else q
                        yield f"{overlay}: variable {v['name']}", q, True


def selectors_in(expr):
    """(vector selectors as (name, matchers), grouping label names) of a parsed expression."""
    sels, groups = [], set()

    def visit(node):
        t = type(node).__name__
        if t == "VectorSelector":  # also reached inside a MatrixSelector
            ms = [(m.name, str(m.op).split(".")[-1], m.value) for m in node.matchers.matchers]
            sels.append((node.name, ms))
        elif t == "AggregateExpr" and node.modifier is not None:
            groups.update(node.modifier.labels)
        elif t == "BinaryExpr" and node.modifier is not None:
            mod = node.modifier
            if mod.matching is not None:
                groups.update(mod.matching.labels)
            groups.update(mod.group_labels or [])
        return True

    promql_parser.walk(expr, visit, None)
    return sels, groups


def metrics_check(report, rendered, binary, work):
    report.section("metrics (every metric and label in the alerts and the dashboard exists)")
    try:
        series = exercise_agents(binary, work)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        report.check("run a sidecar and a node agent against the stand-in and scrape them", False, str(e))
        return
    names = sorted(n for n in series if n.startswith("credagent_"))
    report.check(f"scraped a sidecar and a node agent ({len(names)} credagent series names)", bool(names))
    for where, text, grafana in promql_sources(rendered):
        problems, notes = [], []
        expr_text = GRAFANA_VARS.sub("5m", text)
        label_values = re.match(r"^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)\s*$", expr_text)
        extra_groups = set()
        if label_values:
            expr_text, label = label_values.group(1), label_values.group(2)
            extra_groups.add(label)
        try:
            expr = promql_parser.parse(expr_text)
        except Exception as e:  # noqa: BLE001
            report.check(f"{where}: PromQL parses", False, f"{e}: {text!r}")
            continue
        sels, groups = selectors_in(expr)
        groups |= extra_groups
        known_labels = set(TARGET_LABELS) | {"le"}
        used = []
        for name, matchers in sels:
            if name is None:
                problems.append(f"selector without a metric name: {matchers}")
                continue
            used.append(name)
            if name in SYNTHETIC_METRICS:
                metric_labels = {}
            elif name not in series:
                problems.append(f"{name}: no such series in /metrics")
                continue
            else:
                metric_labels = series[name]
            known_labels |= set(metric_labels)
            for lname, op, value in matchers:
                if lname == "__name__":
                    continue
                if lname not in metric_labels and lname not in TARGET_LABELS:
                    problems.append(f"{name}: no label {lname!r}")
                    continue
                if lname in TARGET_LABELS or "$" in value:
                    continue
                seen = metric_labels.get(lname, set())
                if op in ("Equal", "NotEqual") and value not in seen:
                    problems.append(f"{name}{{{lname}=\"{value}\"}}: value never seen (seen: {sorted(seen)})")
                elif op in ("Re", "NotRe"):
                    for alt in value.split("|"):
                        if re.fullmatch(r"[A-Za-z0-9_]+", alt) and alt not in seen:
                            notes.append(f"{name}{{{lname}=~…{alt}…}}: value not produced in this run")
        for g in sorted(groups):
            if g not in known_labels:
                problems.append(f"grouping label {g!r} is on none of {sorted(set(used))}")
        detail = problems + [f"note: {n}" for n in notes]
        report.check(f"{where}: {', '.join(sorted(set(used))) or 'no metrics'}", not problems, detail)


# --------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", type=Path, default=ROOT / "target" / "manifests-tools")
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "debug" / "credagent")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "manifests-rendered")
    ap.add_argument("--node-live-inner")
    a = ap.parse_args()
    if a.node_live_inner:
        node_live_inner(json.loads(a.node_live_inner))
        return 0
    report = Report()
    venv_bin = Path(sys.executable).parent
    binary = a.bin.resolve()
    with tempfile.TemporaryDirectory(prefix="check-manifests-") as tmp:
        work = Path(tmp)
        rendered = render_all(report, a.tools, a.out)
        validate_all(report, rendered, venv_bin)
        crd_check(report, rendered, a.tools, work)
        policy(report, rendered)
        webhook_check(report, rendered)
        node_specs = check_config(report, rendered, binary)
        node_live(report, node_specs, binary, sys.executable)
        lint(report, venv_bin)
        metrics_check(report, rendered, binary, work)
    skipped = f", {report.skipped} skipped" if report.skipped else ""
    print(f"\nmanifests: {report.passed} passed, {report.failed} failed{skipped}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
