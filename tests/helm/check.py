#!/usr/bin/env python3
"""Offline checks of the Helm chart charts/credagent.

Run by scripts/check-helm.sh, which installs the tools first (the pinned helm of
scripts/install-helm.sh, the venv and npm tools of scripts/check-manifests.sh,
busybox) and builds the binary. Each check prints one line, `ok` or `FAIL`
(with details below it) or `skip` (with the reason); the last line is
`helm: N passed, M failed` and the exit status is 1 if anything failed. The
helpers shared with the manifest checks (Kubernetes' env and $(VAR)
expansion, the container policy, node-live) come from tests/manifests/check.py.

Checks:
  chart        appVersion is the crate's version; the pinned helm is the one run
  lint         `helm lint --strict` with every ci/*-values.yaml
  render       `helm template` of each for Kubernetes 1.29 and the newest
               version kubernetes-validate knows; the two agree
  validate     kubernetes-validate --strict of each render for its version
  crd          PodMonitor, PrometheusRule, Certificate, Issuer against the
               prometheus-operator and cert-manager models
  golden       the renders of ci/default-values.yaml and ci/everything-values.yaml
               equal tests/golden/*.yaml byte for byte (certificates masked)
  schema       values.schema.json refuses misspelt keys and wrong types
  required     missing or contradictory values fail with a message naming them
  sidecar proxy  webhook.inject.httpsProxy/noProxy reach the webhook's env and its
               --check-config; a proxy URL with credentials is refused unrepeated
  key lifetime upstream.keyLifetime/keyAttributes reach the webhook's and the
               node agent's env and their --check-config; attributes alone
               only the webhook's; unset, neither
  labels       app.kubernetes.io/* and helm.sh/chart on every object, selectors,
               names and label values within 63 characters (also for a
               53-character release name)
  policy       every container: non-root (the node agent's two documented
               exceptions), read-only root, no escalation, capabilities,
               seccomp, resources; no API token but in compat mode
  webhook      Deployment, PDB, Service, TLS Secret or Certificate,
               MutatingWebhookConfiguration and RBAC agree with each other
  tls          the generated serving certificate verifies against the caBundle,
               names the Service and matches its key; it is kept across
               upgrades: `helm template --dry-run=server` against a fake API
               server (discovery and GET only) reuses the Secret it finds,
               byte for byte, and makes a new one when it finds none
  node         the memory limit is the Sizing formula of its bounds; the
               DaemonSet's containers run (node-live, root only)
  check-config `credagent <args> --check-config` with the exact args and env
               of every credagent container rendered
  helm-test    the test Pods: hooks, namespaces, opted in and selected by the
               webhook; their script, run by busybox against a real sidecar,
               passes, and fails with the reason when it should
  notes        NOTES.txt renders (helm install --dry-run=client) for each values file
  manifests    manifests/ equals a fresh `scripts/render-manifests.sh --check`
               (which also builds the webhook's compat overlay against the
               chart's compat render); the daemonset overlay's bounds are the
               ones its limit was computed from
  yamllint     the chart's YAML files and every render

  --update-golden  rewrite tests/golden/*.yaml from the current chart and exit
"""

import argparse
import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "credagent"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests" / "manifests"))
import check as mc  # noqa: E402  (tests/manifests/check.py)

RELEASE = "credagent"
NAMESPACE = "credagent-system"
OLDEST = "1.29.0"
API_VERSIONS = ["monitoring.coreos.com/v1", "cert-manager.io/v1"]
CRD_GROUPS = ("monitoring.coreos.com", "cert-manager.io")
GOLDEN = {"default": "ci/default-values.yaml", "everything": "ci/everything-values.yaml"}
MASK = "MASKED"
MASKED_KEYS = re.compile(r"^(\s+)(ca\.crt|tls\.crt|tls\.key|caBundle): [A-Za-z0-9+/=]{64,}$", re.M)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                   "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "app.kubernetes.io/component",
                   "helm.sh/chart")
SELECTOR_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
INJECT_LABEL = "credagent.io/inject"
NODE_ADDR = "169.254.170.23"


def run(cmd, **kw):
    return mc.run(cmd, **kw)


class Helm:
    """The pinned helm with its cache, config and data homes in a temporary folder."""

    def __init__(self, binary, home):
        self.binary = binary
        self.env = dict(os.environ, HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                        HELM_DATA_HOME=str(home / "data"))

    def __call__(self, *args):
        return run([self.binary, *args], env=self.env)

    def template(self, values=(), sets=(), kube_version=OLDEST, release=RELEASE, namespace=NAMESPACE, extra=()):
        argv = ["template", release, CHART, "--namespace", namespace, "--kube-version", kube_version]
        for a in API_VERSIONS:
            argv += ["--api-versions", a]
        for v in values:
            argv += ["-f", v]
        for s in sets:
            argv += ["--set", s]
        return self(*argv, *extra)


def mask(text):
    return MASKED_KEYS.sub(lambda m: f"{m.group(1)}{m.group(2)}: {MASK}", text)


def golden_text(helm, name):
    p = helm.template(values=[CHART / GOLDEN[name]])
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    header = (f"# Golden output: helm template {RELEASE} charts/credagent -n {NAMESPACE} --kube-version {OLDEST}\n"
              f"#   -f charts/credagent/{GOLDEN[name]}, generated certificate material masked.\n"
              "# Regenerate with scripts/check-helm.sh --update-golden after a deliberate change, and read the diff.\n")
    return header + mask(p.stdout)


