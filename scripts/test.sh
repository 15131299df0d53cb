#!/usr/bin/env bash
# Runs every test: unit, property (10,000 cases per target) and integration tests against a
# moto server, which it starts (and stops again) when none is running.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${MOTO_PORT:-5055}"
started=""
if ! scripts/moto.sh status >/dev/null 2>&1; then
  scripts/moto.sh start
  started=1
fi
trap '[ -n "$started" ] && scripts/moto.sh stop' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
cargo test --workspace --locked --no-fail-fast "$@"
