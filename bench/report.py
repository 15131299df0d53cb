#!/usr/bin/env python3
"""Renders the results of `make bench` ($OUT/*.json) as Markdown: one table per figure, each
with its baseline from the same run, the command that produced it, and the targets.
Also computes figure 7 (cost per million webhooks) from the measured figures.

    report.py target/bench > target/bench/report.md
"""
import json
import math
import pathlib
import sys

OUT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench")


def load(name):
    p = OUT / name
    return json.loads(p.read_text()) if p.exists() else None


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, float) and not math.isfinite(x):
        return "–"
    if isinstance(x, (int, float)) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def mb(kb):
    return None if kb is None else kb / 1024


def verdict(ok):
    return "met" if ok else "**missed**"


lines = []
say = lines.append
targets = []  # (figure, target, measured, ok)

machine = load("machine.json") or {}
say("## Machine and run")
say("")
say(f"- CPU: {machine.get('cpu_model', '?')}, nproc = {machine.get('nproc', '?')}, "
    f"{machine.get('mem_gib', '?')} GiB RAM, kernel {machine.get('kernel', '?')}")
say(f"- {machine.get('rustc', '?')}, Python {machine.get('python', '?')}; run {machine.get('date_utc', '?')}; "
    f"load average at start {' '.join(machine.get('loadavg_at_start', []))}")
bt = OUT / "build-times.txt"
if bt.exists():
    parts = [f"{l.split()[0]} {int(l.split()[1]) / 1000:.1f} s" for l in bt.read_text().split("\n") if l.strip()]
    say(f"- Builds in this run (warm target/ when quick): {', '.join(parts)}")
ph = OUT / "phases.txt"
if ph.exists():
    secs = dict((l.split()[0], int(l.split()[1])) for l in ph.read_text().split("\n") if l.strip())
    say(f"- Wall time: builds {secs.get('build', 0)} s, measuring {secs.get('measure', 0)} s "
        f"(setup {secs.get('setup', 0)} s)")
say("")

# ---------------------------------------------------------------- figure 1
def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)


# The least work a figure-1 row can do, measured in the same rounds (shared/benches/ingest_core/):
# the Rust bench of that floor, by the row's Rust bench.
FIG1_FLOORS = {
    "sparkloop_full": ("sparkloop_floor_all", "the token and the least any reader on serde_json and sha2 "
                       "does (one pass finding the fields, the subscriber's text, both hashes, the kept text)"),
}


def figure_1_floor(rust_key, python_key):
    """The floor of a missed figure-1 target: its time and the best ratio it leaves, per round;
    None when the row has no floor or it was not measured."""
    if rust_key not in FIG1_FLOORS:
        return None
    floor_key, what = FIG1_FLOORS[rust_key]
    pairs = [(r[floor_key]["median_ns"], p_[python_key]["median_ns"])
             for p_, r in rounds if floor_key in r and python_key in p_]
    if not pairs:
        return None
    ratios = [b / a for a, b in pairs]
    return (f"floor: {what}, {fmt(median([a for a, _ in pairs]))} ns, at most "
            f"**{median(ratios):.1f}×** (range {min(ratios):.1f}–{max(ratios):.1f}×; `{floor_key}`)")


rounds = []
i = 1
while (OUT / f"fig1-round-{i}-python.json").exists() and (OUT / f"fig1-round-{i}-rust.json").exists():
    rounds.append((load(f"fig1-round-{i}-python.json"), load(f"fig1-round-{i}-rust.json")))
    i += 1
rust = load("fig1-rust.json")
if rounds:
    py0 = rounds[0][0]
    say("## 1. Verify + parse, per provider, against the same work in Python (one core)")
    say("")
    say(f"Command: `make bench FIGURES=1`: {len(rounds)} rounds, each `taskset -c 1 .venv/bin/python "
        "bench/python/ingest_baselines.py target/bench/loops-request.json` then "
        "`BENCH_LOOPS_REQUEST=target/bench/loops-request.json taskset -c 1 cargo bench -p sparkbridge --bench "
        "ingest_core -- --warm-up-time 1 --measurement-time 2 "
        "'ingest_core/(loops_verify_parse|loops_full|sparkloop_full|sparkloop_floor_all|esputnik_full)$'` "
        "(criterion medians; "
        "timeit medians of 3 repeats). The ratio is taken within each round; the table gives the median "
        "of the rounds and their range.")
    say("")
    say(f"Python {py0['python']}, `standardwebhooks` {py0['version']}. Same requests on both sides: the "
        "freshly signed Loops request, the SparkLoop and eSputnik samples of events/. Python's side: "
        "Loops `Webhook.verify` (HMAC, timestamp check, `json.loads`); SparkLoop `hmac.compare_digest` "
        "of the token, `json.loads`, the fields and the dedupe id; eSputnik Basic decoded with base64 and "
        "compared with `hmac.compare_digest`, `json.loads` of a 2-element batch, per element the fields, "
        "the local time (zoneinfo) and the dedupe id (bench/python/ingest_baselines.py).")
    say("")
    fig1 = [
        ("loops_verify_parse", "loops_verify", "Loops: SigningKeys::verify + loops::parse", 20),
        ("loops_full", "loops_full", "Loops: … + Envelope::new + Envelope::to_json (what ingest queues)", None),
        ("sparkloop_full", "sparkloop_full", "SparkLoop: Secret::matches + sparkloop::parse", 10),
        ("esputnik_full", "esputnik_full", "eSputnik: WebhookAuth::check (Basic) + esputnik::split (2 elements)", 10),
    ]
    say("| What (Rust) | Rust ns/op, median of rounds | Python ns/op, median of rounds | ratio, median | ratio, range | target |")
    say("|---|---:|---:|---:|---:|---|")
    for rk, pk, what, goal in fig1:
        pairs = [(r[rk]["median_ns"], p_[pk]["median_ns"]) for p_, r in rounds if rk in r and pk in p_]
        if not pairs:
            continue
        ratios = [b / a for a, b in pairs]
        m = median(ratios)
        say(f"| {what} | {fmt(median([a for a, _ in pairs]))} | {fmt(median([b for _, b in pairs]))} | "
            f"**{m:.1f}×** | {min(ratios):.1f}–{max(ratios):.1f}× | {f'≥ {goal}×' if goal else '–'} |")
        if goal:
            floor = figure_1_floor(rk, pk) if m < goal else None
            targets.append(("1", f"{what.split(':')[0]} verify + parse ≥ {goal}× the same in Python "
                            f"(median of {len(pairs)} alternating rounds)",
                            f"**{m:.1f}×** (range {min(ratios):.1f}–{max(ratios):.1f}×; Rust "
                            f"{fmt(median([a for a, _ in pairs]))} ns)", m >= goal,
                            f"Python {fmt(median([b for _, b in pairs]))} ns" + (f"; {floor}" if floor else "")))
    say("")
