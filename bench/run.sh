#!/usr/bin/env bash
# `make bench`: measures every figure of BENCHMARKS.md, each next to a baseline measured in
# the same run, and writes the results (JSON) and a report (Markdown) to $OUT.
#
#   make bench                      all figures (about 10 min of measuring once built)
#   make bench FIGURES="1 4"        some of them
#   OUT=target/bench  SPAWNS=20  E2E_EVENTS=10000,100000  FIG1_ROUNDS=5  DURATION=10
#                                   (knobs, defaults shown; bench/README.md says what each
#                                   figure runs)
#
# Needs: Rust, Python 3, curl; installs (when missing and possible) wrk and qemu-user with
# apt-get, and the Python tools into $VENV (default .venv; requirements-dev.txt,
# requirements-bench.txt).
# A moto server of its own on 127.0.0.1:$BENCH_MOTO_PORT (default 5056) stands in for SQS and
# DynamoDB, so the benchmarks and `make test` (5055) never share one.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-target/bench}"
FIGURES="${FIGURES:-1 2 3 4 5 6 7}"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
SPAWNS="${SPAWNS:-20}"
E2E_EVENTS="${E2E_EVENTS:-10000,100000}"
FIG1_ROUNDS="${FIG1_ROUNDS:-5}"
MOTO_PORT="${BENCH_MOTO_PORT:-5056}"
export BENCH_MOTO_URL="http://127.0.0.1:$MOTO_PORT"
mkdir -p "$OUT"
t0=$(date +%s)
has() { [[ " $FIGURES " == *" $1 "* ]]; }
any() { for f in "$@"; do has "$f" && return 0; done; return 1; }
step() { # also records the load average: other work on the box skews every figure
  echo "== $* (at $(( $(date +%s) - t0 )) s; load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "$(cut -d' ' -f1 /proc/loadavg) $*" >> "$OUT/load.txt"
}
timed() { # name command...: runs it and records its wall time in $OUT/build-times.txt
  local name="$1" s; shift; s=$(date +%s%N)
  "$@"
  echo "$name $(( ($(date +%s%N) - s) / 1000000 ))" >> "$OUT/build-times.txt"
}
: > "$OUT/load.txt"
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c "$(( $(nproc) - 1 ))")

