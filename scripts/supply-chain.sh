#!/usr/bin/env bash
# Supply-chain checks: cargo-deny for licenses, banned crates and sources
# (offline, always), and the RustSec advisories. The lockfile is committed and
# every build uses --locked.
#
# Advisories: the database is a git repository. Where it cannot be fetched
# (this project's machines reach package registries only), the snapshot that
# sits beside the repository (../shared/rustsec-advisory-db, installed by
# ../shared/tools/advisory-db.sh) is checked offline instead, and its date is
# printed. Only where neither works does the script say `NOT CHECKED`, with
# the reason. An advisory hit fails the script either way.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "installing cargo-deny"
    cargo install --locked cargo-deny --version 0.20.2 --quiet
fi

# cargo-deny reads the whole lockfile (every platform's crates), which must be
# on disk for --offline: fetch them first (from the package registry).
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources

installer=../shared/tools/advisory-db.sh
db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"

# The installed database's directory: named by cargo-deny in `$1`, else the
# most recently changed one under $db_root.
database_dir() {
    local dir
    dir="$(grep -o '/[^" ]*advisory-dbs/advisory-db-[0-9a-f]*' <<<"$1" | head -n 1 || true)"
    if [ -z "$dir" ]; then
        dir="$(ls -dt "$db_root"/advisory-db-* 2>/dev/null | head -n 1 || true)"
    fi
    printf '%s' "$dir"
}

# "<date of the newest commit> (<age> days old)" of the database in `$1`.
database_date() {
    local when
    when="$(git -C "$1" log -1 --format=%cI 2>/dev/null || true)"
    if [ -z "$when" ]; then
        echo "of unknown date"
        return
    fi
    echo "of $when ($(( ($(date +%s) - $(date -d "$when" +%s)) / 86400 )) days old)"
}

set +e
out="$(timeout 120 cargo deny check advisories 2>&1)"
status=$?
set -e
if ! grep -q "failed to fetch advisory database" <<<"$out"; then
    # The database was fetched: its verdict stands.
    if [ "$status" -ne 0 ]; then
        echo "$out"
        echo "advisories: FAILED" >&2
        exit 1
    fi
    echo "advisories ok (RustSec database fetched, $(database_date "$(database_dir "$out")"))"
    exit 0
fi

echo "advisories: the RustSec database cannot be fetched from this machine; checking the snapshot offline"
reason=""
install_out=""
if [ ! -x "$installer" ] || [ ! -d ../shared/rustsec-advisory-db ]; then
    reason="the database cannot be fetched and there is no snapshot ($installer and ../shared/rustsec-advisory-db beside the repository)"
else
    # The installer asks cargo-deny where the database goes, which needs every
    # crate of the lockfile on disk.
    cargo fetch --locked --quiet || reason="cargo fetch --locked failed"
    set +e
    install_out="$("$installer" 2>&1)"
    install_status=$?
    set -e
    if [ "$install_status" -eq 0 ]; then
        echo "$install_out"
    else
        # Its last line says why; the check below shows any findings.
        tail -n 1 <<<"$install_out" >&2
        [ -n "$reason" ] || reason="$installer exited with $install_status"
    fi
fi

# Whatever the installer said, the offline check decides: a database that is
# there gives a verdict (a hit fails here), one that is not gives no verdict.
set +e
out="$(cargo deny --offline check advisories 2>&1)"
status=$?
set -e
if [ "$status" -eq 0 ]; then
    echo "advisories ok (RustSec snapshot $(database_date "$(database_dir "$install_out")"), checked offline)"
    exit 0
fi
if grep -q "advisory-dbs/advisory-db-" <<<"$out" && ! grep -qE '(error|warning)\[' <<<"$out"; then
    # cargo-deny could not open a database: nothing was checked.
    echo "$out" >&2
    echo "advisories: NOT CHECKED - ${reason:-no advisory database could be installed}"
    exit 0
fi
echo "$out"
echo "advisories: FAILED (RustSec snapshot $(database_date "$(database_dir "$install_out")"))" >&2
exit 1