if rust:
    say("Components, one criterion run after the rounds (`cargo bench -p sparkbridge --bench ingest_core`):")
    say("")
    say("| What (Rust, criterion median) | ns/op | ops/s/core |")
    say("|---|---:|---:|")
    for key, what in (
        ("loops_verify", "Loops: SigningKeys::verify only"),
        ("loops_parse", "Loops: loops::parse only"),
        ("loops_envelope_json", "Loops: Envelope::to_json only"),
        ("sparkloop_token", "SparkLoop: Secret::matches only (the token)"),
        ("sparkloop_parse", "SparkLoop: sparkloop::parse only (sync_subscriber)"),
        ("sparkloop_floor_check", "SparkLoop, floor: serde_json checking the body, nothing kept"),
        ("sparkloop_floor_hashes", "SparkLoop, floor: the key's two SHA-256 (subscriber JSON, then the fields)"),
        ("sparkloop_floor_all", "SparkLoop, floor: the token and the least any reader on serde_json and sha2 does"),
        ("sparkloop_full_envelope_json", "SparkLoop: check + parse + envelope + JSON"),
        ("esputnik_check", "eSputnik: WebhookAuth::check only (Basic)"),
        ("esputnik_split", "eSputnik: esputnik::split only (2 elements)"),
        ("esputnik_full_envelopes_json", "eSputnik: check + split + 2 envelopes + JSON"),
    ):
        r = rust.get(key)
        if r:
            say(f"| {what} | {fmt(r['median_ns'])} | {fmt(r['ops_per_s_median'])} |")
    say("")

# ---------------------------------------------------------------- figure 2


def budget_at(rows, share):
    """The handler CPU (ns) at which the webhook rate is `share` of `/healthz`: linear between
    the two measured spins around it (medians); None when no two spins bracket it."""
    pts = sorted((r["spin_ns"], r["ratio_pct"] / 100) for r in rows)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y0 >= share >= y1 and y0 != y1:
            return x0 + (y0 - share) * (x1 - x0) / (y0 - y1)
    return None


def figure_2_floor():
    """Renders figure 2's floor (bench/handler-floor, and dev's steps under criterion); returns
    the line for the table of targets, or None when it was not measured."""
    hf, core = load("handler-floor/handler-floor.json"), load("fig2-floor-core.json") or {}
    log_line, dev = load("fig2-log-line.json") or {}, load("fig2-dev-event.json") or {}
    if not hf:
        return None
    med = lambda d, k: d.get(k, {}).get("median_ns")
    budget = budget_at(hf["table"], 0.6)
    say("### The floor under 60 %")
    say("")
    say("Command: `make bench FIGURES=2` (`bench/handler-floor/measure.sh 1500 2000 2500`, 2 rounds of 5 s: a "
        "server of dev's HTTP stack whose webhook route keeps a core busy for the given time, under the same load; "
        "then criterion on one core)")
    say("")
    say("| handler CPU per request | `/healthz` req/s | webhook req/s | webhook / `/healthz` (median) | range |")
    say("|---:|---:|---:|---:|---|")
    for r in hf["table"]:
        say(f"| {r['spin_ns'] / 1000:.1f} µs | {fmt(r['healthz'])} | {fmt(r['webhook'])} | {r['ratio_pct']:.1f} % "
            f"| {r['min_pct']:.1f}–{r['max_pct']:.1f} % |")
    say("")
    steps = [("verify + parse (`loops_verify_parse`)", med(core, "loops_verify_parse")),
             ("the envelope (`loops_envelope_json`)", med(core, "loops_envelope_json")),
             ("the ingest handler, logs off (`ingest_log/loops_request_logs_off`)",
              med(log_line, "loops_request_logs_off")),
             ("the ingest handler with dev's INFO line (`ingest_log/loops_request_text`)",
              med(log_line, "loops_request_text"))]
    per = lambda k: med(dev, k) and med(dev, k) / 10
    steps += [("dev's whole work for a delivery without HTTP, logs off (`dev_event`, a tenth of a batch)",
               per("batch_of_10_logs_off")),
              ("the same with its INFO lines", per("batch_of_10_text_logs"))]
    say("| step, criterion on one core (median) | ns per delivery |")
    say("|---|---:|")
    for what, ns in steps:
        say(f"| {what} | {fmt(ns)} |")
    say("")
    if budget is None:
        say("No two spins bracket 60 %: no budget to state.")
        say("")
        return None
    handler = med(log_line, "loops_request_text")
    whole = per("batch_of_10_text_logs")
    say(f"60 % of `/healthz` leaves a delivery about **{budget / 1000:.1f} µs** of CPU; the ingest handler with "
        f"its INFO line takes {fmt(handler and handler / 1000, 2)} µs on its own and dev's whole work "
        f"{fmt(whole and whole / 1000, 2)} µs.")
    say("")
    parts = [f"floor: 60 % leaves a delivery ≈ {budget / 1000:.1f} µs of CPU (bench/handler-floor)"]
    if handler:
        parts.append(f"the ingest handler with its INFO line takes {handler / 1000:.2f} µs")
    if whole:
        parts.append(f"dev's whole per-delivery work {whole / 1000:.1f} µs (criterion)")
    return ", ".join(parts)


