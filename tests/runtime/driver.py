"""The chart's Pods, run by podman as the cluster would run them (README.md says what and how).

Run by scripts/check-runtime.sh inside the test's "node" network namespace (nsenter --net), with
podman configured through the environment; not meant to be run by hand. Prints one `  PASS  …` or
`  FAIL  …` line per check (details indented below a failure), then `pods: N passed, M failed`,
and exits 1 if any failed. Removes every Pod and process it started, also on failure.

In order: the stand-in upstream (HTTPS, a test CA) and s3s-fs on the node; the chart rendered with
helm; the webhook's Pod with its TLS Secret, answering AdmissionReviews for three workload Pods,
which then run as injected: an app using botocore through the native sidecar, through a token
rotation; a data loader through the credential_process fallback; a client of the node agent, whose
DaemonSet Pod sets up its link on the node first. Then a real Prometheus scrapes the agents and the
webhook with the chart's rules loaded, and every series the rules and the dashboard name must be in
what it scraped. Last, every Pod is stopped as kubelet stops it.
"""

import argparse
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import traceback
from pathlib import Path

import jsonpatch
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(HERE.parent / "webhook"), str(HERE.parent / "monitoring")]

import kube  # noqa: E402  tests/webhook/kube.py: the API server's side of admission
import series  # noqa: E402  tests/monitoring/series.py
from pods import Kubelet, Podman, http_status, pod_from_template  # noqa: E402
from rig import (APP_IN_POD, APP_UID, BUCKET, NODE_IP, PYTHON, S3_PORT, SITE_IN_POD, STANDIN_PORT,  # noqa: E402
                 Report, ServiceConnection, StandIn, check_confinement, jwt_claims, metrics, pki, port_open, s3_check,
                 start_process, start_s3, step, wait_until)

NODE_NAME = "runtime-node"
PROM_PORT = 9090
AUDIENCE = "https://coreweave.com/iam"  # the chart's webhook.inject.audience
RELEASE, NAMESPACE = "credagent", "credagent-system"
CA_IN_POD = "/etc/credagent-test/ca.crt"


def find(docs, kind, component=None):
    for d in docs:
        labels = d["metadata"].get("labels", {})
        if d["kind"] == kind and (component is None or labels.get("app.kubernetes.io/component") == component):
            return d
    raise LookupError(f"no {kind} {component or ''} in the render")


