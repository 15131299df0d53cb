#!/usr/bin/env python3
"""Figure 1 baselines: what a Python receiver does for the same requests the Rust criterion
bench (shared/benches/ingest_core.rs) checks and parses, on the same core. One round of
timeit measurements per call; bench/run.sh alternates rounds with criterion's.

    ingest_baselines.py LOOPS_REQUEST.json [OUT.json]

  loops_verify      `standardwebhooks` `Webhook.verify` (HMAC, timestamp check, json.loads):
                    the baseline of the Rust `loops_verify_parse`
  loops_full        the same, then the fields the bridge lifts, the envelope as a dict and
                    `json.dumps`: the baseline of `loops_full`
  sparkloop_full    the SparkLoop-Token compared with `hmac.compare_digest`, json.loads, the
                    kind, subscriber and event time lifted and the dedupe id hashed as the
                    bridge hashes it: the baseline of `sparkloop_full`
  esputnik_full     HTTP Basic decoded (base64) and both halves compared with
                    `hmac.compare_digest`, json.loads of the same 2-element batch, per element
                    the kind, ids, the local time read in a zone (zoneinfo) and the dedupe id:
                    the baseline of `esputnik_full`

The SparkLoop and eSputnik bodies are the repository's samples (events/), as in the Rust bench.
"""
import base64
import datetime
import hashlib
import hmac
import json
import pathlib
import platform
import re
import sys
import timeit
import zoneinfo

import standardwebhooks
from standardwebhooks.webhooks import Webhook

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPARKLOOP_TYPES = {"sync_subscriber", "new_partner_pending_referral", "new_partner_referral",
                   "new_referral", "reward_unlocked", "reward_redeemed", "new_offer_lead"}
ESPUTNIK_STATUSES = {"DELIVERED", "UNDELIVERED", "READ", "CLICKED", "UNSUBSCRIBED", "SPAM",
                     "SUBSCRIPTION_CHANGED", "SENT"}


def sample_body(provider, name):
    return json.loads((ROOT / "events" / provider / f"{name}.json").read_text())["body"]


def dedupe_id(fields):
    """As `derive_dedupe_id`: SHA-256 over length-prefixed fields, hex."""
    h = hashlib.sha256()
    for f in fields:
        b = f.encode()
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


def pinned_dedupe_id(sample, kind=None):
    """The dedupe id the bridge gives a sample, as its golden test pins it: the baselines
    must compute the same key, not merely a similar one."""
    pinned = (ROOT / "shared" / "tests" / "it" / "sample_dedupe_ids.rs").read_text()
    kind_re = re.escape(kind) if kind else r"[^\"]+"
    found = re.search(rf'"{re.escape(sample)}",\s*"{kind_re}",\s*"([0-9a-f]{{64}})"', pinned)
    assert found, f"{sample} {kind}: not pinned"
    return found.group(1)


def text(v):
    return v if isinstance(v, str) else ("" if v is None else json.dumps(v))


def loops_full(wh, body, headers, msg_id):
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


def sparkloop_full(expected, given, body):
    if not hmac.compare_digest(expected, given):
        raise ValueError("wrong token")
    event = json.loads(body)
    kind = event.get("type") or event.get("event")
    kind = kind if kind in SPARKLOOP_TYPES else "unknown"
    sub = event.get("subscriber") or {}
    sl_id = text(sub.get("id") or sub.get("uuid")) or None
    created = sub.get("created_at")
    occurred = (datetime.datetime.fromtimestamp(created, datetime.timezone.utc)
                if isinstance(created, int) else None)
    campaign = text((event.get("campaign") or {}).get("id") or event.get("campaign_id"))
    if kind == "unknown" or not sl_id:
        key = hashlib.sha256(body.encode()).hexdigest()
    else:
        key = dedupe_id([
            kind, sl_id, campaign, text(sub.get("referral_status")),
            text((event.get("reward") or {}).get("id")),
            text((event.get("referrer") or {}).get("id")),
            text((event.get("referrer") or {}).get("tot_referrals")),
            text(sub.get("tot_referrals")) if kind.startswith("reward_") else "",
            # as serde_json writes it: keys sorted, no spaces, non-ASCII as UTF-8
            hashlib.sha256(json.dumps(sub, separators=(",", ":"), sort_keys=True,
                                      ensure_ascii=False).encode()).hexdigest()
            if kind == "sync_subscriber" else "",
        ])
    return key, kind, sub.get("email"), sl_id, occurred