ih = load("ingest_http.json")
if ih:
    h, l = ih["healthz"], ih["loops"]
    say("## 2. Ingest over HTTP: `sparkbridge dev` under wrk")
    say("")
    procs = ih.get("wrk_processes")
    load_cmd = (f"{procs} × `wrk -t1 -c{ih['connections'] // procs}` side by side" if procs
                else f"`wrk -t{ih['wrk_threads']} -c{ih['connections']}`")
    say(f"Command: `make bench FIGURES=2` (`bench/scripts/ingest_http.sh`: {load_cmd} "
        f"`-d{round(l['duration_s'])}s --latency -s bench/wrk/webhooks.lua`, "
        "release `target/release/sparkbridge dev`, in-memory queue and store, dry run)")
    if procs:
        say("")
        say(f"Latencies are the slowest process's; rates and counts the sum of the {procs}.")
    say("")
    say("| Endpoint | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | reused webhook-ids |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    say(f"| `POST /webhooks/loops` (signed, every id new) | {fmt(l['requests_per_s'])} | {fmt(l['p50_ms'], 2)} | "
        f"{fmt(l['p90_ms'], 2)} | {fmt(l['p99_ms'], 2)} | {l['non_2xx']} | {l['reused_ids']} |")
    q = ih.get("loops_logs_off")
    if q:
        say(f"| Diagnostic: `POST /webhooks/loops`, INFO logs off (`RUST_LOG=warn`) | {fmt(q['requests_per_s'])} | "
            f"{fmt(q['p50_ms'], 2)} | {fmt(q['p90_ms'], 2)} | {fmt(q['p99_ms'], 2)} | {q['non_2xx']} | {q['reused_ids']} |")
    nw = ih.get("loops_no_worker")
    if nw:
        say(f"| Diagnostic: `POST /webhooks/loops`, no dev worker (`--no-worker`) | {fmt(nw['requests_per_s'])} | "
            f"{fmt(nw['p50_ms'], 2)} | {fmt(nw['p90_ms'], 2)} | {fmt(nw['p99_ms'], 2)} | {nw['non_2xx']} | {nw['reused_ids']} |")
    say(f"| **Baseline** `GET /healthz`, same server, same run | {fmt(h['requests_per_s'])} | {fmt(h['p50_ms'], 2)} | "
        f"{fmt(h['p90_ms'], 2)} | {fmt(h['p99_ms'], 2)} | {h['non_2xx']} | – |")
    pn = ih.get("pinned")
    if pn:
        lp, hp = pn["loops"], pn["healthz"]
        say(f"| Pinned: `POST /webhooks/loops`, server on core {pn['server_core']}, wrk -t1 on core {pn['wrk_core']} | "
            f"{fmt(lp['requests_per_s'])} | {fmt(lp['p50_ms'], 2)} | {fmt(lp['p90_ms'], 2)} | {fmt(lp['p99_ms'], 2)} | "
            f"{lp['non_2xx']} | {lp['reused_ids']} |")
        say(f"| **Baseline**, pinned: `GET /healthz` | {fmt(hp['requests_per_s'])} | {fmt(hp['p50_ms'], 2)} | "
            f"{fmt(hp['p90_ms'], 2)} | {fmt(hp['p99_ms'], 2)} | {hp['non_2xx']} | – |")
    say("")
    ratio = ih["ratio_loops_to_healthz_rps"]
    say(f"Loops ingest runs at {ratio:.2f}× the `/healthz` throughput of the same server"
        + (f" ({pn['ratio_loops_to_healthz_rps']:.2f}× pinned)" if pn else "")
        + (f"; {nw['requests_per_s'] / h['requests_per_s']:.2f}× with no dev worker" if nw else "")
        + f". nproc = {ih['nproc']}; unpinned, wrk and the server share both cores. Each accepted request was "
        "verified, parsed, enveloped, queued (in memory) and logged (INFO, text lines to a file, as `make dev` "
        "writes them); the dev worker consumed the queue at the same time (dry run: dedupe, rules, the "
        f"would-be call named in its record line) and had processed every accepted delivery {fmt(ih['worker_caught_up_after_s'], 2)} s "
        f"after wrk stopped. Peak RSS of the dev process: {fmt(mb(ih['dev_vm_hwm_kb']))} MB; "
        f"{fmt(ih['dev_log_bytes_per_request'])} log bytes per request (ingest + worker).")
    say("")
    floor = figure_2_floor()
    targets.append(("2", "signed Loops ingest ≥ 60% of the same server's `/healthz` throughput, same run, INFO logs",
                    f"**{ratio:.0%}** ({l['requests_per_s']:,.0f} req/s)",
                    ratio >= 0.6 and l["non_2xx"] == 0,
                    f"`/healthz` {h['requests_per_s']:,.0f} req/s" + (f"; {floor}" if floor else "")))
    if pn:
        targets.append(("2", "≥ 20,000 req/s with wrk pinned to the other core",
                        f"**{pn['loops']['requests_per_s']:,.0f} req/s** "
                        f"({pn['ratio_loops_to_healthz_rps']:.0%} of `/healthz`)",
                        pn["loops"]["requests_per_s"] >= 20_000 and pn["loops"]["non_2xx"] == 0,
                        f"`/healthz` pinned {pn['healthz']['requests_per_s']:,.0f} req/s"))

