#!/usr/bin/env bash
# Usage: [ARCH=arm64|x86_64] [ARCH_FALLBACK=1] scripts/sam-build.sh [sam build options]
# `sam build` of template.yaml: cargo-lambda release builds of every function into .aws-sam/,
# with the size profile's settings (scripts/lambda-size-env.sh; BENCHMARKS.md, figure 5).
# It needs the deploy tools in $VENV (scripts/setup.sh deploy): cargo-lambda finds zig only
# through the interpreter that installed it, so the venv's bin goes first on PATH.
#
# ARCH (default arm64, the template's default) must match the Architecture parameter the
# stack is deployed with. arm64 needs the Rust target aarch64-unknown-linux-gnu; it is added
# with rustup. When that fails (no network on the build host), the build stops, unless
# ARCH_FALLBACK=1 (CI), which builds x86_64 instead and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
ARCH="${ARCH:-arm64}"
if [ ! -x "$VENV/bin/sam" ] || [ ! -x "$VENV/bin/cargo-lambda" ]; then
  echo "sam or cargo-lambda missing in $VENV: run scripts/setup.sh deploy (or make tools)" >&2
  exit 1
fi
export PATH="$(cd "$VENV/bin" && pwd):$PATH" SAM_CLI_TELEMETRY=0
. scripts/lambda-size-env.sh

fallback=""
case "$ARCH" in
  arm64)
    if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
       && ! timeout 300 rustup target add aarch64-unknown-linux-gnu; then
      if [ "${ARCH_FALLBACK:-}" = 1 ]; then
        echo "!! arm64 target unavailable (rustup target add aarch64-unknown-linux-gnu failed): building x86_64 instead"
        ARCH=x86_64
        fallback=1
      else
        echo "arm64 target unavailable: rustup target add aarch64-unknown-linux-gnu failed." >&2
        echo "Build and deploy x86_64 instead: make build ARCH=x86_64 / make deploy ARCH=x86_64" >&2
        exit 1
      fi
    fi ;;
  x86_64) ;;
  *) echo "ARCH must be arm64 or x86_64, not $ARCH" >&2; exit 2 ;;
esac

args=()
if [ "$ARCH" != arm64 ]; then
  args+=(--parameter-overrides "Architecture=$ARCH")
fi
start=$(date +%s)
sam build "${args[@]}" "$@"
echo "sam build ($ARCH) took $(( $(date +%s) - start )) s"
if [ -n "$fallback" ]; then
  echo "!! arm64 target unavailable: built x86_64 instead (deploy with Architecture=x86_64)"
fi