class Run:
    def __init__(self, a, report, kubelet, podman, procs):
        self.a, self.report, self.kubelet, self.podman, self.procs = a, report, kubelet, podman, procs
        self.work = Path(a.work)
        self.logs = self.work / "logs"
        self.check = report.check

    def all(self):
        self.pki = pki(self.work)
        self.standin = StandIn(self.a.standin, self.pki, "standin-org", AUDIENCE)
        phases = [self.services, self.render, self.webhook, self.admission, self.s3_app, self.rotation,
                  self.data_loader, self.node, self.prometheus, self.shutdown]
        for phase in phases:
            if phase() is False:
                return

    # ---------------------------------------------------------------- the node and the chart

    def services(self):
        step("the node's services: the stand-in upstream (HTTPS) and s3s-fs")
        self.standin.start(self.procs, self.logs)
        start_s3(self.procs, self.logs, self.a.s3s_fs, self.work / "s3")
        up = wait_until(lambda: port_open(STANDIN_PORT) and port_open(S3_PORT), 30)
        self.kubelet.token_source = self.standin.token
        return self.check(f"stand-in on :{STANDIN_PORT} (TLS, test CA), s3s-fs on :{S3_PORT}", up)

    def render(self):
        step("helm template of the chart (webhook, node agent, monitoring)")
        repo, tag = self.a.image.rsplit(":", 1)
        values = {
            "image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
            "upstream": {"exchangeUrl": self.standin.exchange_url()},
            "webhook": {"inject": {"region": "us-east-1", "s3Endpoint": f"http://{NODE_IP}:{S3_PORT}"}},
            # The stand-in's private CA (a real upstream has a public certificate); mounted in node().
            "node": {"enabled": True, "extraEnv": {"CREDAGENT_CA_FILE": CA_IN_POD}},
            "monitoring": {"enabled": True},
            "tests": {"enabled": False},
        }
        (self.work / "values.yaml").write_text(yaml.safe_dump(values))
        home = str(self.work / "helm")
        env = dict(os.environ, HELM_CACHE_HOME=home, HELM_CONFIG_HOME=home, HELM_DATA_HOME=home)
        out = subprocess.run([self.a.helm, "template", RELEASE, str(ROOT / "charts/credagent"), "--namespace",
                              NAMESPACE, "--kube-version", "1.33.0", "-f", str(self.work / "values.yaml")],
                             check=True, capture_output=True, text=True, env=env).stdout
        (self.work / "rendered.yaml").write_text(out)
        self.docs = [d for d in yaml.safe_load_all(out) if d]
        for d in self.docs:
            if d["kind"] == "Secret":
                self.kubelet.secrets[d["metadata"]["name"]] = {k: base64.b64decode(v) for k, v in d["data"].items()}
        self.configmaps = {d["metadata"]["name"]: d for d in self.docs if d["kind"] == "ConfigMap"}
        return self.check(f"rendered {len(self.docs)} objects", bool(self.docs))

    def envfrom_configmaps(self, pod):
        return [self.configmaps[e["configMapRef"]["name"]] for c in pod["spec"]["containers"]
                for e in c.get("envFrom", []) if "configMapRef" in e]

    # ---------------------------------------------------------------- the webhook and admission

    def webhook(self):
        step("the webhook's Pod (from its Deployment), with the TLS Secret as kubelet mounts it")
        self.deploy = find(self.docs, "Deployment", "webhook")
        pod = self.kubelet.materialise(pod_from_template(self.deploy, f"{self.deploy['metadata']['name']}-0"))
        self.wpod = pod
        self.wname = self.kubelet.play(pod, self.envfrom_configmaps(pod))
        ctr = self.kubelet.container(self.wname, "webhook")
        self.wip = self.kubelet.start(self.wname, NODE_IP, self.report)
        if self.wip is None:
            return False
        ready = wait_until(lambda: http_status(f"http://{self.wip}:9464/readyz") == 200, 30)
        self.check(f"{ctr}: ready (a serving certificate loaded from the Secret's tls.crt/tls.key)", ready,
                   self.kubelet.logs(ctr))
        check_confinement(self.report, self.podman, ctr, 65532, 0)
        return bool(ready)

    def admission(self):
        step("admission: the API server's call of the webhook, at the Service's endpoint, trusting the caBundle")
        entry = next(w for w in find(self.docs, "MutatingWebhookConfiguration")["webhooks"]
                     if w["name"] == "inject.credagent.io")
        ref = entry["clientConfig"]["service"]
        service = find(self.docs, "Service", "webhook")
        port = next(p["targetPort"] for p in service["spec"]["ports"] if p["port"] == ref["port"])
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
                        if p["name"] == port)
        ctx = ssl.create_default_context(cadata=base64.b64decode(entry["clientConfig"]["caBundle"]).decode())
        host = f"{ref['name']}.{ref['namespace']}.svc"
        self.injected = {}
        for name, annotations in (("s3-app", {}), ("data-loader", {"credagent.io/credential-process": "true"}),
                                  ("node-client", {"credagent.io/mode": "node"})):
            pod = self.workload(name, annotations)
            review = kube.review(pod, namespace=pod["metadata"]["namespace"])
            conn = ServiceConnection(self.wip, host, port, ctx)
            conn.request("POST", f"{ref['path']}?timeout={entry['timeoutSeconds']}s", json.dumps(review),
                         {"Content-Type": "application/json", "Accept": "application/json, */*"})
            r = conn.getresponse()
            body = r.read()
            conn.close()
            answer = json.loads(body)["response"] if r.status == 200 else {}
            ok = (r.status == 200 and answer.get("uid") == review["request"]["uid"] and answer.get("allowed")
                  and answer.get("patchType") == "JSONPatch")
            ops = json.loads(base64.b64decode(answer["patch"])) if ok else []
            self.check(f"POST https://{host}{ref['path']} ({self.wip}:{port}) for {name}: allowed, uid echoed, "
                       f"a JSON Patch of {len(ops)} operations", ok, body[:500])
            if not ok:
                return False
            self.injected[name] = jsonpatch.JsonPatch(ops).apply(pod)
        side = self.injected["s3-app"]["spec"]["initContainers"][0]
        return self.check("s3-app as injected: credagent is the first init container, restartPolicy: Always, "
                          f"image {side['image']}, UID {side['securityContext']['runAsUser']}",
                          side["name"] == "credagent" and side.get("restartPolicy") == "Always"
                          and side["image"] == self.a.image, json.dumps(side)[:500])

    def workload(self, name, annotations):
        """A user's Pod opted in for injection, as the API server has defaulted it: an app container
        running botocore with the image's Python as UID 1000, read-only, without capabilities."""
        c = kube.container("app", self.a.app_image, command=[PYTHON, f"{APP_IN_POD}/app.py", "idle"],
                           mounts=[{"name": "sdk", "mountPath": SITE_IN_POD, "readOnly": True},
                                   {"name": "app", "mountPath": APP_IN_POD, "readOnly": True}],
                           env=[{"name": "PYTHONPATH", "value": SITE_IN_POD},
                                {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}])
        c["securityContext"] = {"runAsUser": APP_UID, "runAsGroup": APP_UID, "runAsNonRoot": True,
                                "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}}
        volumes = [{"name": "sdk", "hostPath": {"path": str(self.a.app_site), "type": "Directory"}},
                   {"name": "app", "hostPath": {"path": str(HERE), "type": "Directory"}}]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "shop", "creationTimestamp": None,
                             "labels": {"app": name, "credagent.io/inject": "true"}, "annotations": annotations},
                "spec": kube.pod_spec([c], volumes=volumes, sa=name, automount=False), "status": {}}

    def with_test_ca(self, pod, container="credagent"):
        """The stand-in's private CA for the agent in `container` (a substitution: README.md)."""
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            if c["name"] == container and not any(e["name"] == "CREDAGENT_CA_FILE" for e in c.get("env", [])):
                c.setdefault("env", []).append({"name": "CREDAGENT_CA_FILE", "value": CA_IN_POD})
        return [(container, "credagent-test-ca", self.pki / "ca.crt", CA_IN_POD)]

    def run_injected(self, name):
        pod = self.injected[name]
        mounts = self.with_test_ca(pod) if pod["spec"].get("initContainers") else []
        pname = self.kubelet.play(self.kubelet.materialise(pod, mounts))
        ip = self.kubelet.start(pname, NODE_IP, self.report)
        return pname, ip

    # ---------------------------------------------------------------- the workloads

    def s3_app(self):
        step("s3-app: botocore in the app container through the injected native sidecar")
        self.aname, self.aip = self.run_injected("s3-app")
        if self.aip is None:
            return False
        side, app = self.kubelet.container(self.aname, "credagent"), self.kubelet.container(self.aname, "app")
        check_confinement(self.report, self.podman, side, 65532, 0)
        check_confinement(self.report, self.podman, app, APP_UID, 0)
        shared = self.work / "volumes" / self.aname / "credagent-auth"
        token = shared / "auth-token"
        st = token.stat() if token.exists() else None
        self.check(f"{side}: wrote the auth token into the shared emptyDir (mode {oct(st.st_mode & 0o777) if st else '-'}, "
                   f"owner {st.st_uid if st else '-'}; the directory {oct(shared.stat().st_mode & 0o777)})",
                   st is not None and st.st_uid == 65532)
        s3_check(self.report, self.podman, app, "container-role", "s3-app/object",
                 "with the injected env, reading that token")

    def rotation(self):
        step("s3-app: kubelet rotates the projected token (kubelet-swap.sh) under the app's traffic")
        side, app = self.kubelet.container(self.aname, "credagent"), self.kubelet.container(self.aname, "app")
        url = f"http://{self.aip}:9464/metrics"
        tok_dir, spec = self.kubelet.pods[self.aname]["tokens"]["credagent-token"]
        new_token = self.standin.token("shop", "s3-app", spec["audience"], 7200)
        new_exp = jwt_claims(new_token)["exp"]
        (self.work / "rotated-token").write_text(new_token)
        before = self.standin.stats()["successes"]
        m0 = metrics(url)
        # The app's traffic from before the swap to well after the sidecar has the new token.
        loop = subprocess.Popen(["podman", "exec", app, PYTHON, f"{APP_IN_POD}/app.py", "loop", BUCKET, "12"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        subprocess.run([self.a.swap, str(tok_dir), spec["path"], str(self.work / "rotated-token"), "0644"], check=True)
        seen = wait_until(lambda: metrics(url).get("credagent_token_expiry_timestamp_seconds") == new_exp, 15)
        seen_at = time.time()
        m1 = metrics(url)
        upd = 'credagent_token_reloads_total{result="updated"}'
        self.check(f"{side}: read the rotated token (token expiry gauge = its exp {new_exp}, reloads updated "
                   f"{m0.get(upd)} -> {m1.get(upd)})", bool(seen) and m1.get(upd, 0) > m0.get(upd, 0),
                   self.kubelet.logs(side))
        exchanged = wait_until(lambda: self.standin.stats()["successes"] > before, 10)
        self.check("the sidecar exchanged the rotated token with the stand-in at once", bool(exchanged),
                   json.dumps(self.standin.stats()))
        out, err = loop.communicate(timeout=60)
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            result = None
        before = sum(t < seen_at for t in result["began"]) if result else 0
        after = sum(t > seen_at for t in result["began"]) if result else 0
        self.check(f"{app}: PUT+GET in a loop through the rotation, a new SDK session each round: {before} rounds "
                   f"before the sidecar had the new token, {after} after, "
                   f"{result['failures'] if result else '?'} failures",
                   result is not None and before >= 1 and after >= 1 and result["failures"] == 0,
                   (out + err)[-1500:])

    def data_loader(self):
        step("data-loader: the credential_process fallback (AWS_CONFIG_FILE), as the data loaders use it")
        self.bname, self.bip = self.run_injected("data-loader")
        if self.bip is None:
            return False
        side, app = self.kubelet.container(self.bname, "credagent"), self.kubelet.container(self.bname, "app")
        check_confinement(self.report, self.podman, side, 65532, 0)
        shared = self.work / "volumes" / self.bname / "credagent-auth"
        copied = shared / "credagent"
        st = copied.stat() if copied.exists() else None
        self.check(f"{side}: wrote aws-config and its own binary into the shared emptyDir "
                   f"(binary mode {oct(st.st_mode & 0o777) if st else '-'}, owner {st.st_uid if st else '-'})",
                   (shared / "aws-config").exists() and st is not None and st.st_mode & 0o005 == 0o005)
        s3_check(self.report, self.podman, app, "custom-process", "data-loader/object",
                 "the AWS config's credential_process (the sidecar's binary, run by the app)")

    def node(self):
        step("the node agent (from its DaemonSet) in the node's network namespace, and a client Pod in node mode")
        ds = find(self.docs, "DaemonSet", "node")
        pod = self.kubelet.materialise(pod_from_template(ds, f"{ds['metadata']['name']}-0"),
                                       [("credagent", "credagent-test-ca", self.pki / "ca.crt", CA_IN_POD)])
        self.npod = pod
        self.nname = self.kubelet.play(pod, self.envfrom_configmaps(pod))
        setup = self.podman.inspect(self.kubelet.container(self.nname, "setup-link"))
        self.check(f"{self.nname}: setup-link as the chart grants it: user {setup['Config']['User']}, "
                   f"capabilities {setup['EffectiveCaps']}",
                   setup["Config"]["User"].split(":")[0] == "0" and setup["EffectiveCaps"] == ["CAP_NET_ADMIN"])
        if self.kubelet.start(self.nname, NODE_IP, self.report) is None:
            return False
        # On credagent0, a dummy link; on lo where the kernel has no dummy link type (setup-link says so).
        addrs = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
        found = {a: line.split()[1] for line in addrs.splitlines()
                 for a in ("169.254.170.23/32", "fd00:ec2::23/128") if f" {a} " in line}
        self.check(f"setup-link put 169.254.170.23/32 and fd00:ec2::23/128 in the node's namespace ({found})",
                   len(found) == 2 and set(found.values()) <= {"credagent0", "lo"},
                   addrs + self.kubelet.logs(self.kubelet.container(self.nname, "setup-link")))
        ctr = self.kubelet.container(self.nname, "credagent")
        ready = wait_until(lambda: http_status(f"http://{NODE_IP}:9464/readyz") == 200, 30)
        self.check(f"{ctr}: ready on the node's admin port", ready, self.kubelet.logs(ctr))
        check_confinement(self.report, self.podman, ctr, 0, 1 << 10)  # CAP_NET_BIND_SERVICE only

        self.cname, cip = self.run_injected("node-client")
        if cip is None:
            return False
        app = self.kubelet.container(self.cname, "app")
        check_confinement(self.report, self.podman, app, APP_UID, 0)
        s3_check(self.report, self.podman, app, "container-role", "node-client/object",
                 "the node agent at 169.254.170.23 with the Pod's own projected token")
        sub = self.standin.stats().get("last_sub")
        cached = metrics(f"http://{NODE_IP}:9464/metrics").get("credagent_node_identities")
        self.check(f"the node agent exchanged the client Pod's own token (last subject {sub}, {cached} identity cached)",
                   sub == "system:serviceaccount:shop:node-client" and cached == 1)

    # ---------------------------------------------------------------- Prometheus

    def prometheus(self):
        step("Prometheus scrapes the sidecars, the node agent and the webhook, with the chart's rules loaded")
        (self.work / "rules.yaml").write_text(yaml.safe_dump(find(self.docs, "PrometheusRule")["spec"], sort_keys=False))

        def target(ip, pod, namespace, container, mode=None):
            # What the chart's PodMonitors give: mode by relabelling, node from the Pod's node name;
            # namespace, pod, container, endpoint from the operator's pod discovery.
            labels = {"namespace": namespace, "pod": pod, "container": container, "endpoint": "credagent-admin",
                      "node": NODE_NAME, **({"mode": mode} if mode else {})}
            return {"targets": [f"{ip}:9464"], "labels": labels}

        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.work / "rules.yaml")],
            "scrape_configs": [
                {"job_name": f"{NAMESPACE}/credagent-sidecar",
                 "static_configs": [target(self.aip, "s3-app", "shop", "credagent", "sidecar"),
                                    target(self.bip, "data-loader", "shop", "credagent", "sidecar")]},
                {"job_name": f"{NAMESPACE}/credagent-node",
                 "static_configs": [target(NODE_IP, self.npod["metadata"]["name"], NAMESPACE, "credagent", "node")]},
                # No PodMonitor scrapes the webhook; scraped as one would.
                {"job_name": f"{NAMESPACE}/credagent-webhook",
                 "static_configs": [target(self.wip, self.wpod["metadata"]["name"], NAMESPACE, "webhook")]},
            ],
        }
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        start_process(self.procs, self.logs, "prometheus",
                      [self.a.prometheus, f"--config.file={self.work / 'prometheus.yml'}",
                       f"--storage.tsdb.path={self.work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{PROM_PORT}",
                       "--log.level=warn"])
        prom = series.Prometheus(f"http://127.0.0.1:{PROM_PORT}")

        def scraped_enough():
            try:
                r = prom.get("/api/v1/query", query="count(count_over_time(up[1m]) >= 5 and up == 1)")["result"]
                return bool(r) and int(float(r[0]["value"][1])) == 4
            except (OSError, RuntimeError):
                return False

        if not self.check("Prometheus 2.42 scraped all 4 targets (2 sidecars, the node agent, the webhook) 5 times",
                          wait_until(scraped_enough, 60, 0.5), (self.logs / "prometheus.log").read_text()[-1500:]):
            return
        rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
        bad = [f"{r['name']}: {r.get('health')} {r.get('lastError', '')}" for r in rules if r.get("health") != "ok"]
        active = [f"{r['name']} ({r['state']})" for r in rules if r.get("state", "inactive") != "inactive"]
        self.check(f"the chart's {len(rules)} rules load and evaluate without error", not bad, "\n".join(bad))
        self.check("no alert pending or firing against these healthy agents", not active, "\n".join(active))
        n = series.check(self.report, prom, self.docs)
        self.check(f"{n} PromQL expressions of the rules and the dashboard checked against the scrape", n > 20)
        adm = prom.get("/api/v1/query", query='credagent_webhook_admissions_total{outcome="injected"}')["result"]
        counts = {r["metric"]["reason"]: float(r["value"][1]) for r in adm}
        self.check(f"the webhook's scrape counts the admissions it answered (injected: {counts})",
                   counts.get("sidecar") == 2 and counts.get("node") == 1)

    # ---------------------------------------------------------------- shutdown

    def shutdown(self):
        step("podman stop, as kubelet stops each Pod: SIGTERM to PID 1, the Pod's grace period")
        for name, credagent in ((self.aname, {"credagent"}), (self.bname, {"credagent"}), (self.cname, set()),
                                (self.nname, {"credagent"}), (self.wname, {"webhook"})):
            self.kubelet.stop(name, self.report, credagent)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in ("--helm", "--image", "--app-image", "--standin", "--s3s-fs", "--prometheus", "--app-site",
                 "--work", "--run-id", "--network", "--swap"):
        ap.add_argument(flag, required=True)
    a = ap.parse_args()
    work = Path(a.work)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    report = Report()
    podman = Podman(open(work / "logs" / "podman.log", "a"))
    kubelet = Kubelet(podman, work, a.network, a.run_id)
    procs = []

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        Run(a, report, kubelet, podman, procs).all()
    except KeyboardInterrupt:
        report.check("interrupted", False)
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        report.check(f"the run stopped on an error: {type(e).__name__}: {e}", False, traceback.format_exc())
    finally:
        kubelet.remove_all()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        (work / "logs" / "substitutions.txt").write_text("".join(f"{p}: {w}\n" for p, w in kubelet.substituted))
    print(f"pods: {report.passed} passed, {report.failed} failed", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
