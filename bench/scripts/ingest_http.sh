#!/usr/bin/env bash
# Figure 2: ingest over HTTP. `sparkbridge dev` (release build, in-memory default, dry run)
# under wrk with pre-signed Loops deliveries, and the /healthz floor of the same server in the
# same run; then, as a diagnostic, the same Loops load with INFO logs off (RUST_LOG=warn);
# then both again with the server pinned to one core and wrk (one thread) to the other, so
# that the two never compete for a core. Writes $OUT/ingest_http.json.
# The load is THREADS wrk processes of one thread each, started together, each with its share
# of the connections and of the signed requests; their rates are added (bench/wrk/webhooks.lua
# says why not one wrk with THREADS threads).
#   env: DURATION (s, default 10), CONNECTIONS (64), THREADS (2), RATE_HINT (requests/s to
#   sign for, default 80000: DURATION*RATE_HINT distinct webhook-ids are generated per run; a
#   run faster than that wraps around and reports its reused ids)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-target/bench}"
PY="${PY:-.venv/bin/python}"
DEV_BIN="${DEV_BIN:-target/release/sparkbridge}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
RATE_HINT="${RATE_HINT:-80000}"
mkdir -p "$OUT"
DEV_PID=""
trap '[ -n "$DEV_PID" ] && kill $DEV_PID 2>/dev/null || true' EXIT

start_dev() { # log [--pin core] [--no-worker] extra env...: `make dev` exactly (memory, dry
  # run, default secrets)
  local log="$1"; shift
  local pin=() args=()
  if [ "${1:-}" = --pin ]; then pin=(taskset -c "$2"); shift 2; fi
  if [ "${1:-}" = --no-worker ]; then args=(--no-worker); shift; fi
  PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  URL="http://127.0.0.1:$PORT"
  env -u AWS_ENDPOINT_URL -u SPARKLOOP_API_KEY -u LOOPS_SIGNING_SECRET -u RUST_LOG \
    -u AWS_LAMBDA_LOG_LEVEL -u AWS_LAMBDA_LOG_FORMAT "$@" \
    "${pin[@]}" "$DEV_BIN" dev --listen "127.0.0.1:$PORT" "${args[@]}" > "$log" 2>&1 &
  DEV_PID=$!
  for _ in $(seq 200); do curl -sf -o /dev/null "$URL/healthz" && return 0; sleep 0.05; done
  echo "dev did not start; see $log" >&2; exit 1
}

stop_dev() { kill "$DEV_PID"; wait "$DEV_PID" 2>/dev/null || true; DEV_PID=""; }

. bench/scripts/wrk_load.sh

sign() { # fresh ids and timestamps, right before each run (the verifier allows 5 minutes)
  "$PY" bench/python/sign_loops.py wrk "$OUT/wrk-loops-requests.txt" $(( DURATION * RATE_HINT ))
}

accepted() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"]-d["non_2xx"])' "$1"; }

# 1. The measured configuration and its baseline, one server.
start_dev "$OUT/ingest-dev.log"
run_wrk plain /healthz "$OUT/wrk-healthz.json"
sign
BENCH_WRK_REQUESTS="$OUT/wrk-loops-requests.txt" run_wrk loops /webhooks/loops "$OUT/wrk-loops.json"
ACCEPTED="$(accepted "$OUT/wrk-loops.json")"
# The dev worker ran all along (dry run: one log line per SparkLoop call it would make). How
# long after wrk stopped had it processed every accepted delivery?
start=$(date +%s%N)
DRAINED=null
for _ in $(seq 480); do
  # one record line per delivery the worker processed (a duplicate makes no call, so calls
  # undercount when ids wrap around)
  n=$(grep -c ' INFO record ' "$OUT/ingest-dev.log" || true)
  if [ "$n" -ge "$ACCEPTED" ]; then DRAINED=$(( ($(date +%s%N) - start) / 1000000 )); break; fi
  sleep 0.25
done
HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$DEV_PID/status")
LOG_BYTES=$(stat -c %s "$OUT/ingest-dev.log")
stop_dev

# 2. Diagnostic: the same load with INFO logs off, to show what logging costs.
start_dev "$OUT/ingest-dev-quiet.log" RUST_LOG=warn
sign
BENCH_WRK_REQUESTS="$OUT/wrk-loops-requests.txt" run_wrk loops /webhooks/loops "$OUT/wrk-loops-quiet.json"
stop_dev

# 2b. Diagnostic: the same load with no dev worker (`--no-worker`): what receiving alone costs.
start_dev "$OUT/ingest-dev-noworker.log" --no-worker
sign
BENCH_WRK_REQUESTS="$OUT/wrk-loops-requests.txt" run_wrk loops /webhooks/loops "$OUT/wrk-loops-noworker.json"
stop_dev

# 3. The same two loads, server on one core and wrk on the other (needs 2 cores).
PINNED=0
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PINNED=1
  start_dev "$OUT/ingest-dev-pinned.log" --pin 0
  run_wrk plain /healthz "$OUT/wrk-healthz-pinned.json" 1 taskset -c 1
  sign
  BENCH_WRK_REQUESTS="$OUT/wrk-loops-requests.txt" \
    run_wrk loops /webhooks/loops "$OUT/wrk-loops-pinned.json" 1 taskset -c 1
  stop_dev
fi
rm -f "$OUT/wrk-loops-requests.txt"

"$PY" - "$OUT" "$ACCEPTED" "$DRAINED" "$HWM" "$LOG_BYTES" "$CONNECTIONS" "$THREADS" "$PINNED" <<'PY'
import json, os, sys
out, accepted, drained, hwm, log_bytes, conns, threads, pinned = sys.argv[1:]
h = json.load(open(f"{out}/wrk-healthz.json"))
l = json.load(open(f"{out}/wrk-loops.json"))
q = json.load(open(f"{out}/wrk-loops-quiet.json"))
nw = json.load(open(f"{out}/wrk-loops-noworker.json"))
res = {
    "healthz": h, "loops": l, "loops_logs_off": q, "loops_no_worker": nw,
    "ratio_loops_to_healthz_rps": round(l["requests_per_s"] / h["requests_per_s"], 3),
    "accepted": int(accepted),
    "worker_caught_up_after_s": None if drained == "null" else int(drained) / 1000,
    "dev_vm_hwm_kb": int(hwm),
    "dev_log_bytes_per_request": round(int(log_bytes) / max(1, int(accepted)), 1),
    "connections": int(conns), "wrk_processes": int(threads), "wrk_threads": 1,
    "nproc": os.cpu_count(),
}
if pinned == "1":
    hp = json.load(open(f"{out}/wrk-healthz-pinned.json"))
    lp = json.load(open(f"{out}/wrk-loops-pinned.json"))
    res["pinned"] = {"server_core": 0, "wrk_core": 1, "wrk_threads": 1, "healthz": hp, "loops": lp,
                     "ratio_loops_to_healthz_rps": round(lp["requests_per_s"] / hp["requests_per_s"], 3)}
json.dump(res, open(f"{out}/ingest_http.json", "w"), indent=2)
print(json.dumps(res, indent=2))
PY
