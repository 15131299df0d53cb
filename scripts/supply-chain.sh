#!/usr/bin/env bash
# Supply-chain checks (deny.toml):
#   1. cargo deny check licenses bans sources: needs only crates.io; any violation fails.
#   2. RustSec advisories with cargo-deny (and cargo-audit), against the advisory database
#      (a git repository on GitHub). When it cannot be fetched, cargo-deny checks the newer of
#      the copy cached by an earlier fetch and the offline snapshot in ../shared/advisory-db
#      (a dated copy of the database's crates/ tree, see its SNAPSHOT.md), and prints the
#      date of what it checked: advisories published after it are not in it. A known advisory
#      fails like any other check (deny.toml [advisories] ignores one, with its reason). With
#      neither the network nor a snapshot, this prints "SKIPPED advisories: ..." and does
#      not fail.
#
# The tools are built once with `cargo install --locked` (pinned versions) into
# $SPARKBRIDGE_TOOLS (default ~/.cache/sparkbridge-tools) and reused afterwards. On a
# 2-core machine cargo-deny takes about 5.5 minutes to build and cargo-audit about 20, so
# cargo-audit is only built once an advisory database is available to check against.
#
#   SPARKBRIDGE_ADVISORY_DB=<dir>  a local checkout of the advisory database (e.g. a mirror)
#                                  for cargo-audit when the network copy is unreachable
#   SPARKBRIDGE_ADVISORY_SNAPSHOT=<dir>
#                                  the offline snapshot (default ../shared/advisory-db, from
#                                  the repository's root): a folder with crates/ and SNAPSHOT.md
#   SUPPLY_CHAIN_REQUIRE_ADVISORIES=1
#                                  fail instead of skipping when no advisory database (fetched,
#                                  cached or snapshot) can be had
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
db_date=
[ -n "$db_dir" ] && db_date=$(git -C "$db_dir" log -1 --format=%cs 2>/dev/null)
reason=$(printf '%s\n' "$fetch_log" | grep -E 'fatal:|error|ERROR' | tail -1 | sed -E 's/^[0-9 :-]+\[ERROR\] //')
reason=${reason:-cargo deny fetch db failed}

# The offline snapshot: its date and upstream commit from SNAPSHOT.md.
snapshot=${SPARKBRIDGE_ADVISORY_SNAPSHOT:-../shared/advisory-db}
snapshot_date= snapshot_commit=
if [ -d "$snapshot/crates" ]; then
  snapshot_date=$(sed -n -E 's/^- Commit date: *([0-9]{4}-[0-9]{2}-[0-9]{2}).*/\1/p' "$snapshot/SNAPSHOT.md" 2>/dev/null | head -1)
  snapshot_commit=$(sed -n -E 's/^- Upstream commit: *([0-9a-f]+).*/\1/p' "$snapshot/SNAPSHOT.md" 2>/dev/null | head -1)
else
  snapshot=
fi

# snapshot_db <dir>: a git checkout of the snapshot in <dir>/advisory-db-<hash of the default
# URL>, the only form cargo-deny reads (SNAPSHOT.md), committed at the snapshot's date.
snapshot_db() {
  local root=$1 repo="$1/advisory-db-3157b0e258782691"
  local when="${snapshot_date:+${snapshot_date}T00:00:00Z}"
  rm -rf "$root" && mkdir -p "$repo" && cp -R "$snapshot/." "$repo/" &&
    git -C "$repo" init -q &&
    git -C "$repo" add -A &&
    GIT_AUTHOR_DATE="${when:-now}" GIT_COMMITTER_DATE="${when:-now}" \
      git -C "$repo" -c user.name=sparkbridge -c user.email=supply-chain@localhost \
      -c commit.gpgsign=false -c core.hooksPath=/dev/null \
      commit -q -m "RustSec advisory database snapshot ${snapshot_commit:-?}"
}

use=
if [ $fetch_rc -eq 0 ] && [ -n "$db_dir" ]; then
  echo "advisory DB fetched: $db_dir (updated ${db_date:-?})"
  use=network
elif [ -n "$db_dir" ] && { [ -z "$snapshot" ] || [[ ! "$snapshot_date" > "$db_date" ]]; }; then
  echo "WARNING: advisory DB could not be refreshed ($reason); checking against the cached copy of ${db_date:-?}"
  use=network
elif [ -n "$snapshot" ]; then
  echo "advisory DB unreachable ($reason); checking against the offline snapshot $snapshot of ${snapshot_date:-unknown date} (upstream ${snapshot_commit:-?}): advisories published after ${snapshot_date:-it} are not in it"
  use=snapshot
fi

if [ "$use" = network ]; then
  echo "-- cargo deny check advisories"
  if ! cargo deny --offline check --hide-inclusion-graph advisories; then
    echo "FAILED: known advisories (see above; deny.toml [advisories] to ignore one with a reason)" >&2
    failed=1
  fi
elif [ "$use" = snapshot ]; then
  work="$PWD/target/supply-chain"
  # deny.toml as it is, reading its database from the snapshot's checkout
  if snapshot_db "$work/advisory-dbs" &&
    awk -v path="$work/advisory-dbs" '/^[[:space:]]*db-path[[:space:]]*=/ { next }
      { print } /^\[advisories\][[:space:]]*$/ { print "db-path = \"" path "\"" }' \
      deny.toml > "$work/deny.toml"; then
    echo "-- cargo deny check advisories (offline snapshot of ${snapshot_date:-unknown date})"
    if cargo deny --offline --config "$work/deny.toml" check --hide-inclusion-graph advisories; then
      echo "advisories ok against the snapshot of ${snapshot_date:-unknown date}"
    else
      echo "FAILED: known advisories in the snapshot of ${snapshot_date:-unknown date} (see above; deny.toml [advisories] to ignore one with a reason)" >&2
      failed=1
    fi
  else
    echo "FAILED: could not prepare the advisory snapshot $snapshot in $work" >&2
    failed=1
  fi
else
  echo "SKIPPED advisories: advisory DB unreachable ($reason) and no offline snapshot at ${SPARKBRIDGE_ADVISORY_SNAPSHOT:-../shared/advisory-db}"
  if [ "${SUPPLY_CHAIN_REQUIRE_ADVISORIES:-}" = 1 ]; then
    echo "FAILED: SUPPLY_CHAIN_REQUIRE_ADVISORIES=1 and no advisory database to check against" >&2
    failed=1
  fi
fi

audit_db="${SPARKBRIDGE_ADVISORY_DB:-$db_dir}"
if [ "${SUPPLY_CHAIN_SKIP_AUDIT:-}" = 1 ]; then
  echo "SKIPPED cargo audit: SUPPLY_CHAIN_SKIP_AUDIT=1"
elif [ -z "$audit_db" ] && [ "$use" = snapshot ]; then
  echo "SKIPPED cargo audit: advisory DB unreachable; cargo-deny checked the snapshot of ${snapshot_date:-unknown date} above (cargo-audit not built)"
elif [ -z "$audit_db" ]; then
  echo "SKIPPED cargo audit: advisory DB unreachable ($reason); not built"
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
