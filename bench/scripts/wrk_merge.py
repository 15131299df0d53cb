#!/usr/bin/env python3
"""Adds up the summaries of wrk processes run side by side (bench/scripts/ingest_http.sh):

    wrk_merge.py OUT.json PART.json...

Counts and rates are summed (each process's rate is over its own run, and the runs overlap
but for their start-up); latencies are the slowest process's (its percentile, its maximum),
the mean is weighted by requests. The parts are kept in OUT.json under "parts".
"""
import json
import sys

SUMMED = ("requests", "requests_per_s", "non_2xx", "connect_errors", "read_errors",
          "write_errors", "timeouts", "reused_ids")
SLOWEST = ("p50_ms", "p90_ms", "p99_ms", "max_ms")


def merge(parts):
    out = {"mode": parts[0]["mode"],
           "duration_s": max(p["duration_s"] for p in parts),
           "processes": len(parts)}
    for k in SUMMED:
        out[k] = round(sum(p[k] for p in parts), 1)
    for k in SLOWEST:
        out[k] = max(p[k] for p in parts)
    total = sum(p["requests"] for p in parts)
    out["mean_ms"] = round(sum(p["mean_ms"] * p["requests"] for p in parts) / max(1, total), 3)
    out["parts"] = parts
    return out


def main():
    parts = [json.load(open(p)) for p in sys.argv[2:]]
    json.dump(merge(parts), open(sys.argv[1], "w"), indent=2)


if __name__ == "__main__":
    main()