# ---------------------------------------------------------------- figure 3
e2e = load("e2e.json")
if e2e:
    say("## 3. End to end: distinct events through `sparkbridge dev` to a fake SparkLoop")
    say("")
    runs = e2e["runs"]
    ns = sorted({r["events"] for r in runs})
    say(f"Command: `make bench FIGURES=3` (`target/release/benchkit e2e --events {','.join(map(str, ns))} "
        "--pollers 2,8`). SPARKLOOP_RATE_PER_MIN=1000000000 for the bench (the default, 60/min, would "
        "make this a rate-limit measurement); in-memory queue and store; INFO logs to a file.")
    say("")
    say("| events | `--pollers` | all ingested | last SparkLoop call | events/s end to end | calls | exactly once | dev peak RSS MB | baseline: same calls straight to the fake | ratio |")
    say("|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|")
    for r in runs:
        say(f"| {r['events']:,} | {r['pollers']} | {r['ingest_s']:.2f} s | {r['to_last_call_s']:.2f} s | "
            f"{fmt(r['events_per_s_end_to_end'])} | {r['sparkloop_calls']:,} ({r['distinct_calls']:,} distinct) | "
            f"{'yes' if r['exactly_once'] else '**no**'} | {fmt(mb(r['dev_vm_hwm_kb']))} | "
            f"{r['baseline_direct_calls_s']:.2f} s | {r['ratio_to_baseline']:.1f}× |")
    say("")
    targets.append(("3", "N distinct events → exactly N SparkLoop calls",
                    ", ".join(f"{r['sparkloop_calls']:,} of {r['events']:,} (pollers {r['pollers']})" for r in runs),
                    all(r["exactly_once"] for r in runs), "–"))
    if len(ns) > 1:
        small, big = ns[0], ns[-1]
        scale = big / small
        by = {(r["events"], r["pollers"]): r for r in runs}
        pairs = [(by[(small, p)], by[(big, p)]) for p in sorted({r["pollers"] for r in runs})
                 if (small, p) in by and (big, p) in by]
        if pairs:
            growth = [b["to_last_call_s"] / a["to_last_call_s"] for a, b in pairs]
            say(f"{big:,} events took " + ", ".join(
                f"{g:.1f}× the {small:,}-event run (pollers {a['pollers']})" for g, (a, _) in zip(growth, pairs))
                + f", for {scale:g}× the events.")
            say("")
            targets.append(("3", f"{big:,} events within {1.2 * scale:g}× the time of {small:,}",
                            ", ".join(f"**{g:.1f}×** (pollers {a['pollers']}: {b['to_last_call_s']:.1f} s)"
                                      for g, (a, b) in zip(growth, pairs)),
                            all(g <= 1.2 * scale for g in growth),
                            ", ".join(f"{small:,} events: {a['to_last_call_s']:.2f} s" for a, _ in pairs)))
            peak = max(b["dev_vm_hwm_kb"] or 0 for _, b in pairs)
            targets.append(("3", f"dev peak RSS < 200 MB with {big:,} events", f"**{peak / 1024:.0f} MB**",
                            0 < peak < 200 * 1024,
                            f"{small:,} events: {max(a['dev_vm_hwm_kb'] or 0 for a, _ in pairs) / 1024:.0f} MB"))

