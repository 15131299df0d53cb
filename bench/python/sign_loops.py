#!/usr/bin/env python3
"""Signs Loops deliveries the way Loops does (Standard Webhooks), for the benchmarks.

    sign_loops.py fixture OUT.json       one request (secret, id, timestamp, body, signature):
                                         what the Rust criterion bench and the Python
                                         standardwebhooks baseline both verify (figure 1)
    sign_loops.py wrk OUT.txt N          N requests for wrk (figure 2): line 1 is the body,
                                         then one "webhook-id<TAB>timestamp<TAB>signature"
                                         line per request, every id different

signature = base64(HMAC-SHA256(key, f"{id}.{ts}.{body}")), key = base64-decode of the secret
after `whsec_`. The secret is `sparkbridge dev`'s default, read from cli/src/defaults.rs, so
dev verifies these without any configuration. Timestamps are "now": the verifier refuses
anything more than 5 minutes away, so generate right before the run.
"""
import base64
import hashlib
import hmac
import json
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def dev_secret() -> str:
    text = (ROOT / "cli/src/defaults.rs").read_text()
    m = re.search(r'LOOPS_SIGNING_SECRET: &str = "(whsec_[^"]+)"', text)
    if not m:
        sys.exit("cli/src/defaults.rs: LOOPS_SIGNING_SECRET not found")
    return m.group(1)


def sample_body() -> str:
    sample = json.loads((ROOT / "events/loops/email.unsubscribed.json").read_text())
    return sample["body"]


def sign(key: bytes, msg_id: str, ts: int, body: str) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("fixture", "wrk"):
        sys.exit(__doc__)
    secret = dev_secret()
    key = base64.b64decode(secret[len("whsec_"):] + "==")
    body = sample_body()
    ts = int(time.time())
    out = pathlib.Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    run = f"{ts:x}"
    if sys.argv[1] == "fixture":
        msg_id = "msg_2abc"
        out.write_text(json.dumps({
            "secret": secret, "id": msg_id, "timestamp": str(ts), "body": body,
            "signature": sign(key, msg_id, ts, body),
        }))
        return
    n = int(sys.argv[3])
    with out.open("w") as f:
        f.write(body + "\n")
        for i in range(n):
            msg_id = f"msg_wrk_{run}_{i}"
            f.write(f"{msg_id}\t{ts}\t{sign(key, msg_id, ts, body)}\n")


if __name__ == "__main__":
    main()
