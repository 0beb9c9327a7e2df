#!/usr/bin/env python3
"""credagent interoperability suite: the driver (Python stdlib only).

run.sh installs and builds everything, then runs this. It starts, all on 127.0.0.1 with ports
chosen at run time:

  * `credagent-standin` (the test kit's stand-in upstream), handing out keys that s3s-fs knows;
  * `s3s-fs` with those keys, behind `proxy.py` (records what each client puts on the wire);
  * `credagent sidecar` reading a kubelet-style token volume;

and runs real, unmodified AWS clients against them (boto3, AWS CLI v1, JS v3 with three credential
providers, aws-sdk-rust with two, aws-sdk-go-v2) and the S3 clients of data workloads (pyarrow,
polars through object_store and through boto3, s3torchconnectorclient through the container
provider and through a credential_process profile). Each client is a small program printing one
JSON line; this driver asserts on those lines, on the proxy's record, and on credagent's metrics
and logs.

Phases:
  probe      what each client makes of variants of the ECS body (evidence for what credagent serves)
  pass-a     `Token: ""` (as CoreWeave sends it): bucket, PUT, GET, LIST, presigned GET
  negative   wrong auth token; auth token file ending in a newline
  pass-b     a non-empty session token
  short-keys 15-minute keys (CoreWeave's GET exchange), credagent refreshing every ~45 s and the
             stand-in rotating the key: every client loops through its own counting forwarder, so
             each client's credential GETs are counted against its S3 requests
  rotation   60 s credentials, kubelet token swap midway, every client looping concurrently
  revocation the upstream switches keys and s3s-fs restarts with them; old keys get 403, then
             every client recovers after credagent's next refresh

Results: a table on stdout and in --results (markdown), details in --results-json, and a last
line `interop: N passed, M failed`. Exit status 1 if anything failed.
"""

import argparse
import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# A stale secret: SignatureDoesNotMatch; the AWS CLI's HeadObject has no body, so only "403".
REVOKE_CODES = {"SignatureDoesNotMatch", "403"}


# --------------------------------------------------------------------------------------------
# small helpers


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(cond, timeout, what, interval=0.1):
    """Bounded poll on a condition; returns the condition's truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def request(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def payload(size, seed):
    """The bytes every client PUTs (same xorshift64 generator in Python, Node and Rust)."""
    mask = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 | 1) & mask
    out = bytearray(size)
    for i in range(size):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out[i] = (x >> 24) & 0xFF
    return bytes(out)


def sha16(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_rfc3339_z(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def auth_like_token():
    """A token shaped like credagent's (43 base64url characters) that is not the agent's."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


# --------------------------------------------------------------------------------------------
# processes


class Procs:
    """Every process the driver starts; all are stopped on exit (normal, error or signal). Their
    pids also go to `pidfile`, so run.sh's trap can end them if the driver itself is killed."""

    def __init__(self, pidfile):
        self.procs = []
        self.lock = threading.Lock()
        self.pidfile = pidfile

    def start(self, name, argv, env=None, stdout=None, stderr=None):
        # Each in its own process group, so that stopping it also stops what it started (the AWS
        # CLI client runs `aws` processes).
        p = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        p.name = name
        with self.lock:
            self.procs.append(p)
            with open(self.pidfile, "a") as f:
                f.write(f"{p.pid}\n")
        return p

    def stop(self, p, timeout=5):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)  # the group outlives its leader if a child is still running
            except ProcessLookupError:
                break
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:
                # Give the rest of the group (e.g. a running `aws`) the same chance, then make sure.
                time.sleep(0.05)
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        p.poll()
        with self.lock:
            if p in self.procs:
                self.procs.remove(p)

    def stop_all(self):
        with self.lock:
            procs = list(self.procs)
        for p in reversed(procs):
            self.stop(p)