# ---------------------------------------------------------------- figure 4
wk = load("worker.json")
if wk:
    m = wk["memory_store"]
    d = wk["fake_sparkloop_delay_ms"]
    say("## 4. Worker: batch concurrency and DynamoDB round trips")
    say("")
    say("Command: `make bench FIGURES=4` (`target/release/benchkit worker`)")
    say("")
    say(f"Fake SparkLoop answering after {d} ms; `Worker::handle` on SQS events of distinct subscribers "
        "(email.unsubscribed); in-memory store (the timing isolates the worker's own concurrency); median of runs.")
    say("")
    say("| Batch | `WORKER_CONCURRENCY` | time | vs one call |")
    say("|---|---:|---:|---:|")
    say(f"| **Baseline**: 1 record | – | {m['one_record_ms']:.1f} ms | 1× |")
    say(f"| 10 records, one by one | 1 | {m['batch10_concurrency1_ms']:.1f} ms | "
        f"{m['batch10_concurrency1_ms'] / m['one_record_ms']:.1f}× |")
    say(f"| 10 records | 10 | {m['batch10_concurrency10_ms']:.1f} ms | {m['batch10_concurrent_over_one_call']:.2f}× |")
    say("")
    say(f"Concurrency 10 is {m['speedup_concurrency10_vs_1']:.1f}× faster than one by one.")
    say("")
    targets.append(("4", "batch of 10 in < 2× one call", f"{m['batch10_concurrent_over_one_call']:.2f}×",
                    m["batch10_concurrent_over_one_call"] < 2))
    targets.append(("4", "≥ 5× faster than one by one", f"{m['speedup_concurrency10_vs_1']:.1f}×",
                    m["speedup_concurrency10_vs_1"] >= 5))
    mo = wk.get("moto", {})
    if "per_event_kind" in mo:
        say("DynamoDB and SQS requests per processed event, counted at the AWS SDK (an interceptor on the "
            "real `DynamoStore` / `SqsWorkQueue` clients) against moto, batches of 10:")
        say("")
        say("| Event | DynamoDB requests per event | transaction items | total (without moto 5xx retries) | note |")
        say("|---|---|---:|---:|---|")
        for k in mo["per_event_kind"]:
            req = ", ".join(f"{op} {n:g}" for op, n in k["requests_per_event"].items())
            items = k["items_per_event"].get("TransactWriteItems")
            say(f"| {k['event']} | {req} | {fmt(items)} | {k['total_per_event_without_5xx_retries']:g} | {k['note']} |")
        say("")
        errs = {}
        for k in mo["per_event_kind"]:
            for e, n in k.get("errors", {}).items():
                errs[e] = errs.get(e, 0) + n
        if errs:
            say("Errors seen (counted above as requests, excluded in the last column when 5xx): "
                + ", ".join(f"{e}: {n}" for e, n in sorted(errs.items()))
                + ". The 500s are moto's `TransactWriteItems` failing under concurrent requests "
                "(`RuntimeError: dictionary changed size during iteration` in moto's deep copy of the "
                "table), retried by the SDK; DynamoDB does not do this.")
            say("")
        say("Ingest, SQS requests per webhook: " + "; ".join(
            f"{i['request']}: {', '.join(f'{op} {n}' for op, n in i['sqs_requests'].items())} for {i['events']} event(s)"
            for i in mo.get("ingest_sqs", [])) + ".")
        say("")
        # "at most 2 DynamoDB round trips (acquire + complete)" in the normal case
        expected = {"loops email.unsubscribed": 2, "loops email.opened": 2, "loops email.clicked": 2,
                    "loops campaign.email.sent": 2, "sparkloop new_partner_pending_referral": 2}
        got = {k["event"]: k["total_per_event_without_5xx_retries"] for k in mo["per_event_kind"]}
        if all(e in got for e in expected):
            say("The round-trip target: at most 2 DynamoDB round trips per processed event (acquire + complete; "
                "a SparkLoop lifecycle event applies its transition in the acquire transaction). Measured: " + ", ".join(
                    f"{e} {got[e]:g}" for e in expected) + ".")
            say("")
            targets.append(("4", "at most 2 DynamoDB round trips per processed event: ESP unsubscribe / "
                            "engagement / ignored / SparkLoop lifecycle",
                            ", ".join(f"{got[e]:g}" for e in expected),
                            all(got[e] <= n for e, n in expected.items())))

# ---------------------------------------------------------------- figures 5 and 6
sizes = load("sizes.json")
lam = {p.name[len("lambda-x86_64-"):-5]: json.loads(p.read_text()) for p in sorted(OUT.glob("lambda-x86_64-*.json"))}
qemu = {p.name[len("lambda-arm64-qemu-"):-5]: json.loads(p.read_text()) for p in sorted(OUT.glob("lambda-arm64-qemu-*.json"))}
pyl, pyc = load("lambda-python-boto3.json"), load("lambda-python-boto3-client.json")
if sizes or lam:
    say("## 5. Size and start")
    say("")
    say("Command: `make bench FIGURES=5` (sizes: `cargo lambda build --release --arm64` with "
        "scripts/lambda-size-env.sh, as scripts/sam-build.sh builds for `make deploy`; init: "
        "`cargo build --profile lambda-size`, then `target/release/benchkit lambda --bin "
        "target/lambda-size/<function> --kind <kind> --spawns N`). MB = 10^6 bytes, MiB = 2^20.")
    say("")
if sizes:
    arch = sizes[0].get("arch", "arm64")
    say(f"| Function | {arch if arch != 'none' else 'arm64 (not built in this run)'} bootstrap (stripped), bytes "
        "| MB | zipped MB | x86_64 (lambda-size), MB | target |")
    say("|---|---:|---:|---:|---:|---|")
    for s_ in sizes:
        a, x = s_.get("lambda"), s_.get("x86_64_lambda_size")
        limit = 4 if s_["function"].startswith("ingest-") else 6
        nbytes = f"{a['bytes']:,}" if a else "–"
        say(f"| {s_['function']} | {nbytes}"
            f"{'' if not a or a.get('stripped') in (True, None) else ' (not stripped!)'} | "
            f"{fmt(a['bytes'] / 1e6, 2) if a else '–'} | {fmt(a['zip_bytes'] / 1e6, 2) if a else '–'} | "
            f"{fmt(x['bytes'] / 1e6, 2) if x else '–'} | ≤ {limit} MB |")
    say("")
    # Without arm64 bootstraps (ARCH none: their build did not finish), the x86_64 builds of the
    # same profile stand in, and the table says so.
    key, what = ("lambda", f"{arch} ") if arch != "none" else ("x86_64_lambda_size", "x86_64 (arm64 not built) ")
    for label, pick, limit in (("every bootstrap ≤ 6 MB", lambda f: True, 6e6),
                               ("ingest bootstraps ≤ 4 MB", lambda f: f.startswith("ingest-"), 4e6)):
        got = [(s_[key]["bytes"], s_["function"]) for s_ in sizes if s_.get(key) and pick(s_["function"])]
        if got:
            worst, name = max(got)
            targets.append(("5", f"{what}{label}", f"largest **{worst / 1e6:.2f} MB** ({name})", worst <= limit,
                            "–"))
