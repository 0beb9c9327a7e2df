"""What the data-workload clients (pyarrow, polars, s3torchconnectorclient) share: argument
parsing, the payload generator, the PUT+GET loop and the one-JSON-line output. Standard library
only, so that it imports in the data venv (which has no boto3).

Each client module defines `basic(args, out)` and `loop_ops(args)` (returning setup, put, get
callables) and calls `main(name, versions, basic, loop_ops)`.
"""

import argparse
import json
import os
import re
import sys
import time
import traceback


def payload(size, seed):
    """The same xorshift64 generator as the other clients (byte = bits 24..31)."""
    mask = 0xFFFFFFFFFFFFFFFF
    x = (seed * 0x9E3779B97F4A7C15 | 1) & mask
    out = bytearray(size)
    for i in range(size):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out[i] = (x >> 24) & 0xFF
    return bytes(out)


def describe(exc):
    """The error as the driver wants it. These libraries give no S3 error code as a field: it is
    read from the message (pyarrow: "AWS Error SIGNATURE_DOES_NOT_MATCH", object_store and the
    CRT: the S3 error body or status)."""
    cls = type(exc)
    msg = str(exc)
    code = None
    if re.search(r"SignatureDoesNotMatch|SIGNATURE_DOES_NOT_MATCH|signature we calculated does not match", msg):
        code = "SignatureDoesNotMatch"
    elif re.search(r"\b403\b|Forbidden|ACCESS_DENIED", msg):
        code = "403"
    return {"class": f"{cls.__module__}.{cls.__name__}", "code": code, "message": msg}


def run_loop(args, out, setup, put, get):
    """PUT + GET small objects until the deadline or the stop file; one event per request:
    [start, op, ok, error, end]."""
    try:
        setup()
    except Exception as exc:  # noqa: BLE001 - reported to the driver
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
                    put(key, body)
                elif get(key) != body:
                    raise ValueError("body mismatch")
                events.append([t, op, True, None, time.time()])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure is counted (panics too)
                failures += 1
                events.append([t, op, False, describe(exc), time.time()])
                break  # no GET of an object whose PUT failed
        time.sleep(args.interval)
    out["requests"] = requests
    out["failures"] = failures
    out["events"] = events


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="basic", choices=["basic", "loop"])
    p.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--bucket", required=True)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--size", type=int, default=70001)
    p.add_argument("--stop-file")
    if extra:
        extra(p)
    return p.parse_args()


def main(name, versions, basic, loop_ops, extra_args=None):
    args = parse_args(extra_args)
    started = time.monotonic()
    out = {"client": name, "mode": args.mode, "versions": versions()}
    try:
        if args.mode == "basic":
            basic(args, out)
        else:
            run_loop(args, out, *loop_ops(args))
        out["ok"] = True
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which asserts on it
        # BaseException: a Rust panic inside polars surfaces as pyo3's PanicException, which is
        # not an Exception.
        out["ok"] = False
        out["error"] = describe(exc)
        out["traceback_tail"] = traceback.format_exc()[-600:]
    out["elapsed"] = time.monotonic() - started
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit("a library for the data clients, not a program")
