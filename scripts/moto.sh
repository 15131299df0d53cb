#!/usr/bin/env bash
# Usage: scripts/moto.sh start|stop|status. A moto server on 127.0.0.1:${MOTO_PORT:-5055}
# stands in for SQS and DynamoDB: the real wire protocol through the real AWS SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PORT="${MOTO_PORT:-5055}"
PIDFILE="target/moto-$PORT.pid"
up() { curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/"; }
case "${1:-status}" in
  start)
    if up; then echo "moto already up on 127.0.0.1:$PORT"; exit 0; fi
    scripts/setup.sh
    mkdir -p target
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "target/moto-$PORT.log" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 100); do up && { echo "moto up on 127.0.0.1:$PORT"; exit 0; }; sleep 0.1; done
    echo "moto did not start; see target/moto-$PORT.log" >&2; exit 1 ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi ;;
  status)
    up && echo "moto up on 127.0.0.1:$PORT" || { echo "moto down"; exit 1; } ;;
esac
