"""s3torchconnectorclient client for credagent's interoperability suite (runs in the data venv).

`MountpointS3Client` is the native client inside PyTorch's s3torchconnector (mountpoint-s3-client
over the AWS CRT); it needs no PyTorch. It is given the region, the endpoint (127.0.0.1, http) and
path-style addressing; credentials come from the CRT's default chain (environment, then the
profile from AWS_CONFIG_FILE including credential_process, then the container provider from
AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). No bucket creation
call exists: the driver creates the bucket (a directory of s3s-fs's). Prints one JSON line.

    s3torch_client.py --mode basic|loop --endpoint http://127.0.0.1:PORT --bucket NAME
                      [--duration S] [--interval S] [--stop-file P]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import s3torchconnectorclient  # noqa: E402
from s3torchconnectorclient._mountpoint_s3_client import MountpointS3Client, S3Exception  # noqa: E402


def make_client(args):
    # max_attempts=1: no retries, so every failed request is visible to the rig.
    return MountpointS3Client("us-east-1", "credagent-interop", endpoint=args.endpoint,
                              force_path_style=True, max_attempts=1)


def put(client, bucket, key, body):
    stream = client.put_object(bucket, key)
    stream.write(body)
    stream.close()


def get(client, bucket, key):
    return b"".join(client.get_object(bucket, key))


def basic(args, out):
    client = make_client(args)
    steps = {}
    out["steps"] = steps
    key = "interop/object.bin"
    # A HEAD of the key first: the first request is where a credentials failure shows, and a HEAD
    # reports it as is (a failing PUT stream reports only AWS_ERROR_S3_REQUEST_HAS_COMPLETED).
    try:
        client.head_object(args.bucket, key)
        steps["head_absent"] = False
    except S3Exception as exc:
        if "not found" not in str(exc):
            raise
        steps["head_absent"] = True
    body = common.payload(args.size, 1)
    put(client, args.bucket, key, body)
    steps["put"] = True
    steps["get_identical"] = get(client, args.bucket, key) == body
    # No LIST: s3s-fs 0.14.1 leaves ETag out of ListObjectsV2 entries, which mountpoint-s3-client
    # requires ("Missing field ETag"). HEAD checks the stored object instead.
    steps["head_size"] = client.head_object(args.bucket, key).size == len(body)
    out["key"] = key


def loop_ops(args):
    client = make_client(args)
    return (lambda: None,
            lambda key, body: put(client, args.bucket, key, body),
            lambda key: get(client, args.bucket, key))


if __name__ == "__main__":
    sys.exit(common.main("s3torch", lambda: {"s3torchconnectorclient": s3torchconnectorclient.__version__},
                         basic, loop_ops))
