#!/usr/bin/env bash
# Builds the size-floor bootstraps for arm64 with the functions' size settings and weighs them:
# bytes of each stripped bootstrap, and its deflate zip as Lambda receives it (as bench/run.sh
# weighs the functions). Two cargo invocations: this package's four binaries, then ring/ (its
# own feature set); both into ./target. SKIP_BUILD=1 only weighs.
#   bench/size-floor/measure.sh            # VENV=/path/to/venv for cargo-lambda and zig
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
VENV=${VENV:-/work/main/.venv}
export CARGO_TARGET_DIR="$here/target"
# The deployed settings: opt-level "s", fat LTO, one codegen unit, panic = "abort".
. ../../scripts/lambda-size-env.sh
if [ -z "${SKIP_BUILD:-}" ]; then
  for dir in . ring; do
    start=$(date +%s)
    (cd "$dir" && PATH="$VENV/bin:$PATH" nice -n 10 cargo lambda build --release --arm64 --locked)
    echo "build $dir: $(($(date +%s) - start)) s" >&2
  done
fi
python3 - "$CARGO_TARGET_DIR/lambda" <<'PY'
import io, os, subprocess, sys, zipfile
root = sys.argv[1]
print("| binary | bytes | MB | zipped bytes | zipped MB | file |")
print("|---|---:|---:|---:|---:|---|")
for name in ("runtime-only", "sqs-hand-config", "sqs-hand-config-ring", "sqs-aws-config", "sqs-secretsmanager"):
    path = os.path.join(root, name, "bootstrap")
    if not os.path.exists(path):
        print(f"| {name} | not built | | | | |")
        continue
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    size, zipped = os.path.getsize(path), len(buf.getvalue())
    desc = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout.split(",")
    desc = ", ".join(d.strip() for d in desc if "ARM" in d or "stripped" in d or "linked" in d)
    print(f"| {name} | {size:,} | {size / 1e6:.2f} | {zipped:,} | {zipped / 1e6:.2f} | {desc} |")
PY