if lam:
    say("Init: process start → first `GET /2018-06-01/runtime/invocation/next` at a local Runtime API "
        "(`benchkit lambda`; loopback only, so no network time). x86_64 lambda-size binaries run natively; "
        "arm64 bootstraps under qemu-user emulation (indicative only).")
    say("")
    say("| Bootstrap | init p50 ms | init p90 ms | min ms | samples |")
    say("|---|---:|---:|---:|---:|")
    worst = 0
    for name, r in lam.items():
        i = r["init"]
        worst = max(worst, i["p50_ms"])
        say(f"| {name} (x86_64, native) | {i['p50_ms']:.1f} | {i['p90_ms']:.1f} | {i['min_ms']:.1f} | {i['n']} |")
    for name, r in qemu.items():
        i = r["init"]
        say(f"| {name} (arm64, qemu-user) | {i['p50_ms']:.1f} | {i['p90_ms']:.1f} | {i['min_ms']:.1f} | {i['n']} |")
    for label, r in (("**Baseline** Python + `import boto3`", pyl), ("Python + `import boto3` + `boto3.client('sqs')`", pyc)):
        if r:
            i = r["init"]
            say(f"| {label} | {i['p50_ms']:.1f} | {i['p90_ms']:.1f} | {i['min_ms']:.1f} | {i['n']} |")
    say("")
    if pyl:
        say(f"The slowest Rust function starts {pyl['init']['p50_ms'] / worst:.0f}× faster than the "
            "Python baseline (p50).")
        say("")
    slowest = max(lam, key=lambda n: lam[n]["init"]["p50_ms"])
    targets.append(("5", "init < 20 ms for every function (x86_64 lambda-size, native, p50, excluding network)",
                    f"slowest **{worst:.1f} ms** ({slowest})", worst < 20,
                    f"Python + boto3 {pyl['init']['p50_ms']:.0f} ms" if pyl else "–"))

    say("## 6. Memory and invocation duration")
    say("")
    say("Command: `make bench FIGURES=6` (same `benchkit lambda` runs: N invocations in one process, then "
        "`VmHWM` from /proc/<pid>/status). SQS and DynamoDB are a moto server on loopback, SparkLoop a "
        "fake answering at once: durations are the functions' own work plus moto's latency.")
    say("")
    say("| Function | invocations × events | peak RSS (VmHWM) MB | RSS after init MB | CPU ms / invocation | first invocation ms | warm p50 ms (on moto) | warm p99 ms | log bytes / invocation | failed |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst_rss = 0
    for name, r in list(lam.items()) + [("**Baseline** Python + boto3 (loops event, no verification)", pyl)]:
        L = r and r.get("load")
        if not L:
            continue
        if not name.startswith("**"):
            worst_rss = max(worst_rss, L["vm_hwm_kb"] or 0)
        w = L["warm"]
        say(f"| {name} | {L['invocations']} × {L['events_per_invocation']} | {fmt(mb(L['vm_hwm_kb']))} | "
            f"{fmt(mb(L['vm_rss_after_init_kb']))} | {fmt(L.get('cpu_ms_per_invocation'), 2)} | {fmt(L['first_invocation_ms'], 2)} | {fmt(w.get('p50_ms'), 2)} | "
            f"{fmt(w.get('p99_ms'), 2)} | {fmt(L['log_bytes_per_invocation'], 0)} | {L['failed']} |")
    say("")
    if ih:
        say(f"`sparkbridge dev` peak RSS during figure 2: {fmt(mb(ih['dev_vm_hwm_kb']))} MB.")
    if e2e:
        say("During figure 3: " + ", ".join(f"{fmt(mb(r['dev_vm_hwm_kb']))} MB (pollers {r['pollers']})" for r in e2e["runs"]) + ".")
    say("")
    targets.append(("6", "peak RSS < 30 MB per function", f"worst {worst_rss / 1024:.1f} MB", worst_rss < 30 * 1024))

# ---------------------------------------------------------------- figure 7
if lam and wk and "per_event_kind" in wk.get("moto", {}):
    # us-east-1 public list prices (on-demand, no free tier), written down from memory and the
    # AWS pricing pages as transcribed by third parties in 2026 (see BENCHMARKS.md, figure 7);
    # this script fetches nothing. Check https://aws.amazon.com/pricing before relying on them.
    P = {
        "lambda_gb_s_arm64": 0.0000133334, "lambda_gb_s_x86": 0.0000166667, "lambda_req": 0.20 / 1e6,
        "http_api_req": 1.00 / 1e6, "sqs_req": 0.40 / 1e6, "ddb_wru": 0.625 / 1e6, "ddb_rru": 0.125 / 1e6,
        "logs_gb": 0.50,
    }
    MEM_GB = 128 / 1024  # template.yaml MemorySize (Lambda's minimum); figure 6 shows it is ample
    PLATFORM_LOG_BYTES = 600  # START/END/REPORT (JSON) per invocation: an estimate, not measured
    # Round trips the functions wait on in AWS, in ms: assumptions (loopback here measures none
    # of them). The SparkLoop API's latency dominates and is unknown.
    LAT = {"sqs_send": 10, "ddb_put": 6, "ddb_tx": 12, "ddb_update": 6, "sparkloop": 200}
    ing = lam.get("ingest-loops", {}).get("load") or {}
    wrk_ = lam.get("worker", {}).get("load") or {}
    per_batch = wrk_["events_per_invocation"] or 10
    cpu_ing = ing["cpu_ms_per_invocation"]
    cpu_wrk = wrk_["cpu_ms_per_invocation"]  # a batch of 10 email.unsubscribed
    kinds = {k["event"]: k for k in wk["moto"]["per_event_kind"]}

    def wru(k):
        r = kinds[k]["requests_per_event"]
        items = kinds[k]["items_per_event"].get("TransactWriteItems", 0)
        plain = sum(v for op, v in r.items() if op in ("PutItem", "UpdateItem", "DeleteItem"))
        return plain + 2 * items  # items <= 1 KB; transactional writes cost 2 WRU per item

    def rru(k):
        r = kinds[k]["requests_per_event"]
        return sum(v for op, v in r.items() if op in ("GetItem", "Query", "BatchGetItem"))  # ≤ 4 KB, strong

    def worker_ms(kind, batch):
        # The records of a batch run concurrently: one record's chain of waits, plus the CPU
        # of the whole batch (measured for 10 unsubscribes; scaled to the batch size).
        # DynamoDB requests of one record are made one after the other.
        k = kinds[kind]["requests_per_event"]
        wait = (LAT["ddb_put"] * k.get("PutItem", 0) + LAT["ddb_update"] * k.get("UpdateItem", 0)
                + LAT["ddb_tx"] * k.get("TransactWriteItems", 0))
        if kind == "loops email.unsubscribed":
            wait += LAT["sparkloop"]
        return cpu_wrk * batch / per_batch + wait

    def cost(kind, busy=True, lat_scale=1.0, arch="arm64"):
        n = 1e6
        batch = per_batch if busy else 1
        worker_inv = n / batch
        gb_s = P["lambda_gb_s_arm64" if arch == "arm64" else "lambda_gb_s_x86"]
        d_i = math.ceil(cpu_ing + LAT["sqs_send"] * lat_scale)
        d_w = math.ceil(cpu_wrk * batch / per_batch + (worker_ms(kind, batch) - cpu_wrk * batch / per_batch) * lat_scale)
        rows = []
        rows.append(("API Gateway HTTP API", f"{n:,.0f} requests × $1.00/M", n * P["http_api_req"]))
        rows.append(("Lambda requests", f"({n:,.0f} ingest + {worker_inv:,.0f} worker) × $0.20/M",
                     (n + worker_inv) * P["lambda_req"]))
        rows.append(("Lambda compute, ingest", f"{n:,.0f} × {d_i} ms × 0.125 GB × ${gb_s}/GB-s",
                     n * d_i / 1000 * MEM_GB * gb_s))
        rows.append(("Lambda compute, worker", f"{worker_inv:,.0f} × {d_w} ms × 0.125 GB × ${gb_s}/GB-s",
                     worker_inv * d_w / 1000 * MEM_GB * gb_s))
        sqs_per = 1 + 2 / batch
        rows.append(("SQS", f"{sqs_per:g} requests/event (send 1, receive 1/{batch}, delete 1/{batch}) × $0.40/M",
                     n * sqs_per * P["sqs_req"]))
        w = wru(kind)
        rows.append(("DynamoDB writes", f"{w:g} WRU/event × $0.625/M", n * w * P["ddb_wru"]))
        r_ = rru(kind)
        rows.append(("DynamoDB reads", f"{r_:g} RRU/event × $0.125/M", n * r_ * P["ddb_rru"]))
        log_b = ing["log_bytes_per_invocation"] + PLATFORM_LOG_BYTES + (
            wrk_["log_bytes_per_invocation"] * batch / per_batch + PLATFORM_LOG_BYTES) / batch
        rows.append(("CloudWatch Logs ingestion", f"{log_b:,.0f} bytes/event × $0.50/GB", n * log_b / 1e9 * P["logs_gb"]))
        return rows

    say("## 7. Cost per million webhooks (AWS, us-east-1)")
    say("")
    say("Computed by `bench/report.py` from this run's figures: the CPU time each function used per "
        f"invocation in figure 6 (ingest-loops {cpu_ing:.2f} ms per request, worker {cpu_wrk:.1f} ms per "
        "batch of 10), the requests per event of figure 4, the log bytes per invocation of figure 6 (plus "
        f"an estimated {PLATFORM_LOG_BYTES} bytes of Lambda platform lines), and 128 MB (template.yaml; "
        "figure 6 peaks are far below). Billed duration = CPU + the round trips the function waits on in "
        "AWS, which this loopback run cannot measure; assumed: "
        + ", ".join(f"{k} {v} ms" for k, v in LAT.items())
        + " (records of a batch wait concurrently).")
    say("")
    say("Prices: us-east-1 public list prices (Lambda arm64 $0.0000133334/GB-s and $0.20/M requests, "
        "HTTP API $1.00/M, SQS standard $0.40/M requests (per 64 KB chunk), DynamoDB on-demand $0.625/M "
        "WRU and $0.125/M RRU, CloudWatch Logs ingestion $0.50/GB); free tiers ignored; taken from memory "
        "and cross-checked against 2026 transcriptions of the AWS pricing pages (see BENCHMARKS.md), "
        "not fetched by this script.")
    say("")
    say("Unsubscribe events (the case that matters), busy queue (full batches of 10):")
    say("")
    say("| Item | Arithmetic | $ per million webhooks |")
    say("|---|---|---:|")
    rows = cost("loops email.unsubscribed")
    for item, how, usd in rows:
        say(f"| {item} | {how} | {usd:.4f} |")
    total = sum(r[2] for r in rows)
    say(f"| **Total** | | **{total:.2f}** |")
    say("")
    fixed = {k: v for k, _, v in rows}
    floor = (fixed["API Gateway HTTP API"] + fixed["Lambda requests"] + fixed["Lambda compute, ingest"]
             + fixed["Lambda compute, worker"] + fixed["SQS"] + 2 * 1e6 * P["ddb_wru"])
    logs = fixed["CloudWatch Logs ingestion"]
    say(f"The floor at this design: API Gateway, Lambda, SQS and 2 WRU (the dedupe record's put and its "
        f"completion) come to ${floor:.2f}; every WRU above 2 adds $0.625 and every 1,000 log bytes per "
        f"event $0.50. Here: {wru('loops email.unsubscribed'):g} WRU and "
        f"{logs / P['logs_gb'] * 1e9 / 1e6:,.0f} log bytes per event (${logs:.2f}).")
    say("")
    targets.append(("7", "≤ $3.50 per million Loops unsubscribes (API Gateway path, busy queue, arm64)",
                    f"**${total:.2f}** (logs ${logs:.2f}, {wru('loops email.unsubscribed'):g} WRU)", total <= 3.5,
                    f"floor ${floor:.2f} (API GW, SQS, Lambda, 2 WRU)"))
    say("| Scenario | $ per million |")
    say("|---|---:|")
    for label, kw in (
        ("email.unsubscribed, busy (above)", dict(kind="loops email.unsubscribed")),
        ("email.opened / clicked (engagement: 3-item transaction), busy", dict(kind="loops email.opened")),
        ("ignored event (e.g. campaign.email.sent), busy", dict(kind="loops campaign.email.sent")),
        ("email.unsubscribed, quiet queue (batches of 1)", dict(kind="loops email.unsubscribed", busy=False)),
        ("email.unsubscribed, busy, all AWS/SparkLoop latencies doubled", dict(kind="loops email.unsubscribed", lat_scale=2.0)),
        ("email.unsubscribed, busy, on x86_64 Lambda", dict(kind="loops email.unsubscribed", arch="x86")),
    ):
        say(f"| {label} | {sum(r[2] for r in cost(**kw)):.2f} |")
    say("")
    say("Not included: cold starts (init is billed; at the measured init times, 1 cold start per 1,000 "
        "invocations adds < $0.01/M), DynamoDB storage (dedupe records kept 30 days: about 0.2 GB per "
        "million events, ~$0.05/month), log storage, the event source mapping's idle long polls (~5 "
        "pollers × 3 receives/min ≈ 0.65 M requests/month ≈ $0.26/month whatever the volume), data transfer.")
    say("")
    say("Hosted alternatives, same volume (1,000,000 webhooks/month):")
    say("")
    say("| Service | Price for 1M events/month | Source |")
    say("|---|---:|---|")
    say("| Hookdeck Event Gateway, Team plan | $39/month (10,000 events included) + 990,000 × $1.00 per "
        "100,000 = **$48.90/month**; it only receives, queues and forwards: the SparkLoop calls and the "
        "lifecycle logic still need compute of your own | hookdeck.com/pricing as transcribed on 2026-09-20 "
        "(\"Starts at $39/month\", \"$1.00 per additional 100k\", \"as low as $0.33 per 100k\") |")
    say("| Zapier, one task per webhook (Webhooks by Zapier trigger + one SparkLoop/HTTP action) | "
        "Professional is $89/month for 5,000 tasks ($0.0178/task); 1,000,000 tasks at that rate ≈ "
        "**$17,800/month**. Tiers of 2M tasks and more exist but are quoted by sales; pay-per-task "
        "overage is 1.25× the plan's task price and capped at 3× the plan's tasks | Zapier help centre "
        "(pay-per-task billing, metered tasks) and a 2024–2025 reseller FAQ quoting the $89/5,000 tier; "
        "approximate |")
    say(f"| **sparkbridge on AWS** (this run) | **${total:.2f}** per million unsubscribes, busy queue | "
        "computed above |")
    say("")

# ---------------------------------------------------------------- targets
# The load average recorded when each figure started (bench/run.sh's step lines).
fig_load = {}
lt = OUT / "load.txt"
if lt.exists():
    for line in lt.read_text().splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1].startswith("figure"):
            words = parts[1].split(":")[0].replace(",", " ").split()
            for w in words:
                if w.isdigit():
                    fig_load.setdefault(w, parts[0])
fig_load.setdefault("7", fig_load.get("4"))
commands = {
    "1": "`make bench FIGURES=1`", "2": "`make bench FIGURES=2`", "3": "`make bench FIGURES=3`",
    "4": "`make bench FIGURES=4`", "5": "`make bench FIGURES=5`", "6": "`make bench FIGURES=6`",
    "7": "`make bench FIGURES=\"4 6 7\"`",
}
if targets:
    say("## Targets")
    say("")
    say(f"Run of {machine.get('date_utc', '?')}, commit `{machine.get('commit', '?')}`, "
        f"{machine.get('cpu_model', '?')} × {machine.get('nproc', '?')}, {machine.get('mem_gib', '?')} GiB.")
    say("")
    say("| Fig. | Target | Measured | Baseline, same run | | Load (1 min) | Command |")
    say("|---|---|---|---|---|---:|---|")
    for t in targets:
        fig, t_, m_, ok = t[:4]
        base = t[4] if len(t) > 4 else "–"
        say(f"| {fig} | {t_} | {m_} | {base} | {verdict(ok)} | {fig_load.get(fig, '–')} | {commands.get(fig, '')} |")
    say("")

print("\n".join(lines))
