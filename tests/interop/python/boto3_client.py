"""boto3 client for credagent's interoperability suite.

Resolves credentials through botocore's default chain, which picks the container provider from
AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, exactly as an
unmodified application does. Prints one JSON line on stdout.

    boto3_client.py --mode basic|creds|loop --endpoint URL --bucket NAME
                    [--duration SECS] [--interval SECS] [--size BYTES] [--stop-file PATH]
"""

import argparse
import json
import os
import sys
import time

import boto3
import botocore
from botocore.config import Config


def payload(size, seed):
    """Deterministic bytes covering all 256 values (same generator idea as the other clients)."""
    x = (seed * 0x9E3779B97F4A7C15 | 1) & 0xFFFFFFFFFFFFFFFF
    out = bytearray(size)
    for i in range(size):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        out[i] = (x >> 24) & 0xFF
    return bytes(out)


def describe(exc):
    code = None
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code")
    return {
        "class": type(exc).__module__ + "." + type(exc).__name__,
        "code": code,
        "message": str(exc),
    }


def credentials_view(session):
    creds = session.get_credentials()
    if creds is None:
        return None
    frozen = creds.get_frozen_credentials()
    expiry = getattr(creds, "_expiry_time", None)  # RefreshableCredentials keeps it here
    token = frozen.token
    return {
        "method": creds.method,
        "access_key_id": frozen.access_key,
        "token": "none" if token is None else ("empty-string" if token == "" else "non-empty"),
        "token_len": None if token is None else len(token),
        "expiration": None
        if expiry is None
        else expiry.astimezone(__import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiration_epoch": None if expiry is None else expiry.timestamp(),
    }


def make_client(session, endpoint, **config):
    # No S3-level retries (max_attempts 1): every failed request must be visible to the rig.
    # Credential fetches keep botocore's own container-provider retries.
    return session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def basic(args, out):
    session = boto3.Session()
    out["credentials"] = credentials_view(session)
    if out["credentials"] is None:
        raise RuntimeError("no credentials resolved")
    s3 = make_client(session, args.endpoint)
    steps = {}
    s3.create_bucket(Bucket=args.bucket)
    steps["create_bucket"] = True
    key = "interop/object.bin"
    body = payload(args.size, 1)
    s3.put_object(Bucket=args.bucket, Key=key, Body=body)
    steps["put"] = True
    got = s3.get_object(Bucket=args.bucket, Key=key)["Body"].read()
    steps["get_identical"] = got == body
    listed = s3.list_objects_v2(Bucket=args.bucket)
    steps["list_contains"] = key in [o["Key"] for o in listed.get("Contents", [])]
    out["presigned_url"] = s3.generate_presigned_url(
        "get_object", Params={"Bucket": args.bucket, "Key": key}, ExpiresIn=300
    )
    # botocore presigns S3 with SigV2 unless a signature version is configured; many apps set s3v4.
    out["presigned_url_s3v4"] = make_client(session, args.endpoint, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": args.bucket, "Key": key}, ExpiresIn=300
    )
    out["key"] = key
    out["size"] = args.size
    out["steps"] = steps


def loop(args, out):
    session = boto3.Session()
    s3 = make_client(session, args.endpoint)
    try:
        s3.create_bucket(Bucket=args.bucket)
    except Exception as exc:  # noqa: BLE001
        out["setup_error"] = describe(exc)
        return
    deadline = time.monotonic() + args.duration
    events, requests, failures, i = [], 0, 0, 0
    while time.monotonic() < deadline:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        i += 1
        key = f"loop/{i}"
        body = payload(1024 + i % 7, i)
        for op in ("put", "get"):
            t = time.time()
            requests += 1
            try:
                if op == "put":
                    s3.put_object(Bucket=args.bucket, Key=key, Body=body)
                elif s3.get_object(Bucket=args.bucket, Key=key)["Body"].read() != body:
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
    p.add_argument("--mode", default="basic", choices=["basic", "creds", "loop"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--size", type=int, default=70001)
    p.add_argument("--stop-file")
    args = p.parse_args()
    started = time.monotonic()
    out = {
        "client": "boto3",
        "mode": args.mode,
        "versions": {"boto3": boto3.__version__, "botocore": botocore.__version__},
    }
    try:
        if args.mode == "basic":
            basic(args, out)
        elif args.mode == "creds":
            out["credentials"] = credentials_view(boto3.Session())
            if out["credentials"] is None:
                raise RuntimeError("no credentials resolved")
        else:
            loop(args, out)
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which asserts on it
        out["ok"] = False
        out["error"] = describe(exc)
    out["elapsed"] = time.monotonic() - started
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
