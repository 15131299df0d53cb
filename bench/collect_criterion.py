#!/usr/bin/env python3
"""Collects criterion's estimates (target/criterion/<group>/<bench>/new/estimates.json) into
one JSON file: mean and median ns per operation, and operations per second.

    collect_criterion.py target/criterion/ingest_core OUT.json
"""
import json
import pathlib
import sys

group, out = pathlib.Path(sys.argv[1]), sys.argv[2]
res = {}
for est in sorted(group.glob("*/new/estimates.json")):
    e = json.loads(est.read_text())
    mean, median = e["mean"]["point_estimate"], e["median"]["point_estimate"]
    res[est.parent.parent.name] = {
        "mean_ns": round(mean, 1),
        "median_ns": round(median, 1),
        "mean_ci95_ns": [round(e["mean"]["confidence_interval"][k], 1) for k in ("lower_bound", "upper_bound")],
        "ops_per_s_median": round(1e9 / median),
    }
json.dump(res, open(out, "w"), indent=2)
print(json.dumps(res, indent=2))
