"""What the controllers and kubelet do around a Pod, for running the chart's Pods under podman 4.3.

podman's `kube play` runs the Pods; this module does, exactly and nothing more, what podman 4.3
does not do or does differently from kubelet (README.md, "Substitutions", lists each with why):

- a controller's Pod from a Deployment's or DaemonSet's template (`pod_from_template`);
- the volumes kubelet makes (`Kubelet.materialise`): a projected ServiceAccount token and a
  Secret in kubelet's AtomicWriter layout (a timestamped directory published by renaming the
  `..data` symlink, one symlink per file), an emptyDir as kubelet makes it (0777, root's; a tmpfs
  for `medium: Memory`), each given to podman as a hostPath;
- the start order of init containers, native sidecars and app containers, with the startup
  probe between them, and the stop order (`Kubelet.start`, `Kubelet.stop`): every init container
  is played as an ordinary container that podman does not start, since podman 4.3 ignores
  `restartPolicy: Always` on init containers and would wait for the sidecar to exit;
- the probes, which podman 4.3 would turn into a healthcheck that runs `curl` inside the
  container (the image has neither curl nor a shell) on port 0 (a named port), through systemd
  timers this machine lacks: they are removed from what podman sees, and `Kubelet` makes the
  startup probe's HTTP GET itself.
"""

import copy
import json
import os
import random
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml


def pod_from_template(obj, name):
    """The Pod a ReplicaSet or DaemonSet controller creates from `obj`'s template."""
    tpl = copy.deepcopy(obj["spec"]["template"])
    meta = tpl.setdefault("metadata", {})
    meta["name"] = name
    meta["namespace"] = obj["metadata"].get("namespace", "default")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tpl["spec"]}