def esputnik_full(user, password, header, body, tz):
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ValueError("not Basic")
    u, _, p = base64.b64decode(rest.strip()).decode().partition(":")
    ok_user = hmac.compare_digest(user, u.encode())
    ok_pass = hmac.compare_digest(password, p.encode())
    if not (ok_user and ok_pass):
        raise ValueError("wrong credentials")
    out = []
    for a in json.loads(body):
        status = a["activityStatus"]
        t = a.get("activityDateTime")
        occurred = None
        if t:
            d = datetime.datetime.fromisoformat(t)
            if d.tzinfo is None:
                d = d.replace(tzinfo=tz)
            occurred = d.astimezone(datetime.timezone.utc)
        key = dedupe_id([a.get("iid") or "", text(a.get("contactId")),
                         text(a.get("messageInstanceId")), status, t or "",
                         a.get("clickEventLink") or "", a.get("email") or a.get("sms") or ""])
        out.append((key, status if status in ESPUTNIK_STATUSES else "unknown", a.get("email"),
                    text(a.get("contactId")), text(a.get("externalCustomerId")), occurred))
    return out


def measure(fn):
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # enough loops for >= 0.2 s
    number *= 2  # ~0.4 s per repetition
    runs = timer.repeat(repeat=3, number=number)
    per_op = sorted(r / number for r in runs)
    return {
        "loops_per_repeat": number,
        "repeats": len(runs),
        "best_ns": round(per_op[0] * 1e9, 1),
        "median_ns": round(per_op[len(per_op) // 2] * 1e9, 1),
        "ops_per_s_median": round(1 / per_op[len(per_op) // 2]),
    }


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
    assert json.loads(loops_full(wh, body, headers, req["id"]))["kind"] == "email.unsubscribed"

    token = b"dev-sparkloop-token"
    sl_body = sample_body("sparkloop", "sync_subscriber")
    assert sparkloop_full(token, token, sl_body)[:2] == (
        pinned_dedupe_id("sparkloop/sync_subscriber.json"), "sync_subscriber"), \
        "the same dedupe id as the bridge"

    two = json.dumps(json.loads(sample_body("esputnik", "batch"))[:2], separators=(",", ":"))
    basic = "Basic " + base64.b64encode(b"dev:dev-password").decode()
    utc = zoneinfo.ZoneInfo("UTC")
    got = esputnik_full(b"dev", b"dev-password", basic, two, utc)
    assert [g[1] for g in got] == ["DELIVERED", "UNDELIVERED"] and got[0][0] != got[1][0]
    assert [g[0] for g in got] == [pinned_dedupe_id("esputnik/batch.json", status)
                                   for status in ("DELIVERED", "UNDELIVERED")]

    result = {
        "library": "standardwebhooks",
        "version": getattr(standardwebhooks, "__version__", None) or _dist_version(),
        "python": platform.python_version(),
        "loops_verify": measure(lambda: wh.verify(body, headers)),
        "loops_full": measure(lambda: loops_full(wh, body, headers, req["id"])),
        "sparkloop_full": measure(lambda: sparkloop_full(token, token, sl_body)),
        "esputnik_full": measure(lambda: esputnik_full(b"dev", b"dev-password", basic, two, utc)),
    }
    text_ = json.dumps(result, indent=2)
    if len(sys.argv) > 2:
        open(sys.argv[2], "w").write(text_)
    print(text_)


def _dist_version():
    from importlib.metadata import version
    return version("standardwebhooks")


if __name__ == "__main__":
    main()
