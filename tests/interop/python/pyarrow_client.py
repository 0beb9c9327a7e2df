"""pyarrow client for credagent's interoperability suite (runs in the data venv).

`pyarrow.fs.S3FileSystem` is given only the endpoint (127.0.0.1, scheme http), the region and
bucket creation; no keys. Its bundled aws-sdk-cpp default chain then picks the container provider
(GeneralHTTPCredentialsProvider) from AWS_CONTAINER_CREDENTIALS_FULL_URI +
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. Path-style addressing is pyarrow's default with an
endpoint override (force_virtual_addressing=False). Prints one JSON line.

    pyarrow_client.py --mode basic|loop --endpoint http://127.0.0.1:PORT --bucket NAME
                      [--parquet-read file|stream] [--duration S] [--interval S] [--stop-file P]

basic: bucket, PUT + GET of raw bytes, LIST, then a Parquet file written with
pyarrow.parquet.write_table and read back, compared with Table.equals. `--parquet-read file` reads
it with pyarrow.parquet.read_table on the filesystem (a random-access file: HEAD, then ranged
GETs); `stream` reads the whole object through open_input_stream and parses it in memory.
"""

import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def make_fs(args):
    url = urllib.parse.urlsplit(args.endpoint)
    return pafs.S3FileSystem(
        endpoint_override=url.netloc,
        scheme=url.scheme,
        region="us-east-1",
        allow_bucket_creation=True,
        # No S3-level retries: every failed request must be visible to the rig.
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


def table(n=20000):
    # Large enough (~300 KB) that the Parquet reader's footer read is a real tail read, not the
    # whole object at once: the proxy's record shows which Range headers it uses.
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "name": pa.array([f"row-{i}" for i in range(n)]),
        "score": pa.array([i * 0.5 for i in range(n)], pa.float64()),
    })


def put(fs, path, body):
    with fs.open_output_stream(path) as f:
        f.write(body)


def get(fs, path):
    with fs.open_input_stream(path) as f:
        return f.read()


def basic(args, out):
    fs = make_fs(args)
    steps = {}
    out["steps"] = steps
    fs.create_dir(args.bucket)
    steps["create_bucket"] = True
    key = "interop/object.bin"
    body = common.payload(args.size, 1)
    put(fs, f"{args.bucket}/{key}", body)
    steps["put"] = True
    steps["get_identical"] = get(fs, f"{args.bucket}/{key}") == body
    listed = fs.get_file_info(pafs.FileSelector(args.bucket, recursive=True))
    steps["list_contains"] = f"{args.bucket}/{key}" in [i.path for i in listed]
    want = table()
    path = f"{args.bucket}/interop/table.parquet"
    pq.write_table(want, path, filesystem=fs)
    steps["parquet_write"] = True
    if args.parquet_read == "file":
        got = pq.read_table(path, filesystem=fs)
    else:
        got = pq.read_table(pa.BufferReader(get(fs, path)))
    steps["parquet_roundtrip"] = got.equals(want)
    out["parquet_read"] = args.parquet_read
    out["parquet_rows"] = got.num_rows
    out["parquet_size"] = fs.get_file_info(path).size
    out["key"] = key


def loop_ops(args):
    fs = make_fs(args)
    return (lambda: fs.create_dir(args.bucket),
            lambda key, body: put(fs, f"{args.bucket}/{key}", body),
            lambda key: get(fs, f"{args.bucket}/{key}"))


def extra(p):
    p.add_argument("--parquet-read", choices=["file", "stream"], default="file")


if __name__ == "__main__":
    sys.exit(common.main("pyarrow", lambda: {"pyarrow": pa.__version__}, basic, loop_ops, extra))
