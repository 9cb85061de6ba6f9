#!/usr/bin/env bash
# Run every test against a real PostgreSQL (one fresh database per test).
# If DATABASE_URL is unset or unreachable, a throwaway server is started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/db.sh
. scripts/db.sh
ensure_database_server

# Every database this run creates is named authtest_<run>_…; only those are
# dropped when it ends, so another run on the same server is never touched.
TEST_RUN_ID="r$(date +%s)$$"
export TEST_RUN_ID
drop_own_databases() {
    command -v psql >/dev/null 2>&1 || return 0
    psql "$ADMIN_DATABASE_URL" -Atqc "select datname from pg_database where datname like 'authtest\_${TEST_RUN_ID}\_%'" 2>/dev/null |
        while read -r db; do psql "$ADMIN_DATABASE_URL" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true; done
}

export TEST_DATABASE_URL="$ADMIN_DATABASE_URL"
# Queries are checked against the committed .sqlx data, not a live database.
export SQLX_OFFLINE=true
log="$(mktemp)"
trap 'rm -f "$log"; drop_own_databases; stop_throwaway' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
