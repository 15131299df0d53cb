#!/usr/bin/env bash
# Usage: scripts/setup.sh [deploy]
# Creates .venv with the Python tools the tests need (moto server, requirements-dev.txt);
# with `deploy`, also the deployment tools (cfn-lint, aws-sam-cli, cargo-lambda + ziglang,
# requirements-deploy.txt), all in the one venv so that `sam build` finds cargo-lambda's zig.
# Idempotent and quiet: each file is installed again only when its contents change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
files=(requirements-dev.txt)
case "${1:-}" in
  "") ;;
  deploy) files+=(requirements-deploy.txt) ;;
  *) echo "usage: $0 [deploy]" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
for req in "${files[@]}"; do
  stamp="$VENV/.${req%.txt}.sha"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
done
