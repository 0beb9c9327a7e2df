#!/usr/bin/env python3
"""The admission webhook's core against its fixtures, judged by independent tools.

Run by tests/webhook/run.sh, which installs requirements.txt and builds the two binaries:

    check_patches.py --admission target/debug/examples/admission --credagent target/debug/credagent

For every case of tests/fixtures/admission/cases.json: the response (from the Rust code,
through the `admission` example, given the case's `credagent webhook` flags) echoes the request and carries the expected decision; the
patch applies with `jsonpatch` (an RFC 6902 implementation independent of the Rust code); the
patched Pod validates with `kubernetes-validate --strict` against Kubernetes 1.29 (the first
with native sidecars on by default) and the newest schema it ships; the injected shape is the
contract's (restated here from the issue, not from the Rust code); the sidecar's exact
arguments and environment pass `credagent sidecar ... --check-config`, which reports the proxy
configured for it; and a second pass over the patched Pod,
as sent and as the API server would default it before a reinvocation, yields no patch.

Prints one line per check (`ok` or `FAIL` with details) and ends with
`webhook: N passed, M failed`; exits 1 if anything failed.
"""

import argparse
import base64
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonpatch
from kubernetes_validate.utils import latest_version

from kube import default_pod, review

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "admission"

# The contract, restated.
TOKEN_DIR = "/var/run/secrets/credagent"
TOKEN_PATH = TOKEN_DIR + "/oidc-token"
AUTH_DIR = "/var/run/credagent"
AUTH_TOKEN = AUTH_DIR + "/auth-token"
AWS_CONFIG = AUTH_DIR + "/aws-config"
DEFAULT_AUDIENCE = "https://coreweave.com/iam"
NODE_URL = "http://169.254.170.23/v1/credentials"
# The webhook's flags that take no value, and those given more than once.
SWITCHES = {"--coreweave-compat"}
REPEATABLE = {"--key-attribute"}
CREDENTIAL_VARS = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
}


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, problems):
        problems = [problems] if isinstance(problems, str) else [p for p in problems if p]
        if problems:
            self.failed += 1
            print(f"  FAIL  {name}", flush=True)
            for p in problems:
                print(f"          {p}", flush=True)
        else:
            self.passed += 1
            print(f"  ok    {name}", flush=True)


def case_flags(all_cases, case):
    """A case's `credagent webhook` flags: the common ones, its upstream (or the common one), its own."""
    return all_cases["flags"] + case.get("upstream", all_cases["upstream"]) + case.get("flags", [])


