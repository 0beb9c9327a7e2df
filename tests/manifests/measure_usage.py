#!/usr/bin/env python3
"""Measures credagent's memory and CPU, to size the manifests' requests and limits.

Not part of CI (it takes about two minutes and wants an idle machine). Run it
against a release build and copy the table into docs/deploy.md:

    cargo build --release --locked
    apt-get install -y wrk
    python3 tests/manifests/measure_usage.py target/release/credagent

It starts a local stand-in upstream (`credagent stand-in`), then:

- sidecar: `credagent sidecar` against the stand-in; RSS and CPU idle, then
  under `wrk` load on /v1/credentials (far more than any Pod's SDKs ask for:
  they fetch once per credential lifetime), then after a forced token rotation
  and refresh;
- node: `credagent node` against the stand-in; RSS with the identity cache
  filled to --max-identities (every Pod on a node, the memory bound), and CPU
  under `wrk` load on cache hits.

Figures come from /proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat
(utime + stime).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = v.strip()
    return out


def kib(v):
    return int(v.split()[0])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_http(url, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {url}")


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def sample(name, pid, fn, seconds):
    """Runs fn (which blocks ~seconds) and reports CPU cores used meanwhile."""
    c0, t0 = cpu_seconds(pid), time.time()
    fn()
    c1, t1 = cpu_seconds(pid), time.time()
    st = status(pid)
    row = {
        "phase": name,
        "cpu_millicores": round(1000 * (c1 - c0) / (t1 - t0)),
        "rss_mib": round(kib(st["VmRSS"]) / 1024, 1),
        "peak_rss_mib": round(kib(st["VmHWM"]) / 1024, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def wrk(url, token, seconds, connections=4):
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-H", f"Authorization: {token}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Requests/sec" in line:
            print(f"  wrk {url}: {line.strip()}", flush=True)


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/credagent")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    identities = int(os.environ.get("IDENTITIES", "4096"))
    tmp = tempfile.mkdtemp(prefix="credagent-measure-")
    procs = []
    try:
        addr_file = os.path.join(tmp, "addr")
        procs.append(subprocess.Popen(
            [os.path.join(os.path.dirname(binary), "credagent-standin"), "--listen", "127.0.0.1:0", "--access-key", "AKMEASURE",
             "--secret-key", "SKMEASURE", "--addr-file", addr_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 10
        while not os.path.exists(addr_file) and time.time() < deadline:
            time.sleep(0.05)
        standin = "http://" + open(addr_file).read().strip()
        exchange_url = standin + "/v1/cwobject/temporary-credentials/oidc/standin-org"

        def mint(sa="app"):
            return post(standin + "/_standin/token", {
                "namespace": "default", "service_account": sa,
                "audience": "https://coreweave.com/iam", "lifetime_secs": 3600})

        # --- sidecar ------------------------------------------------------
        tokdir = os.path.join(tmp, "tokens")
        os.makedirs(tokdir)
        with open(os.path.join(tokdir, "oidc-token"), "w") as f:
            f.write(mint())
        listen, admin = free_port(), free_port()
        auth_file = os.path.join(tmp, "auth-token")
        sidecar = subprocess.Popen(
            [binary, "sidecar", "--exchange-url", exchange_url,
             "--token-file", os.path.join(tokdir, "oidc-token"),
             "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}",
             "--auth-token-file", auth_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sidecar)
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        auth = open(auth_file).read().strip()
        print("sidecar:", flush=True)
        sample("sidecar idle (after first exchange)", sidecar.pid, lambda: time.sleep(20), 20)
        sample("sidecar under load (wrk, 4 conns, /v1/credentials)", sidecar.pid,
               lambda: wrk(f"http://127.0.0.1:{listen}/v1/credentials", auth, 20), 20)

        def rotate():
            for _ in range(5):
                with open(os.path.join(tokdir, "oidc-token.tmp"), "w") as f:
                    f.write(mint())
                os.rename(os.path.join(tokdir, "oidc-token.tmp"), os.path.join(tokdir, "oidc-token"))
                time.sleep(2)
        sample("sidecar token rotations", sidecar.pid, rotate, 10)
        sample("sidecar idle again", sidecar.pid, lambda: time.sleep(20), 20)
        sidecar.terminate()
        sidecar.wait()

        # --- node ---------------------------------------------------------
        listen, admin = free_port(), free_port()
        node = subprocess.Popen(
            [binary, "node", "--exchange-url", exchange_url,
             "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}",
             "--max-identities", str(identities)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(node)
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        url = f"http://127.0.0.1:{listen}/v1/credentials"
        print("node:", flush=True)
        sample("node idle (empty cache)", node.pid, lambda: time.sleep(10), 10)

        def fill():
            for i in range(identities):
                req = urllib.request.Request(url, headers={"Authorization": mint(f"sa-{i}")})
                with urllib.request.urlopen(req, timeout=5) as r:
                    r.read()
        sample(f"node filling the cache ({identities} identities)", node.pid, fill, 0)
        sample(f"node idle, cache full ({identities} identities)", node.pid, lambda: time.sleep(20), 20)
        hot = mint("hot")
        sample("node under load (wrk, 4 conns, cache hits)", node.pid, lambda: wrk(url, hot, 20), 20)
        node.terminate()
        node.wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
