#!/usr/bin/env bash
# Regenerate the committed .sqlx query data (compile-time checked queries
# without a database), or with --check fail if it is out of date.
# It migrates a scratch database, rebuilds the crate's query macros against
# it and writes their data to a fresh folder.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/db.sh
. scripts/db.sh
ensure_database_server

scratch="authprep_$$"
admin="$ADMIN_DATABASE_URL"
url="$(printf '%s' "$admin" | sed -E "s#/[^/?]*(\?|\$)#/${scratch}\1#")"
out="$(mktemp -d)"
cleanup() {
    psql "$admin" -qc "drop database if exists $scratch" >/dev/null 2>&1 || true
    rm -rf "$out"
    stop_throwaway
}
trap cleanup EXIT
psql "$admin" -qc "create database $scratch" >/dev/null
# Applied with psql, not `auth-server migrate`: building that binary would
# need the very query data this script makes (a changed query breaks it).
for migration in migrations/*.sql; do
    PGOPTIONS="-c client_min_messages=warning" psql "$url" -v ON_ERROR_STOP=1 -q -f "$migration" >/dev/null
done

# Force the query macros to run again against the live database.
touch src/lib.rs
DATABASE_URL="$url" SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" cargo check --locked --quiet --all-targets
touch src/lib.rs

if [ "${1:-}" = "--check" ]; then
    if ! diff -r "$out" .sqlx >/dev/null; then
        echo "scripts/sqlx-prepare.sh: .sqlx is out of date; run scripts/sqlx-prepare.sh and commit .sqlx" >&2
        diff -r "$out" .sqlx | head -20 >&2 || true
        exit 1
    fi
    echo ".sqlx is up to date ($(ls .sqlx | wc -l) queries)"
else
    rm -rf .sqlx
    mkdir -p .sqlx
    cp "$out"/*.json .sqlx/
    echo "wrote $(ls .sqlx | wc -l) queries to .sqlx"
fi
