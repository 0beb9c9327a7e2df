"""polars client for credagent's interoperability suite (runs in the data venv).

polars writes and reads `s3://` paths itself (object_store in its Rust core). `storage_options`
carries only the endpoint (127.0.0.1, http), the region and path-style addressing; no keys. With
`credential_provider="auto"` (the default) polars resolves credentials through boto3 when boto3 is
importable (CredentialProviderAWS -> botocore's container provider), and otherwise leaves them to
object_store's own environment chain (FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). The
driver runs this program twice: in the data venv as is (no boto3), and with the boto3 venv's
site-packages on PYTHONPATH. `credential_path` in the output says which one polars took. polars
cannot create buckets: the driver creates the bucket. Prints one JSON line.

    polars_client.py --mode basic|loop --endpoint http://127.0.0.1:PORT --bucket NAME
                     [--duration S] [--interval S] [--stop-file P]

basic: a DataFrame written with write_csv to s3:// and read back with read_csv (CSV: a reader
that needs no suffix-range GET, which s3s-fs answers with 500), compared with DataFrame.equals.
"""

import importlib.util
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import polars as pl  # noqa: E402


def storage_options(args):
    return {
        "aws_endpoint_url": args.endpoint,
        "aws_region": "us-east-1",
        "aws_virtual_hosted_style_request": "false",
        "allow_http": "true",
    }


def frame(n=1000):
    return pl.DataFrame({
        "id": list(range(n)),
        "name": [f"row-{i}" for i in range(n)],
        "score": [i * 0.5 for i in range(n)],
    })


def credential_path():
    # polars' own rule for credential_provider="auto" on s3:// (io/cloud/credential_provider):
    # CredentialProviderAWS when boto3 imports, else object_store's environment chain.
    return "boto3" if importlib.util.find_spec("boto3") is not None else "object_store"


def basic(args, out):
    out["credential_path"] = credential_path()
    if out["credential_path"] == "boto3":
        import boto3
        out["versions"]["boto3"] = boto3.__version__
    steps = {}
    out["steps"] = steps
    want = frame()
    url = f"s3://{args.bucket}/interop/table.csv"
    want.write_csv(url, storage_options=storage_options(args))
    steps["csv_write"] = True
    got = pl.read_csv(url, storage_options=storage_options(args))
    steps["csv_roundtrip"] = got.equals(want)
    out["rows"] = got.height


def loop_ops(args):
    # Each iteration writes a one-column CSV whose bytes are the payload's hex, and reads it back.
    opts = storage_options(args)

    def put(key, body):
        pl.DataFrame({"hex": [body.hex()]}).write_csv(f"s3://{args.bucket}/{key}.csv", storage_options=opts)

    def get(key):
        return bytes.fromhex(pl.read_csv(f"s3://{args.bucket}/{key}.csv", storage_options=opts)["hex"][0])

    return (lambda: None, put, get)


def versions():
    v = {"polars": pl.__version__}
    try:
        from importlib.metadata import version
        v["polars-runtime-32"] = version("polars-runtime-32")
    except Exception:  # noqa: BLE001
        pass
    return v


if __name__ == "__main__":
    sys.exit(common.main("polars", versions, basic, loop_ops))