step "machine"
python3 - "$OUT/machine.json" <<'PY'
import json, os, platform, subprocess, sys, datetime
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
def out(*cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError: return None
m = {"nproc": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem / 2**20, 1),
     "kernel": platform.release(), "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
     "rustc": out("rustc", "--version"), "python": platform.python_version(),
     "commit": (out("git", "rev-parse", "--short", "HEAD") or "?")
               + ("+changes" if out("git", "status", "--porcelain", "--untracked-files=no") else ""),
     "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
json.dump(m, open(sys.argv[1], "w"), indent=2); print(json.dumps(m))
PY

step "tools"
need=()
has 2 && ! command -v wrk >/dev/null && need+=(wrk)
has 5 && ! command -v qemu-aarch64 >/dev/null && need+=(qemu-user libc6-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2
  fi
fi
scripts/setup.sh
stamp="$VENV/.requirements-bench.sha"
want="$(sha256sum requirements-bench.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-bench.txt
  echo "$want" > "$stamp"
fi

FUNCS=$(for f in functions/*/Cargo.toml; do sed -n 's/^name = "\(.*\)"/\1/p' "$f" | head -1; done)
pkgs() { for f in $FUNCS; do printf -- '-p %s ' "$f"; done; }
: > "$OUT/build-times.txt"
step "build (release; warm target/ makes these quick)"
t_build=$(date +%s)
# benchkit serves figures 3-7 (`benchkit lambda` for 5-7); one invocation, as before, so that
# the features cargo unifies (and so the cached artifacts) stay the same from run to run.
# SKIP_BUILD=1 measures the binaries already in target/ (release CLI and benchkit, lambda-size
# functions, the criterion bench), e.g. when they were built beforehand on a loaded machine.
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  echo "== SKIP_BUILD=1: measuring the binaries already built in target/"
  timed() { shift; "$@"; }
  cargo() { if [ "${1:-}" = build ]; then echo "   (skipped) cargo $*"; else command cargo "$@"; fi; }
fi
any 2 3 4 5 6 7 && timed cli_and_benchkit cargo build --release -q -p sparkbridge-cli -p sparkbridge-bench
# Figures 5-7 measure the functions as deployed: built with the size profile (natively, for
# x86_64 init, memory and CPU time; through cargo-lambda with the same settings for arm64).
any 5 6 7 && timed functions_x86_64_lambda_size cargo build --profile lambda-size -q $(pkgs)
any 1 2 && [ "${SKIP_BUILD:-0}" != 1 ] && timed criterion_bench cargo bench -q -p sparkbridge --bench ingest_core --no-run
# Figure 2's floor: dev's per-delivery work (criterion, shared's `dev` feature) and the server of
# bench/handler-floor (its own crate and lock).
any 2 && [ "${SKIP_BUILD:-0}" != 1 ] && timed criterion_dev_event cargo bench -q -p sparkbridge --features dev --bench dev_event --no-run
any 2 && timed handler_floor cargo build --release -q --locked --manifest-path bench/handler-floor/Cargo.toml
ARCH=arm64
VENV_BIN="$(cd "$VENV/bin" && pwd)"
# The arm64 bootstraps are only weighed (and started under qemu), which the machine's load does
# not change: they are built after the timed figures, and their build time counts as build.
arch_build_s=0
build_lambda_bootstraps() {
  local s; s=$(date +%s)
  step "build: arm64 bootstraps (cargo lambda, size profile)"
  # What `make build` deploys: scripts/sam-build.sh's cargo-lambda build, size settings included.
  if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
     || timeout 300 rustup target add aarch64-unknown-linux-gnu; then
    # ARM64_BUILD_TIMEOUT (s): on a loaded machine, give up and weigh the x86_64 builds only.
    if ! (. scripts/lambda-size-env.sh; PATH="$VENV_BIN:$PATH" timed lambda_arm64 \
          timeout "${ARM64_BUILD_TIMEOUT:-0}" cargo lambda build --release --arm64 $(pkgs)); then
      echo "!! the arm64 build did not finish (ARM64_BUILD_TIMEOUT=${ARM64_BUILD_TIMEOUT:-0} s): sizes are of the x86_64 lambda-size builds"
      ARCH=none
    fi
  else
    echo "!! aarch64 target unavailable: sizes are of x86_64 bootstraps (cargo lambda --x86-64)"
    ARCH=x86_64
    (. scripts/lambda-size-env.sh; PATH="$VENV_BIN:$PATH" timed lambda_x86_64 \
      cargo lambda build --release --x86-64 $(pkgs))
  fi
  arch_build_s=$(( $(date +%s) - s ))
}
BENCHKIT=target/release/benchkit
t_measure=$(date +%s)
echo "== builds took $(( t_measure - t_build )) s; measuring starts$(has 5 && echo ' (the arm64 bootstraps are built after the timed figures)')"

started_moto=""
if any 4 5 6 7; then
  if ! MOTO_PORT=$MOTO_PORT scripts/moto.sh status >/dev/null 2>&1; then
    MOTO_PORT=$MOTO_PORT scripts/moto.sh start; started_moto=1
  fi
fi
trap '[ -n "$started_moto" ] && MOTO_PORT=$MOTO_PORT scripts/moto.sh stop' EXIT

if has 1; then
  step "figure 1: verify + parse (criterion) vs the same in Python, one core, $FIG1_ROUNDS alternating rounds"
  "$PY" bench/python/sign_loops.py fixture "$OUT/loops-request.json"
  # Python and Rust take turns on the same pinned core, so that a change in what else runs on
  # the machine hits both sides of a ratio alike; report.py gives the median ratio and its spread.
  rm -rf target/criterion/ingest_core "$OUT"/fig1-round-*.json
  for round in $(seq "$FIG1_ROUNDS"); do
    "${PIN[@]}" "$PY" bench/python/ingest_baselines.py "$OUT/loops-request.json" \
      "$OUT/fig1-round-$round-python.json" > /dev/null
    BENCH_LOOPS_REQUEST="$PWD/$OUT/loops-request.json" "${PIN[@]}" \
      cargo bench -q -p sparkbridge --bench ingest_core -- --warm-up-time 1 --measurement-time 2 \
      'ingest_core/(loops_verify_parse|loops_full|sparkloop_full|sparkloop_floor_all|esputnik_full)$' > /dev/null
    "$PY" bench/collect_criterion.py target/criterion/ingest_core "$OUT/fig1-round-$round-rust.json" > /dev/null
    echo "   round $round of $FIG1_ROUNDS done"
  done
  # Once: every component (verify, parse, envelope) and figure 2's log-line group.
  BENCH_LOOPS_REQUEST="$PWD/$OUT/loops-request.json" "${PIN[@]}" \
    cargo bench -q -p sparkbridge --bench ingest_core 2>&1 | tee "$OUT/fig1-criterion.txt"
  "$PY" bench/collect_criterion.py target/criterion/ingest_core "$OUT/fig1-rust.json" > /dev/null
  "$PY" bench/collect_criterion.py target/criterion/ingest_log "$OUT/fig2-log-line.json" > /dev/null
fi

if has 2; then
  step "figure 2: sparkbridge dev under wrk (signed Loops) vs GET /healthz"
  OUT="$OUT" PY="$PY" bench/scripts/ingest_http.sh
  step "figure 2's floor: the CPU a delivery may cost at 60 % of /healthz, and what dev's steps cost"
  # The spins around 60 % (report.py interpolates between them), under the same load.
  OUT="$OUT/handler-floor" PY="$PY" ROUNDS=2 DURATION=5 \
    SKIP_BUILD="$([ -x bench/handler-floor/target/release/handler-floor ] && echo 1)" \
    bench/handler-floor/measure.sh 1500 2000 2500 > /dev/null
  "${PIN[@]}" cargo bench -q -p sparkbridge --bench ingest_core -- --warm-up-time 1 \
    --measurement-time 2 \
    'ingest_core/(loops_verify_parse|loops_envelope_json)$|ingest_log/loops_request_(logs_off|text)$' \
    > /dev/null
  "${PIN[@]}" cargo bench -q -p sparkbridge --features dev --bench dev_event -- --warm-up-time 1 \
    --measurement-time 3 > /dev/null
  "$PY" bench/collect_criterion.py target/criterion/ingest_core "$OUT/fig2-floor-core.json" > /dev/null
  "$PY" bench/collect_criterion.py target/criterion/ingest_log "$OUT/fig2-log-line.json" > /dev/null
  "$PY" bench/collect_criterion.py target/criterion/dev_event "$OUT/fig2-dev-event.json" > /dev/null
fi

if has 3; then
  step "figure 3: $E2E_EVENTS events end to end through sparkbridge dev to a fake SparkLoop"
  $BENCHKIT e2e --events "$E2E_EVENTS" --pollers 2,8 --log-dir "$OUT" --out "$OUT/e2e.json"
fi

if any 4 7; then # figure 7 prices the DynamoDB and SQS requests counted here
  step "figure 4: worker batch concurrency; DynamoDB/SQS requests per event (moto)"
  $BENCHKIT worker --out "$OUT/worker.json"
fi

kind_of() {
  case "$1" in
    ingest-loops) echo loops ;; ingest-esputnik) echo esputnik ;;
    ingest-sparkloop) echo sparkloop ;; worker) echo worker ;; screener) echo screener ;;
    *) echo none ;;
  esac
}
if any 5 6 7; then
  step "figures 5 and 6: init time, duration, peak RSS per function (x86_64, native) vs Python + boto3"
  for f in $FUNCS; do
    kind=$(kind_of "$f")
    # worker: moto deep-copies the whole table on every TransactWriteItems, so its batches
    # slow down as the table grows; 30 batches (300 events) keep this under a minute.
    inv=1000; [ "$kind" = worker ] && inv=30; [ "$kind" = screener ] && inv=200
    [ "$kind" = none ] && inv=0
    $BENCHKIT lambda --bin "target/lambda-size/$f" --label "$f" --kind "$kind" --spawns "$SPAWNS" \
      --invocations "$inv" --out "$OUT/lambda-x86_64-$f.json" > /dev/null
    echo "   $f done"
  done
  $BENCHKIT lambda --bin "$PY" --arg bench/lambda/python_boto3_bootstrap.py --no-aws \
    --label python-boto3 --kind loops --spawns "$SPAWNS" --invocations 1000 \
    --out "$OUT/lambda-python-boto3.json" > /dev/null
  $BENCHKIT lambda --bin "$PY" --arg bench/lambda/python_boto3_bootstrap.py --arg=--client \
    --no-aws --label python-boto3-client --kind none --spawns "$SPAWNS" \
    --out "$OUT/lambda-python-boto3-client.json" > /dev/null
  has 5 && build_lambda_bootstraps
  if has 5 && [ "$ARCH" = arm64 ] && command -v qemu-aarch64 >/dev/null; then
    step "figure 5: arm64 bootstraps under qemu-user (emulated: indicative only)"
    for f in $FUNCS; do
      $BENCHKIT lambda --bin "target/lambda/$f/bootstrap" --qemu --label "$f" --kind none \
        --spawns 10 --out "$OUT/lambda-arm64-qemu-$f.json" > /dev/null
    done
  fi
  if has 5; then
    "$PY" - "$OUT/sizes.json" "$ARCH" $FUNCS <<'PY'
import io, json, os, shutil, subprocess, sys, zipfile
out, arch, funcs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for f in funcs:
    row = {"function": f, "arch": arch}
    for key, path in (("lambda", f"target/lambda/{f}/bootstrap"), ("x86_64_lambda_size", f"target/lambda-size/{f}")):
        if os.path.exists(path) and not (key == "lambda" and arch == "none"):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.write(path, "bootstrap")
            desc = ""
            if shutil.which("file"):
                desc = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout.strip()
            row[key] = {"path": path, "bytes": os.path.getsize(path), "zip_bytes": len(buf.getvalue()),
                        "stripped": ("not stripped" not in desc) if desc else None, "file": desc}
    rows.append(row)
json.dump(rows, open(out, "w"), indent=2)
PY
  fi
fi

t_done=$(date +%s)
# Wall time by phase (setup: tools and the venv; builds; measuring: the figures themselves).
build_s=$(( t_measure - t_build + arch_build_s ))
measure_s=$(( t_done - t_measure - arch_build_s ))
printf 'setup %s\nbuild %s\nmeasure %s\n' "$(( t_build - t0 ))" "$build_s" "$measure_s" > "$OUT/phases.txt"
step "report"
"$PY" bench/report.py "$OUT" > "$OUT/report.md"
echo "report: $OUT/report.md (results: $OUT/*.json); took $(( $(date +%s) - t0 )) s:" \
  "setup $(( t_build - t0 )) s, builds $build_s s, measuring $measure_s s (figures $FIGURES)"
