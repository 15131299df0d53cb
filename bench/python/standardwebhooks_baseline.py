#!/usr/bin/env python3
"""Figure 1 baseline: the Python `standardwebhooks` library verifying the same Loops request
the Rust bench verifies (same secret, id, timestamp, body), then json.loads of the body
(`Webhook.verify` returns `json.loads(body)`). timeit on one core; prints JSON.

Two measurements:
  verify  `Webhook.verify` alone (HMAC + timestamp check + json.loads): the baseline of the
          Rust `loops_verify_parse` bench (verify + parse).
  full    the same, then what a Python receiver must also do before queueing: pick the fields
          the bridge lifts (kind, contact identity, event time), build the same envelope as a
          dict and `json.dumps` it: the baseline of the Rust `loops_full` bench.

    standardwebhooks_baseline.py REQUEST.json [OUT.json]
"""
import datetime
import json
import platform
import sys
import timeit

import standardwebhooks
from standardwebhooks.webhooks import Webhook


def main() -> None:
    req = json.loads(open(sys.argv[1]).read())
    wh = Webhook(req["secret"])
    headers = {
        "webhook-id": req["id"],
        "webhook-timestamp": req["timestamp"],
        "webhook-signature": req["signature"],
    }
    body = req["body"]
    assert wh.verify(body, headers) == json.loads(body), "the request must verify"
    assert json.loads(full(wh, body, headers, req["id"]))["kind"] == "email.unsubscribed"
    result = {
        "library": "standardwebhooks",
        "version": getattr(standardwebhooks, "__version__", None) or _dist_version(),
        "python": platform.python_version(),
    }
    verify = measure(lambda: wh.verify(body, headers))
    result.update(verify)  # the top-level figures are Webhook.verify's, as before
    result["verify"] = verify
    result["full"] = measure(lambda: full(wh, body, headers, req["id"]))
    text = json.dumps(result, indent=2)
    if len(sys.argv) > 2:
        open(sys.argv[2], "w").write(text)
    print(text)


def full(wh, body, headers, msg_id):
    """Webhook.verify, then the envelope sparkbridge queues (shared/src/core/envelope.rs)."""
    event = wh.verify(body, headers)
    ident = event.get("contactIdentity") if isinstance(event.get("contactIdentity"), dict) else {}
    t = event.get("eventTime")
    env = {
        "v": 1, "provider": "loops", "kind": event["eventName"], "dedupe_id": msg_id,
        "received_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "occurred_at": datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()
        if isinstance(t, int) else None,
        "subscriber": {"email": ident.get("email"), "esp_contact_id": ident.get("id"),
                       "external_id": ident.get("userId")},
        "payload": event,
    }
    return json.dumps(env, separators=(",", ":"))


def measure(fn):
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # enough loops for >= 0.2 s
    number *= 5  # ~1 s per repetition
    runs = timer.repeat(repeat=5, number=number)
    per_op = sorted(r / number for r in runs)
    return {
        "loops_per_repeat": number,
        "repeats": len(runs),
        "best_ns": round(per_op[0] * 1e9, 1),
        "median_ns": round(per_op[len(per_op) // 2] * 1e9, 1),
        "ops_per_s_median": round(1 / per_op[len(per_op) // 2]),
    }


def _dist_version():
    from importlib.metadata import version
    return version("standardwebhooks")


if __name__ == "__main__":
    main()