class StandIn:
    def __init__(self, rig, name, access_key, secret_key, session_token="", lifetime=3600):
        self.rig = rig
        d = os.path.join(rig.work, name)
        os.makedirs(d, exist_ok=True)
        self.addr_file = os.path.join(d, "addr")
        self.out_path = os.path.join(d, "stdout")
        env = dict(os.environ, STANDIN_SECRET_KEY=secret_key, STANDIN_SESSION_TOKEN=session_token)
        self.proc = rig.procs.start(
            name,
            [rig.args.standin, "--listen", "127.0.0.1:0", "--access-key", access_key,
             "--lifetime", str(lifetime), "--addr-file", self.addr_file],
            env=env, stdout=open(self.out_path, "w"), stderr=open(os.path.join(d, "stderr"), "w"),
        )
        self.addr = wait_for(lambda: self._read(self.addr_file), 30, f"{name} address file")
        line = wait_for(lambda: self._read(self.out_path).strip(), 10, f"{name} banner")
        self.url = line.removeprefix("standin listening on ").strip()
        assert self.url.startswith("http://127.0.0.1:"), line

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def control(self, route, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        status, resp = request("POST", f"http://{self.addr}/_standin/{route}", data,
                            {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"stand-in {route}: {status} {resp[:200]!r}")
        return resp

    def token(self, **spec):
        return self.control("token", spec or None).decode()

    def stats(self):
        return json.loads(request("GET", f"http://{self.addr}/_standin/stats")[1])

    def stop(self):
        self.rig.procs.stop(self.proc)


class S3Server:
    def __init__(self, rig, name, access_key, secret_key, root=None):
        self.rig = rig
        self.port = free_port()
        self.access_key = access_key
        self.proc = rig.procs.start(
            name,
            [rig.args.s3s_fs, "--host", "127.0.0.1", "--port", str(self.port),
             "--access-key", access_key, "--secret-key", secret_key, root or rig.s3_data],
            stdout=open(os.path.join(rig.work, f"{name}.log"), "w"), stderr=subprocess.STDOUT,
        )
        wait_for(lambda: self.proc.poll() is not None or port_open(self.port), 30, f"{name} listening")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {self.proc.returncode}; see {name}.log")
        self.addr = f"127.0.0.1:{self.port}"

    def stop(self):
        self.rig.procs.stop(self.proc)


class Proxy:
    def __init__(self, rig, upstream):
        self.log_path = os.path.join(rig.work, "proxy.jsonl")
        addr_file = os.path.join(rig.work, "proxy.addr")
        self.proc = rig.procs.start(
            "proxy", [sys.executable, os.path.join(HERE, "proxy.py"), "--upstream", upstream,
                      "--log", self.log_path, "--addr-file", addr_file],
            stdout=open(os.path.join(rig.work, "proxy.out"), "w"), stderr=subprocess.STDOUT,
        )
        self.addr = wait_for(lambda: StandIn._read(addr_file), 15, "proxy address file")
        self.endpoint = f"http://{self.addr}"

    def set_upstream(self, addr):
        status, _ = request("POST", f"{self.endpoint}/_proxy/upstream", addr.encode())
        assert status == 200

    def route(self, access_key, addr):
        """Requests signed by `access_key` go to `addr` ("": the default upstream again)."""
        status, _ = request("POST", f"{self.endpoint}/_proxy/route", f"{access_key}={addr}".encode())
        assert status == 200

    def entries(self, bucket=None):
        out = []
        with open(self.log_path) as f:
            for line in f:
                # The proxy may be writing the last line right now: only whole lines count.
                if line.strip() and line.endswith("\n"):
                    e = json.loads(line)
                    if bucket is None or e["bucket"] == bucket:
                        out.append(e)
        return out


class CredentialCounter:
    """One client's own credentials endpoint: a forwarder in front of the sidecar (a thread of the
    driver) that passes each request through unchanged and records when it came, how it was
    answered and which access key id the answer held (never the secret). Pointing one client's
    AWS_CONTAINER_CREDENTIALS_FULL_URI here counts exactly the GETs that client makes."""

    HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host"}

    def __init__(self, sidecar, name):
        self.name = name
        self.records = []  # {"t", "t_end", "status", "access_key", "expiration", "user_agent"}
        self.lock = threading.Lock()
        target = ("127.0.0.1", sidecar.port)
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                t = time.time()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in counter.HOP_BY_HOP}
                status, body, ctype = 502, b"credential counter: sidecar unreachable", "text/plain"
                try:
                    conn = http.client.HTTPConnection(*target, timeout=10)
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    status, body = resp.status, resp.read()
                    ctype = resp.getheader("Content-Type") or ""
                    conn.close()
                except (OSError, http.client.HTTPException):
                    pass  # answered 502 and recorded as such
                rec = {"t": t, "t_end": time.time(), "status": status, "access_key": None, "expiration": None,
                       "user_agent": self.headers.get("User-Agent", "")}
                if status == 200:
                    try:
                        doc = json.loads(body)
                        rec["access_key"], rec["expiration"] = doc.get("AccessKeyId"), doc.get("Expiration")
                    except ValueError:
                        pass
                with counter.lock:
                    counter.records.append(rec)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # Same path as the sidecar's: only the port differs.
        self.url = f"http://127.0.0.1:{self.port}" + urllib.parse.urlsplit(sidecar.url).path
        threading.Thread(target=self.server.serve_forever, name=f"counter-{name}", daemon=True).start()

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Sidecar:
    def __init__(self, rig, name, standin, extra_args=()):
        self.rig = rig
        d = os.path.join(rig.work, name)
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.volume = os.path.join(d, "tokens")
        os.makedirs(self.volume, exist_ok=True)
        self.auth_file = os.path.join(d, "run", "auth-token")
        os.makedirs(os.path.dirname(self.auth_file), exist_ok=True)
        self.log_path = os.path.join(d, "credagent.log")
        self.standin = standin
        self.swap_token(standin.token())
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/credentials"
        # The credential_process files (a copy of the binary + an AWS config whose [default]
        # profile runs it): generated by the sidecar once it has --credential-process-dir,
        # written here the same way until then.
        self.process_dir = os.path.join(d, "credential-process")
        self.process_config = os.path.join(self.process_dir, "aws-config")
        self.process_generated = rig.credential_process_dir_flag
        extra = ["--credential-process-dir", self.process_dir] if self.process_generated else []
        self.proc = rig.procs.start(
            name,
            [rig.args.credagent, "sidecar", "--token-file", os.path.join(self.volume, "oidc-token"),
             "--exchange-url", standin.url, "--listen", f"127.0.0.1:{self.port}",
             "--admin-listen", f"127.0.0.1:{self.admin_port}", "--auth-token-file", self.auth_file,
             "--log-format", "json", "--log-level", "info", *extra, *extra_args],
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"),
        )
        wait_for(lambda: self.proc.poll() is not None or self.ready(), 30, f"{name} /readyz")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {self.proc.returncode}; see {self.log_path}")
        with open(self.auth_file, "rb") as f:
            self.auth_token_bytes = f.read()
        self.auth_token = self.auth_token_bytes.decode()
        if self.process_generated:
            wait_for(lambda: os.path.exists(self.process_config), 10, f"{name} to write {self.process_config}")
        else:
            os.makedirs(self.process_dir, exist_ok=True)
            shutil.copy2(rig.args.credagent, os.path.join(self.process_dir, "credagent"))
            self.write_process_config(self.process_config)

    def write_process_config(self, path, auth_file=None, wrapper=(), url=None):
        """An AWS config whose [default] profile runs `DIR/credagent credential-process` (what
        --credential-process-dir generates), optionally with another auth token file or URL (a
        credential counter's), or behind a wrapper command (the fake credential_process)."""
        argv = [*wrapper, os.path.join(self.process_dir, "credagent"), "credential-process", "--url", url or self.url,
                "--auth-token-file", auth_file or self.auth_file]
        with open(path, "w") as f:
            f.write(f"[default]\ncredential_process = {' '.join(argv)}\nregion = us-east-1\n")
        return path

    def swap_token(self, token):
        """Writes the token the way kubelet does (crates/testkit/kubelet-swap.sh)."""
        src = os.path.join(self.volume, "..incoming")
        with open(src, "w") as f:
            f.write(token)
        try:
            subprocess.run(["sh", self.rig.args.kubelet_swap, self.volume, "oidc-token", src],
                           check=True, timeout=30)
        finally:
            os.unlink(src)

    def ready(self):
        try:
            return request("GET", f"http://127.0.0.1:{self.admin_port}/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    def metrics(self):
        text = request("GET", f"http://127.0.0.1:{self.admin_port}/metrics")[1].decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def refreshes_ok(self):
        return self.metrics().get('credagent_refreshes_total{result="ok"}', 0)

    def served(self):
        status, body = request("GET", self.url, headers={"Authorization": self.auth_token})
        assert status == 200, (status, body[:200])
        return json.loads(body)

    def logs(self):
        out = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def stop(self):
        self.rig.procs.stop(self.proc)


# --------------------------------------------------------------------------------------------
# clients


SDK_STEPS = ("create_bucket", "put", "get_identical", "list_contains")


class Client:
    """One client program. The defaults describe an SDK client (the first seven): it reports what
    it parsed (`creds`), presigns, does bucket/PUT/GET/LIST, and takes part in every phase."""

    def __init__(self, name, argv, env_token=False, extra_env=None, loops=True, creds=True, presign=True,
                 steps=SDK_STEPS, needs_bucket=False, probe=True, negative=True, process_config=False,
                 stderr_grep=None, expect_fail=None, wire_a=None, python=False, expiry_offset=0,
                 stale_signing_key=None, process_per_op=False):
        self.name = name
        self.argv = argv
        self.env_token = env_token  # reads only AWS_CONTAINER_AUTHORIZATION_TOKEN
        self.extra_env = extra_env or {}
        self.loops = loops
        self.creds = creds  # has a `creds` mode and reports the parsed credentials in `basic`
        self.presign = presign
        self.steps = steps  # the `steps` that `basic` must report true
        self.needs_bucket = needs_bucket  # cannot create buckets: the driver makes s3s-fs's directory
        self.probe = probe
        self.negative = negative
        # Signs with a `credential_process` profile (AWS_CONFIG_FILE = the sidecar's aws-config).
        self.process_config = process_config
        self.stderr_grep = stderr_grep  # log lines (stderr, or stdout's non-JSON) matching this are kept
        # {pass name: (error regex, stderr regex)}: basic must fail like this, with no S3 request.
        self.expect_fail = expect_fail or {}
        self.wire_a = wire_a  # what the proxy must record with Token "" (None: only "no non-empty token")
        self.python = python  # a client program in tests/interop/python (checked to exist)
        # What the client reports as Expiration, relative to the served one (aws-sdk-go-v2's
        # CredentialsCache moves Expires 5 min earlier: its ExpiryWindow for endpoint credentials).
        self.expiry_offset = expiry_offset
        # A known SDK limitation: the signer caches the derived SigV4 key per access key id (and
        # day), not per secret, so a running process keeps signing with a revoked secret that kept
        # its access key id. The revocation phase asserts that, and that a new process works.
        self.stale_signing_key = stale_signing_key
        # Runs one process per operation (the AWS CLI): each loop event is a process of its own, with
        # an SDK that starts from nothing.
        self.process_per_op = process_per_op


class Report:
    def __init__(self):
        self.checks = []
        self.table = {}  # client -> column -> text
        self.lock = threading.Lock()

    def check(self, phase, client, name, ok, detail=""):
        ok = bool(ok)
        with self.lock:
            self.checks.append({"phase": phase, "client": client, "check": name, "ok": ok, "detail": detail})
        mark = "ok  " if ok else "FAIL"
        log(f"  {mark} {phase:<10} {client or '-':<22} {name}" + (f"  ({detail})" if detail and not ok else ""))
        return ok

    def cell(self, client, column, text):
        with self.lock:
            self.table.setdefault(client, {})[column] = text


# --------------------------------------------------------------------------------------------
# the fake endpoint for the format probe


class ProbeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    variants = {}

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = self.variants.get(self.path.strip("/"))
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------------------------
# the rig


class Rig:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.procs = Procs(os.path.join(self.work, "pids"))
        self.report = Report()
        self.details = {}
        self.s3_data = os.path.join(self.work, "s3-data")
        os.makedirs(self.s3_data, exist_ok=True)
        home = os.path.join(self.work, "home")
        os.makedirs(home, exist_ok=True)
        self.empty_file = os.path.join(self.work, "empty-aws-file")
        open(self.empty_file, "w").close()
        self.home = home
        py = os.path.join(args.venv, "bin", "python")
        aws = os.path.join(args.venv, "bin", "aws")
        node = args.node
        js = os.path.join(HERE, "js", "client.cjs")
        self.clients = [
            Client("boto3", [py, os.path.join(HERE, "python", "boto3_client.py")]),
            Client("awscli", [py, os.path.join(HERE, "python", "awscli_client.py"), "--aws", aws],
                   extra_env={"AWS_MAX_ATTEMPTS": "1"}, process_per_op=True),
            Client("js-http", [node, js, "--provider", "http"]),
            Client("js-default", [node, js, "--provider", "default"]),
            Client("js-container-metadata", [node, js, "--provider", "container-metadata"], env_token=True),
            Client("rust-default", [args.rust_client, "--provider", "default"]),
            Client("rust-ecs", [args.rust_client, "--provider", "ecs"], loops=False),
            # aws-sdk-go-v2 1.17 reads only the AWS_CONTAINER_AUTHORIZATION_TOKEN env var.
            Client("go-v2", [args.go_client], env_token=True, wire_a="omitted", expiry_offset=-300,
                   stale_signing_key="aws/aws-sdk-go-v2#3350"),
        ]
        # The data-workload clients: no credentials view, no presigning (they have no such API).
        dpy = os.path.join(args.data_venv, "bin", "python")
        pydir = os.path.join(HERE, "python")
        boto3_site = os.path.join(args.venv, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                                  "site-packages")
        self.boto3_site = boto3_site
        polars_grep = r"CredentialProviderAWS|FetchedCredentialsCache"
        self.clients += [
            Client("pyarrow", [dpy, os.path.join(pydir, "pyarrow_client.py")], creds=False, presign=False,
                   steps=SDK_STEPS + ("parquet_write", "parquet_roundtrip"), probe=False, wire_a="omitted",
                   python=True),
            # polars' default credential_provider="auto": object_store's own chain without boto3,
            # boto3's (botocore's container provider) with it. POLARS_VERBOSE shows which.
            Client("polars", [dpy, os.path.join(pydir, "polars_client.py")], creds=False, presign=False,
                   steps=("csv_write", "csv_roundtrip"), needs_bucket=True, probe=False,
                   extra_env={"POLARS_VERBOSE": "1"}, stderr_grep=polars_grep,
                   wire_a="empty header sent (signed)", python=True),
            Client("polars-boto3", [dpy, os.path.join(pydir, "polars_client.py")], creds=False, presign=False,
                   steps=("csv_write", "csv_roundtrip"), needs_bucket=True, probe=False,
                   extra_env={"POLARS_VERBOSE": "1", "PYTHONPATH": boto3_site}, stderr_grep=polars_grep,
                   wire_a="empty header sent (signed)", python=True),
            # Its CRT (aws-c-auth 0.9) refuses an ECS answer whose Token is "": an expected failure in
            # pass A, with the CRT's own log line as evidence; with a session token (pass B) it works.
            Client("s3torch-ecs", [dpy, os.path.join(pydir, "s3torch_client.py")], creds=False, presign=False,
                   steps=("head_absent", "put", "get_identical", "head_size"), needs_bucket=True, probe=False,
                   negative=False, loops=False,
                   extra_env={"S3_TORCH_CONNECTOR_DEBUG_LOGS": "awscrt=warn"},
                   stderr_grep=r"Failed to parse Token|ECS credentials provider failed",
                   expect_fail={"pass-a": (r"No signing credentials available", r"Failed to parse Token from Json document")},
                   python=True),
            # The same client through a credential_process profile (the sidecar's aws-config).
            Client("s3torch-process", [dpy, os.path.join(pydir, "s3torch_client.py")], creds=False,
                   presign=False, steps=("head_absent", "put", "get_identical", "head_size"), needs_bucket=True,
                   probe=False, process_config=True, wire_a="omitted", python=True),
        ]
        self.credential_process_dir_flag = self._sidecar_has_flag("--credential-process-dir")
        self.ca_bundle = os.environ.get("AWS_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
        self.versions = self._versions()

    def _sidecar_has_flag(self, flag):
        out = subprocess.run([self.args.credagent, "sidecar", "--help"], capture_output=True, text=True, timeout=30)
        return re.search(rf"(^|\s){re.escape(flag)}[\s=<]", out.stdout) is not None

    # -- versions ----------------------------------------------------------------------------

    def _versions(self):
        v = {}
        py = os.path.join(self.args.venv, "bin", "python")
        out = subprocess.run(
            [py, "-c", "import boto3, botocore, awscli, awscli.botocore as vb; "
             "print(boto3.__version__, botocore.__version__, awscli.__version__, vb.__version__)"],
            capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            b3, bc, cli, vbc = out.stdout.split()
            v["boto3"] = f"boto3 {b3}, botocore {bc}"
            v["awscli"] = f"awscli {cli} (vendored botocore {vbc})"
        mods = os.path.join(self.args.js_modules)

        def npm(name):
            try:
                with open(os.path.join(mods, name, "package.json")) as f:
                    return json.load(f)["version"]
            except OSError:
                return "?"

        js = (f"client-s3 {npm('@aws-sdk/client-s3')}, credential-providers {npm('@aws-sdk/credential-providers')}"
              f" (credential-provider-http {npm('@aws-sdk/credential-provider-http')}")
        v["js-http"] = js + ")"
        v["js-default"] = js + f", credential-provider-node {npm('@aws-sdk/credential-provider-node')})"
        v["js-container-metadata"] = (f"client-s3 {npm('@aws-sdk/client-s3')}, credential-providers "
                                      f"{npm('@aws-sdk/credential-providers')} (@smithy/credential-provider-imds "
                                      f"{npm('@smithy/credential-provider-imds')})")
        self.js_presigner = npm("@aws-sdk/s3-request-presigner")
        lock = {}
        try:
            with open(os.path.join(HERE, "rust", "Cargo.lock")) as f:
                for m in re.finditer(r'name = "([^"]+)"\nversion = "([^"]+)"', f.read()):
                    lock[m.group(1)] = m.group(2)
        except OSError:
            pass
        rust = (f"aws-config {lock.get('aws-config', '?')}, aws-sdk-s3 {lock.get('aws-sdk-s3', '?')}"
                f" (aws-sigv4 {lock.get('aws-sigv4', '?')})")
        v["rust-default"] = rust
        v["rust-ecs"] = rust
        v.update(self._data_versions())
        go = subprocess.run(["go", "version"], capture_output=True, text=True, timeout=30).stdout.split()
        sdk = {}
        for pkg in ("golang-github-aws-aws-sdk-go-v2-dev", "golang-github-aws-smithy-go-dev"):
            q = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True, timeout=30)
            sdk[pkg] = q.stdout.strip() or "?"
        mods = {}
        root = "/usr/share/gocode/src/github.com/aws/aws-sdk-go-v2"
        for mod in ("config", "service/s3", "credentials"):
            try:
                with open(os.path.join(root, mod, "go_module_metadata.go")) as f:
                    mods[mod] = re.search(r'goModuleVersion = "([^"]+)"', f.read()).group(1)
            except (OSError, AttributeError):
                mods[mod] = "?"
        v["go-v2"] = (f"Debian golang-github-aws-aws-sdk-go-v2-dev {sdk['golang-github-aws-aws-sdk-go-v2-dev']} (config "
                      f"{mods['config']}, service/s3 {mods['service/s3']}, credentials {mods['credentials']}), "
                      f"{go[2] if len(go) > 2 else 'go ?'}")
        return v

    def _data_versions(self):
        """Versions in the data venv, and the SDKs built into the wheels (read from the binaries)."""
        py = os.path.join(self.args.data_venv, "bin", "python")
        code = ("import importlib.metadata as m, json, os, s3torchconnectorclient as s, polars as p; "
                "print(json.dumps({'v': {k: m.version(k) for k in ('pyarrow', 'polars', 'polars-runtime-32', "
                "'s3torchconnectorclient')}, 's3torch_dir': os.path.dirname(s.__file__), "
                "'polars_site': os.path.dirname(os.path.dirname(p.__file__))}))")
        out = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            return {}
        info = json.loads(out.stdout)
        ver = info["v"]

        def grep(directory, pattern):
            found = set()
            for name in os.listdir(directory):
                if ".so" in name:
                    with open(os.path.join(directory, name), "rb") as f:
                        found |= {m.decode() for m in re.findall(pattern, f.read())}
            return "/".join(sorted(found)) or "?"

        crt = grep(info["s3torch_dir"], rb"mountpoint-s3-crt-sys-(\d+\.\d+\.\d+)")
        mp = grep(info["s3torch_dir"], rb"mountpoint-s3-client-(\d+\.\d+\.\d+)")
        ostore = grep(os.path.join(info["polars_site"], "_polars_runtime_32"), rb"object_store-(\d+\.\d+\.\d+)")
        self.data_sdks = {"mountpoint-s3-client": mp, "mountpoint-s3-crt-sys": crt, "object_store": ostore}
        polars = f"polars {ver['polars']}, polars-runtime-32 {ver['polars-runtime-32']} (object_store {ostore})"
        s3t = f"s3torchconnectorclient {ver['s3torchconnectorclient']} (mountpoint-s3-client {mp}, mountpoint-s3-crt-sys {crt})"
        return {
            "pyarrow": f"pyarrow {ver['pyarrow']}",  # + aws-sdk-cpp from its User-Agent, after pass A
            "polars": polars,
            "polars-boto3": polars + ", with the boto3 venv's boto3",
            "s3torch-ecs": s3t,
            "s3torch-process": s3t,
        }

    # -- running clients ---------------------------------------------------------------------

    def client_env(self, client, sidecar=None, full_uri=None, token_file=None, token=None, aws_config=None):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "AWS_CONFIG_FILE": self.empty_file,
            "AWS_SHARED_CREDENTIALS_FILE": self.empty_file,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": full_uri or sidecar.url,
            "NODE_PATH": self.args.js_modules,
            "NODE_NO_WARNINGS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",  # keep tests/interop/python free of __pycache__
        }
        if client.env_token:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token if token is not None else sidecar.auth_token
        else:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file or sidecar.auth_file
        if client.process_config:
            # The profile comes before the container provider in the CRT's chain.
            env["AWS_CONFIG_FILE"] = aws_config or sidecar.process_config
        env.update(client.extra_env)
        return env

    def run_client(self, client, mode, bucket, env, extra=(), timeout=180):
        argv = client.argv + ["--mode", mode, "--endpoint", self.proxy.endpoint, "--bucket", bucket, *extra]
        if client.needs_bucket and bucket not in ("-", "probe"):
            # s3s-fs keeps a bucket as a directory of its data dir.
            os.makedirs(os.path.join(self.s3_data, bucket), exist_ok=True)
        started = time.monotonic()
        p = self.procs.start(client.name, argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.procs.stop(p)
            out, err = p.communicate()
            wall = time.monotonic() - started
            return {"ok": False, "wall": wall, "error": {"class": "driver-timeout", "message": f"no answer in {timeout}s"}}
        finally:
            self.procs.stop(p)
        wall = time.monotonic() - started
        lines = [l for l in out.decode(errors="replace").splitlines() if l.startswith("{")]
        try:
            result = json.loads(lines[-1])
        except (IndexError, ValueError):
            result = {"ok": False, "error": {"class": "no-json-output", "message": err.decode(errors="replace")[-2000:]}}
        result["wall"] = wall
        text = err.decode(errors="replace")
        result["stderr_tail"] = text[-1000:]
        if client.stderr_grep:
            # Log lines on either stream (s3torchconnectorclient logs the CRT's to stdout).
            logs = [l for l in out.decode(errors="replace").splitlines() if not l.startswith("{")]
            result["stderr_lines"] = [l for l in logs + text.splitlines() if re.search(client.stderr_grep, l)][:40]
        return result

    def parallel(self, jobs):
        """Runs (key, fn) jobs concurrently; returns {key: result}."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(jobs))) as ex:
            futs = {k: ex.submit(fn) for k, fn in jobs}
            return {k: f.result() for k, f in futs.items()}

    # -- the stack ---------------------------------------------------------------------------

    def start_stack(self, name, session_token="", lifetime=3600, sidecar_args=()):
        self.standin = StandIn(self, f"standin-{name}", self.keys[0], self.keys[1], session_token, lifetime)
        self.sidecar = Sidecar(self, f"sidecar-{name}", self.standin, sidecar_args)
        log(f"stack {name}: stand-in {self.standin.addr}, sidecar {self.sidecar.url} (ready)")

    def stop_stack(self):
        self.sidecar.stop()
        self.standin.stop()

    # -- phases ------------------------------------------------------------------------------

    def phase_probe(self):
        """Serves variants of the ECS body from a fake endpoint and asks each client to parse them."""
        R = self.report
        exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).replace(microsecond=0)
        z = exp.strftime("%Y-%m-%dT%H:%M:%SZ")
        base = {"AccessKeyId": "AKIDPROBE", "SecretAccessKey": "probe-secret"}
        variants = {
            "credagent": dict(base, Token="", Expiration=z),  # exactly what credagent serves
            "token-session": dict(base, Token="probe-session-token", Expiration=z),
            "token-missing": dict(base, Expiration=z),
            "token-null": dict(base, Token=None, Expiration=z),
            "exp-millis": dict(base, Token="", Expiration=exp.strftime("%Y-%m-%dT%H:%M:%S.000Z")),
            "exp-offset": dict(base, Token="", Expiration=exp.strftime("%Y-%m-%dT%H:%M:%S+00:00")),
            "exp-naive": dict(base, Token="", Expiration=exp.strftime("%Y-%m-%dT%H:%M:%S")),
        }
        ProbeHandler.variants = {k: json.dumps(v) for k, v in variants.items()}
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProbeHandler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        token_file = os.path.join(self.work, "probe-auth-token")
        with open(token_file, "w") as f:
            f.write("probe-auth-token")
        jobs = []
        for c in self.clients:
            if c.name == "rust-ecs" or not c.probe:
                continue  # rust-ecs: same parser as rust-default; the data clients have no creds mode
            for v in variants:
                env = self.client_env(c, full_uri=f"http://127.0.0.1:{port}/{v}", token_file=token_file,
                                      token="probe-auth-token")
                jobs.append(((c.name, v), lambda c=c, env=env: self.run_client(c, "creds", "probe", env, timeout=60)))
        # A bounded pool keeps 2 cores from timing out the 1 s JS credential fetches.
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
            futs = {k: ex.submit(fn) for k, fn in jobs}
            results = {k: f.result() for k, f in futs.items()}
        server.shutdown()
        server.server_close()
        matrix = {}
        for (client, v), r in results.items():
            if r.get("ok"):
                cr = r.get("credentials") or {}
                text = f"ok: token {cr.get('token')}, expiry {cr.get('expiration')}"
                offset = next((c.expiry_offset for c in self.clients if c.name == client), 0)
                if cr.get("expiration_epoch") is not None and abs(cr["expiration_epoch"] - exp.timestamp() - offset) > 1:
                    text = "WRONG expiry " + text
            else:
                e = r.get("error") or {}
                text = f"fails: {e.get('credentials_error') or e.get('class')}: {(e.get('message') or '')[:120]}"
            matrix.setdefault(client, {})[v] = text
        self.details["probe"] = {"variants": variants, "matrix": matrix}
        for c in self.clients:
            if c.name in matrix:
                r = results[(c.name, "credagent")]
                cr = r.get("credentials") or {}
                R.check("probe", c.name, "parses credagent's exact body (Token \"\", Expiration ...Z)"
                        + (f" (Expiration reported {c.expiry_offset:+d} s)" if c.expiry_offset else ""),
                        r.get("ok") and cr.get("token") == "empty-string"
                        and abs((cr.get("expiration_epoch") or 0) - exp.timestamp() - c.expiry_offset) <= 1,
                        json.dumps(r.get("error") or cr)[:300])

    def phase_basic(self, pass_name, expect_session_token):
        R = self.report
        served = self.sidecar.served()
        served_exp = parse_rfc3339_z(served["Expiration"])
        R.check(pass_name, None, "credagent serves Expiration as YYYY-MM-DDTHH:MM:SSZ",
                re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", served["Expiration"]), served["Expiration"])
        R.check(pass_name, None, "credagent serves the upstream's Token as is",
                served["Token"] == (expect_session_token or ""), f"len {len(served['Token'])}")
        expected_body = payload(70001, 1)
        jobs = []
        for c in self.clients:
            env = self.client_env(c, self.sidecar)
            jobs.append((c.name, lambda c=c, env=env: self.run_client(c, "basic", f"{pass_name}-{c.name}", env)))
            if c.name == "awscli":
                jobs.append(("awscli-creds", lambda c=c, env=env: self.run_client(c, "creds", "-", env)))
        if pass_name == "pass-a":
            jobs += self.process_variant_jobs()
            # The machine sets AWS_CA_BUNDLE (aws-sdk-go v1 clients fail with it); v2 with it set:
            go = next(c for c in self.clients if c.name == "go-v2")
            env = dict(self.client_env(go, self.sidecar), AWS_CA_BUNDLE=self.ca_bundle)
            jobs.append(("go-v2/ca-bundle", lambda env=env: self.run_client(go, "basic", "pass-a-go-v2-cabundle", env)))
        results = self.parallel(jobs)
        self.details[pass_name] = results
        want_token = "non-empty" if expect_session_token else "empty-string"
        for c in self.clients:
            r = results[c.name]
            sdk = [e for e in self.proxy.entries(f"{pass_name}-{c.name}")
                   if not e["user_agent"].startswith("interop-driver")]
            col = "pass A (Token \"\")" if pass_name == "pass-a" else "pass B (session token)"
            if pass_name == "pass-a":
                R.cell(c.name, "Version", self.versions.get(c.name, "?"))
            if pass_name in c.expect_fail:
                self.check_expected_failure(pass_name, c, r, sdk, col)
                continue
            steps = r.get("steps") or {}
            what = ("bucket, PUT, GET byte-identical, LIST" if c.steps == SDK_STEPS
                    else ", ".join(c.steps).replace("_", " "))
            ok = R.check(pass_name, c.name, what,
                         r.get("ok") and all(steps.get(s) for s in c.steps),
                         json.dumps(r.get("error") or steps)[:400])
            if c.creds:
                # What the SDK parsed (the CLI's via its vendored botocore, in-process).
                cr = (results["awscli-creds"] if c.name == "awscli" else r).get("credentials") or {}
                R.check(pass_name, c.name, f"parsed Token as {want_token}", cr.get("token") == want_token,
                        json.dumps(cr))
                off = c.expiry_offset
                exp_ok = cr.get("expiration_epoch") is not None and abs(cr["expiration_epoch"] - served_exp - off) < 1
                R.check(pass_name, c.name, "parsed Expiration equals what credagent served"
                        + (f" {off:+d} s (the SDK's expiry window)" if off else ""), exp_ok,
                        f"served {served['Expiration']}, parsed {cr.get('expiration')}")
                if pass_name == "pass-a":
                    same = "= served" + (f" {off:+d} s" if off else "")
                    R.cell(c.name, "Expiration parsed", f"{cr.get('expiration')} {same}" if exp_ok
                           else f"{cr.get('expiration')} != served {served['Expiration']}")
                    R.cell(c.name, "Token \"\" parsed as", cr.get("token"))
            elif pass_name == "pass-a":
                R.cell(c.name, "Token \"\" parsed as", "n/a (not exposed)")
                R.cell(c.name, "Expiration parsed", "n/a (not exposed)")
            # Presigned GETs, fetched by the driver through the proxy.
            presigns = []
            for k in sorted(r):
                if k.startswith("presigned_url"):
                    status, body = request("GET", r[k], headers={"User-Agent": "interop-driver/presign"})
                    sigv2 = "AWSAccessKeyId=" in r[k]
                    label = {"presigned_url": "default", "presigned_url_s3v4": "s3v4"}.get(k, k) + (
                        " (SigV2)" if sigv2 else " (SigV4)")
                    if sigv2 and expect_session_token:
                        # s3s-fs 0.14.1 leaves query-string x-amz-* parameters out of the SigV2
                        # string to sign (s3s src/sig_v2/methods.rs), while botocore signs
                        # x-amz-security-token there as the SigV2 spec says: a rig limitation.
                        code = (re.search(rb"<Code>([^<]*)</Code>", body) or [b"", b""])[1].decode()
                        R.check(pass_name, c.name, f"presigned GET ({label}) with a session token: s3s-fs "
                                "limitation reproduced (403 SignatureDoesNotMatch)",
                                status == 403 and code == "SignatureDoesNotMatch", f"status {status} {code}")
                        presigns.append((label, None, r[k]))
                        continue
                    fine = status == 200 and body == expected_body
                    R.check(pass_name, c.name, f"presigned GET ({label}) byte-identical", fine, f"status {status}")
                    presigns.append((label, fine, r[k]))
            if ok and c.presign:
                R.check(pass_name, c.name, "presign supported", presigns, "no presigned URL returned")
            # What went over the wire (the proxy's record, now with the presigned GETs).
            entries = self.proxy.entries(f"{pass_name}-{c.name}")
            sdk = [e for e in entries if not e["user_agent"].startswith("interop-driver")]
            pre = [e for e in entries if e["user_agent"].startswith("interop-driver")]
            header = summarize_tokens([e["header_token"] for e in sdk], expect_session_token)
            signed = {e.get("token_header_signed") for e in sdk if e["header_token"] is not None}
            if signed:
                header += " (signed)" if signed == {True} else " (NOT signed)" if signed == {False} else " (signed on some)"
            query = summarize_presign(pre, expect_session_token)
            self.check_signed_by_standin(pass_name, c, sdk)
            if expect_session_token:
                R.check(pass_name, c.name, "every S3 request carried the session token header",
                        sdk and all(e["header_token"] and e["header_token"]["sha"] == sha16(expect_session_token)
                                    for e in sdk), header)
                if c.presign:
                    R.check(pass_name, c.name, "presigned URLs carry the session token",
                            pre and all(e["query_token"] and e["query_token"]["sha"] == sha16(expect_session_token)
                                        for e in pre), query)
            else:
                R.check(pass_name, c.name, "no S3 request carried a non-empty token",
                        all(not (e["header_token"] and not e["header_token"]["empty"]) for e in sdk), header)
                if c.wire_a:
                    R.check(pass_name, c.name, f"x-amz-security-token with Token \"\": {c.wire_a}",
                            sdk and header == c.wire_a, header)
            self.check_client_specific(pass_name, c, r, sdk, served_exp)
            R.cell(c.name, col, "ok" if ok else "FAIL")
            R.cell(c.name, f"presign {pass_name[-1].upper()}",
                   ", ".join(f"{lbl} {'ok' if f else 'n/a (s3s-fs)' if f is None else 'FAIL'}"
                             for lbl, f, _ in presigns) or ("-" if c.presign else "n/a (no presign API)"))
            wire = f"header: {header}; presign: {query}" if c.presign else f"header: {header}"
            R.cell(c.name, f"wire {pass_name[-1].upper()}", wire)
        if pass_name == "pass-a":
            self.check_process_variants(results)
            r = results["go-v2/ca-bundle"]
            steps = r.get("steps") or {}
            R.check(pass_name, "go-v2", f"works with AWS_CA_BUNDLE={self.ca_bundle} set (http endpoints)",
                    r.get("ok") and all(steps.get(s) for s in SDK_STEPS), json.dumps(r.get("error") or steps)[:300])

    def check_signed_by_standin(self, phase, c, sdk):
        """The client's S3 requests reached s3s-fs SigV4-signed with the stand-in's key and were
        accepted (a 404 is an answer to a HEAD of an absent key or bucket, not a refusal)."""
        bad = [e for e in sdk if e["auth"] != "sigv4-header" or e["access_key"] != self.keys[0]
               or e["status"] is None or (e["status"] >= 300 and e["status"] != 404)]
        self.report.check(phase, c.name, "proxy: every S3 request SigV4-signed with the stand-in's key, accepted "
                          "by s3s-fs", sdk and not bad,
                          f"{len(bad)} of {len(sdk)}: " + json.dumps([{k: e[k] for k in ("method", "auth", "status", "code")}
                                                                      for e in bad[:3]]))
        # s3s-fs answers suffix ranges (bytes=-N) with 500: no client here may depend on them.
        suffix = [e["range"] for e in sdk if (e.get("range") or "").startswith("bytes=-")]
        self.report.check(phase, c.name, "proxy: no suffix-range GET (bytes=-N)", not suffix, json.dumps(suffix[:3]))

    def check_expected_failure(self, phase, c, r, sdk, col):
        R = self.report
        err_re, log_re = c.expect_fail[phase]
        e = r.get("error") or {}
        lines = r.get("stderr_lines") or []
        fine = R.check(phase, c.name, f"expected failure: {err_re}", not r.get("ok") and re.search(err_re, e.get("message") or ""),
                       json.dumps(r.get("error") or r.get("steps"))[:400])
        R.check(phase, c.name, f"expected failure: the client's log says \"{log_re}\"",
                any(re.search(log_re, l) for l in lines), json.dumps(lines[:3])[:400])
        R.check(phase, c.name, "expected failure: no S3 request was sent", not sdk, f"{len(sdk)} requests")
        R.cell(c.name, col, f"fails as expected: {e.get('message', '')[:70]}" if fine else "FAIL (did not fail as expected)")
        R.cell(c.name, f"wire {phase[-1].upper()}", "no S3 request")
        R.cell(c.name, "Token \"\" parsed as", f"refused: {log_re}")
        R.cell(c.name, "Expiration parsed", "n/a")
        R.cell(c.name, f"presign {phase[-1].upper()}", "n/a (no presign API)")

    def check_client_specific(self, phase, c, r, sdk, served_exp):
        R = self.report
        lines = r.get("stderr_lines") or []
        if c.name == "pyarrow":
            # Its Parquet reader: HEAD for the size, then explicit ranges; the footer read must be
            # one that ends at the last byte and starts after the first.
            size = r.get("parquet_size") or 0
            gets = [e.get("range") for e in sdk if e["method"] == "GET" and e["key"] == "interop/table.parquet"]
            tail = [g for g in gets if g and re.fullmatch(rf"bytes=([1-9]\d*)-{size - 1}", g)]
            R.check(phase, c.name, "parquet read_table on S3FileSystem: footer read by an explicit-range tail GET",
                    size and tail, f"size {size}, GET ranges {gets}")
            R.cell(c.name, "notes", f"parquet read_table direct (GET ranges {', '.join(str(g) for g in gets)})")
            ua = next((e["user_agent"] for e in sdk), "")
            m = re.search(r"aws-sdk-cpp/(\S+)", ua)
            if m and phase == "pass-a":
                self.versions["pyarrow"] = f"pyarrow {r.get('versions', {}).get('pyarrow', '?')} (aws-sdk-cpp {m.group(1)}, from its User-Agent)"
                R.cell(c.name, "Version", self.versions["pyarrow"])
        elif c.name in ("polars", "polars-boto3"):
            want = "object_store" if c.name == "polars" else "boto3"
            R.check(phase, c.name, f"polars' credential_provider=\"auto\" took the {want} path",
                    r.get("credential_path") == want, str(r.get("credential_path")))
            if want == "object_store":
                R.check(phase, c.name, "POLARS_VERBOSE: CredentialProviderAWS not initialised (boto3 ImportError)",
                        any("failed to auto-initialize CredentialProviderAWS: ImportError" in l for l in lines),
                        json.dumps(lines[:4])[:300])
                R.cell(c.name, "notes", "credentials: object_store's env chain (no boto3)")
            else:
                expiries = [int(m.group(1)) for l in lines for m in [re.search(r"new expiry = (\d+)", l)] if m]
                R.check(phase, c.name, "POLARS_VERBOSE: boto3 provider's credentials carry the served Expiration",
                        expiries and all(abs(x - served_exp) <= 1 for x in expiries),
                        f"expiries {expiries}, served {served_exp:.0f}")
                R.cell(c.name, "notes", f"credentials: boto3 CredentialProviderAWS, expiry {'= served' if expiries and abs(expiries[0] - served_exp) <= 1 else expiries}")
        elif c.name == "s3torch-process" and phase == "pass-a":
            self.check_process_files(phase, c)

    def check_process_files(self, phase, c):
        """The credential_process files the sidecar generates (or the driver writes until it can)."""
        R = self.report
        sc = self.sidecar
        src = ("generated by credagent sidecar --credential-process-dir" if sc.process_generated
               else "written by the driver: credagent sidecar has no --credential-process-dir yet")
        binary = os.path.join(sc.process_dir, "credagent")
        with open(self.args.credagent, "rb") as a, open(binary, "rb") as b:
            same = a.read() == b.read()
        R.check(phase, c.name, f"DIR/credagent is an executable copy of the binary ({src})",
                same and os.access(binary, os.X_OK), binary)
        import configparser
        import shlex
        cp = configparser.ConfigParser()
        cp.read(sc.process_config)
        argv = shlex.split(cp.get("default", "credential_process", fallback=""))

        def opt(name):
            return argv[argv.index(name) + 1] if name in argv[:-1] else None

        fine = (argv[:2] == [binary, "credential-process"] and opt("--url") == sc.url
                and opt("--auth-token-file") == sc.auth_file)
        R.check(phase, c.name, f"DIR/aws-config [default] runs DIR/credagent credential-process with this sidecar's "
                f"--url and --auth-token-file ({src})", fine, " ".join(argv))
        R.cell(c.name, "notes", f"credential_process profile {'generated by the sidecar' if sc.process_generated else 'written by the driver'}")

    def process_variant_jobs(self):
        """s3torch through fake credential_process commands that reshape credagent's JSON:
        "SessionToken": "" (what credagent prints) and no SessionToken key."""
        c = next(c for c in self.clients if c.name == "s3torch-process")
        fake = os.path.join(HERE, "python", "fake_credential_process.py")
        jobs = []
        for variant in ("empty", "absent"):
            cfg = self.sidecar.write_process_config(
                os.path.join(self.sidecar.process_dir, f"aws-config-{variant}"),
                wrapper=(sys.executable, fake, "--session-token", variant, "--"))
            env = self.client_env(c, self.sidecar, aws_config=cfg)
            jobs.append((f"s3torch-process/{variant}",
                         lambda env=env, v=variant: self.run_client(c, "basic", f"proc-{v}", env)))
        return jobs

    def check_process_variants(self, results):
        R = self.report
        c = next(c for c in self.clients if c.name == "s3torch-process")
        cells = []
        for variant, label in (("empty", "\"SessionToken\": \"\""), ("absent", "no SessionToken key")):
            r = results[f"s3torch-process/{variant}"]
            steps = r.get("steps") or {}
            ok = R.check("pass-a", c.name, f"credential_process JSON with {label}: accepted, PUT/GET work",
                         r.get("ok") and all(steps.get(s) for s in c.steps), json.dumps(r.get("error") or steps)[:300])
            sdk = self.proxy.entries(f"proc-{variant}")
            R.check("pass-a", c.name, f"credential_process JSON with {label}: no x-amz-security-token header sent",
                    sdk and all(e["header_token"] is None for e in sdk), summarize_tokens([e["header_token"] for e in sdk], ""))
            cells.append(f"{label}: {'ok' if ok else 'FAIL'}")
        R.cell(c.name, "credential_process SessionToken", "; ".join(cells))

    # Expected outcomes of the negative phase: (error class, message regex), or WORKS for a client
    # that copes (pyarrow's aws-sdk-cpp strips the token file's trailing newline before sending).
    WORKS = ("works", None)
    EXPECT_401 = {
        "boto3": ("botocore.exceptions.CredentialRetrievalError", r"container-role.*401"),
        "awscli": ("aws exit status", r"Error when retrieving credentials from container-role.*401"),
        "js-http": ("CredentialsProviderError", r"status: 401"),
        "js-default": ("CredentialsProviderError", r"Could not load credentials from any providers"),
        "js-container-metadata": ("ProviderError", r"Error response received from instance metadata service"),
        "rust-default": ("CredentialsError::ProviderError", r"StatusCode\(401\)"),
        "rust-ecs": ("CredentialsError::ProviderError", r"StatusCode\(401\)"),
        "go-v2": ("aws.CredentialsCache.Retrieve", r"failed to load credentials, Unauthorized"),
        # aws-sdk-cpp's chain finds no credentials and pyarrow then sends unsigned requests.
        "pyarrow": ("builtins.OSError", r"AWS Error ACCESS_DENIED"),
        "polars": ("builtins.OSError", r"v1/credentials.*401 Unauthorized"),
        "polars-boto3": ("botocore.exceptions.CredentialRetrievalError", r"container-role.*401"),
        # credagent credential-process exits 1 on the 401; the CRT reports only this.
        "s3torch-process": ("S3Exception", r"No signing credentials available"),
    }
    EXPECT_NEWLINE = {
        "boto3": ("builtins.ValueError", r"not a legal header value"),
        "awscli": ("aws exit status", r"not a legal header value"),
        "js-http": ("CredentialsProviderError", r"ERR_INVALID_CHAR|Invalid character in header"),
        "js-default": ("CredentialsProviderError", r"Could not load credentials from any providers"),
        "rust-default": ("CredentialsError::InvalidConfiguration", r"auth token"),
        "rust-ecs": ("CredentialsError::InvalidConfiguration", r"auth token"),
        "pyarrow": WORKS,
        # object_store panics (a Rust panic inside polars, pyo3's PanicException).
        "polars": ("pyo3_runtime.PanicException", r"InvalidHeaderValue"),
        "polars-boto3": ("builtins.ValueError", r"not a legal header value"),
        # credagent credential-process strips one trailing newline, as aws-sdk-cpp does.
        "s3torch-process": WORKS,
    }
    # Clients that, finding no credentials, send unsigned requests instead of failing first.
    UNSIGNED_FALLBACK = {"pyarrow"}

    def phase_negative(self):
        R = self.report
        tok = self.sidecar.auth_token_bytes
        R.check("negative", None, "credagent's auth token file: 43 characters, no trailing newline",
                len(tok) == 43 and not tok.endswith(b"\n") and re.fullmatch(rb"[A-Za-z0-9_-]{43}", tok), f"{len(tok)} bytes")
        wrong = auth_like_token()
        wrong_file = os.path.join(self.work, "wrong-auth-token")
        with open(wrong_file, "w") as f:
            f.write(wrong)
        nl_file = os.path.join(self.work, "auth-token-with-newline")
        with open(nl_file, "wb") as f:
            f.write(tok + b"\n")
        before = self.sidecar.metrics().get('credagent_requests_total{route="credentials",status="401"}', 0)
        jobs = []
        for c in self.clients:
            if not c.negative:
                continue
            cfg = None
            if c.process_config:
                cfg = self.sidecar.write_process_config(os.path.join(self.sidecar.process_dir, "aws-config-wrong"),
                                                        auth_file=wrong_file)
            env = self.client_env(c, self.sidecar, token_file=wrong_file, token=wrong, aws_config=cfg)
            jobs.append(((c.name, "wrong"), lambda c=c, env=env: self.run_client(c, "basic", f"neg-{c.name}", env, timeout=60)))
            if not c.env_token:
                if c.process_config:
                    cfg = self.sidecar.write_process_config(os.path.join(self.sidecar.process_dir, "aws-config-newline"),
                                                            auth_file=nl_file)
                env = self.client_env(c, self.sidecar, token_file=nl_file, aws_config=cfg)
                jobs.append(((c.name, "newline"), lambda c=c, env=env: self.run_client(c, "basic", f"nl-{c.name}", env, timeout=60)))
        results = self.parallel(jobs)
        self.details["negative"] = {f"{k[0]}/{k[1]}": v for k, v in results.items()}
        after = self.sidecar.metrics().get('credagent_requests_total{route="credentials",status="401"}', 0)
        R.check("negative", None, "credagent answered the wrong tokens with 401", after > before, f"{before} -> {after}")
        for c in self.clients:
            for kind, table in (("wrong", self.EXPECT_401), ("newline", self.EXPECT_NEWLINE)):
                if (c.name, kind) not in results:
                    continue
                r = results[(c.name, kind)]
                e = r.get("error") or {}
                cls = e.get("credentials_error") or e.get("class") or ""
                cls_want, msg_re = table[c.name]
                what = "wrong auth token" if kind == "wrong" else "token file ending in \\n"
                bucket = f"neg-{c.name}" if kind == "wrong" else f"nl-{c.name}"
                entries = self.proxy.entries(bucket)
                column = "wrong auth token" if kind == "wrong" else "token file with \\n"
                if (cls_want, msg_re) == self.WORKS:
                    steps = r.get("steps") or {}
                    fine = R.check("negative", c.name, f"{what}: works anyway (the client strips the newline)",
                                   r.get("ok") and all(steps.get(s) for s in c.steps), json.dumps(e or steps)[:300])
                    self.check_signed_by_standin("negative", c, entries)
                    R.cell(c.name, column, f"{'works' if fine else 'FAIL'} {r['wall']:.1f}s: newline stripped, requests signed")
                    continue
                fine = (not r.get("ok")) and cls_want in cls and re.search(msg_re, e.get("message") or "", re.S)
                R.check("negative", c.name, f"{what}: credential error {cls_want}", fine,
                        json.dumps(e)[:400])
                R.check("negative", c.name, f"{what}: returned within 30 s", r["wall"] < 30, f"{r['wall']:.1f}s")
                if c.name in self.UNSIGNED_FALLBACK:
                    bad = [x for x in entries if x["auth"] != "none" or x["status"] != 403]
                    R.check("negative", c.name, f"{what}: no signed S3 request; the unsigned ones were refused (403)",
                            entries and not bad, json.dumps([{k: x[k] for k in ("method", "auth", "status")} for x in entries[:3]]))
                    unsigned = f" ({len(entries)} unsigned request{'s' if len(entries) != 1 else ''}, 403)"
                else:
                    R.check("negative", c.name, f"{what}: no S3 request was sent", not entries)
                    unsigned = ""
                short = re.sub(r"\s+", " ", (e.get("message") or ""))[:90]
                R.cell(c.name, column, f"{'ok' if fine else 'FAIL'} {r['wall']:.1f}s: {cls.split('.')[-1]}: {short}{unsigned}")

    def start_loops(self, prefix, duration, stop_file=None, interval=0.25, env_for=None):
        """Starts every looping client in a thread; returns {client: future}. `env_for(client)`,
        if given, makes each client's environment (default: the sidecar's URL and token)."""
        # One thread per looping client: they must all run at once.
        ex = concurrent.futures.ThreadPoolExecutor(max_workers=sum(1 for c in self.clients if c.loops))
        futs = {}
        for c in self.clients:
            if not c.loops:
                continue
            env = env_for(c) if env_for else self.client_env(c, self.sidecar)
            extra = ["--duration", str(duration), "--interval", str(interval)]
            if stop_file:
                extra += ["--stop-file", stop_file]
            futs[c.name] = ex.submit(self.run_client, c, "loop", f"{prefix}-{c.name}", env, extra,
                                     timeout=duration + 120)
        ex.shutdown(wait=False)
        return futs

    def phase_rotation(self):
        R = self.report
        duration = self.args.rotation_secs
        m0 = self.sidecar.metrics()
        t0 = time.time()
        log(f"rotation: every client loops PUT+GET for {duration:.0f}s; kubelet token swap at {duration / 2:.0f}s")
        futs = self.start_loops("rot", duration)
        time.sleep(duration / 2)  # letting time pass, not synchronisation
        new_token = self.standin.token(service_account="app-rotated")
        self.sidecar.swap_token(new_token)
        t_swap = time.time()
        log("rotation: swapped the projected token kubelet-style (new service account app-rotated)")
        updated0 = m0.get('credagent_token_reloads_total{result="updated"}', 0)
        got = None
        try:
            got = wait_for(lambda: self.sidecar.metrics().get('credagent_token_reloads_total{result="updated"}', 0) > updated0,
                           30, "credagent to reload the swapped token")
        except TimeoutError:
            pass
        R.check("rotation", None, "credagent reloaded the swapped token (token_reloads_total{updated} increased)", got)
        results = {k: f.result() for k, f in futs.items()}
        t1 = time.time()
        m1 = self.sidecar.metrics()
        self.details["rotation"] = {k: {kk: vv for kk, vv in v.items() if kk != "events"} for k, v in results.items()}
        d_ok = m1.get('credagent_refreshes_total{result="ok"}', 0) - m0.get('credagent_refreshes_total{result="ok"}', 0)
        bad = {k: m1[k] - m0.get(k, 0) for k in m1 if k.startswith("credagent_refreshes_total") and 'result="ok"' not in k
               and m1[k] - m0.get(k, 0) > 0}
        R.check("rotation", None, "credagent refreshed >= 3 times in the window", d_ok >= 3, f"{d_ok:.0f} refreshes")
        R.check("rotation", None, "no failed refreshes in the window", not bad, json.dumps(bad))
        logs = self.sidecar.logs()
        rotated = [l for l in logs if l.get("message") == "projected token rotated"]
        R.check("rotation", None, "log: \"projected token rotated\" (sub ...:app-rotated)",
                any(str(l.get("sub", "")).endswith(":app-rotated") for l in rotated), json.dumps(rotated)[:300])
        after_swap = [l for l in logs if l.get("message") == "credentials refreshed"
                      and str(l.get("role", "")).endswith(":app-rotated")]
        R.check("rotation", None, "a refresh after the swap exchanged the new token (role ...:app-rotated)",
                after_swap, f"{len(after_swap)} refreshes with the new token")
        self.details["rotation_summary"] = {"refreshes_ok": d_ok, "window_s": t1 - t0,
                                            "refreshes_with_new_token": len(after_swap),
                                            "swap_at_s": t_swap - t0}
        self.rotation_refreshes = d_ok
        for name, r in results.items():
            entries = self.proxy.entries(f"rot-{name}")
            # pyarrow's create_dir first HEADs the bucket: that 404 is an answer, not a failure.
            s3_fail = [e for e in entries if e["status"] is None or e["status"] >= 400
                       and not (e["method"] == "HEAD" and e["key"] is None and e["status"] == 404)]
            fine = r.get("ok") and not r.get("setup_error") and r.get("requests", 0) > 0 and r.get("failures") == 0
            first_fail = next((ev for ev in r.get("events", []) if not ev[2]), None)
            R.check("rotation", name, "zero failed requests", fine,
                    json.dumps(r.get("setup_error") or r.get("error") or first_fail)[:400])
            R.check("rotation", name, "zero failed S3 responses at the proxy (bar a HEAD's 404 for the new bucket)",
                    entries and not s3_fail,
                    f"{len(s3_fail)} of {len(entries)}")
            R.cell(name, "rotation requests / failures",
                   f"{r.get('requests', 0)} / {r.get('failures', '?')} ({len(entries)} S3 requests)")

    # -- short-keys: CoreWeave's 15-minute GET keys ------------------------------------------------

    # The lifetime CoreWeave documents for keys from the GET exchange.
    SHORT_LIFETIME = 900
    # credagent's refresh point in this phase: 5 % of the lifetime, a refresh ~45 s (jittered up to
    # 10 % earlier) after each key instead of 7.5 min (the default, half-life).
    SHORT_FRACTION = 0.05

    def phase_short_keys(self):
        """Every looping client against credagent serving 15-minute keys, across credagent's
        refreshes and a key rotation at the stand-in, each client with a counter of its own in
        front of the sidecar."""
        # The phase may shorten credagent's schedule but not the lifetime. What a client decides is
        # a function of what it is served: 15-minute keys, here with 14.25-15 min left (in
        # production 7.5-15 min: the same side of every client's window but botocore's 10-minute
        # mandatory one, and botocore refetches on every call in both). So botocore's 15-minute
        # advisory window, the 5-minute windows of JS, Go, the CRT, object_store and aws-sdk-cpp,
        # and Rust's 10 s buffer all run as they would against CoreWeave. When credagent refreshes
        # is its own decision, not something a client sees (it serves each key until a fixed margin
        # before expiry); src/refresh/schedule.rs's tests cover it for every lifetime. Waiting for
        # the default 7.5 min instead would add that much to every run of the suite.
        started = time.monotonic()
        self.short_stack_started = time.time()
        self.start_stack("s", lifetime=self.SHORT_LIFETIME,
                         sidecar_args=["--refresh-fraction", str(self.SHORT_FRACTION)])
        extra = {}
        try:
            self._short_keys(extra)
        finally:
            stop_file = extra.get("stop_file")
            if stop_file and not os.path.exists(stop_file):
                open(stop_file, "w").close()
            for f in extra.get("futures", {}).values():
                f.result()
            for k in extra.get("counters", {}).values():
                k.stop()
            if "s3_b" in extra:
                self.proxy.route(extra["ak_b"], "")
                extra["s3_b"].stop()
            self.stop_stack()
            self.details.setdefault("short_keys_summary", {})["phase_s"] = time.monotonic() - started

    def _short_keys(self, extra):
        R = self.report
        P = "short-keys"
        sc, st = self.sidecar, self.standin
        ak_a = self.keys[0]
        own_gets = 0  # the driver's own GETs to the sidecar (not through a counter)

        def served():
            nonlocal own_gets
            own_gets += 1
            return sc.served()

        m0 = sc.metrics()
        first = served()
        left = parse_rfc3339_z(first["Expiration"]) - time.time()
        R.check(P, None, "credagent serves the stand-in's 15-minute key (Expiration 14-15 min ahead)",
                first["AccessKeyId"] == ak_a and 840 <= left <= 901, f"{left:.0f}s left")
        life = m0.get("credagent_key_lifetime_seconds")
        R.check(P, None, "credagent_key_lifetime_seconds = 900 (the granted lifetime)",
                life is not None and abs(life - self.SHORT_LIFETIME) <= 1, str(life))

        # One counter per client, in front of the sidecar; the client's FULL_URI points at it
        # (s3torch-process: the --url of its credential_process profile).
        counters = {c.name: CredentialCounter(sc, c.name) for c in self.clients if c.loops}
        extra["counters"] = counters

        def env_for(c):
            k = counters[c.name]
            cfg = None
            if c.process_config:
                cfg = sc.write_process_config(os.path.join(sc.process_dir, f"aws-config-short-{c.name}"), url=k.url)
            return self.client_env(c, sc, full_uri=k.url, aws_config=cfg)

        stop_file = os.path.join(self.work, "short-keys.stop")
        extra["stop_file"] = stop_file
        ok_before_loops = sc.refreshes_ok()
        t_loops = time.time()
        log(f"short-keys: every client loops PUT+GET against 15-minute keys; credagent refreshes every "
            f"~{self.SHORT_LIFETIME * self.SHORT_FRACTION:.0f}s")
        futs = self.start_loops("short", self.args.short_keys_max_secs, stop_file, env_for=env_for)
        extra["futures"] = futs
        names = list(futs)

        def sdk_entries(n):
            return [e for e in self.proxy.entries(f"short-{n}") if not e["user_agent"].startswith("interop-driver")]

        def all_started():
            return all(sum(1 for e in sdk_entries(n) if e["status"] and e["status"] < 300) >= 3 for n in names)

        wait_for(all_started, 90, "every client to make successful requests", interval=0.5)

        # Rotate the key at the stand-in, CoreWeave-style: a new access key id and secret, while the
        # old key stays valid until it expires (a second s3s-fs knows the new key; the proxy routes
        # by access key id), so no client may fail whichever key it signs with.
        ak_b = "AKIDSHORT" + secrets.token_hex(4).upper()
        sk_b = "interop-secret-short-" + secrets.token_hex(8)
        root_b = os.path.join(self.work, "s3-data-short-b")
        os.makedirs(root_b, exist_ok=True)
        for entry in os.scandir(self.s3_data):  # the same buckets (s3s-fs keeps temp files in its root)
            if entry.is_dir(follow_symlinks=False):
                os.symlink(entry.path, os.path.join(root_b, entry.name))
        s3_b = S3Server(self, "s3s-fs-short-b", ak_b, sk_b, root=root_b)
        extra["s3_b"], extra["ak_b"] = s3_b, ak_b
        self.proxy.route(ak_b, s3_b.addr)
        ok_at_rotation = sc.refreshes_ok()
        st.control("keys", {"access_key_id": ak_b, "secret_access_key": sk_b, "session_token": ""})
        t_rotate = time.time()
        log("short-keys: the stand-in now grants a new key; waiting for credagent's next refresh")
        wait_for(lambda: sc.refreshes_ok() > ok_at_rotation, 2 * self.SHORT_LIFETIME * self.SHORT_FRACTION + 15,
                 "credagent's refresh after the key rotation", interval=0.1)
        t_refresh = time.time()
        now_served = served()
        left = parse_rfc3339_z(now_served["Expiration"]) - time.time()
        R.check(P, None, "after its next refresh credagent serves the new key (new access key id, 15 minutes)",
                now_served["AccessKeyId"] == ak_b and 840 <= left <= 901,
                f"{'new' if now_served['AccessKeyId'] == ak_b else 'old'} key, {left:.0f}s left, "
                f"{t_refresh - t_rotate:.1f}s after the rotation")

        # Every client keeps looping across the refresh: at least 3 answered S3 requests after it.
        def across(n):
            return sum(1 for e in sdk_entries(n) if e["t"] > t_refresh and e["status"]) >= 3

        try:
            wait_for(lambda: all(across(n) for n in names), 45, "every client's requests after the refresh",
                     interval=0.5)
        except TimeoutError as e:
            log(f"short-keys: {e}")
        open(stop_file, "w").close()
        results = {k: f.result() for k, f in futs.items()}
        t_end = time.time()
        m1 = sc.metrics()
        stats = st.stats()
        records = {n: counters[n].snapshot() for n in names}

        # credagent's side: refreshes, exchanges, what it answered.
        refreshes_in_loops = m1.get('credagent_refreshes_total{result="ok"}', 0) - ok_before_loops
        R.check(P, None, "credagent refreshed while every client looped (>= 1)", refreshes_in_loops >= 1,
                f"{refreshes_in_loops:.0f}")
        failed = {k: v for k, v in m1.items() if k.startswith("credagent_refreshes_total") and 'result="ok"' not in k and v}
        R.check(P, None, "no failed refreshes", not failed, json.dumps(failed))
        refreshes = m1.get('credagent_refreshes_total{result="ok"}', 0)
        issued = m1.get('credagent_keys_issued_total{exchange="get"}', 0)
        issued_post = m1.get('credagent_keys_issued_total{exchange="post"}', 0)
        exchanges = f"stand-in: {stats['successes']} successes ({stats['successes_get']} GET) of {stats['calls']} calls; " \
                    f"credagent: keys_issued_total{{get}} {issued:.0f}, {{post}} {issued_post:.0f}, refreshes {refreshes:.0f}"
        R.check(P, None, "exchanges counted: stand-in successes = keys_issued_total{get} = refreshes (>= 2: the "
                "first key and >= 1 refresh), every call a success, no POST",
                stats["successes"] == stats["successes_get"] == stats["calls"] == issued == refreshes >= 2
                and issued_post == 0, exchanges)
        # However many GETs the clients made, the upstream saw only the schedule: the start-up
        # exchange and one per refresh interval (jitter makes each up to 10 % shorter).
        up = t_end - self.short_stack_started
        most = 1 + int(up / (0.9 * self.SHORT_LIFETIME * self.SHORT_FRACTION))
        R.check(P, None, "no request storm upstream: exchanges within the schedule's count whatever the clients' GETs",
                stats["calls"] <= most, f"{stats['calls']} calls in {up:.0f}s (schedule: at most {most}) for "
                f"{sum(len(r) for r in records.values())} client GETs")
        answered = sum(v for k, v in m1.items() if k.startswith('credagent_requests_total{route="credentials"'))
        answered0 = sum(v for k, v in m0.items() if k.startswith('credagent_requests_total{route="credentials"'))
        counted = sum(len(r) for r in records.values())
        R.check(P, None, "credagent answered exactly the GETs the counters forwarded (plus the driver's own)",
                answered - answered0 == counted + own_gets,
                f"credagent {answered - answered0:.0f}, counters {counted} + driver {own_gets}")

        summary = {"lifetime_s": self.SHORT_LIFETIME, "refresh_fraction": self.SHORT_FRACTION,
                   "loops_s": t_end - t_loops, "rotate_at_s": t_rotate - t_loops,
                   "refresh_after_rotation_s": t_refresh - t_rotate, "refreshes_in_loops": refreshes_in_loops,
                   "exchanges": stats["successes"], "keys_issued_get": issued, "client_gets": counted}
        self.details.setdefault("short_keys_summary", {}).update(summary)
        per_client = {}
        for name in names:
            r, recs, entries = results[name], records[name], sdk_entries(name)
            c = next(c for c in self.clients if c.name == name)
            s3_fail = [e for e in entries if e["status"] is None or e["status"] >= 400
                       and not (e["method"] == "HEAD" and e["key"] is None and e["status"] == 404)]
            fine = r.get("ok") and not r.get("setup_error") and r.get("requests", 0) > 0 and r.get("failures") == 0
            first_fail = next((ev for ev in r.get("events", []) if not ev[2]), None)
            R.check(P, name, "zero failed requests", fine, json.dumps(r.get("setup_error") or r.get("error") or first_fail)[:400])
            R.check(P, name, "zero failed S3 responses at the proxy (bar a HEAD's 404 for the new bucket)",
                    entries and not s3_fail, f"{len(s3_fail)} of {len(entries)}")
            bad = [x for x in recs if x["status"] != 200]
            R.check(P, name, "credential GETs through its counter, every one answered 200", recs and not bad,
                    f"{len(recs)} GETs, statuses {sorted({x['status'] for x in recs})}")
            gets, s3 = len(recs), len(entries)
            how = f"{gets} credential GETs, {s3} S3 requests, {r.get('requests', 0)} API calls"
            if c.process_per_op:
                # A fresh SDK in every `aws` process: the bound holds per process (each loop event is
                # one process; the rest, before the first, is `aws s3 mb`).
                windows = [(ev[0], ev[4]) for ev in r.get("events", [])]

                def inside(t):
                    return any(a <= t <= b for a, b in windows)

                per_proc = [(sum(1 for x in recs if a <= x["t"] <= b), sum(1 for e in entries if a <= e["t"] <= b))
                            for a, b in windows]
                per_proc.append((sum(1 for x in recs if not inside(x["t"])),
                                 sum(1 for e in entries if not inside(e["t"]))))
                excess = sorted({g - n for g, n in per_proc})
                R.check(P, name, "credential GETs <= S3 requests + 2 in every `aws` process (one process per "
                        "operation; no GET storm: at most one per request)",
                        windows and excess[-1] <= 2,
                        f"{how}, {len(per_proc)} processes; GETs minus S3 requests per process: {excess}")
                process_note = (f" in {len(per_proc)} `aws` processes, each {'/'.join(map(str, excess))} more GET "
                                f"than S3 requests")
            else:
                R.check(P, name, "credential GETs <= S3 requests + 2 (no GET storm: at most one per request)",
                        gets <= s3 + 2, how)
                process_note = ""
            after = [e for e in entries if e["t"] > t_refresh]
            R.check(P, name, "kept working across credagent's refresh (>= 3 S3 requests after it, all accepted)",
                    len(after) >= 3 and not [e for e in after if e in s3_fail], f"{len(after)} after the refresh")
            fetched = {}
            for x in recs:
                if x["access_key"]:
                    fetched[x["access_key"]] = fetched.get(x["access_key"], 0) + 1
            used = {}
            for e in entries:
                used[e["access_key"]] = used.get(e["access_key"], 0) + 1
            R.check(P, name, "every S3 request signed with a key credagent served it through its counter",
                    entries and set(used) <= set(fetched), f"fetched {sorted(fetched)}, signed with {sorted(used, key=str)}")
            last = max(entries, key=lambda e: e["t"]) if entries else None
            if ak_b in fetched:
                t_got = min(x["t_end"] for x in recs if x["access_key"] == ak_b)
                R.check(P, name, "fetched the new key after credagent's refresh and signs with it from then on "
                        "(its last S3 request)", last and last["access_key"] == ak_b,
                        f"first GET of the new key {t_got - t_refresh:+.1f}s after the refresh; last request "
                        f"signed with {'the new' if last and last['access_key'] == ak_b else 'the OLD'} key")
                # t_refresh comes from a 0.1 s metrics poll: a client can be "early" by that much.
                key_cell = (f"new key picked up {max(0.0, t_got - t_refresh):.1f}s after the refresh "
                            f"({used.get(ak_b, 0)} requests signed with it)")
            else:
                exps = [parse_rfc3339_z(x["expiration"]) for x in recs if x["access_key"] == ak_a and x["expiration"]]
                valid = f"{(max(exps) - t_end) / 60:.1f} min left at the end" if exps else "?"
                key_cell = f"kept the old key ({valid}), fetched no new one"
            gaps = [b["t"] - a["t"] for a, b in zip(recs, recs[1:])]
            per_client[name] = {
                "credential_gets": gets, "s3_requests": s3, "api_calls": r.get("requests", 0),
                "gets_per_s3_request": round(gets / s3, 3) if s3 else None,
                "gets_after_refresh": sum(1 for x in recs if x["t"] > t_refresh),
                "keys_fetched": {("new" if k == ak_b else "old"): v for k, v in fetched.items()},
                "keys_signed": {("new" if k == ak_b else "old" if k == ak_a else str(k)): v for k, v in used.items()},
                "get_times_s": [round(x["t"] - t_loops, 2) for x in recs],
                "median_gap_between_gets_s": round(sorted(gaps)[len(gaps) // 2], 2) if gaps else None,
                "user_agents": sorted({x["user_agent"].split(" ")[0] for x in recs}),
            }
            if c.process_per_op:
                per_client[name].update({"processes": len(per_proc), "gets_minus_s3_requests_per_process": excess})
            R.cell(name, "15-min keys: credential GETs / S3 requests",
                   (f"{gets} / {s3} ({gets / s3:.2f} per request)" if s3 else f"{gets} / 0") + process_note)
            R.cell(name, "15-min keys: after the key rotation", key_cell)
        self.details["short_keys"] = per_client
        for name in ("rust-ecs", "s3torch-ecs"):
            R.cell(name, "15-min keys: credential GETs / S3 requests", "(not looping)")
            R.cell(name, "15-min keys: after the key rotation", "(not looping)")

    def phase_revocation(self):
        R = self.report
        stop_file = os.path.join(self.work, "revocation.stop")
        log("revocation: clients loop; after the next refresh the upstream switches keys and s3s-fs restarts with them")
        futs = self.start_loops("rev", self.args.revocation_max_secs, stop_file)
        names = list(futs)

        def all_started():
            return all(sum(1 for e in self.proxy.entries(f"rev-{n}") if e["status"] and e["status"] < 300) >= 3
                       for n in names)

        wait_for(all_started, 60, "every client to make successful requests", interval=0.5)
        ok0 = self.sidecar.refreshes_ok()
        wait_for(lambda: self.sidecar.refreshes_ok() > ok0, 40, "a credagent refresh", interval=0.1)
        # Revoke right after a refresh, so the old keys stay served for a full refresh interval. The
        # access key id stays, the secret changes: a stale secret must fail with
        # SignatureDoesNotMatch. (s3s-fs answers an unknown access key id with 403 NotSignedUp.)
        new_sk = "interop-secret-revoked-" + secrets.token_hex(8)
        ak = self.keys[0]
        # The new s3s-fs gets a root of its own holding the same buckets (links to the old root's
        # bucket directories): s3s-fs keeps its temporary files in its root, numbered from 0, and
        # deletes every such file it finds when it starts, so two servers on one root cut off each
        # other's writes in flight (a CompleteMultipartUpload failed with INTERNAL_FAILURE that way).
        revoked_root = os.path.join(self.work, "s3-data-revoked")
        os.makedirs(revoked_root, exist_ok=True)
        for entry in os.scandir(self.s3_data):
            if entry.is_dir(follow_symlinks=False) and not os.path.lexists(os.path.join(revoked_root, entry.name)):
                os.symlink(entry.path, os.path.join(revoked_root, entry.name))
        s3_new = S3Server(self, "s3s-fs-revoked", ak, new_sk, root=revoked_root)
        self.s3_data = revoked_root  # buckets made from now on are the new server's
        t_revoke = time.time()  # from here on the old secret is refused
        self.proxy.set_upstream(s3_new.addr)
        # The old s3s-fs gets no new requests; it is stopped after the phase, so that no request
        # in flight at the switch is cut off.
        s3_old, self.s3 = self.s3, s3_new
        self.standin.control("keys", {"access_key_id": ak, "secret_access_key": new_sk, "session_token": ""})
        ok1 = self.sidecar.refreshes_ok()
        log("revocation: secret switched at the stand-in and s3s-fs; waiting for credagent's next refresh")
        wait_for(lambda: self.sidecar.refreshes_ok() > ok1, 40, "credagent's refresh after the key switch", interval=0.1)
        t_refresh = time.time()
        R.check("revocation", None, "credagent serves the new secret after its next refresh",
                self.sidecar.served()["SecretAccessKey"] == new_sk, f"refresh {t_refresh - t_revoke:.1f}s after the switch")
        self.details["revocation_refresh_after_s"] = t_refresh - t_revoke

        sticky = {c.name: c.stale_signing_key for c in self.clients if c.stale_signing_key and c.name in names}
        # After the refresh a client has had 2 s to refetch (they all refetch on every call below a
        # 5 min window, and these credentials last 60 s): what fails from then on is the signer.
        settled = t_refresh + 2

        def recovered(n):
            if n in sticky:  # evidence that it stays rejected: 3 requests after `settled`
                return len([e for e in self.proxy.entries(f"rev-{n}") if e["t"] > settled]) >= 3
            es = [e for e in self.proxy.entries(f"rev-{n}") if e["t"] > t_refresh]
            return len(es) >= 3 and all(e["status"] and e["status"] < 300 for e in es[-3:])

        try:
            wait_for(lambda: all(recovered(n) for n in names), self.args.revocation_max_secs - 30,
                     "every client to recover", interval=0.5)
        except TimeoutError as e:
            log(f"revocation: {e}")
        with open(stop_file, "w"):
            pass
        results = {k: f.result() for k, f in futs.items()}
        s3_old.stop()
        fresh = {}
        for name in sticky:
            c = next(c for c in self.clients if c.name == name)
            fresh[name] = self.run_client(c, "basic", f"rev-new-{name}", self.client_env(c, self.sidecar))
        self.details["revocation"] = {"t_revoke": t_revoke, "t_refresh": t_refresh, "clients": results,
                                      "new_process": fresh}
        for name, r in results.items():
            # events: [start, op, ok, error, end]
            ev = r.get("events", [])
            before = [e for e in ev if e[4] < t_revoke]
            fails = [e for e in ev if not e[2]]
            codes = sorted({(e[3] or {}).get("code") or "?" for e in fails})
            R.check("revocation", name, "requests succeeded before the switch",
                    before and all(e[2] for e in before), f"{len(before)} requests")
            early = [e for e in fails if e[4] < t_revoke]
            R.check("revocation", name, "stale secret rejected: 403 SignatureDoesNotMatch",
                    fails and not early and set(codes) <= REVOKE_CODES and "SignatureDoesNotMatch" in codes,
                    f"codes {codes}; {len(early)} failures before the switch; first failure "
                    f"{json.dumps(fails[0][3])[:300] if fails else None}")
            if name in sticky:
                # The cached signing key is also per UTC day: past midnight the signer derives a new
                # one, from the new secret. A phase that crosses midnight checks that instead.
                midnight = (int(settled) // 86400 + 1) * 86400
                after = [e for e in ev if e[0] > settled and e[4] < midnight]
                # A 403 whose body the SDK could not read (code "403") is the same rejection.
                stuck = after and all(not e[2] and (e[3] or {}).get("code") in REVOKE_CODES for e in after)
                next_day = [e for e in ev if e[0] > midnight + 2]
                if next_day and len(after) < 3:
                    R.check("revocation", name, f"known SDK limitation ({sticky[name]}): rejected until the UTC "
                            "date changed, then accepted (the signing key is cached per access key id and day)",
                            (not after or stuck) and all(e[2] for e in next_day),
                            f"{len(after)} requests before midnight UTC, {len(next_day)} after, "
                            f"{sum(1 for e in next_day if e[2])} accepted")
                else:
                    R.check("revocation", name, f"known SDK limitation ({sticky[name]}): the running process stays "
                            "rejected after credagent's refresh (signing key cached per access key id, not secret)",
                            len(after) >= 3 and stuck, f"{len(after)} requests after the refresh, "
                            f"{sum(1 for e in after if e[2])} accepted")
                nr = fresh[name]
                steps = nr.get("steps") or {}
                new_ok = R.check("revocation", name, "a new process after the refresh is accepted (new secret served)",
                                 nr.get("ok") and all(steps.get(s) for s in SDK_STEPS),
                                 json.dumps(nr.get("error") or steps)[:300])
                R.cell(name, "revocation", f"{len(fails)} x {'/'.join(codes)}; running process never recovers "
                       f"({sticky[name]}); a new process {'works' if new_ok else 'FAILS'}")
                continue
            last_fail = max((e[0] for e in fails), default=None)
            recovered_ev = [e for e in ev if e[2] and last_fail is not None and e[0] > last_fail]
            tail_ok = ev and ev[-1][2] and len(recovered_ev) >= 3
            R.check("revocation", name, "accepted again after credagent's refresh", tail_ok and not r.get("setup_error"),
                    json.dumps(r.get("setup_error") or ev[-3:])[:300])
            first_ok = recovered_ev[0][4] if recovered_ev else None
            # t_refresh comes from a 0.1 s metrics poll, so a client can be "early" by that much.
            rec = f"{max(0.0, first_ok - t_refresh):.1f}s" if first_ok else "never"
            window = f"{last_fail - t_revoke:.0f}s" if last_fail else "-"
            R.cell(name, "revocation", f"{len(fails)} x {'/'.join(codes)} for {window}, ok again {rec} after credagent's refresh"
                   if tail_ok else f"FAIL ({len(fails)} failures, codes {codes})")
        R.cell("rust-ecs", "revocation", "(same cache as rust-default)")
        R.cell("rust-ecs", "rotation requests / failures", "(same cache as rust-default)")
        R.cell("s3torch-ecs", "revocation", "(not run: no credentials with Token \"\")")
        R.cell("s3torch-ecs", "rotation requests / failures", "(not run: no credentials with Token \"\")")

    # -- main --------------------------------------------------------------------------------

    def run(self):
        R = self.report
        for c in self.clients:
            R.check("setup", c.name, "client executable present", os.path.exists(c.argv[0]) and
                    (len(c.argv) < 2 or not c.argv[1].endswith((".py", ".cjs")) or os.path.exists(c.argv[1])), c.argv[0])
        self.keys = ("AKIDINTEROP" + secrets.token_hex(4).upper(), "interop-secret-" + secrets.token_hex(8))
        self.s3 = S3Server(self, "s3s-fs", *self.keys)
        self.proxy = Proxy(self, self.s3.addr)
        log(f"s3s-fs {self.s3.addr} behind the recording proxy {self.proxy.endpoint}")
        phases = self.args.phases.split(",")

        def phase(name, fn):
            if name not in phases:
                return
            log(f"== {name}")
            started = time.monotonic()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a phase that blows up is a failed check, not a crash
                R.check(name, None, "phase completed", False, f"{type(e).__name__}: {e}")
                traceback.print_exc()
            log(f"== {name} done in {time.monotonic() - started:.1f}s")

        phase("probe", self.phase_probe)
        if {"pass-a", "negative"} & set(phases):
            self.start_stack("a")
            phase("pass-a", lambda: self.phase_basic("pass-a", ""))
            phase("negative", self.phase_negative)
            self.stop_stack()
        if "pass-b" in phases:
            self.session_token = "interop-session-token-" + secrets.token_urlsafe(24)
            self.start_stack("b", session_token=self.session_token)
            phase("pass-b", lambda: self.phase_basic("pass-b", self.session_token))
            self.stop_stack()
        # Before rotation/revocation: the revocation phase leaves s3s-fs with another secret.
        phase("short-keys", self.phase_short_keys)
        if {"rotation", "revocation"} & set(phases):
            self.start_stack("r", lifetime=60)
            phase("rotation", self.phase_rotation)
            phase("revocation", self.phase_revocation)
            self.stop_stack()


def summarize_tokens(states, expected):
    kinds = set()
    for s in states:
        if s is None:
            kinds.add("omitted")
        elif s["empty"]:
            kinds.add("empty header sent")
        elif expected and s["sha"] == sha16(expected):
            kinds.add("sent")
        else:
            kinds.add("OTHER value sent")
    return "/".join(sorted(kinds)) or "no requests"


def summarize_presign(entries, expected):
    out = []
    for e in entries:
        sig = e["auth"]
        s = e["query_token"]
        if s is None:
            out.append(f"{sig} no token param")
        elif s["empty"]:
            out.append(f"{sig} empty X-Amz-Security-Token=")
        elif expected and s["sha"] == sha16(expected):
            out.append(f"{sig} token param")
        else:
            out.append(f"{sig} OTHER token param")
    return ", ".join(out) or "-"


COLUMNS = ["Version", "pass A (Token \"\")", "pass B (session token)", "presign A", "presign B",
           "wrong auth token", "token file with \\n", "revocation", "Token \"\" parsed as", "wire A", "wire B",
           "Expiration parsed", "rotation requests / failures", "15-min keys: credential GETs / S3 requests",
           "15-min keys: after the key rotation", "credential_process SessionToken", "notes"]


def render(rig, wall):
    R = rig.report
    lines = ["# credagent interoperability results", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {wall:.0f}s. JS presigner: "
             f"@aws-sdk/s3-request-presigner {getattr(rig, 'js_presigner', '?')}.", ""]
    lines.append("| client | " + " | ".join(COLUMNS) + " |")
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for c in rig.clients:
        row = R.table.get(c.name, {})
        cells = [str(row.get(col, "-")).replace("|", "\\|") for col in COLUMNS]
        lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    rs = rig.details.get("rotation_summary")
    if rs:
        lines += ["", f"Rotation window {rs['window_s']:.0f}s with 60 s credentials: credagent refreshed "
                  f"{rs['refreshes_ok']:.0f} times, {rs['refreshes_with_new_token']} of them with the token "
                  f"swapped in at {rs['swap_at_s']:.0f}s."]
    sk = rig.details.get("short_keys_summary")
    if sk and "exchanges" in sk:
        lines += ["", f"Short keys: {sk['lifetime_s'] // 60}-minute keys, credagent at --refresh-fraction "
                  f"{sk['refresh_fraction']} (a refresh every ~{sk['lifetime_s'] * sk['refresh_fraction']:.0f}s); "
                  f"clients looped {sk['loops_s']:.0f}s, credagent refreshed {sk['refreshes_in_loops']:.0f} times "
                  f"meanwhile; the stand-in rotated the key at {sk['rotate_at_s']:.0f}s and credagent served the new "
                  f"one {sk['refresh_after_rotation_s']:.0f}s later. {sk['exchanges']} exchanges in all "
                  f"(keys_issued_total{{get}} {sk['keys_issued_get']:.0f}) for {sk['client_gets']} credential GETs "
                  f"by the clients. Phase {sk.get('phase_s', 0):.0f}s with start-up."]
    probe = rig.details.get("probe")
    if probe:
        variants = list(probe["variants"])
        lines += ["", "## Format probe: what each client makes of ECS body variants", "",
                  "| client | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
        for c, row in probe["matrix"].items():
            lines.append(f"| {c} | " + " | ".join(row.get(v, "-").replace("|", "\\|") for v in variants) + " |")
        lines += ["", "Variants: " + "; ".join(f"`{k}` = `{json.dumps(v)}`" for k, v in probe["variants"].items())]
    failed = [c for c in R.checks if not c["ok"]]
    if failed:
        lines += ["", "## Failed checks", ""]
        for c in failed:
            lines.append(f"- {c['phase']} / {c['client'] or '-'}: {c['check']} — {c['detail']}")
    passed = sum(1 for c in R.checks if c["ok"])
    lines += ["", f"interop: {passed} passed, {len(failed)} failed"]
    return "\n".join(lines) + "\n", passed, len(failed)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--credagent", required=True)
    p.add_argument("--standin", required=True, help="the test kit's credagent-standin binary")
    p.add_argument("--s3s-fs", required=True)
    p.add_argument("--venv", required=True)
    p.add_argument("--node", default=shutil.which("node") or "node")
    p.add_argument("--js-modules", required=True)
    p.add_argument("--rust-client", required=True)
    p.add_argument("--data-venv", required=True, help="venv with pyarrow, polars, s3torchconnectorclient")
    p.add_argument("--go-client", required=True, help="the aws-sdk-go-v2 client's binary")
    p.add_argument("--kubelet-swap", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--results-json")
    p.add_argument("--phases", default="probe,pass-a,negative,pass-b,short-keys,rotation,revocation")
    p.add_argument("--rotation-secs", type=float, default=70)
    p.add_argument("--revocation-max-secs", type=float, default=150)
    p.add_argument("--short-keys-max-secs", type=float, default=240,
                   help="upper bound on the short-keys loops (they stop once every client ran past the refresh)")
    args = p.parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    started = time.monotonic()
    rig = Rig(args)
    try:
        rig.run()
    except Exception as e:  # noqa: BLE001
        rig.report.check("rig", None, "rig ran to completion", False, f"{type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        rig.procs.stop_all()
        # Everything is stopped: run.sh's trap has nothing left to end (and must not guess at
        # pids that may have been reused).
        if os.path.exists(rig.procs.pidfile):
            os.unlink(rig.procs.pidfile)
    text, passed, failed = render(rig, time.monotonic() - started)
    with open(args.results, "w") as f:
        f.write(text)
    if args.results_json:
        text_json = json.dumps({"checks": rig.report.checks, "table": rig.report.table, "details": rig.details,
                                "versions": rig.versions}, indent=1, default=str)
        # Presigned URLs carry the session token: keep them, but not the token.
        text_json = re.sub(r"(?i)(x-amz-security-token=)[^&\"\s]+", r"\1REDACTED", text_json)
        with open(args.results_json, "w") as f:
            f.write(text_json)
    print()
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
