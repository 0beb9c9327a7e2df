"""A fake `credential_process` for the suite: runs the real `credagent credential-process` and
reshapes only its SessionToken field, to find out what a client's process provider accepts.

    fake_credential_process.py --session-token empty|absent -- CREDAGENT credential-process ARGS...

  empty   passes credagent's output through unchanged apart from forcing "SessionToken": ""
  absent  removes the SessionToken key

The credentials themselves go from credagent to the client on stdout only; nothing is logged.
Standard library only (runs with the driver's python3).
"""

import argparse
import json
import subprocess
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--session-token", choices=["empty", "absent"], required=True)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    proc = subprocess.run(command, stdout=subprocess.PIPE, timeout=30)
    if proc.returncode != 0:
        return proc.returncode
    creds = json.loads(proc.stdout)
    if args.session_token == "empty":
        creds["SessionToken"] = ""
    else:
        creds.pop("SessionToken", None)
    sys.stdout.write(json.dumps(creds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
