"""The runtime test's rig: its report, the node's services (a test CA, the stand-in upstream, s3s-fs),
and what it reads off running containers (the kernel's view of PID 1, /metrics, the app's answers)."""

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

# The node: the gateway of the podman bridge inside the node's network namespace.
NODE_IP = "10.231.0.1"
STANDIN_PORT = 9443
S3_PORT = 9000
ACCESS_KEY = "CWRUNTIMETEST0000001"
SECRET_KEY = "runtime-test-secret-key/000000000000000"
BUCKET = "runtime-bucket"
APP_UID = 1000
PYTHON = "/usr/bin/python3"  # the app image's own
SITE_IN_POD = "/opt/site"
APP_IN_POD = "/opt/app"


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, what, ok, detail=""):
        print(f"  {'PASS' if ok else 'FAIL'}  {what}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            for line in str(detail).strip().splitlines()[-30:]:
                print(f"        {line}", flush=True)
        return ok


def step(text):
    print(f"\n--> {text}", flush=True)


def wait_until(predicate, seconds, interval=0.2):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def metrics(url):
    """`name{labels}` -> value, from a /metrics page ({} if it does not answer)."""
    out = {}
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def start_process(procs, logs, name, argv, env=None):
    log = open(logs / f"{name}.log", "wb")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    procs.append(p)
    return p


def pki(work):
    """A test CA and the stand-in's serving certificate (the node's address and loopback)."""
    d = work / "pki"
    d.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=credagent runtime test CA")
    openssl("req", *ec, "-keyout", "standin.key", "-out", "standin.csr", "-subj", "/CN=standin")
    (d / "ext.cnf").write_text(f"subjectAltName=IP:{NODE_IP},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "standin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext.cnf", "-out", "standin.crt")
    os.chmod(d / "ca.crt", 0o644)
    return d


class StandIn:
    """The test kit's stand-in upstream on the node, over HTTPS with the test CA's certificate; its
    control API (crates/testkit/src/standin/control.rs)."""

    def __init__(self, binary, pki_dir, org, audience):
        self.binary, self.pki, self.org, self.audience = binary, pki_dir, org, audience
        self.ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        self.url = f"https://127.0.0.1:{STANDIN_PORT}/_standin"

    def start(self, procs, logs):
        start_process(procs, logs, "standin",
                      [self.binary, "--listen", f"0.0.0.0:{STANDIN_PORT}", "--access-key", ACCESS_KEY,
                       "--org-id", self.org, "--audience", self.audience,
                       "--tls-cert", str(self.pki / "standin.crt"), "--tls-key", str(self.pki / "standin.key")],
                      env=dict(os.environ, STANDIN_SECRET_KEY=SECRET_KEY))

    def exchange_url(self):
        return f"https://{NODE_IP}:{STANDIN_PORT}/v1/cwobject/temporary-credentials/oidc/{self.org}"

    def call(self, route, body=None):
        req = urllib.request.Request(f"{self.url}/{route}", method="POST" if body is not None else "GET",
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=5, context=self.ctx) as r:
            return r.read().decode()

    def token(self, namespace, service_account, audience, seconds):
        """A token as kubelet would project it for this Pod (the stand-in's own issuer)."""
        return self.call("token", {"namespace": namespace, "service_account": service_account,
                                   "audience": audience, "lifetime_secs": seconds})

    def stats(self):
        return json.loads(self.call("stats"))


def start_s3(procs, logs, binary, root):
    (root / BUCKET).mkdir(parents=True)
    start_process(procs, logs, "s3s-fs", [binary, "--host", "0.0.0.0", "--port", str(S3_PORT),
                                           "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, str(root)])


class ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to a Service's DNS name (SNI, certificate check) at the endpoint the Service resolves to."""

    def __init__(self, address, hostname, port, context):
        super().__init__(hostname, port, context=context, timeout=10)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def check_confinement(report, podman, ctr, uid, cap_eff):
    """What the kernel says about the container's PID 1: its UID, effective capabilities,
    no_new_privs, a seccomp filter, a read-only root."""
    pid = podman.inspect(ctr)["State"]["Pid"]
    st = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        st[k] = v.split()
    root = [ln.split() for ln in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if ln.split()[4] == "/"]
    ro = bool(root) and "ro" in root[-1][5].split(",")
    got = (f"uid {'/'.join(st['Uid'])}, CapEff {st['CapEff'][0]}, NoNewPrivs {st['NoNewPrivs'][0]}, "
           f"Seccomp {st['Seccomp'][0]}, root {'ro' if ro else 'rw'}")
    ok = (set(st["Uid"]) == {str(uid)} and int(st["CapEff"][0], 16) == cap_eff and st["NoNewPrivs"] == ["1"]
          and st["Seccomp"] == ["2"] and ro)
    report.check(f"{ctr}: PID 1 runs as {got}", ok, f"expected uid {uid}, CapEff {cap_eff:016x}")


def app_run(podman, ctr, *args, timeout=60):
    """Runs app.py in the app container (as its user, with its env); its JSON answer, or None and why."""
    p = podman("exec", ctr, PYTHON, f"{APP_IN_POD}/app.py", *args, check=False, timeout=timeout)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr
    except (IndexError, ValueError):
        return None, p.stdout + p.stderr


def s3_check(report, podman, ctr, method, key, what):
    out, err = app_run(podman, ctr, "s3", BUCKET, key)
    ok = (out is not None and out["method"] == method and out["access_key"] == ACCESS_KEY and out["roundtrip"]
          and out["listed"] and out["uid"] == APP_UID)
    report.check(f"{ctr}: {what}: botocore as UID {APP_UID} chose '{method}', PUT, GET and LIST on s3s-fs "
                 f"({json.dumps(out) if out else 'no answer'})", ok, err)