def flag_values(argv):
    """The flags as a dict, `--flag` to its value (True for a switch, a list for a repeatable flag), as
    clap reads them."""
    out, i = {}, 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if eq:
            i += 1
        elif name in SWITCHES:
            value, i = True, i + 1
        else:
            value, i = argv[i + 1], i + 2
        if name in REPEATABLE:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def key_lifetime_arg(value):
    """A key lifetime (`1h`, `90m`, `5400`) as the webhook writes it: whole hours, minutes and seconds,
    `1h30m`."""
    secs, rest = 0, value.strip()
    if rest.isdigit():
        secs, rest = int(rest), ""
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        n, unit = int(rest[:digits]), rest[digits]
        secs, rest = secs + n * {"h": 3600, "m": 60, "s": 1}[unit], rest[digits + 1:]
    parts = [(secs // 3600, "h"), (secs % 3600 // 60, "m"), (secs % 60, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n)


def run_admission(binary, flags, sa, body, entry="pod"):
    cmd = [binary, "--entry", entry]
    if sa is not None:
        cmd += ["--sa-annotations", json.dumps(sa)]
    p = subprocess.run(cmd + ["-", "--", *flags], input=json.dumps(body), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"admission exited {p.returncode}: {p.stderr.strip()}")
    label = p.stderr.strip().rsplit("decision=", 1)[-1]
    return json.loads(p.stdout), label


def containers(pod):
    spec = pod.get("spec", {})
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env") or []}


def expected_args(config, annotations):
    args = ["sidecar", "--token-file", TOKEN_PATH]
    upstream = "--org-id" if "--org-id" in config else "--exchange-url"
    args += [upstream, config[upstream]]
    args += ["--listen", "127.0.0.1:8181", "--admin-listen", "0.0.0.0:9464", "--auth-token-file", AUTH_TOKEN]
    if config.get("--region"):
        args += ["--region", config["--region"]]
    # The POST exchange: the Pod's credagent.io/key-lifetime over the webhook's --key-lifetime; "off" is the GET.
    lifetime = annotations.get("credagent.io/key-lifetime", config.get("--key-lifetime"))
    if lifetime and lifetime != "off":
        args += ["--key-lifetime", key_lifetime_arg(lifetime)]
        for attribute in config.get("--key-attribute", []):
            args += ["--key-attribute", attribute]
    if annotations.get("credagent.io/credential-process") == "true":
        args += ["--credential-process-dir", AUTH_DIR]
        if config.get("--s3-endpoint"):
            args += ["--endpoint-url", config["--s3-endpoint"], "--s3-addressing-style", "virtual"]
    return args


def expected_sidecar_env(config):
    """The sidecar's env: the webhook's proxy for it, each variable only when configured."""
    pairs = (("HTTPS_PROXY", config.get("--sidecar-https-proxy")), ("NO_PROXY", config.get("--sidecar-no-proxy")))
    return [{"name": k, "value": v} for k, v in pairs if v]


def response_problems(case, resp, label, req):
    r = resp.get("response", {})
    want = case["expect"]
    out = []
    if (resp.get("apiVersion"), resp.get("kind")) != ("admission.k8s.io/v1", "AdmissionReview"):
        out.append(f"apiVersion/kind: {resp.get('apiVersion')} {resp.get('kind')}")
    if r.get("uid") != req["request"]["uid"]:
        out.append(f"uid {r.get('uid')!r} is not the request's")
    if label != want:
        out.append(f"decision {label}, expected {want}")
    if r.get("allowed") != (want != "refused"):
        out.append(f"allowed is {r.get('allowed')}")
    injected = want == "injected"
    if ("patch" in r) != injected or ("patchType" in r) != injected:
        out.append(f"patch present: {'patch' in r}, patchType present: {'patchType' in r}")
    if injected and r.get("patchType") != "JSONPatch":
        out.append(f"patchType {r.get('patchType')}")
    warnings = r.get("warnings") or []
    if "warnings" in case:
        if not case["warnings"] and warnings:
            out.append(f"unexpected warnings {warnings}")
        for w in case["warnings"]:
            if not any(w in got for got in warnings):
                out.append(f"no warning containing {w!r} in {warnings}")
    if "message" in case:
        status = r.get("status") or {}
        if case["message"] not in (status.get("message") or "") or status.get("code") != 400:
            out.append(f"status {status}")
    return out


def shape_problems(case, config, before, after):
    """The injected Pod, checked against the contract."""
    out = []
    mode = case["mode"]
    annotations = before["metadata"].get("annotations") or {}
    credential_process = annotations.get("credagent.io/credential-process") == "true"
    audience = annotations.get("credagent.io/audience", config.get("--audience", DEFAULT_AUDIENCE))
    # A case's --token-expiration is given in bare seconds.
    expiration = int(annotations.get("credagent.io/token-expiration", config.get("--token-expiration", 3600)))
    init_after = after["spec"].get("initContainers") or []

    # Nothing that was there is lost or changed, except appended env and mounts.
    for key in ("labels", "annotations"):
        for k, v in (before["metadata"].get(key) or {}).items():
            if (after["metadata"].get(key) or {}).get(k) != v:
                out.append(f"metadata.{key}[{k!r}] changed")
    for k, v in before["metadata"].items():
        if k not in ("labels", "annotations") and after["metadata"].get(k) != v:
            out.append(f"metadata.{k} changed")
    for k, v in before["spec"].items():
        if k not in ("initContainers", "containers", "volumes") and after["spec"].get(k) != v:
            out.append(f"spec.{k} changed")
    after_by_name = {c["name"]: c for c in containers(after)}
    for c in containers(before):
        a = after_by_name.get(c["name"])
        if a is None:
            out.append(f"container {c['name']} lost")
            continue
        for k, v in c.items():
            if k in ("env", "volumeMounts"):
                if a.get(k, [])[: len(v)] != v:
                    out.append(f"{c['name']}.{k}: existing entries changed")
            elif a.get(k) != v:
                out.append(f"{c['name']}.{k} changed")
    vol_before = before["spec"].get("volumes") or []
    if (after["spec"].get("volumes") or [])[: len(vol_before)] != vol_before:
        out.append("existing volumes changed")

    # Volumes, once each.
    vols = [v for v in after["spec"].get("volumes") or [] if v["name"].startswith("credagent-")]
    names = [v["name"] for v in vols]
    want_vols = ["credagent-token", "credagent-auth"] if mode == "sidecar" else ["credagent-token"]
    if sorted(names) != sorted(want_vols):
        out.append(f"credagent volumes {names}, expected {want_vols}")
    for v in vols:
        if v["name"] == "credagent-token":
            sat = v.get("projected", {}).get("sources", [{}])[0].get("serviceAccountToken")
            if sat != {"audience": audience, "expirationSeconds": expiration, "path": "oidc-token"}:
                out.append(f"token volume {v}")
        if v["name"] == "credagent-auth":
            ed = v.get("emptyDir", {})
            if ed.get("medium") != "Memory" or not ed.get("sizeLimit"):
                out.append(f"auth volume {v}")

    # The sidecar.
    sidecars = [c for c in containers(after) if c["name"] == "credagent"]
    if mode == "sidecar":
        if not init_after or init_after[0]["name"] != "credagent" or len(sidecars) != 1:
            out.append(f"credagent is not the first and only sidecar: {[c['name'] for c in init_after]}")
        else:
            s = init_after[0]
            if s.get("restartPolicy") != "Always":
                out.append("credagent has no restartPolicy: Always")
            if s.get("image") != config["--sidecar-image"]:
                out.append(f"image {s.get('image')}")
            if s.get("args") != expected_args(config, annotations):
                out.append(f"args {s.get('args')}")
            want_env = expected_sidecar_env(config)
            if s.get("env", []) != want_env or ("env" in s) != bool(want_env):
                out.append(f"sidecar env {s.get('env')}, expected {want_env or 'none'}")
            sp, lp = s.get("startupProbe") or {}, s.get("livenessProbe") or {}
            if sp.get("httpGet") != {"path": "/readyz", "port": 9464} or sp.get("periodSeconds") != 1:
                out.append(f"startupProbe {sp}")
            if (lp.get("httpGet") or {}).get("path") != "/healthz":
                out.append(f"livenessProbe {lp}")
            if "readinessProbe" in s:
                out.append("credagent has a readinessProbe")
            sc = s.get("securityContext") or {}
            want_sc = {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                       "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                       "seccompProfile": {"type": "RuntimeDefault"}}
            for k, v in want_sc.items():
                if sc.get(k) != v:
                    out.append(f"securityContext.{k} = {sc.get(k)}")
            mounts = {m["mountPath"]: m for m in s.get("volumeMounts") or []}
            if mounts.get(TOKEN_DIR, {}).get("name") != "credagent-token" or not mounts[TOKEN_DIR].get("readOnly"):
                out.append(f"token mount {mounts.get(TOKEN_DIR)}")
            if mounts.get(AUTH_DIR, {}).get("name") != "credagent-auth" or mounts[AUTH_DIR].get("readOnly"):
                out.append(f"auth mount {mounts.get(AUTH_DIR)}")
            if "subPath" in json.dumps(s.get("volumeMounts")):
                out.append("subPath mount")
        for c in before["spec"].get("initContainers") or []:
            a = after_by_name[c["name"]]
            if c.get("restartPolicy") != a.get("restartPolicy"):
                out.append(f"{c['name']} restartPolicy {c.get('restartPolicy')} -> {a.get('restartPolicy')}")
        if (after["metadata"].get("labels") or {}).get("credagent/mode") != "sidecar":
            out.append("no credagent/mode: sidecar label")
    elif sidecars:
        out.append("a credagent container in node mode")

    # The apps.
    url = "http://127.0.0.1:8181/v1/credentials" if mode == "sidecar" else config.get("--node-url", NODE_URL)
    token = AUTH_TOKEN if mode == "sidecar" else TOKEN_PATH
    mount = ("credagent-auth", AUTH_DIR) if mode == "sidecar" else ("credagent-token", TOKEN_DIR)
    before_by_name = {c["name"]: c for c in containers(before)}
    for c in containers(after):
        name = c["name"]
        if name == "credagent":
            continue
        env, old_env = env_of(c), env_of(before_by_name[name])
        injected = name in case["injected"]
        if name in case.get("untouched", []) and c != before_by_name[name]:
            out.append(f"{name} was touched")
        got = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") == url and "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in old_env
        if got != injected:
            out.append(f"{name}: credagent env {'missing' if injected else 'present'}")
        if not injected:
            continue
        if env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") != token:
            out.append(f"{name}: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {env.get('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE')}")
        if CREDENTIAL_VARS & set(old_env):
            out.append(f"{name} had credentials of its own and was injected")
        ms = [m for m in c.get("volumeMounts") or [] if m["name"] == mount[0]]
        if [(m["mountPath"], m.get("readOnly")) for m in ms] != [(mount[1], True)]:
            out.append(f"{name}: mounts of {mount[0]}: {ms}")
        region = config.get("--region")
        if region and not {"AWS_REGION", "AWS_DEFAULT_REGION"} & set(old_env):
            if (env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION")) != (region, region):
                out.append(f"{name}: region vars")
        endpoint = config.get("--s3-endpoint")
        if endpoint and not {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} & set(old_env):
            if env.get("AWS_ENDPOINT_URL_S3") != endpoint:
                out.append(f"{name}: AWS_ENDPOINT_URL_S3")
        want_config = AWS_CONFIG if credential_process and "AWS_CONFIG_FILE" not in old_env else old_env.get("AWS_CONFIG_FILE")
        if env.get("AWS_CONFIG_FILE") != want_config:
            out.append(f"{name}: AWS_CONFIG_FILE {env.get('AWS_CONFIG_FILE')}")
        for k, v in old_env.items():
            if env.get(k) != v:
                out.append(f"{name}: {k} changed")
        # The sidecar's proxy is never an app's: no proxy variable is added, except node mode's
        # NO_PROXY for the node agent in a container that has a proxy of its own.
        added = {k: env[k] for k in env if k.upper().endswith("_PROXY") and k not in old_env}
        node_host = url.split("/")[2].split(":")[0]
        own_proxy = any(k.upper().endswith("_PROXY") for k in old_env)
        if added and not (mode == "node" and own_proxy and added == {"NO_PROXY": node_host}):
            out.append(f"{name}: proxy variables added {added}")
    if (after["metadata"].get("annotations") or {}).get("credagent.io/status") != "injected":
        out.append("no credagent.io/status: injected")
    return out


def as_validated(pod):
    """The Pod as validation sees it: the API server names a generateName Pod after the mutating
    webhooks and before validation (kubernetes-validate also needs a name to report on)."""
    pod = copy.deepcopy(pod)
    meta = pod["metadata"]
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "x7k2p"
    return pod


def check_config_problems(credagent, args, env):
    """The sidecar's exact args and env (nothing else from this process's environment), and the
    proxy it reports reading from that env."""
    argv = list(args)
    env = {e["name"]: e["value"] for e in env}
    p = subprocess.run([credagent, *argv, "--check-config"], capture_output=True, text=True,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})
    if p.returncode != 0:
        return [f"exit {p.returncode}: {p.stderr.strip()}", f"args {argv}", f"env {env}"]
    https = f"Some({env['HTTPS_PROXY']} (from HTTPS_PROXY))" if "HTTPS_PROXY" in env else "None"
    no_proxy = f'Some(("{env["NO_PROXY"]}", "NO_PROXY"))' if "NO_PROXY" in env else "None"
    want = f"proxy: ProxySettings {{ https: {https}, http: None, no_proxy: {no_proxy}, disabled: false }}"
    return [] if want in p.stdout else [f"no {want!r} in {p.stdout.strip()}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--admission", required=True)
    ap.add_argument("--credagent", required=True)
    a = ap.parse_args()
    report = Report()
    all_cases = json.loads((FIXTURES / "cases.json").read_text())
    versions = list(dict.fromkeys(["1.29.0", latest_version()]))
    to_validate = []  # (case name, what, path)
    tmp = Path(tempfile.mkdtemp(prefix="webhook-check-"))

    for n, case in enumerate(all_cases["cases"]):
        name = case["name"]
        print(f"\n== {name} ({case['fixture']})", flush=True)
        flags = case_flags(all_cases, case)
        config = flag_values(flags)
        req = json.loads((FIXTURES / case["fixture"]).read_text())
        try:
            resp, label = run_admission(a.admission, flags, case.get("sa_annotations"), req,
                                        case.get("entry", "pod"))
        except (RuntimeError, json.JSONDecodeError) as e:
            report.check(f"{name}: response", str(e))
            continue
        report.check(f"{name}: response ({label})", response_problems(case, resp, label, req))
        if case["expect"] != "injected" or "patch" not in resp.get("response", {}):
            continue
        before = req["request"]["object"]
        try:
            ops = json.loads(base64.b64decode(resp["response"]["patch"], validate=True))
            after = jsonpatch.apply_patch(copy.deepcopy(before), ops)
        except Exception as e:  # noqa: BLE001 - any failure to decode or apply is the finding
            report.check(f"{name}: patch applies with jsonpatch", f"{type(e).__name__}: {e}")
            continue
        bad_ops = [op for op in ops if op.get("op") != "add"]
        report.check(f"{name}: patch applies with jsonpatch ({len(ops)} add operations)",
                     [f"not an add: {op}" for op in bad_ops])
        for what, pod in (("fixture", before), ("patched", after)):
            path = tmp / f"{n:02d}-{what}.json"
            path.write_text(json.dumps(as_validated(pod)))
            to_validate.append((name, what, path))
        report.check(f"{name}: injected shape", shape_problems(case, config, before, after))
        if case["mode"] == "sidecar":
            sidecar = (after["spec"].get("initContainers") or [{}])[0]
            report.check(f"{name}: credagent {' '.join(sidecar.get('args', [])[:1])} --check-config accepts the args"
                         f" and env ({len(sidecar.get('env', []))} variables)",
                         check_config_problems(a.credagent, sidecar.get("args", []), sidecar.get("env", [])))
        for how, pod in (("as patched", after), ("defaulted by the API server", default_pod(after))):
            again = review(pod, namespace=req["request"]["namespace"], uid=f"second-pass-{n}")
            try:
                resp2, label2 = run_admission(a.admission, flags, case.get("sa_annotations"), again,
                                              case.get("entry", "pod"))
            except (RuntimeError, json.JSONDecodeError) as e:
                report.check(f"{name}: second pass ({how})", str(e))
                continue
            r2 = resp2.get("response", {})
            report.check(f"{name}: second pass ({how}) is a no-op",
                         [f"decision {label2}" if label2 != "already_injected" else "",
                          "a patch" if "patch" in r2 else "", "not allowed" if not r2.get("allowed") else ""])

    print("\n== kubernetes-validate --strict", flush=True)
    for version in versions:
        tool = Path(sys.executable).parent / "kubernetes-validate"
        p = subprocess.run([tool, "--strict", "-k", version, *[str(x[2]) for x in to_validate]],
                           capture_output=True, text=True)
        lines = p.stdout.splitlines() + p.stderr.splitlines()
        for name, what, path in to_validate:
            mine = [ln for ln in lines if f" {path} " in ln]
            bad = [ln for ln in mine if not ln.startswith("INFO")]
            if not mine:
                bad = ["no verdict from kubernetes-validate"] + lines[-3:]
            report.check(f"{name}: {what} Pod validates against Kubernetes {version}", bad)

    print(f"\nwebhook: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
