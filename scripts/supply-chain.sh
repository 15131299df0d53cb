#!/usr/bin/env bash
# Supply-chain checks (deny.toml):
#   1. cargo deny check licenses bans sources: needs only crates.io; any violation fails.
#   2. RustSec advisories with cargo-deny and cargo-audit, when the advisory database
#      (a git repository on GitHub) can be fetched. When it cannot, and no earlier copy is
#      cached, this prints "SKIPPED advisories: advisory DB unreachable (<error>)" and does
#      not fail; a known advisory found in a database that was fetched DOES fail.
#
# The tools are built once with `cargo install --locked` (pinned versions) into
# $SPARKBRIDGE_TOOLS (default ~/.cache/sparkbridge-tools) and reused afterwards. On a
# 2-core machine cargo-deny takes about 5.5 minutes to build and cargo-audit about 20, so
# cargo-audit is only built once an advisory database is available to check against.
#
#   SPARKBRIDGE_ADVISORY_DB=<dir>  a local checkout of the advisory database (e.g. a mirror)
#                                  for cargo-audit when the network copy is unreachable
#   SUPPLY_CHAIN_REQUIRE_ADVISORIES=1
#                                  fail instead of skipping when no advisory database can be
#                                  had (release pipelines with network access)
#   SUPPLY_CHAIN_SKIP_AUDIT=1      never build or run cargo-audit (cargo-deny reads the same
#                                  database)
#   --install-only                 build cargo-deny (if needed) and exit
set -uo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
AUDIT_VERSION=0.22.2
TOOLS="${SPARKBRIDGE_TOOLS:-$HOME/.cache/sparkbridge-tools}"
export PATH="$TOOLS/bin:$PATH"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
failed=0

# install <crate> <version>: cargo install --locked into $TOOLS unless that version is there.
install() {
  local crate=$1 version=$2
  if "$crate" --version 2>/dev/null | grep -qx "$crate $version"; then
    return 0
  fi
  echo "-- building $crate $version into $TOOLS (once per machine)"
  local started=$SECONDS
  if ! cargo install --quiet --locked --root "$TOOLS" "$crate" --version "=$version"; then
    echo "FAILED: cargo install $crate $version" >&2
    return 1
  fi
  echo "-- $crate $version built in $((SECONDS - started)) s"
}

install cargo-deny "$DENY_VERSION" || exit 1
# `--install-only`: build the tool and stop (CI builds it in the background, under `nice`,
# while the tests run, and runs the checks afterwards).
[ "${1:-}" = --install-only ] && exit 0

echo "-- cargo deny check licenses bans sources"
if ! cargo deny check --hide-inclusion-graph licenses bans sources; then
  echo "FAILED: license, ban or source violation (see above and deny.toml)" >&2
  failed=1
fi

# --- advisories ------------------------------------------------------------------------
echo "-- RustSec advisory database"
fetch_log=$(timeout 180 cargo deny fetch db 2>&1)
fetch_rc=$?
# cargo-deny keeps its clone in $CARGO_HOME/advisory-dbs/advisory-db-<hash of the URL>.
db_dir=$(ls -dt "$CARGO_HOME"/advisory-dbs/advisory-db-*/ 2>/dev/null | while read -r d; do
  [ -d "$d/crates" ] && { echo "${d%/}"; break; }
done)
reason=$(printf '%s\n' "$fetch_log" | grep -E 'fatal:|error|ERROR' | tail -1 | sed -E 's/^[0-9 :-]+\[ERROR\] //')
if [ $fetch_rc -eq 0 ] && [ -n "$db_dir" ]; then
  echo "advisory DB fetched: $db_dir (updated $(git -C "$db_dir" log -1 --format=%cs 2>/dev/null || echo '?'))"
elif [ -n "$db_dir" ]; then
  echo "WARNING: advisory DB could not be refreshed (${reason:-cargo deny fetch db failed}); checking against the cached copy of $(git -C "$db_dir" log -1 --format=%cs 2>/dev/null || echo '?')"
fi

if [ -n "$db_dir" ]; then
  echo "-- cargo deny check advisories"
  if ! cargo deny --offline check --hide-inclusion-graph advisories; then
    echo "FAILED: known advisories (see above; deny.toml [advisories] to ignore one with a reason)" >&2
    failed=1
  fi
else
  echo "SKIPPED advisories: advisory DB unreachable (${reason:-cargo deny fetch db failed})"
  if [ "${SUPPLY_CHAIN_REQUIRE_ADVISORIES:-}" = 1 ]; then
    echo "FAILED: SUPPLY_CHAIN_REQUIRE_ADVISORIES=1 and no advisory database to check against" >&2
    failed=1
  fi
fi

audit_db="${SPARKBRIDGE_ADVISORY_DB:-$db_dir}"
if [ "${SUPPLY_CHAIN_SKIP_AUDIT:-}" = 1 ]; then
  echo "SKIPPED cargo audit: SUPPLY_CHAIN_SKIP_AUDIT=1"
elif [ -z "$audit_db" ]; then
  echo "SKIPPED cargo audit: advisory DB unreachable (${reason:-no database}); not built"
elif install cargo-audit "$AUDIT_VERSION"; then
  echo "-- cargo audit (database: $audit_db)"
  if ! cargo audit --db "$audit_db" --no-fetch; then
    echo "FAILED: cargo audit found vulnerable dependencies (see above)" >&2
    failed=1
  fi
else
  failed=1
fi

exit $failed
