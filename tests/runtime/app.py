"""The app of the runtime test's workload Pods: botocore/boto3 (mounted read-only, on PYTHONPATH), run by the image's Python
as the app container's own (non-credagent) user, with nothing but what the webhook injected:

    app.py idle                  PID 1 of the app container: waits for SIGTERM, then exits 0
    app.py s3 BUCKET KEY         one session: PUT, GET and LIST through the SDK's default chain
    app.py loop BUCKET SECONDS   PUT+GET with a fresh session each round (so each round asks the
                                 credentials endpoint again) until SECONDS have passed; reports
                                 when each round that succeeded began (Unix time)

`s3` and `loop` print one JSON line: the credential provider the SDK chose (`method`), the access
key id it got, and what the S3 calls did. The endpoint and region come from the injected
AWS_ENDPOINT_URL_S3 and AWS_REGION; path-style addressing because the S3 server is an address.
"""

import json
import os
import signal
import sys
import time


def session():
    import boto3
    from botocore.config import Config

    s = boto3.Session()
    creds = s.get_credentials()
    client = s.client("s3", config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1, "mode": "standard"}))
    return creds, client


def s3(bucket, key):
    creds, client = session()
    frozen = creds.get_frozen_credentials()
    body = f"written by uid {os.getuid()} at {time.time()}".encode()
    client.put_object(Bucket=bucket, Key=key, Body=body)
    got = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    print(json.dumps({
        "method": creds.method,
        "access_key": frozen.access_key,
        "uid": os.getuid(),
        "roundtrip": got == body,
        "listed": key in keys,
        "endpoint": client.meta.endpoint_url,
    }))


def loop(bucket, seconds):
    deadline = time.monotonic() + seconds
    rounds = failures = 0
    errors, began = [], []
    while time.monotonic() < deadline:
        rounds += 1
        start = time.time()
        try:
            _, client = session()
            body = f"round {rounds}".encode()
            client.put_object(Bucket=bucket, Key=f"loop/{rounds}", Body=body)
            if client.get_object(Bucket=bucket, Key=f"loop/{rounds}")["Body"].read() != body:
                raise RuntimeError("read back different bytes")
            began.append(start)
        except Exception as e:  # noqa: BLE001 - counted and reported
            failures += 1
            errors.append(f"{type(e).__name__}: {e}"[:200])
        time.sleep(0.2)
    print(json.dumps({"rounds": rounds, "failures": failures, "errors": errors[:5], "began": began}))


def idle():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def main():
    cmd = sys.argv[1]
    if cmd == "idle":
        idle()
    elif cmd == "s3":
        s3(sys.argv[2], sys.argv[3])
    elif cmd == "loop":
        loop(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
