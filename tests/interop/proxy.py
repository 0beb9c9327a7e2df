"""A tiny recording reverse proxy in front of s3s-fs (Python stdlib only).

s3s-fs verifies SigV4/SigV2 signatures but ignores session tokens, so this proxy records, for
every S3 request, what the client actually put on the wire: whether an `x-amz-security-token`
header and/or an `X-Amz-Security-Token` query parameter was present and whether it was empty (the
value itself is logged only as a short SHA-256 prefix), which access key signed it, how it was
signed, the Range header, and the upstream's status and error code. One JSON object per line in --log.

Bytes are forwarded unchanged (method, path, query, headers including Host, body; chunked bodies
as raw chunked bytes), so signatures computed for the proxy's address verify upstream.

    proxy.py --upstream 127.0.0.1:PORT --log FILE --addr-file FILE

Control: `POST /_proxy/upstream` with body `127.0.0.1:PORT` switches the upstream (used when
s3s-fs is restarted with new keys). `POST /_proxy/route` with body `AKID=127.0.0.1:PORT` sends the
requests signed by access key id AKID to that upstream instead (`AKID=` removes the route): one
s3s-fs knows one key pair, so a key rotation during which both the old and the new key are valid
runs one s3s-fs per key.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
CODE_RE = re.compile(rb"<Code>([^<]*)</Code>")
CRED_RE = re.compile(r"Credential=([^/,\s]+)/")


class State:
    def __init__(self, upstream, log_path):
        self.upstream = upstream
        self.routes = {}  # access key id -> upstream
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1)

    def record(self, entry):
        line = json.dumps(entry, sort_keys=True)
        with self.lock:
            self.log.write(line + "\n")


def token_state(value):
    if value is None:
        return None
    return {"empty": value == "", "len": len(value), "sha": hashlib.sha256(value.encode()).hexdigest()[:16]}


def read_chunked_raw(rfile):
    """Reads a chunked body (with any trailers) and returns its raw bytes, unchanged."""
    raw = bytearray()
    while True:
        line = rfile.readline(65537)
        raw += line
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        raw += rfile.read(size + 2)  # data + CRLF
    while True:  # trailers, then the final empty line
        line = rfile.readline(65537)
        raw += line
        if line in (b"\r\n", b"\n", b""):
            break
    return bytes(raw)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "interop-proxy"
    state: State = None  # set in main

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def _control(self, body):
        if self.command == "POST" and self.path == "/_proxy/upstream":
            self.state.upstream = body.decode().strip()
            payload = b'{"ok":true}'
            self.send_response(200)
        elif self.command == "POST" and self.path == "/_proxy/route" and b"=" in body:
            key, _, upstream = body.decode().strip().partition("=")
            with self.state.lock:
                if upstream:
                    self.state.routes[key] = upstream
                else:
                    self.state.routes.pop(key, None)
            payload = b'{"ok":true}'
            self.send_response(200)
        else:
            payload = b'{"error":"no such control route"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def handle_any(self):
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked:
            body = read_chunked_raw(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_proxy/"):
            return self._control(body)

        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        qtoken = next((v for k, v in query if k.lower() == "x-amz-security-token"), None)
        htoken = self.headers.get("x-amz-security-token")
        authz = self.headers.get("Authorization", "")
        qnames = {k.lower() for k, _ in query}
        if authz.startswith("AWS4-HMAC-SHA256"):
            auth = "sigv4-header"
            m = CRED_RE.search(authz)
            access_key = m.group(1) if m else None
        elif "x-amz-credential" in qnames:
            auth = "sigv4-query"
            cred = next(v for k, v in query if k.lower() == "x-amz-credential")
            access_key = cred.split("/", 1)[0]
        elif authz.startswith("AWS "):
            auth = "sigv2-header"
            access_key = authz[4:].split(":", 1)[0]
        elif "awsaccesskeyid" in qnames:
            auth = "sigv2-query"
            access_key = next(v for k, v in query if k.lower() == "awsaccesskeyid")
        else:
            auth, access_key = "none", None
        m = re.search(r"SignedHeaders=([^,\s]+)", authz)
        signed = m.group(1) if m else next((v for k, v in query if k.lower() == "x-amz-signedheaders"), "")
        signed_headers = signed.split(";") if signed else []
        segments = url.path.lstrip("/").split("/", 1)
        entry = {
            "t": time.time(),
            "method": self.command,
            "bucket": urllib.parse.unquote(segments[0]) if segments[0] else None,
            "key": urllib.parse.unquote(segments[1]) if len(segments) > 1 else None,
            "auth": auth,
            "access_key": access_key,
            "header_token": token_state(htoken),
            "query_token": token_state(qtoken),
            # SigV4 only: whether the x-amz-security-token header is covered by the signature.
            "token_header_signed": "x-amz-security-token" in signed_headers if htoken is not None else None,
            "user_agent": self.headers.get("User-Agent", ""),
            # Suffix ranges (`bytes=-N`) matter: s3s-fs answers them with 500.
            "range": self.headers.get("Range"),
            "status": None,
            "code": None,
        }

        with self.state.lock:
            upstream = self.state.routes.get(access_key, self.state.upstream)
        entry["upstream"] = upstream
        try:
            host, port = upstream.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() in HOP_BY_HOP - {"transfer-encoding"}:
                    continue
                conn.putheader(name, value)
            conn.putheader("Connection", "close")
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            data = resp.read() if self.command != "HEAD" else b""
            headers = resp.getheaders()
            status, reason = resp.status, resp.reason
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported to the client as a 502 and logged
            entry["status"] = 502
            entry["code"] = "ProxyUpstreamError: " + type(exc).__name__
            self.state.record(entry)
            msg = b"proxy upstream error"
            self.send_response(502)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return

        entry["status"] = status
        if status >= 400:
            m = CODE_RE.search(data)
            entry["code"] = m.group(1).decode(errors="replace") if m else None
        self.state.record(entry)

        self.send_response(status, reason)
        for name, value in headers:
            low = name.lower()
            if low in HOP_BY_HOP or low in ("server", "date"):
                continue
            if low == "content-length" and self.command != "HEAD":
                continue
            self.send_header(name, value)
        if self.command != "HEAD" and status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--addr-file", required=True)
    args = p.parse_args()
    Handler.state = State(args.upstream, args.log)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    addr = "127.0.0.1:%d" % server.server_address[1]
    tmp = args.addr_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(addr)
    os.replace(tmp, args.addr_file)
    print("proxy listening on http://" + addr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