def atomic_write(directory, files, mode=0o644, owner=None):
    """kubelet's AtomicWriter.Write (Linux) for a flat payload, step for step (research/token-watch.md
    §1.2, 7.1; crates/testkit/kubelet-swap.sh is the one-file shell version): a new `..<UTC
    timestamp>.<random>` directory with the files (chowned to `owner` before publishing, as kubelet
    does when every container runs as one user), `..data_tmp` -> it renamed over `..data`, a
    `NAME -> ..data/NAME` link per file if missing, the old directory removed."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    try:
        old = os.readlink(d / "..data")
    except FileNotFoundError:
        old = None
    ts = "..{}.{}".format(datetime.now(timezone.utc).strftime("%Y_%m_%d_%H_%M_%S"), random.getrandbits(32))
    (d / ts).mkdir(mode=0o700)
    os.chmod(d / ts, 0o755)
    for name, data in files.items():
        p = d / ts / name
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        if owner is not None:
            os.chown(p, owner, -1)
    os.symlink(ts, d / "..data_tmp")
    os.rename(d / "..data_tmp", d / "..data")
    for name in files:
        if not os.path.lexists(d / name):
            os.symlink(f"..data/{name}", d / name)
    if old:
        shutil.rmtree(d / old)


def quantity_bytes(q):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 1000**2, "G": 1000**3}
    m = re.fullmatch(r"(\d+)([KMG]i?|k)?", str(q))
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


def http_status(url, timeout=1):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Podman:
    """The podman CLI, with the configuration the calling script set in the environment."""

    def __init__(self, log):
        self.log = log

    def __call__(self, *args, check=True, timeout=120):
        p = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
        self.log.write(f"$ podman {' '.join(args)}\n{p.stdout}{p.stderr}\n")
        self.log.flush()
        if check and p.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:3])}: exit {p.returncode}: {p.stderr.strip()[-800:]}")
        return p

    def inspect(self, name):
        return json.loads(self("inspect", name).stdout)[0]


class Kubelet:
    """Runs Pods under podman as kubelet would, with the substitutions listed in the module doc.

    `token_source(namespace, service_account, audience, seconds)`, set before `materialise`, mints
    a ServiceAccount token."""

    def __init__(self, podman, work, network, run_id):
        self.podman = podman
        self.work = Path(work)
        self.network = network
        self.run_id = run_id
        self.token_source = None
        self.pods = {}  # podman pod name -> record
        self.mounts = []  # tmpfs mounts to undo
        self.substituted = []  # (pod, what) for the log
        self.secrets = {}  # Secret name -> {key: bytes}, from the render

    def podman_name(self, pod):
        return f"{pod['metadata']['name']}-{self.run_id}"

    # ---------------------------------------------------------------- volumes

    def materialise(self, pod, extra_mounts=()):
        """Replaces the volumes podman cannot honour with hostPath directories made as kubelet makes
        them, and returns what podman is to play. `extra_mounts`: (container, volume name, host path,
        mount path) the test adds (the stand-in's CA)."""
        pod = copy.deepcopy(pod)
        name = self.podman_name(pod)
        spec = pod["spec"]
        ns = pod["metadata"].get("namespace", "default")
        sa = spec.get("serviceAccountName", "default")
        root = self.work / "volumes" / name
        record = {"pod": pod, "tokens": {}}
        users = {c.get("securityContext", {}).get("runAsUser", spec.get("securityContext", {}).get("runAsUser"))
                 for c in spec.get("initContainers", []) + spec["containers"]}
        one_user = users.pop() if len(users) == 1 else None
        for v in spec.get("volumes", []):
            host = root / v["name"]
            if "projected" in v:
                sources = v["projected"]["sources"]
                if len(sources) != 1 or "serviceAccountToken" not in sources[0]:
                    raise ValueError(f"projected volume {v['name']}: only one serviceAccountToken source is reproduced")
                t = sources[0]["serviceAccountToken"]
                token = self.token_source(ns, sa, t.get("audience"), t.get("expirationSeconds", 3600))
                # Mode 0644 (defaultMode), or 0600 owned by the one user every container runs as (kubelet 1.19+).
                mode = 0o600 if one_user is not None else v["projected"].get("defaultMode", 0o644)
                atomic_write(host, {t["path"]: token.encode()}, mode, one_user)
                record["tokens"][v["name"]] = (host, t)
                self.substituted.append((name, f"projected token {v['name']} -> kubelet layout, mode {mode:o}"))
            elif "secret" in v:
                files = self.secrets[v["secret"]["secretName"]]
                atomic_write(host, files, v["secret"].get("defaultMode", 0o644))
                self.substituted.append((name, f"secret {v['name']} -> kubelet layout"))
            elif "emptyDir" in v:
                host.mkdir(parents=True)
                ed = v["emptyDir"] or {}
                if ed.get("medium") == "Memory":
                    opts = "mode=0777" + (f",size={quantity_bytes(ed['sizeLimit'])}" if ed.get("sizeLimit") else "")
                    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, f"credagent-{name}", str(host)], check=True)
                    self.mounts.append(host)
                os.chmod(host, 0o777)
                self.substituted.append((name, f"emptyDir {v['name']} -> 0777 directory"
                                               + (" on a tmpfs" if ed.get("medium") == "Memory" else "")))
            else:
                continue
            for key in list(v):
                if key != "name":
                    del v[key]
            v["hostPath"] = {"path": str(host), "type": "Directory"}
        for container, vname, path, mount in extra_mounts:
            spec.setdefault("volumes", []).append({"name": vname, "hostPath": {"path": str(path), "type": "File"}})
            c = next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == container)
            c.setdefault("volumeMounts", []).append({"name": vname, "mountPath": mount, "readOnly": True})
        self.pods[name] = record
        return pod

    # ---------------------------------------------------------------- play, start, stop

    def play(self, pod, configmaps=()):
        """`podman kube play --start=false` of `pod` (materialised) with every init container played as
        an ordinary container and no probes. Returns the podman pod name."""
        name = self.podman_name(pod)
        spec = copy.deepcopy(pod["spec"])
        order = []
        for c in spec.get("initContainers", []):
            kind = "sidecar" if c.get("restartPolicy") == "Always" else "init"
            order.append((kind, c))
        order += [("app", c) for c in spec["containers"]]
        played = []
        for _, c in order:
            c = copy.deepcopy(c)
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                c.pop(probe, None)
            c.pop("restartPolicy", None)
            # podman 4.3 publishes every containerPort on the same port of the host (here the node),
            # where Kubernetes publishes only a hostPort: two Pods' admin ports would collide.
            c.pop("ports", None)
            played.append(c)
        spec["initContainers"] = []
        spec["containers"] = played
        # A crash must show as an exit, not be hidden by a restart.
        spec["restartPolicy"] = "Never"
        meta = dict(pod["metadata"], name=name)
        # podman 4.3 refuses annotation values over 63 characters (the limit of label values; an
        # annotation may be far longer): the chart's checksum/config (a SHA-256) goes.
        long = {k for k, v in (meta.get("annotations") or {}).items() if len(str(v)) > 63}
        if long:
            meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k not in long}
            self.substituted.append((name, f"annotations dropped: {', '.join(sorted(long))}"))
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all([*configmaps, doc], sort_keys=False))
        args = ["kube", "play", "--start=false"]
        if not spec.get("hostNetwork"):
            args += ["--network", self.network]
        self.podman(*args, str(path))
        rec = self.pods[name]
        rec["order"] = order
        rec["grace"] = pod["spec"].get("terminationGracePeriodSeconds", 30)
        rec["yaml"] = path
        return name

    def logs(self, ctr):
        p = self.podman("logs", ctr, check=False)
        return (p.stdout + p.stderr)[-1500:]

    def container(self, pod_name, container):
        return f"{pod_name}-{container}"

    def ip(self, pod_name, node_ip):
        rec = self.pods[pod_name]
        if rec["pod"]["spec"].get("hostNetwork"):
            return node_ip
        infra = self.podman.inspect(json.loads(self.podman("pod", "inspect", pod_name).stdout)["InfraContainerID"])
        return infra["NetworkSettings"]["Networks"][self.network]["IPAddress"]

    def start(self, pod_name, node_ip, report):
        """Starts the containers in kubelet's order: each init container to exit 0, each sidecar up to
        its startup probe, then the apps. Reports a check per step; returns the Pod's IP, or None."""
        rec = self.pods[pod_name]
        ip = None
        for kind, c in rec["order"]:
            ctr = self.container(pod_name, c["name"])
            if not self.admits(rec["pod"], c, ctr, report):
                return None
            self.podman("start", ctr)
            if ip is None:
                ip = self.ip(pod_name, node_ip)
            if kind == "init":
                code = self.podman("wait", ctr, timeout=120).stdout.strip()
                ok = code == "0"
                report.check(f"{pod_name}: init container {c['name']} ran to completion (exit {code})", ok,
                             self.logs(ctr))
                if not ok:
                    return None
            elif kind == "sidecar" and c.get("startupProbe"):
                probe = c["startupProbe"]["httpGet"]
                port = probe["port"]
                if isinstance(port, str):
                    port = next(p["containerPort"] for p in c["ports"] if p["name"] == port)
                url = f"http://{ip}:{port}{probe['path']}"
                p = c["startupProbe"]
                deadline = time.monotonic() + p.get("periodSeconds", 10) * p.get("failureThreshold", 3)
                status = None
                while time.monotonic() < deadline:
                    status = http_status(url, p.get("timeoutSeconds", 1))
                    if status == 200 or not self.running(ctr):
                        break
                    time.sleep(0.2)
                ok = status == 200
                report.check(f"{pod_name}: sidecar {c['name']} passed its startup probe (GET {probe['path']}: {status})",
                             ok, self.logs(ctr))
                if not ok:
                    return None
        return ip

    def admits(self, pod, c, ctr, report):
        """kubelet's runAsNonRoot check, which podman 4.3 does not make (it runs such a container as
        root): the UID the container runs as (its runAsUser, else the Pod's, else the image's USER,
        which must then be numeric) must not be 0."""
        sc, psc = c.get("securityContext") or {}, pod["spec"].get("securityContext") or {}
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            return True
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        source = "runAsUser"
        if uid is None:
            user = self.podman.inspect(c["image"])["Config"].get("User", "").split(":")[0]
            uid, source = (int(user) if user.isdigit() else None), f"the image's USER {user!r}"
        return report.check(f"{ctr}: kubelet's runAsNonRoot check admits it (UID {uid}, from {source})",
                            uid is not None and uid != 0)

    def running(self, ctr):
        return self.podman.inspect(ctr)["State"]["Running"]

    def stop(self, pod_name, report, credagent_containers):
        """Stops the apps, then the sidecars (last started, first stopped), as kubelet does; each with
        SIGTERM and the Pod's grace period. Checks that each container in `credagent_containers`
        ended within it with exit status 0."""
        rec = self.pods[pod_name]
        grace = rec["grace"]
        apps = [c for kind, c in rec["order"] if kind == "app"]
        sidecars = [c for kind, c in rec["order"] if kind == "sidecar"][::-1]
        for c in apps + sidecars:
            ctr = self.container(pod_name, c["name"])
            if not self.running(ctr):
                state = self.podman.inspect(ctr)["State"]
                if c["name"] in credagent_containers:
                    report.check(f"{pod_name}: {c['name']} was still running at the end", False,
                                 f"exit {state['ExitCode']}: "
                                 + self.logs(ctr))
                continue
            started = time.monotonic()
            self.podman("stop", "-t", str(grace), ctr, timeout=grace + 30)
            took = time.monotonic() - started
            code = self.podman.inspect(ctr)["State"]["ExitCode"]
            if c["name"] in credagent_containers:
                report.check(f"{pod_name}: podman stop ({c['name']}, SIGTERM to PID 1) ended it in {took:.1f} s "
                             f"of its {grace} s grace period, exit {code}",
                             code == 0 and took < grace,
                             self.logs(ctr))

    def remove_all(self):
        for name in list(self.pods):
            self.podman("pod", "rm", "-f", "-t", "0", name, check=False)
        for m in self.mounts:
            subprocess.run(["umount", str(m)], check=False)
        self.mounts.clear()
