"""AWS CLI v1 client for credagent's interoperability suite.

Every S3 operation is a separate, unmodified `aws` process (VENV/bin/aws, given with --aws), which
resolves credentials through its own (vendored) botocore container provider from
AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. Prints one JSON line.

    awscli_client.py --aws VENV/bin/aws --mode basic|creds|loop --endpoint URL --bucket NAME
                     [--duration SECS] [--interval SECS] [--size BYTES] [--stop-file PATH]

`creds` mode cannot be done with the CLI itself (v1 has no `configure export-credentials`): it
loads the CLI's vendored `awscli.botocore` session in-process to show what the CLI parsed.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boto3_client import payload  # noqa: E402  (same generator as the other clients)

CODE_RE = re.compile(r"\(([A-Za-z0-9]+)\) when calling")


class CliError(Exception):
    def __init__(self, argv, proc):
        self.argv = argv
        self.returncode = proc.returncode
        self.stderr = proc.stderr.decode(errors="replace").strip()
        super().__init__(f"aws {' '.join(argv)} exited {proc.returncode}: {self.stderr}")


def describe(exc):
    if isinstance(exc, CliError):
        m = CODE_RE.search(exc.stderr)
        return {
            "class": "aws exit status %d" % exc.returncode,
            "code": m.group(1) if m else None,
            "message": exc.stderr,
        }
    return {"class": type(exc).__name__, "code": None, "message": str(exc)}


class Cli:
    def __init__(self, aws, endpoint, env=None):
        self.aws = aws
        self.endpoint = endpoint
        self.env = env

    def __call__(self, *argv, stdin=None, timeout=120):
        full = [self.aws, "--endpoint-url", self.endpoint, *argv]
        proc = subprocess.run(full, input=stdin, capture_output=True, timeout=timeout, env=self.env)
        if proc.returncode != 0:
            raise CliError(list(argv), proc)
        return proc.stdout


def credentials_view():
    # The CLI's own copy of botocore (awscli >= 1.44 vendors it as awscli.botocore).
    from awscli.botocore.session import Session  # type: ignore

    creds = Session().get_credentials()
    if creds is None:
        return None
    frozen = creds.get_frozen_credentials()
    expiry = getattr(creds, "_expiry_time", None)
    token = frozen.token
    return {
        "method": creds.method,
        "access_key_id": frozen.access_key,
        "token": "none" if token is None else ("empty-string" if token == "" else "non-empty"),
        "token_len": None if token is None else len(token),
        "expiration": None
        if expiry is None
        else expiry.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiration_epoch": None if expiry is None else expiry.timestamp(),
    }


def basic(args, out, aws):
    steps = {}
    key = "interop/object.bin"
    body = payload(args.size, 1)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "src.bin"), os.path.join(tmp, "dst.bin")
        with open(src, "wb") as f:
            f.write(body)
        aws("s3", "mb", f"s3://{args.bucket}")
        steps["create_bucket"] = True
        aws("s3", "cp", src, f"s3://{args.bucket}/{key}")
        steps["put"] = True
        aws("s3", "cp", f"s3://{args.bucket}/{key}", dst)
        with open(dst, "rb") as f:
            steps["get_identical"] = f.read() == body
    listing = aws("s3", "ls", f"s3://{args.bucket}/interop/").decode()
    steps["list_contains"] = any(line.split()[-1:] == ["object.bin"] for line in listing.splitlines())
    url = aws("s3", "presign", f"s3://{args.bucket}/{key}", "--expires-in", "300").decode().strip()
    out["presigned_url"] = url
    # The CLI presigns with SigV2 unless the config file asks for s3v4 (a common setting).
    with tempfile.NamedTemporaryFile("w", suffix=".config") as cfg:
        cfg.write("[default]\ns3 =\n    signature_version = s3v4\n")
        cfg.flush()
        aws_v4 = Cli(aws.aws, aws.endpoint, env=dict(os.environ, AWS_CONFIG_FILE=cfg.name))
        out["presigned_url_s3v4"] = (
            aws_v4("s3", "presign", f"s3://{args.bucket}/{key}", "--expires-in", "300").decode().strip()
        )
    out["key"] = key
    out["size"] = args.size
    out["steps"] = steps


def loop(args, out, aws):
    try:
        aws("s3", "mb", f"s3://{args.bucket}")
    except Exception as exc:  # noqa: BLE001
        out["setup_error"] = describe(exc)
        return
    deadline = time.monotonic() + args.duration
    events, requests, failures, i = [], 0, 0, 0
    while time.monotonic() < deadline:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        i += 1
        key = f"s3://{args.bucket}/loop/{i}"
        body = payload(1024 + i % 7, i)
        for op in ("put", "get"):
            t = time.time()
            requests += 1
            try:
                if op == "put":
                    aws("s3", "cp", "-", key, stdin=body)
                elif aws("s3", "cp", key, "-") != body:
                    raise ValueError("body mismatch")
                events.append([t, op, True, None, time.time()])
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                failures += 1
                events.append([t, op, False, describe(exc), time.time()])
                break  # no GET of an object whose PUT failed
        time.sleep(args.interval)
    out["requests"] = requests
    out["failures"] = failures
    out["events"] = events


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--aws", required=True, help="path of the venv's aws executable")
    p.add_argument("--mode", default="basic", choices=["basic", "creds", "loop"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--size", type=int, default=70001)
    p.add_argument("--stop-file")
    args = p.parse_args()
    aws = Cli(args.aws, args.endpoint)
    started = time.monotonic()
    out = {"client": "awscli", "mode": args.mode}
    try:
        version = subprocess.run([args.aws, "--version"], capture_output=True, timeout=60)
        out["versions"] = {"aws --version": (version.stdout + version.stderr).decode().strip()}
        if args.mode == "basic":
            basic(args, out, aws)
        elif args.mode == "creds":
            out["credentials"] = credentials_view()
            if out["credentials"] is None:
                raise RuntimeError("no credentials resolved")
        else:
            loop(args, out, aws)
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which asserts on it
        out["ok"] = False
        out["error"] = describe(exc)
    out["elapsed"] = time.monotonic() - started
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
