#!/usr/bin/env bash
# Figure 2's handler budget: how much CPU a webhook handler may spend per request and still be
# answered at 60 % of the same server's /healthz rate, under figure 2's load (THREADS wrk
# processes of one thread, CONNECTIONS connections in all, the same pre-signed Loops
# deliveries; bench/scripts/ingest_http.sh). The server is this crate's: dev's HTTP stack with
# a route that only spends SPIN_NS. Rounds alternate over the spins; each spin gets a fresh
# server, its /healthz run, then its webhook run. Prints a table (median ratio of the rounds,
# and their range) and writes $OUT/handler-floor.json.
#   bench/handler-floor/measure.sh [SPIN_NS ...]    # default: 0 1000 1500 2000 2500 3000 4000
#   env: ROUNDS (3), DURATION (s, 6), CONNECTIONS (64), THREADS (2), PY, OUT, SKIP_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-target/bench/handler-floor}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-6}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
SPINS=("$@")
[ ${#SPINS[@]} -gt 0 ] || SPINS=(0 1000 1500 2000 2500 3000 4000)
BIN=bench/handler-floor/target/release/handler-floor
mkdir -p "$OUT"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --manifest-path bench/handler-floor/Cargo.toml
"$PY" bench/python/sign_loops.py wrk "$OUT/requests.txt" 200000 > /dev/null
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null || true' EXIT

. bench/scripts/wrk_load.sh
rate() { # path name: figure 2's load on the route; prints its rate and its non-2xx count
  local mode=loops
  [ "$1" = /healthz ] && mode=plain
  BENCH_WRK_REQUESTS="$OUT/requests.txt" run_wrk "$mode" "$1" "$OUT/$2.json"
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests_per_s"], d["non_2xx"])' "$OUT/$2.json"
}

: > "$OUT/runs.jsonl"
for round in $(seq "$ROUNDS"); do
  for ns in "${SPINS[@]}"; do
    PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    URL="http://127.0.0.1:$PORT"
    SPIN_NS="$ns" "$BIN" "127.0.0.1:$PORT" & SERVER=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "$URL/healthz" && break; sleep 0.05; done
    read -r healthz _ < <(rate /healthz healthz)
    read -r hook failed < <(rate /webhooks/loops hook)
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
    echo "{\"round\": $round, \"spin_ns\": $ns, \"healthz\": $healthz, \"webhook\": $hook, \"non_2xx\": $failed}" | tee -a "$OUT/runs.jsonl" >&2
  done
done
"$PY" - "$OUT" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl"))]
rows = []
print("| handler CPU per request (ns) | /healthz req/s (median) | webhook req/s (median) | webhook / healthz (median) | range |")
print("|---:|---:|---:|---:|---|")
for ns in sorted({r["spin_ns"] for r in runs}):
    rs = [r for r in runs if r["spin_ns"] == ns]
    ratios = [100 * r["webhook"] / r["healthz"] for r in rs]
    row = {"spin_ns": ns, "healthz": statistics.median(r["healthz"] for r in rs),
           "webhook": statistics.median(r["webhook"] for r in rs),
           "ratio_pct": statistics.median(ratios), "min_pct": min(ratios), "max_pct": max(ratios),
           "non_2xx": sum(r["non_2xx"] for r in rs)}
    rows.append(row)
    print(f"| {ns:,} | {row['healthz']:,.0f} | {row['webhook']:,.0f} | {row['ratio_pct']:.1f} % "
          f"| {row['min_pct']:.1f}–{row['max_pct']:.1f} % |")
json.dump({"runs": runs, "table": rows}, open(os.path.join(out, "handler-floor.json"), "w"), indent=1)
PY
