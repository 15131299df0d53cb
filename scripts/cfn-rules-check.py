#!/usr/bin/env python3
"""Usage: scripts/cfn-rules-check.py

Shows that each custom cfn-lint rule of scripts/cfn-rules/ catches what it claims. Every
template in scripts/cfn-rules/fixtures/ is a small broken stack whose first line says which
custom rules must report it, and how often: `# expect: E9102=2 E9113=1`. One cfn-lint run
lints them all; a fixture passes when the custom rules (E9xxx) it gets are exactly those,
each as many times. Every custom rule must be expected by at least one fixture, so none is
dead. A rule that raises reports E0002, and a fixture that does not parse E0000: both fail.
(template.yaml itself, passing every rule, is the fixture without problems: `.ci/run` lints
it first.)

cfn-lint is `$CFN_LINT` when set, else the one on PATH (`.ci/run` and `make` put
.venv/bin there first). Exits non-zero on any failure.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
RULES = HERE / "cfn-rules"
FIXTURES = RULES / "fixtures"
CUSTOM = re.compile(r"^E9\d{3}$")
EXPECT = re.compile(r"^#\s*expect:\s*(.+)$")


def expected(path: pathlib.Path) -> dict[str, int]:
    first = path.read_text().splitlines()[0]
    m = EXPECT.match(first)
    if not m:
        sys.exit(f"{path}: the first line must be `# expect: E9xxx=N ...`")
    want = {}
    for item in m.group(1).split():
        rule, _, count = item.partition("=")
        if not CUSTOM.match(rule) or not count.isdigit():
            sys.exit(f"{path}: `{item}` is not E9xxx=N")
        want[rule] = int(count)
    return want


def main() -> int:
    cfn_lint = os.environ.get("CFN_LINT", "cfn-lint")
    listed = subprocess.run(
        [cfn_lint, "--append-rules", str(RULES), "--list-rules"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rules = set(re.findall(r"^(E9\d{3}):", listed, re.M))
    if not rules:
        print(f"no custom rules loaded from {RULES}", file=sys.stderr)
        return 1

    fixtures = sorted(FIXTURES.glob("*.yaml"))
    wants = {f: expected(f) for f in fixtures}
    run = subprocess.run(
        [cfn_lint, "--append-rules", str(RULES), "--format", "json", "--", *map(str, fixtures)],
        capture_output=True,
        text=True,
    )
    try:
        reported = json.loads(run.stdout)
    except ValueError:
        print(run.stdout, run.stderr, sep="\n", file=sys.stderr)
        print("cfn-lint did not answer in JSON", file=sys.stderr)
        return 1

    got: dict[pathlib.Path, collections.Counter] = {f: collections.Counter() for f in fixtures}
    broken = []
    for match in reported:
        path = pathlib.Path(match["Filename"]).resolve()
        rule = match["Rule"]["Id"]
        if rule in ("E0000", "E0002"):
            broken.append(f"{path.name}: {rule} {match['Message']}")
        elif CUSTOM.match(rule):
            got[path][rule] += 1

    failures = list(broken)
    for f in fixtures:
        if dict(got[f]) == wants[f]:
            print(f"ok       {f.name}: {' '.join(f'{r}={n}' for r, n in sorted(wants[f].items()))}")
        else:
            failures.append(f"{f.name}: expected {wants[f]}, got {dict(got[f])}")
    for rule in sorted(rules - {r for w in wants.values() for r in w}):
        failures.append(f"rule {rule}: no fixture shows that it catches anything")
    for rule in sorted({r for w in wants.values() for r in w} - rules):
        failures.append(f"rule {rule}: expected by a fixture, but not loaded")

    for line in failures:
        print(f"FAILED   {line}")
    print(f"rules={len(rules)} fixtures={len(fixtures)} failed={len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
