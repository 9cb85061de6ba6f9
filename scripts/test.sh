#!/usr/bin/env bash
# Run every test against a real PostgreSQL (one fresh database per test).
# If DATABASE_URL is unset or unreachable, a throwaway server is started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/db.sh
. scripts/db.sh
ensure_database_server

# Every database this run creates is named authtest_<run>_…; the run holds a
# PostgreSQL session named after it while it lives (scripts/test-dbs.sh), so
# that another run on the same server drops only the databases of runs that
# are over, never those of a run in progress.
# shellcheck source=scripts/test-dbs.sh
. scripts/test-dbs.sh
TEST_RUN_ID="k$(date +%s)$$"
export TEST_RUN_ID
have_psql=""
if command -v psql >/dev/null 2>&1; then
    have_psql=1
    start_run_keeper "$ADMIN_DATABASE_URL" "$TEST_RUN_ID"
    drop_dead_runs "$ADMIN_DATABASE_URL"
else
    echo "test.sh: psql not found: test databases are neither cleaned up nor dropped" >&2
fi
# shellcheck disable=SC2329  # reached through the EXIT trap
finish() {
    set +e
    if [ -n "$have_psql" ]; then
        left="$(drop_run_databases "$ADMIN_DATABASE_URL" "$TEST_RUN_ID")"
        [ "$left" = 0 ] || echo "test.sh: $left databases of this run could not be dropped" >&2
        stop_run_keeper
    fi
}

export TEST_DATABASE_URL="$ADMIN_DATABASE_URL"
# Queries are checked against the committed .sqlx data, not a live database.
export SQLX_OFFLINE=true
log="$(mktemp)"
trap 'rm -f "$log"; finish; stop_throwaway' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