def kind_of(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def name_of(d):
    return d["metadata"]["name"]


def selects(selector, labels):
    """A LabelSelector (matchLabels and matchExpressions) against labels."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def configmaps_of(docs):
    return {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d for d in kind_of(docs, "ConfigMap")}


def values_of(ci):
    """The chart's values.yaml with a ci file merged over it (enough for the checks' expectations)."""
    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(dict(a.get(k) or {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(base, yaml.safe_load((CHART / ci).read_text()) or {})


def hook_of(d):
    return (d["metadata"].get("annotations") or {}).get("helm.sh/hook")


# ------------------------------------------------------------------- checks


def chart_check(report, helm):
    report.section("chart")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = (ROOT / "Cargo.toml").read_text()
    m = re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', cargo, re.M | re.S)
    crate = m.group(1) if m else None
    report.check(f"Chart.yaml appVersion {chart.get('appVersion')!r} is the crate's version {crate!r}",
                 chart.get("appVersion") == crate)
    report.check(f"Chart.yaml version {chart.get('version')!r} is SemVer, kubeVersion {chart.get('kubeVersion')!r}",
                 bool(re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", str(chart.get("version"))))
                 and chart.get("kubeVersion") == ">=1.29.0-0")
    pinned = re.search(r"^HELM_VERSION=(\S+)", (ROOT / "scripts" / "install-helm.sh").read_text(), re.M).group(1)
    p = helm("version", "--short")
    report.check(f"helm {p.stdout.strip()} is the pinned {pinned}", p.stdout.startswith(pinned + "+"))


def lint_check(report, helm, ci_files):
    report.section("lint (helm lint --strict)")
    for ci in ci_files:
        p = helm("lint", "--strict", CHART, "-f", CHART / ci, "--namespace", NAMESPACE)
        report.check(f"{ci}", p.returncode == 0, [] if p.returncode == 0 else (p.stdout + p.stderr).strip().splitlines()[-8:])


def render_check(report, helm, ci_files, versions, out):
    """Returns {(ci, version): (path, docs)}."""
    report.section("render (helm template)")
    rendered = {}
    for ci in ci_files:
        texts = {}
        for v in versions:
            p = helm.template(values=[CHART / ci], kube_version=v)
            if p.returncode != 0:
                report.check(f"{ci}: Kubernetes {v}", False, p.stderr.strip().splitlines()[-5:])
                continue
            path = out / f"{Path(ci).stem}-{v}.yaml"
            path.write_text(p.stdout)
            docs = mc.load_docs(p.stdout)
            rendered[(ci, v)] = (path, docs)
            texts[v] = mask(p.stdout)
        if len(texts) == len(versions):
            kinds = {}
            for d in rendered[(ci, versions[0])][1]:
                kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
            same = len(set(texts.values())) == 1
            report.check(f"{ci}: renders for {' and '.join(versions)} ({len(rendered[(ci, versions[0])][1])} objects: "
                         f"{', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), the same for each",
                         same, [] if same else ["the chart renders differently per Kubernetes version"])
    return rendered


def validate_check(report, rendered, venv_bin):
    report.section("validate (kubernetes-validate --strict)")
    tool = venv_bin / "kubernetes-validate"
    for (ci, v), (path, docs) in rendered.items():
        ok, passed, crd, problems = mc.kubernetes_validate(tool, v, path, docs)
        note = f"{passed} objects" + (f"; {crd} custom resources checked under crd" if crd else "")
        report.check(f"{ci}: Kubernetes {v} ({note})", ok, problems)


def crd_check(report, rendered, tools, work):
    report.section("crd (prometheus-operator and cert-manager models)")
    seen, objects = set(), []
    for (ci, v), (_, docs) in rendered.items():
        if v != OLDEST:
            continue
        for d in docs:
            if d["apiVersion"].split("/")[0] in CRD_GROUPS:
                key = json.dumps(d, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    objects.append((ci, d))
    f = work / "crd-objects.json"
    f.write_text(json.dumps([d for _, d in objects]))
    p = run(["node", ROOT / "tests" / "manifests" / "validate_crds.mjs", tools, f])
    results = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode not in (0, 1) or len(results) != len(objects):
        report.check("validate_crds.mjs ran", False, (p.stderr or p.stdout).strip().splitlines()[-10:])
        return
    for (ci, d), r in zip(objects, results):
        report.check(f"{ci}: {r['kind']} {r['name']} ({d['apiVersion']}): schema and fields", r["ok"], r["errors"])


def golden_check(report, helm):
    report.section("golden (byte for byte, generated certificates masked)")
    for name in GOLDEN:
        path = CHART / "tests" / "golden" / f"{name}.yaml"
        try:
            fresh = golden_text(helm, name)
        except RuntimeError as e:
            report.check(f"tests/golden/{name}.yaml", False, str(e))
            continue
        old = path.read_text() if path.exists() else ""
        if fresh == old:
            report.check(f"tests/golden/{name}.yaml is the render of {GOLDEN[name]}", True)
            continue
        import difflib
        diff = list(difflib.unified_diff(old.splitlines(), fresh.splitlines(), "golden", "render", lineterm="", n=1))
        report.check(f"tests/golden/{name}.yaml is the render of {GOLDEN[name]}", False,
                     diff[:30] + ["... (scripts/check-helm.sh --update-golden rewrites it)"])


def schema_check(report, helm, work):
    report.section("schema (values.schema.json)")
    base = ["--set", "image.repository=r/credagent", "--set", "upstream.orgId=o"]
    cases = [
        ("a misspelt top-level key (webhok)", {"webhok": {"enabled": True}}, "'webhok' not allowed"),
        ("a misspelt nested key (webhook.replica)", {"webhook": {"replica": 3}}, "'replica' not allowed"),
        ("a misspelt key under node.verification (issuer)", {"node": {"verification": {"issuer": ["https://x"]}}},
         "'issuer' not allowed"),
        ("a string for an integer (webhook.replicas: two)", {"webhook": {"replicas": "two"}}, "/webhook/replicas"),
        ("a string for a boolean (node.enabled: \"yes\")", {"node": {"enabled": "yes"}}, "/node/enabled"),
        ("a list for a map (commonLabels)", {"commonLabels": ["a"]}, "/commonLabels"),
        ("a token lifetime out of range (300 s)", {"webhook": {"inject": {"tokenExpirationSeconds": 300}}},
         "/webhook/inject/tokenExpirationSeconds"),
        ("an unknown failurePolicy (Warn)", {"webhook": {"failurePolicy": "Warn"}}, "/webhook/failurePolicy"),
        ("an extraEnv name that is not CREDAGENT_*", {"node": {"extraEnv": {"AWS_REGION": "x"}}},
         "'AWS_REGION' does not match pattern '^CREDAGENT_"),
        ("a digest that is not sha256:<64 hex>", {"image": {"digest": "latest"}}, "/image/digest"),
        ("an https:// sidecar proxy (TLS to the proxy)", {"webhook": {"inject": {"httpsProxy": "https://proxy:3128"}}},
         "/webhook/inject/httpsProxy"),
        ("a SOCKS sidecar proxy", {"webhook": {"inject": {"httpsProxy": "socks5://proxy:1080"}}},
         "/webhook/inject/httpsProxy"),
        ("a sidecar proxy URL with a path", {"webhook": {"inject": {"httpsProxy": "http://proxy:3128/x"}}},
         "/webhook/inject/httpsProxy"),
        ("a sidecar NO_PROXY with a character no host has (;)", {"webhook": {"inject": {"noProxy": ".svc;.corp"}}},
         "/webhook/inject/noProxy"),
        ("a key lifetime below 15m (5m)", {"upstream": {"keyLifetime": "5m"}}, "/upstream/keyLifetime"),
        ("a key lifetime above 12h (721m)", {"upstream": {"keyLifetime": "721m"}}, "/upstream/keyLifetime"),
        ("a key lifetime in days (1d)", {"upstream": {"keyLifetime": "1d"}}, "/upstream/keyLifetime"),
        ("a key attribute value with a comma", {"upstream": {"keyAttributes": {"team": "ml,ops"}}},
         "/upstream/keyAttributes/team"),
        ("a number as a key attribute value", {"upstream": {"keyAttributes": {"tier": 1}}},
         "/upstream/keyAttributes/tier"),
        ("a key attribute the agent sets (k8s-pod)", {"upstream": {"keyAttributes": {"k8s-pod": "x"}}},
         "invalid propertyName 'k8s-pod'"),
        ("a key attribute name with a space", {"upstream": {"keyAttributes": {"cost center": "x"}}},
         "invalid propertyName 'cost center'"),
        ("more than 16 key attributes", {"upstream": {"keyAttributes": {f"k{i}": "v" for i in range(17)}}},
         "/upstream/keyAttributes"),
    ]
    for what, values, expect in cases:
        f = work / "schema-case.yaml"
        f.write_text(yaml.safe_dump(values))
        p = helm("template", RELEASE, CHART, "-n", NAMESPACE, *base, "-f", f)
        err = p.stderr.strip()
        ok = p.returncode != 0 and "schema" in err and expect in err
        report.check(f"refuses {what}", ok, [] if ok else [f"exit {p.returncode}: {err[-300:] or 'rendered'}"])
    p = helm("template", RELEASE, CHART, "-n", NAMESPACE, *base)
    report.check("accepts the defaults with the two required values", p.returncode == 0, p.stderr.strip()[-300:])


def required_check(report, helm):
    report.section("required values (fail with a message naming them)")
    img, org = "image.repository=r/credagent", "upstream.orgId=o"
    cases = [
        ("no image.repository", [org], "image.repository is required"),
        ("no upstream", [img], "upstream.orgId (your CoreWeave organization id) or upstream.exchangeUrl is required"),
        ("both upstream.orgId and upstream.exchangeUrl", [img, org, "upstream.exchangeUrl=https://x.example/y"],
         "give exactly one"),
        ("a PodDisruptionBudget that blocks every drain", [img, org, "webhook.podDisruptionBudget.minAvailable=2"],
         "minAvailable must be below webhook.replicas"),
        ("helm test Pods in the release namespace", [img, org, f"tests.namespace={NAMESPACE}"],
         "is the release namespace, where the webhook never injects"),
        ("key sets not one per issuer", [img, org, "node.enabled=true", "node.verification.jwksUrls[0]=https://k"],
         "one key-set URL per entry of node.verification.issuers"),
    ]
    for what, sets, expect in cases:
        p = helm.template(sets=sets)
        ok = p.returncode != 0 and expect in p.stderr
        report.check(f"{what}: {expect!r}", ok, [] if ok else [f"exit {p.returncode}: {p.stderr.strip()[-300:]}"])
    p = helm.template(sets=["webhook.enabled=false", "monitoring.enabled=true"])
    report.check("monitoring alone needs neither image nor upstream", p.returncode == 0, p.stderr.strip()[-300:])


def existing_configmap_check(report, helm):
    """webhook/node.existingConfigMap: the workload reads the named ConfigMap, the
    chart renders none of its own (how kustomize overlays are rendered)."""
    sets = ["image.repository=credagent", "webhook.existingConfigMap=credagent-webhook",
            "node.enabled=true", "node.existingConfigMap=credagent-node"]
    p = helm.template(sets=sets)
    if p.returncode != 0:
        report.check("webhook.existingConfigMap and node.existingConfigMap render without upstream values", False,
                     p.stderr.strip()[-300:])
        return
    docs = mc.load_docs(p.stdout)
    problems = []
    if kind_of(docs, "ConfigMap"):
        problems.append(f"ConfigMaps rendered: {[name_of(d) for d in kind_of(docs, 'ConfigMap')]}")
    for kind, want in (("Deployment", "credagent-webhook"), ("DaemonSet", "credagent-node")):
        for d in kind_of(docs, kind):
            refs = [e["configMapRef"]["name"] for e in d["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])]
            if refs != [want]:
                problems.append(f"{kind} {name_of(d)} reads {refs}, expected [{want!r}]")
            if "checksum/config" in (d["spec"]["template"]["metadata"].get("annotations") or {}):
                problems.append(f"{kind} {name_of(d)}: a checksum of a ConfigMap the chart does not render")
    report.problems("webhook.existingConfigMap and node.existingConfigMap: the workloads read them, the chart renders "
                    "no ConfigMap and needs no upstream value", problems)


def sidecar_proxy_check(report, helm, binary):
    """webhook.inject.httpsProxy/noProxy reach the webhook Deployment as the
    --sidecar-https-proxy/--sidecar-no-proxy variables, which the binary reads
    back; unset, neither is there; a URL with credentials is refused without
    being repeated."""
    report.section("sidecar proxy (webhook.inject.httpsProxy, webhook.inject.noProxy)")
    base = ["image.repository=r/credagent", "upstream.orgId=o"]
    proxy, no_proxy = "http://proxy.corp.example:3128", ".svc, .cluster.local,10.96.0.0/12"

    def webhook_env(sets):
        p = helm.template(sets=base + sets)
        if p.returncode != 0:
            return None, [f"exit {p.returncode}: {p.stderr.strip()[-300:]}"]
        docs = mc.load_docs(p.stdout)
        deps = [d for d in kind_of(docs, "Deployment") if d["metadata"]["name"].endswith("-webhook")]
        if len(deps) != 1:
            return None, [f"{len(deps)} webhook Deployments"]
        c = mc.pod_spec(deps[0])["containers"][0]
        env, _, problems = mc.container_env(c, NAMESPACE, configmaps_of(docs))
        for d in docs:
            spec = mc.pod_spec(d)
            for _, x in mc.containers(spec) if spec and d is not deps[0] else []:
                other, _, _ = mc.container_env(x, d["metadata"].get("namespace", NAMESPACE), configmaps_of(docs))
                if proxy in other.values():
                    problems.append(f"{d['kind']} {name_of(d)}/{x['name']} also got the proxy")
        return env, problems

    env, problems = webhook_env([f"webhook.inject.httpsProxy={proxy}",
                                 "webhook.inject.noProxy=" + no_proxy.replace(",", "\\,")])
    if env is not None:
        want = {"CREDAGENT_SIDECAR_HTTPS_PROXY": proxy, "CREDAGENT_SIDECAR_NO_PROXY": no_proxy}
        got = {k: env.get(k) for k in want}
        if got != want:
            problems.append(f"the webhook's env has {got}, expected {want}")
        p = run([binary, "webhook", "--check-config"], env={"PATH": os.environ.get("PATH", ""), **env})
        for text in (f'sidecar_https_proxy: Some("{proxy}")', 'sidecar_no_proxy: Some(".svc,.cluster.local,10.96.0.0/12")'):
            if p.returncode != 0 or text not in p.stdout:
                problems.append(f"credagent webhook --check-config (exit {p.returncode}) does not report {text}: "
                                f"{(p.stderr or p.stdout).strip()[-300:]}")
    report.problems("set: CREDAGENT_SIDECAR_HTTPS_PROXY and CREDAGENT_SIDECAR_NO_PROXY in the webhook's env (and no "
                    "other container's); `credagent webhook --check-config` reports both, NO_PROXY trimmed", problems)
    env, problems = webhook_env([])
    if env is not None and any(k.startswith("CREDAGENT_SIDECAR_") and "PROXY" in k for k in env):
        problems.append(f"unset, yet the webhook's env has {sorted(k for k in env if 'PROXY' in k)}")
    report.problems("unset (the default): neither variable in the webhook's env", problems)
    secret = "S3cr3t-Pr0xy"
    for url in (f"http://egress:{secret}@proxy:3128", f"https://egress:{secret}@proxy:3128"):
        p = helm.template(sets=base + [f"webhook.inject.httpsProxy={url}"])
        expect = "webhook.inject.httpsProxy carries credentials (user:password@)"
        out = p.stdout + p.stderr
        ok = p.returncode != 0 and expect in p.stderr and secret not in out
        report.check(f"{url.split(':')[0]}://user:password@ refused: {expect!r}, the password not repeated", ok,
                     [] if ok else [f"exit {p.returncode}: {p.stderr.strip()[-300:]}"])


def key_lifetime_check(report, helm, binary):
    """upstream.keyLifetime/keyAttributes reach the webhook's and the node
    agent's env, which the binary reads back (`--check-config`); attributes
    alone go to the webhook only (for Pods whose credagent.io/key-lifetime
    asks for the POST: the node agent would refuse them without a lifetime);
    unset, neither variable is anywhere."""
    report.section("key lifetime (upstream.keyLifetime, upstream.keyAttributes)")
    base = ["image.repository=r/credagent", "upstream.orgId=o", "node.enabled=true"]
    attributes = ["upstream.keyAttributes.team=ml", "upstream.keyAttributes.cluster=prod-1"]

    def envs(sets):
        """{component: (env, --check-config stdout)} of the webhook and the node agent."""
        p = helm.template(sets=base + sets)
        if p.returncode != 0:
            return None, [f"exit {p.returncode}: {p.stderr.strip()[-300:]}"]
        docs, out, problems = mc.load_docs(p.stdout), {}, []
        for kind, component, args in (("Deployment", "webhook", ["webhook"]), ("DaemonSet", "node", ["node"])):
            d = [d for d in kind_of(docs, kind) if d["metadata"]["name"].endswith(f"-{component}")][0]
            c = mc.pod_spec(d)["containers"][0]
            env, _, more = mc.container_env(c, NAMESPACE, configmaps_of(docs))
            r = run([binary] + args + ["--check-config"], env=env)
            if r.returncode != 0:
                more.append(f"credagent {component} --check-config: exit {r.returncode}: "
                            f"{(r.stderr or r.stdout).strip()[-300:]}")
            out[component] = ({k: v for k, v in env.items() if k.startswith("CREDAGENT_KEY_")}, r.stdout)
            problems += more
        return out, problems

    got, problems = envs(["upstream.keyLifetime=1h30m"] + attributes)
    if got is not None:
        want = {"CREDAGENT_KEY_LIFETIME": "1h30m", "CREDAGENT_KEY_ATTRIBUTE": "cluster=prod-1,team=ml"}
        for component, (env, _) in got.items():
            if env != want:
                problems.append(f"{component}: {env}, expected {want}")
        reported = {"webhook": ["key_lifetime: Some(5400s)", 'KeyAttribute { name: "team", value: "ml" }'],
                    "node": ["method: Post", "lifetime: 5400s", 'KeyAttribute { name: "cluster", value: "prod-1" }']}
        for component, texts in reported.items():
            problems += [f"credagent {component} --check-config does not report {t!r}"
                         for t in texts if t not in got[component][1]]
    report.problems("set: both variables in the webhook's and the node agent's env, names in order; both "
                    "--check-config report the POST with that lifetime and those attributes", problems)
    got, problems = envs(attributes)
    if got is not None:
        want = {"webhook": {"CREDAGENT_KEY_ATTRIBUTE": "cluster=prod-1,team=ml"}, "node": {}}
        problems += [f"{c}: {got[c][0]}, expected {w}" for c, w in want.items() if got[c][0] != w]
    report.problems("attributes alone: the webhook's (for Pods that ask for the POST), not the node agent's",
                    problems)
    got, problems = envs([])
    if got is not None:
        problems += [f"{c}: {env}" for c, (env, _) in got.items() if env]
    report.problems("unset (the default): neither variable in either env (the GET exchange)", problems)


def label_problems(docs, release):
    problems = []
    for d in docs:
        meta = d["metadata"]
        where = f"{d['kind']} {meta['name']}"
        name = meta["name"]
        if len(name) > 63 or not DNS_LABEL.match(name):
            problems.append(f"{where}: the name is not a DNS label of at most 63 characters")
        labels = meta.get("labels") or {}
        missing = [k for k in STANDARD_LABELS if k not in labels]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        if labels.get("app.kubernetes.io/instance") != release[:63].rstrip("-"):
            problems.append(f"{where}: app.kubernetes.io/instance is {labels.get('app.kubernetes.io/instance')!r}")
        tmpl = (d.get("spec", {}).get("template") or {}).get("metadata", {}).get("labels")
        for k, v in list(labels.items()) + list((tmpl or {}).items()):
            if len(str(v)) > 63 or not LABEL_VALUE.match(str(v)):
                problems.append(f"{where}: label {k}={v!r} is not a valid label value (at most 63 characters)")
        sel = (d.get("spec", {}).get("selector") or {})
        if d["kind"] in ("Deployment", "DaemonSet"):
            ml = sel.get("matchLabels") or {}
            if sorted(ml) != sorted(SELECTOR_LABELS):
                problems.append(f"{where}: the selector is {sorted(ml)}, expected {list(SELECTOR_LABELS)}")
            if not selects(sel, tmpl or {}):
                problems.append(f"{where}: the selector does not select its Pod template")
            missing = [k for k in STANDARD_LABELS if k not in (tmpl or {})]
            if missing:
                problems.append(f"{where}: Pod template lacks {', '.join(missing)}")
    return problems


def labels_check(report, helm, rendered):
    report.section("labels and names")
    for (ci, v), (_, docs) in rendered.items():
        if v == OLDEST:
            report.problems(f"{ci}: standard labels on {len(docs)} objects, selectors, names", label_problems(docs, RELEASE))
    release = "credagent-" + "x" * 43  # 53 characters, helm's longest release name
    p = helm.template(values=[CHART / "ci" / "everything-values.yaml"], release=release)
    if p.returncode != 0:
        report.check(f"a {len(release)}-character release name renders", False, p.stderr.strip()[-300:])
        return
    docs = mc.load_docs(p.stdout)
    report.problems(f"a {len(release)}-character release name: every name and label value within 63 characters",
                    label_problems(docs, release))
    names = [(d["kind"], d["metadata"].get("namespace"), name_of(d)) for d in docs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    report.check("  ...and no two objects of a kind get the same truncated name", not dupes, [str(x) for x in dupes])


def policy_check(report, rendered):
    report.section("policy (every container and Pod)")
    for (ci, v), (_, docs) in rendered.items():
        if v != OLDEST:
            continue
        values = values_of(ci)
        compat = values["webhook"]["enabled"] and values["webhook"]["coreweaveCompat"]
        for d in docs:
            spec = mc.pod_spec(d)
            if spec is None:
                continue
            where = f"{ci}: {d['kind']} {name_of(d)}"
            problems = []
            for _, c in mc.containers(spec):
                problems += [f"{c['name']}: {x}" for x in mc.container_problems(d["kind"], name_of(d), c, spec)]
                if mc.is_credagent(c):
                    img = values["image"]
                    want = (f"{img['repository']}@{img['digest']}" if img.get("digest")
                            else f"{img['repository']}:{img.get('tag') or yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}")
                    if c.get("image") != want:
                        problems.append(f"{c['name']}: image {c.get('image')!r}, expected {want!r}")
                    if c.get("imagePullPolicy") != img["pullPolicy"]:
                        problems.append(f"{c['name']}: imagePullPolicy {c.get('imagePullPolicy')!r}")
            wants_token = compat and d["kind"] == "Deployment"
            if spec.get("automountServiceAccountToken") is not wants_token:
                problems.append(f"automountServiceAccountToken is {spec.get('automountServiceAccountToken')!r}, "
                                f"expected {wants_token} ({'compat mode reads ServiceAccounts' if wants_token else 'no API access'})")
            for vname, t in mc.token_volumes(spec).items():
                if t.get("audience") != mc.AUDIENCE or t.get("expirationSeconds") != mc.TOKEN_EXPIRATION:
                    problems.append(f"token volume {vname}: audience {t.get('audience')!r}, {t.get('expirationSeconds')} s")
            for _, c in mc.containers(spec):
                for m in c.get("volumeMounts") or []:
                    if m.get("subPath"):
                        problems.append(f"{c['name']}: {m['name']} mounted with subPath (kubelet never updates it)")
            if d["kind"] == "DaemonSet":
                ru = d["spec"]["updateStrategy"].get("rollingUpdate") or {}
                if spec.get("hostNetwork") is not True or spec.get("dnsPolicy") != "ClusterFirstWithHostNet" \
                        or str(ru.get("maxSurge")) != "0" or spec.get("priorityClassName") != "system-node-critical" \
                        or {"operator": "Exists"} not in (spec.get("tolerations") or []):
                    problems.append("node DaemonSet: hostNetwork, ClusterFirstWithHostNet, maxSurge 0, "
                                    "system-node-critical, tolerations Exists")
                inits = spec.get("initContainers") or []
                if [c.get("args") for c in inits] != [["node", "setup-link"]]:
                    problems.append("the init container must run `node setup-link`")
                main = spec["containers"][0]
                problems += mc.probe_problems(main, "startupProbe", "/readyz") + \
                    mc.probe_problems(main, "readinessProbe", "/readyz") + mc.probe_problems(main, "livenessProbe", "/healthz")
                if any(p.get("containerPort") == 80 for p in main.get("ports") or []):
                    problems.append("port 80 declared: on hostNetwork it becomes a hostPort")
            report.problems(f"{where}: {len(list(mc.containers(spec)))} containers", problems)


def webhook_problems(docs, values):
    w = values["webhook"]
    problems = []
    deps = [d for d in kind_of(docs, "Deployment") if any((c.get("args") or [None])[0] == "webhook"
                                                           for _, c in mc.containers(mc.pod_spec(d)))]
    if len(deps) != 1:
        return [f"{len(deps)} webhook Deployments"]
    dep = deps[0]
    ns = dep["metadata"]["namespace"]
    spec = mc.pod_spec(dep)
    c = spec["containers"][0]
    env, _, env_problems = mc.container_env(c, ns, configmaps_of(docs))
    problems += env_problems
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    replicas = dep["spec"]["replicas"]
    if replicas != w["replicas"] or replicas < 2:
        problems.append(f"replicas {replicas}")
    if str(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"]) != "0":
        problems.append("rollingUpdate.maxUnavailable is not 0")
    if not spec.get("topologySpreadConstraints") or not (spec.get("affinity") or {}).get("podAntiAffinity"):
        problems.append("no spread over nodes")
    pdbs = [p for p in kind_of(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], pod_labels)]
    if not any(1 <= p["spec"]["minAvailable"] < replicas for p in pdbs):
        problems.append("no PodDisruptionBudget with 1 <= minAvailable < replicas selects the webhook's Pods")
    # Ports and probes.
    ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
    if ports.get("https") != mc.port_of(env.get("CREDAGENT_LISTEN", "0.0.0.0:8443")):
        problems.append("container port https is not CREDAGENT_LISTEN's")
    if ports.get("credagent-admin") != mc.port_of(env.get("CREDAGENT_ADMIN_LISTEN", mc.DEFAULT_ADMIN_LISTEN)):
        problems.append("container port credagent-admin is not CREDAGENT_ADMIN_LISTEN's")
    problems += mc.probe_problems(c, "readinessProbe", "/readyz") + mc.probe_problems(c, "livenessProbe", "/healthz")
    if env.get("CREDAGENT_SIDECAR_IMAGE") != c["image"]:
        problems.append(f"CREDAGENT_SIDECAR_IMAGE {env.get('CREDAGENT_SIDECAR_IMAGE')!r} is not the webhook's image")
    if env.get("CREDAGENT_IMAGE_PULL_POLICY") != c.get("imagePullPolicy"):
        problems.append("CREDAGENT_IMAGE_PULL_POLICY is not the webhook's imagePullPolicy")
    inj = w["inject"]
    for k, want in (("CREDAGENT_AUDIENCE", inj["audience"]), ("CREDAGENT_TOKEN_EXPIRATION", str(inj["tokenExpirationSeconds"])),
                    ("CREDAGENT_REGION", inj["region"] or None), ("CREDAGENT_S3_ENDPOINT", inj["s3Endpoint"] or None),
                    ("CREDAGENT_SIDECAR_HTTPS_PROXY", inj["httpsProxy"] or None),
                    ("CREDAGENT_SIDECAR_NO_PROXY", inj["noProxy"] or None),
                    ("CREDAGENT_COREWEAVE_COMPAT", "true" if w["coreweaveCompat"] else None)):
        if env.get(k) != want:
            problems.append(f"{k} is {env.get(k)!r}, expected {want!r} from the values")
    # Service.
    svcs = [s for s in kind_of(docs, "Service") if selects({"matchLabels": s["spec"]["selector"]}, pod_labels)]
    if len(svcs) != 1:
        return problems + [f"{len(svcs)} Services select the webhook's Pods"]
    svc = svcs[0]
    if not any(p["port"] == 443 and p["targetPort"] in ("https", ports.get("https")) for p in svc["spec"]["ports"]):
        problems.append("the Service has no port 443 to the https container port")
    dns = f"{name_of(svc)}.{ns}.svc"
    # TLS.
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    secret_name = None
    for f in (env.get("CREDAGENT_TLS_CERT_FILE"), env.get("CREDAGENT_TLS_KEY_FILE")):
        m = mc.mount_for(c, f or "")
        if not m or m.get("subPath") or "secret" not in vols.get(m["name"], {}):
            problems.append(f"{f} is not in a directory mount of a Secret")
        else:
            secret_name = vols[m["name"]]["secret"]["secretName"]
    mwcs = kind_of(docs, "MutatingWebhookConfiguration")
    if len(mwcs) != 1:
        return problems + [f"{len(mwcs)} MutatingWebhookConfigurations"]
    mwc = mwcs[0]
    ann = (mwc["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
    certs = [x for x in kind_of(docs, "Certificate") if x["spec"]["secretName"] == secret_name]
    secrets = [x for x in kind_of(docs, "Secret") if name_of(x) == secret_name]
    if w["tls"]["certManager"]["enabled"]:
        if len(certs) != 1 or secrets:
            problems.append(f"cert-manager mode: {len(certs)} Certificates and {len(secrets)} Secrets for {secret_name}")
        else:
            if dns not in certs[0]["spec"]["dnsNames"]:
                problems.append(f"the Certificate does not name {dns}")
            if ann != f"{ns}/{name_of(certs[0])}":
                problems.append(f"cert-manager.io/inject-ca-from is {ann!r}, not {ns}/{name_of(certs[0])}")
            want_ref = w["tls"]["certManager"]["issuerRef"]
            issuers = {name_of(i) for i in kind_of(docs, "Issuer")}
            ref = certs[0]["spec"]["issuerRef"]
            if want_ref and ref != want_ref:
                problems.append(f"issuerRef {ref}, expected {want_ref}")
            if not want_ref and (ref.get("kind") != "Issuer" or ref.get("name") not in issuers):
                problems.append(f"issuerRef {ref} names no Issuer of the chart")
        if any("caBundle" in e["clientConfig"] for e in mwc["webhooks"]):
            problems.append("a caBundle beside cert-manager's cainjector")
    else:
        if len(secrets) != 1 or certs or ann:
            problems.append(f"generated mode: {len(secrets)} Secrets, {len(certs)} Certificates, inject-ca-from {ann!r}")
        else:
            data = secrets[0].get("data") or {}
            if secrets[0].get("type") != "kubernetes.io/tls" or set(data) != {"ca.crt", "tls.crt", "tls.key"}:
                problems.append("the generated Secret is not kubernetes.io/tls with ca.crt, tls.crt, tls.key")
            if any(e["clientConfig"].get("caBundle") != data.get("ca.crt") for e in mwc["webhooks"]):
                problems.append("a webhook's caBundle is not the generated Secret's ca.crt")
    # The webhook entries.
    excluded_want = {ns, "kube-system", *w["excludeNamespaces"]}
    entries = {e["name"]: e for e in mwc["webhooks"]}
    want_paths = {"inject.credagent.io": "/mutate"}
    if w["namespaceOptIn"]:
        want_paths["namespace.inject.credagent.io"] = "/mutate/namespace"
    if w["coreweaveCompat"]:
        want_paths["compat.inject.credagent.io"] = "/mutate"
    if set(entries) != set(want_paths):
        problems.append(f"entries {sorted(entries)}, expected {sorted(want_paths)}")
    for name, e in entries.items():
        ref = e["clientConfig"]["service"]
        path = want_paths.get(name, "/mutate")
        if (ref["name"], ref["namespace"], ref["path"], ref["port"]) != (name_of(svc), ns, path, 443):
            problems.append(f"{name}: clientConfig.service is not {ns}/{name_of(svc)}:443{path}")
        for k, want in (("admissionReviewVersions", ["v1"]), ("sideEffects", "None"), ("matchPolicy", "Equivalent"),
                        ("reinvocationPolicy", "IfNeeded"), ("timeoutSeconds", w["timeoutSeconds"]),
                        ("failurePolicy", "Ignore" if name.startswith("compat.") else w["failurePolicy"])):
            if e.get(k) != want:
                problems.append(f"{name}: {k} is {e.get(k)!r}, expected {want!r}")
        if [(r["operations"], r["apiGroups"], r["apiVersions"], r["resources"]) for r in e["rules"]] != \
                [(["CREATE"], [""], ["v1"], ["pods"])]:
            problems.append(f"{name}: rules are not exactly pods CREATE")
        excluded = set()
        for x in e["namespaceSelector"].get("matchExpressions") or []:
            if x["key"] == "kubernetes.io/metadata.name" and x["operator"] == "NotIn":
                excluded |= set(x["values"])
        if excluded != excluded_want:
            problems.append(f"{name}: excludes {sorted(excluded)}, expected {sorted(excluded_want)}")
        for k, v in (w["namespaceSelector"].get("matchLabels") or {}).items():
            if (e["namespaceSelector"].get("matchLabels") or {}).get(k) != v:
                problems.append(f"{name}: namespaceSelector lacks {k}={v}")
    problems += selection_problems(w, entries, ns)
    # RBAC and the API token.
    sa_name = spec["serviceAccountName"]
    sas = [s for s in kind_of(docs, "ServiceAccount") if name_of(s) == sa_name and s["metadata"]["namespace"] == ns]
    if len(sas) != 1 or sas[0].get("automountServiceAccountToken") is not w["coreweaveCompat"]:
        problems.append(f"ServiceAccount {sa_name}: automountServiceAccountToken should be {w['coreweaveCompat']}")
    roles = {name_of(r): r for r in kind_of(docs, "ClusterRole")}
    granted = {}
    for b in kind_of(docs, "ClusterRoleBinding"):
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == sa_name and s.get("namespace") == ns
               for s in b["subjects"]):
            for r in (roles.get(b["roleRef"]["name"]) or {}).get("rules", []):
                for res in r["resources"]:
                    granted.setdefault((tuple(r["apiGroups"]), res), set()).update(r["verbs"])
    want = {(("",), "serviceaccounts"): {"get", "list", "watch"}} if w["coreweaveCompat"] else {}
    if granted != want:
        problems.append(f"RBAC grants {granted}, expected {want}")
    return problems


def selection_problems(w, entries, release_ns):
    """Which entry the API server sends each kind of Pod to (the selectors evaluated as it does):
    exactly the expected one, so a Pod is never injected by two entries nor by none that should."""
    extra_pod = {k: v for k, v in (w["objectSelector"].get("matchLabels") or {}).items()}
    for x in w["objectSelector"].get("matchExpressions") or []:
        if x["operator"] == "Exists":
            extra_pod[x["key"]] = "x"
        elif x["operator"] == "In":
            extra_pod[x["key"]] = x["values"][0]
    extra_ns = dict(w["namespaceSelector"].get("matchLabels") or {})
    ns_in = "namespace.inject.credagent.io" if w["namespaceOptIn"] else None
    compat = "compat.inject.credagent.io" if w["coreweaveCompat"] else None
    # (what, Pod's credagent.io/inject, namespace's, namespace name, the entry expected)
    table = [
        ("a labelled Pod", "true", None, "team-a", "inject.credagent.io"),
        ("a labelled Pod in a labelled namespace", "true", "true", "team-a", "inject.credagent.io"),
        ("an unlabelled Pod", None, None, "team-a", compat),
        ("an unlabelled Pod in a labelled namespace", None, "true", "team-a", ns_in or compat),
        ("a Pod labelled false in a labelled namespace", "false", "true", "team-a", None),
        ("a Pod labelled false", "false", None, "team-a", None),
        ("a labelled Pod in a namespace labelled false", "true", "false", "team-a", None),
        ("an unlabelled Pod in a namespace labelled false", None, "false", "team-a", None),
        ("a labelled Pod in the release namespace", "true", "true", release_ns, None),
        ("an unlabelled Pod in kube-system", None, "true", "kube-system", None),
    ]
    problems = []
    for what, pod_value, ns_value, ns_name, want in table:
        pod_labels = {**extra_pod, **({INJECT_LABEL: pod_value} if pod_value else {})}
        ns_labels = {"kubernetes.io/metadata.name": ns_name, **extra_ns,
                     **({INJECT_LABEL: ns_value} if ns_value else {})}
        got = [n for n, e in entries.items()
               if selects(e["objectSelector"], pod_labels) and selects(e["namespaceSelector"], ns_labels)]
        if got != ([want] if want else []):
            problems.append(f"{what}: sent to {got or 'no entry'}, expected {want or 'none'}")
    return problems


def webhook_check(report, rendered):
    report.section("webhook (Deployment, PDB, Service, TLS, MutatingWebhookConfiguration, RBAC agree)")
    for (ci, v), (_, docs) in rendered.items():
        values = values_of(ci)
        if v != OLDEST or not values["webhook"]["enabled"]:
            continue
        w = values["webhook"]
        report.problems(f"{ci}: {w['replicas']} replicas, TLS {'cert-manager' if w['tls']['certManager']['enabled'] else 'generated'}"
                        f"{', compat' if w['coreweaveCompat'] else ''}", webhook_problems(docs, values))


def tls_check(report, rendered, work):
    report.section("tls (the generated serving certificate)")
    for (ci, v), (_, docs) in rendered.items():
        values = values_of(ci)
        if v != OLDEST or not values["webhook"]["enabled"] or values["webhook"]["tls"]["certManager"]["enabled"]:
            continue
        secrets = [s for s in kind_of(docs, "Secret") if s.get("type") == "kubernetes.io/tls"]
        svc = kind_of(docs, "Service")[0]
        problems = []
        d = work / f"tls-{Path(ci).stem}"
        d.mkdir(exist_ok=True)
        for k in ("ca.crt", "tls.crt", "tls.key"):
            (d / k).write_bytes(base64.b64decode(secrets[0]["data"][k]))
        p = run(["openssl", "verify", "-CAfile", d / "ca.crt", d / "tls.crt"])
        if p.returncode != 0:
            problems.append(f"openssl verify: {(p.stdout + p.stderr).strip()}")
        p = run(["openssl", "x509", "-in", d / "tls.crt", "-noout", "-ext", "subjectAltName,extendedKeyUsage",
                 "-startdate", "-enddate"])
        want_dns = [f"DNS:{name_of(svc)}.{NAMESPACE}.svc", f"DNS:{name_of(svc)}.{NAMESPACE}.svc.cluster.local"]
        for dn in want_dns:
            if dn not in p.stdout:
                problems.append(f"the certificate does not name {dn[4:]}")
        if "TLS Web Server Authentication" not in p.stdout:
            problems.append("no serverAuth extended key usage")
        dates = dict(re.findall(r"^(notBefore|notAfter)=(.+)$", p.stdout, re.M))
        try:
            fmt = "%b %d %H:%M:%S %Y %Z"
            days = (datetime.datetime.strptime(re.sub(r"\s+", " ", dates["notAfter"]), fmt)
                    - datetime.datetime.strptime(re.sub(r"\s+", " ", dates["notBefore"]), fmt)).days
            if abs(days - values["webhook"]["tls"]["generated"]["validityDays"]) > 1:
                problems.append(f"valid for {days} days, expected {values['webhook']['tls']['generated']['validityDays']}")
        except (KeyError, ValueError) as e:
            problems.append(f"cannot read the validity: {e}")
        cert_pub = run(["openssl", "x509", "-in", d / "tls.crt", "-noout", "-pubkey"]).stdout
        key_pub = run(["openssl", "pkey", "-in", d / "tls.key", "-pubout"]).stdout
        if not cert_pub or cert_pub != key_pub:
            problems.append("tls.key is not the certificate's key")
        report.problems(f"{ci}: the leaf verifies against ca.crt (= the caBundle), names {want_dns[0][4:]}, "
                        "serverAuth, validity as set, its key matches", problems)


class FakeAPIServer:
    """Just enough of a Kubernetes API server for `helm template --dry-run=server`:
    discovery for the chart's kinds, and GET of one Secret (else 404)."""

    GROUPS = {
        "apps/v1": [("deployments", "Deployment", True), ("daemonsets", "DaemonSet", True)],
        "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
        "admissionregistration.k8s.io/v1": [("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False)],
        "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                         ("clusterrolebindings", "ClusterRoleBinding", False)],
        "monitoring.coreos.com/v1": [("podmonitors", "PodMonitor", True), ("prometheusrules", "PrometheusRule", True)],
        "cert-manager.io/v1": [("certificates", "Certificate", True), ("issuers", "Issuer", True)],
    }
    CORE = [("secrets", "Secret", True), ("configmaps", "ConfigMap", True), ("serviceaccounts", "ServiceAccount", True),
            ("services", "Service", True), ("pods", "Pod", True), ("namespaces", "Namespace", False)]

    def __init__(self):
        import http.server
        import threading

        fake = self
        self.secret = None
        self.gets = []

        def resources(gv, res):
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": n, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": ["get", "list", "create"]}
                for n, k, ns in res]}

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0]
                fake.gets.append(path)
                if path == "/version":
                    return self.reply(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
                if path == "/api":
                    return self.reply(200, {"kind": "APIVersions", "versions": ["v1"]})
                if path == "/apis":
                    groups = []
                    for gv in fake.GROUPS:
                        g, v = gv.split("/")
                        ver = {"groupVersion": gv, "version": v}
                        groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
                    return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
                if path == "/api/v1":
                    return self.reply(200, resources("v1", fake.CORE))
                if path.startswith("/apis/") and path[6:] in fake.GROUPS:
                    return self.reply(200, resources(path[6:], fake.GROUPS[path[6:]]))
                sec = fake.secret
                if sec and path == f"/api/v1/namespaces/{sec['metadata']['namespace']}/secrets/{sec['metadata']['name']}":
                    return self.reply(200, sec)
                self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                 "code": 404})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def kubeconfig(self, path):
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
        return path

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def tls_kept_check(report, helm, work):
    """The generated certificate survives an upgrade: with the Secret in the
    cluster, lookup hands it back and the render reuses it."""
    fake = FakeAPIServer()
    try:
        kubeconfig = fake.kubeconfig(work / "fake-kubeconfig")

        def render():
            p = run([helm.binary, "template", RELEASE, CHART, "-n", NAMESPACE, "-f", CHART / "ci" / "default-values.yaml",
                     "--dry-run=server", "--disable-openapi-validation"], env=dict(helm.env, KUBECONFIG=str(kubeconfig)))
            if p.returncode != 0:
                raise RuntimeError(p.stderr.strip()[-400:])
            docs = mc.load_docs(p.stdout)
            secret = [d for d in kind_of(docs, "Secret") if d.get("type") == "kubernetes.io/tls"][0]
            bundles = {e["clientConfig"].get("caBundle") for e in kind_of(docs, "MutatingWebhookConfiguration")[0]["webhooks"]}
            return secret, bundles

        try:
            first, bundles1 = render()
            looked_up = f"/api/v1/namespaces/{NAMESPACE}/secrets/{name_of(first)}" in fake.gets
            report.check("a first install (no Secret in the cluster) looks the Secret up and generates one",
                         looked_up and bundles1 == {first["data"]["ca.crt"]}, [] if looked_up else ["no lookup seen"])
            fake.secret = dict(first, metadata=dict(first["metadata"], annotations={
                "meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE}))
            again, bundles2 = render()
            same = again["data"] == first["data"] and bundles2 == bundles1
            report.check("an upgrade (the Secret in the cluster) keeps the CA, certificate, key and caBundle byte for byte",
                         same, [] if same else ["the upgrade generated new certificate material"])
            broken = dict(fake.secret, data={k: v for k, v in first["data"].items() if k != "tls.key"})
            fake.secret = broken
            fresh, bundles3 = render()
            renewed = fresh["data"]["ca.crt"] != first["data"]["ca.crt"] and bundles3 == {fresh["data"]["ca.crt"]}
            report.check("a Secret missing tls.key is replaced by a new CA and certificate, with the caBundle to match",
                         renewed)
        except (RuntimeError, IndexError, KeyError) as e:
            report.check("helm template --dry-run=server against the fake API server", False, str(e))
    finally:
        fake.close()


def node_memory(n):
    kib = 8 * 1024 + 11.5 * n["maxIdentities"] + 36 * n["maxConnections"] + 8 * n["maxPendingFills"]
    mib = kib * 4 / 3 / 1024
    return f"{int(-(-mib // 16) * 16)}Mi"


def node_check(report, rendered, binary):
    report.section("node (memory limit from its bounds; node-live)")
    specs = []
    for (ci, v), (_, docs) in rendered.items():
        values = values_of(ci)
        if v != OLDEST or not values["node"]["enabled"]:
            continue
        ds = kind_of(docs, "DaemonSet")[0]
        spec = mc.pod_spec(ds)
        n = values["node"]
        got = spec["containers"][0]["resources"]["limits"]["memory"]
        explicit = (n["resources"].get("limits") or {}).get("memory")
        want = explicit or node_memory(n)
        how = "as set" if explicit else (f"(8 MiB + 11.5 KiB x {n['maxIdentities']} + 36 KiB x {n['maxConnections']}"
                                          f" + 8 KiB x {n['maxPendingFills']}) x 4/3")
        report.check(f"{ci}: memory limit {got} = {want}, {how}", got == want)
        if ci in ("ci/node-enabled-values.yaml", "ci/node-only-values.yaml"):
            specs.append((ds, spec, None, configmaps_of(docs)))
    report.check("the defaults give the 192Mi of docs/deploy.md",
                 node_memory(yaml.safe_load((CHART / "values.yaml").read_text())["node"]) == "192Mi")
    mc.node_live(report, specs, binary, sys.executable)


def has_webhook(binary):
    p = run([binary, "webhook", "--help"])
    return p.returncode == 0, (p.stderr or p.stdout).strip().splitlines()[:1]


def check_config_check(report, rendered, binary):
    report.section("check-config (exact args and env of every credagent container)")
    webhook_ok, why = has_webhook(binary)
    for (ci, v), (_, docs) in rendered.items():
        if v != OLDEST:
            continue
        configmaps = configmaps_of(docs)
        for d in docs:
            spec = mc.pod_spec(d)
            if spec is None:
                continue
            ns = d["metadata"].get("namespace", "default")
            for _, c in mc.containers(spec):
                if not mc.is_credagent(c):
                    continue
                where = f"{ci}: {d['kind']} {name_of(d)}/{c['name']}"
                env, placeholders, problems = mc.container_env(c, ns, configmaps)
                args = [mc.expand(str(a), env) for a in c.get("args") or []]
                if c.get("command") not in (None, ["/credagent"]):
                    report.check(f"{where}: command", False, f"command {c['command']} bypasses the image entrypoint")
                    continue
                if args[:1] == ["webhook"] and not webhook_ok:
                    report.check(f"{where}: credagent webhook --check-config", False,
                                 ["no webhook subcommand in this binary (it comes with the webhook-server branch): "
                                  + " ".join(why)])
                    continue
                known = mc.known_env_names(binary, args)
                unknown = sorted(k for k in env if k.startswith("CREDAGENT_") and k not in known)
                report.problems(f"{where}: CREDAGENT_* variables are ones `credagent {' '.join(args)}` reads",
                                ([f"unknown: {', '.join(unknown)}"] if unknown else []) + problems)
                if args[:2] == ["node", "setup-link"]:
                    continue  # a one-shot step without --check-config: run by node-live
                p = run([binary] + args + ["--check-config"], env=env)
                ok = p.returncode == 0 and "configuration ok" in p.stdout
                note = f" (placeholders for {', '.join(placeholders)})" if placeholders else ""
                report.check(f"{where}: credagent {' '.join(args)} --check-config{note}", ok,
                             [] if ok else [f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[:400]}"])


def test_pods(docs):
    return [d for d in kind_of(docs, "Pod") if hook_of(d) == "test"]


def helm_test_check(report, rendered, binary, work):
    report.section("helm-test (the test Pods, and their script against a real sidecar)")
    for (ci, v), (_, docs) in rendered.items():
        values = values_of(ci)
        if v != OLDEST:
            continue
        t = values["tests"]
        pods = test_pods(docs)
        modes = [m for m, on in (("sidecar", values["webhook"]["enabled"]), ("node", values["node"]["enabled"])) if on]
        problems = []
        if sorted((p["metadata"]["annotations"].get("credagent.io/mode") or "node") for p in pods) != sorted(modes):
            problems.append(f"test Pods {[name_of(p) for p in pods]}, expected one per mode {modes}")
        mwc = (kind_of(docs, "MutatingWebhookConfiguration") or [None])[0]
        sa = t["serviceAccount"]["name"] or f"{RELEASE}-test"
        sas = [s for s in kind_of(docs, "ServiceAccount") if hook_of(s) == "test"]
        if t["serviceAccount"]["create"] != bool(sas) or (sas and (name_of(sas[0]) != sa or
                                                                  int(sas[0]["metadata"]["annotations"]["helm.sh/hook-weight"]) >= 0)):
            problems.append("the test ServiceAccount is not created (before the Pods) as tests.serviceAccount says")
        for p in pods:
            ns, labels, spec = p["metadata"]["namespace"], p["metadata"]["labels"], p["spec"]
            if ns != t["namespace"] or ns == NAMESPACE:
                problems.append(f"{name_of(p)}: namespace {ns}")
            if spec.get("serviceAccountName") != sa or spec.get("restartPolicy") != "Never" \
                    or spec.get("activeDeadlineSeconds") != t["activeDeadlineSeconds"]:
                problems.append(f"{name_of(p)}: serviceAccountName, restartPolicy Never, activeDeadlineSeconds")
            if mwc:
                e = next(x for x in mwc["webhooks"] if x["name"] == "inject.credagent.io")
                ns_labels = {"kubernetes.io/metadata.name": ns, **(values["webhook"]["namespaceSelector"].get("matchLabels") or {})}
                if not selects(e["objectSelector"], labels) or not selects(e["namespaceSelector"], ns_labels):
                    problems.append(f"{name_of(p)}: not selected by the webhook entry inject.credagent.io")
            elif INJECT_LABEL in labels:
                problems.append(f"{name_of(p)}: opted in without a webhook")
        report.problems(f"{ci}: {len(pods)} test Pods ({', '.join(modes) or 'none'}) in {t['namespace']}, "
                        f"helm.sh/hook: test, opted in and selected by the webhook", problems)
    default = rendered.get(("ci/default-values.yaml", OLDEST))
    node = rendered.get(("ci/node-enabled-values.yaml", OLDEST))
    if not default or not node:
        return
    scripts = {}
    for docs in (default[1], node[1]):
        for p in test_pods(docs):
            c = p["spec"]["containers"][0]
            scripts[p["metadata"]["annotations"]["credagent.io/mode"]] = (c["command"], c["args"])
    busybox = shutil.which("busybox")
    if not busybox:
        report.check("busybox (the test image's shell and wget) is installed", False, "apt-get install busybox")
        return
    bindir = work / "busybox-bin"
    bindir.mkdir(exist_ok=True)
    for applet in ("sh", "wget", "sed", "cat", "echo"):
        if not (bindir / applet).exists():
            (bindir / applet).symlink_to(busybox)
    procs = []
    try:
        standin, exchange, mint = start_standin(binary, work, procs)
        tokdir = work / "test-tokens"
        tokdir.mkdir()
        (tokdir / "oidc-token").write_text(mint("credagent-test"))
        listen, admin = mc.free_port(), mc.free_port()
        auth = work / "test-auth-token"
        procs.append(subprocess.Popen(
            [binary, "sidecar", "--exchange-url", exchange, "--token-file", tokdir / "oidc-token",
             "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}", "--auth-token-file", auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not mc.wait_for(f"http://127.0.0.1:{admin}/readyz"):
            report.check("a sidecar against the stand-in becomes ready", False)
            return
        wrong = work / "wrong-auth-token"
        wrong.write_text("x" * 43)
        uri = f"http://127.0.0.1:{listen}/v1/credentials"
        closed = f"http://127.0.0.1:{mc.free_port()}/v1/credentials"
        cases = [
            ("sidecar", "as injected, the sidecar holding credentials", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(auth)}, 0, "ok: credentials for access key AKCH..."),
            ("sidecar", "not injected", {}, 1, "FAIL: AWS_CONTAINER_CREDENTIALS_FULL_URI is not set: the webhook did not inject"),
            ("sidecar", "a wrong auth token (401)", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(wrong)}, 1, "FAIL: the credentials request failed"),
            ("sidecar", "no agent listening", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": closed,
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(auth)}, 1, "FAIL: the credentials request failed"),
            ("node", "node mode given a sidecar's address", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(auth)}, 1, "not the node agent's"),
        ]
        for mode, what, env, rc, expect in cases:
            command, args = scripts[mode]
            p = run([bindir / command[0], *command[1:], *args], env={"PATH": str(bindir), **env}, timeout=30)
            out = (p.stdout + p.stderr).strip()
            ok = p.returncode == rc and expect in out and "SKCHECK" not in out
            report.check(f"the {mode} test script, {what}: exit {rc}, says {expect!r}, never prints the secret key",
                         ok, [] if ok else [f"exit {p.returncode}: {out[-400:]}"])
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def start_standin(binary, work, procs):
    addr_file = work / "standin.addr"
    procs.append(subprocess.Popen(
        [Path(binary).with_name("credagent-standin"), "--listen", "127.0.0.1:0", "--access-key", "AKCHECKTEST",
         "--secret-key", "SKCHECK", "--audience", mc.AUDIENCE, "--addr-file", addr_file],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 15
    while not addr_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    standin = "http://" + addr_file.read_text().strip()

    def mint(sa):
        return mc.http(standin + "/_standin/token", "POST", json.dumps(
            {"namespace": "default", "service_account": sa, "audience": mc.AUDIENCE, "lifetime_secs": 3600}).encode())[1]

    return standin, standin + "/v1/cwobject/temporary-credentials/oidc/standin-org", mint


def notes_check(report, helm, ci_files):
    report.section("notes (NOTES.txt, through helm install --dry-run=client)")
    for ci in ci_files:
        values = values_of(ci)
        p = helm("install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client", "-f", CHART / ci)
        notes = p.stdout.split("\nNOTES:\n", 1)[1] if "\nNOTES:\n" in p.stdout else ""
        want = []
        if values["webhook"]["enabled"]:
            want += ['credagent.io/inject: "true"', f"rollout status deploy/{RELEASE}-webhook"]
            if values["webhook"]["namespaceOptIn"]:
                want += ["kubectl label namespace NAME credagent.io/inject=true"]
        unwanted = [] if values["webhook"]["enabled"] and values["webhook"]["namespaceOptIn"] else \
            ["kubectl label namespace NAME credagent.io/inject=true"]
        if values["node"]["enabled"]:
            want += [f"kubectl label namespace {NAMESPACE} pod-security.kubernetes.io/enforce=privileged",
                     "Local token verification is " + ("on" if values["node"]["verification"]["issuers"] else "off")]
        if values["monitoring"]["enabled"]:
            want += ["monitoring.coreos.com/v1"]
        if values["tests"]["enabled"]:
            want += [f"helm test {RELEASE} -n {NAMESPACE} --logs", "credagent principal"]
        missing = [w for w in want if w not in notes] + [f"(should not say) {u}" for u in unwanted if u in notes]
        report.check(f"{ci}: NOTES render and say what to do next ({len(want)} expected lines)",
                     p.returncode == 0 and bool(notes) and not missing and "<no value>" not in notes,
                     ([p.stderr.strip()[-300:]] if p.returncode else []) + [f"missing: {m}" for m in missing])


def manifests_check(report, helm):
    report.section("manifests (rendered from the chart by scripts/render-manifests.sh)")
    p = run([ROOT / "scripts" / "render-manifests.sh", "--check"], env=dict(os.environ, HELM=str(helm.binary)))
    report.check("the generated.yaml of manifests/daemonset, monitoring, webhook/base and webhook/coreweave-compat "
                 "and the dashboard equal a fresh render; the compat overlay builds what the chart renders with "
                 "compat on", p.returncode == 0, (p.stdout + p.stderr).strip().splitlines()[-30:])
    kz = yaml.safe_load((ROOT / "manifests" / "daemonset" / "kustomization.yaml").read_text())
    literals = dict(x.split("=", 1) for g in kz["configMapGenerator"] if g["name"] == "credagent-node"
                    for x in g.get("literals", []))
    cv = yaml.safe_load((ROOT / "manifests" / "daemonset" / "chart-values.yaml").read_text())["node"]
    defaults = {"CREDAGENT_MAX_IDENTITIES": "4096", "CREDAGENT_MAX_CONNECTIONS": "2048",
                "CREDAGENT_MAX_PENDING_FILLS": "1024"}
    problems = []
    for env_name, key in (("CREDAGENT_MAX_IDENTITIES", "maxIdentities"), ("CREDAGENT_MAX_CONNECTIONS", "maxConnections"),
                          ("CREDAGENT_MAX_PENDING_FILLS", "maxPendingFills")):
        if literals.get(env_name, defaults[env_name]) != str(cv.get(key)):
            problems.append(f"{env_name}={literals.get(env_name, defaults[env_name])} in kustomization.yaml, "
                            f"{key}: {cv.get(key)} in chart-values.yaml")
    report.problems("manifests/daemonset: the bounds in kustomization.yaml are the ones its memory limit was "
                    "computed from (chart-values.yaml)", problems)


def yamllint_check(report, rendered, venv_bin, work):
    report.section("yamllint")
    config = ROOT / "manifests" / ".yamllint.yaml"
    files = sorted(str(p) for p in [CHART / "Chart.yaml", CHART / "values.yaml", *CHART.glob("ci/*.yaml"),
                                    CHART / "files" / "prometheusrule-spec.yaml"])
    p = run([venv_bin / "yamllint", "-c", config, "-f", "parsable"] + files)
    report.check(f"the chart's YAML files ({len(files)}, {config.relative_to(ROOT)})", p.returncode == 0,
                 p.stdout.strip().splitlines())
    relaxed = work / "yamllint-renders.yaml"
    relaxed.write_text(f"extends: {config}\nrules:\n  line-length: disable  # base64 and the dashboard's JSON\n")
    paths = sorted(str(path) for (ci, v), (path, _) in rendered.items() if v == OLDEST)
    paths += sorted(str(p) for p in (CHART / "tests" / "golden").glob("*.yaml"))
    p = run([venv_bin / "yamllint", "-c", relaxed, "-f", "parsable"] + paths)
    report.check(f"every render and golden file ({len(paths)}; line length aside)", p.returncode == 0,
                 p.stdout.strip().splitlines()[:20])


# --------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--helm", type=Path, required=True)
    ap.add_argument("--tools", type=Path, default=ROOT / "target" / "manifests-tools")
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "debug" / "credagent")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "helm-rendered")
    ap.add_argument("--update-golden", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-helm-") as tmp:
        work = Path(tmp)
        helm = Helm(a.helm.resolve(), work / "helm-home")
        if a.update_golden:
            for name in GOLDEN:
                path = CHART / "tests" / "golden" / f"{name}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(golden_text(helm, name))
                print(f"wrote {path.relative_to(ROOT)}")
            return 0
        from kubernetes_validate.utils import latest_version

        report = mc.Report()
        venv_bin = Path(sys.executable).parent
        binary = a.bin.resolve()
        versions = list(dict.fromkeys([OLDEST, latest_version()]))
        ci_files = sorted(str(p.relative_to(CHART)) for p in CHART.glob("ci/*-values.yaml"))
        if a.out.exists():
            shutil.rmtree(a.out)
        a.out.mkdir(parents=True)
        chart_check(report, helm)
        lint_check(report, helm, ci_files)
        rendered = render_check(report, helm, ci_files, versions, a.out)
        validate_check(report, rendered, venv_bin)
        crd_check(report, rendered, a.tools, work)
        golden_check(report, helm)
        schema_check(report, helm, work)
        required_check(report, helm)
        existing_configmap_check(report, helm)
        sidecar_proxy_check(report, helm, binary)
        key_lifetime_check(report, helm, binary)
        labels_check(report, helm, rendered)
        policy_check(report, rendered)
        webhook_check(report, rendered)
        tls_check(report, rendered, work)
        tls_kept_check(report, helm, work)
        node_check(report, rendered, binary)
        check_config_check(report, rendered, binary)
        helm_test_check(report, rendered, binary, work)
        notes_check(report, helm, ci_files)
        manifests_check(report, helm)
        yamllint_check(report, rendered, venv_bin, work)
    skipped = f", {report.skipped} skipped" if report.skipped else ""
    print(f"\nhelm: {report.passed} passed, {report.failed} failed{skipped}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
