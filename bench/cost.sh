#!/usr/bin/env bash
# What one request costs the server, in instructions (valgrind's callgrind):
# a figure that other work on the machine does not move, so two builds can be
# compared on a busy machine where req/s drift by tens of percent.
#
#   bench/cost.sh                          this checkout's release build
#   bench/cost.sh before=/path/auth-server after=/other/auth-server
#
# Each build runs alone under `valgrind --tool=callgrind` against a fresh
# database seeded by the seeder beside it (`examples/bench_seed` next to the
# binary, else this checkout's) and the fake Google. Per scenario: a warm-up,
# then the counters are zeroed, wrk runs for COST_DURATION seconds, the
# counters are dumped, and their total is divided by the requests wrk counted.
# Background work (metrics upkeep, housekeeping) falls in the window too; it
# is the same for every build and small beside thousands of requests.
#
# Scenarios:
#   healthz    GET /healthz: the middleware stack alone
#   token_hot  the token API over COST_HOT_USERS users, every answer from the
#              cache after the warm-up (the hot path)
#   token_db   the token API over all COST_DB_USERS seeded users, nearly
#              every answer read from the database (the database path)
#   status     the status API with session JWTs of COST_HOT_USERS users
#              (not run by default: COST_SCENARIOS="... status")
#
# Overrides: COST_DURATION=20 COST_WARMUP=5 COST_CONNECTIONS=8
#   COST_HOT_USERS=200 COST_DB_USERS=200000 COST_SCENARIOS="healthz token_hot token_db"
#   BENCH_PORT, BENCH_FAKE_PORT, BENCH_DATABASE_URL, BENCH_PROFILE, BENCH_OUT as bench/run.sh.
# Writes target/bench/cost-<time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

DURATION="${COST_DURATION:-20}"
WARMUP="${COST_WARMUP:-5}"
CONNS="${COST_CONNECTIONS:-8}"
HOT_USERS="${COST_HOT_USERS:-200}"
DB_USERS="${COST_DB_USERS:-200000}"
SCENARIOS="${COST_SCENARIOS:-healthz token_hot token_db}"
PORT="${BENCH_PORT:-58180}"
FAKE_PORT="${BENCH_FAKE_PORT:-58181}"
PROFILE="${BENCH_PROFILE:-release}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN_DIR="$OUT/cost-$STAMP"
RESULTS="$OUT/cost-$STAMP.md"
mkdir -p "$RUN_DIR"
READY_TIMEOUT_S=180 # migrations under valgrind take a while

# This checkout is built only when a build named here has no seeder beside it
# (or none is named).
SKIP_BUILD=1
[ "$#" -gt 0 ] || SKIP_BUILD=0
for build in "$@"; do
    [ -x "$(dirname "${build#*=}")/examples/bench_seed" ] || SKIP_BUILD=0
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

command -v valgrind >/dev/null 2>&1 || apt_install valgrind || die "valgrind is needed (package valgrind)"
command -v callgrind_control >/dev/null 2>&1 || die "callgrind_control (package valgrind) is missing"

BUILDS=("$@")
[ "${#BUILDS[@]}" -gt 0 ] || BUILDS=("this=$BIN")

# The seeder of a build: the one beside its binary, else this checkout's.
seeder_of() {
    local beside
    beside="$(dirname "$1")/examples/bench_seed"
    if [ -x "$beside" ]; then printf '%s' "$beside"; else printf '%s' "$SEED"; fi
}

# total_ir FILE: the instructions a callgrind dump counted.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# measure LABEL SCENARIO: warm-up, zeroed counters, the measured run, a dump;
# sets REQ, ERRS and IR for "LABEL,SCENARIO".
measure() {
    local label="$1" scenario="$2" mode=token users
    case "$scenario" in
        healthz) mode=healthz users=1 ;;
        token_hot) users="$HOT_USERS" ;;
        token_db) users="$DB_USERS" ;;
        status) mode=status users="$HOT_USERS" ;;
        *) die "unknown scenario $scenario" ;;
    esac
    local run=(env BENCH_MODE="$mode" BENCH_KEY="$INTERNAL_KEY" BENCH_USERS="$users"
        BENCH_JWT_FILE="$RUN_DIR/jwts-$label.txt"
        wrk -t1 -c"$CONNS" --timeout 30s -s bench/wrk.lua "$BASE")
    "${run[@]}" -d"${WARMUP}s" >/dev/null 2>&1 || true
    callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
    "${run[@]}" -d"${DURATION}s" >"$RUN_DIR/wrk-$label-$scenario.txt" 2>&1 ||
        die "wrk failed ($RUN_DIR/wrk-$label-$scenario.txt)"
    rm -f "$RUN_DIR/callgrind.out."*
    callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
    local dump line
    dump="$(find "$RUN_DIR" -maxdepth 1 -name 'callgrind.out.*' | head -n 1)"
    [ -n "$dump" ] || die "callgrind wrote no dump for $label $scenario"
    mv "$dump" "$RUN_DIR/callgrind-$label-$scenario.out"
    line="$(grep '^BENCH_RESULT' "$RUN_DIR/wrk-$label-$scenario.txt")" || die "no wrk result ($label $scenario)"
    field() { printf '%s\n' "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    REQ[$label,$scenario]="$(field requests)"
    ERRS[$label,$scenario]="$(field errors)"
    IR[$label,$scenario]="$(total_ir "$RUN_DIR/callgrind-$label-$scenario.out")"
}

declare -A IR REQ ERRS
per() { awk -v i="$1" -v r="$2" 'BEGIN { if (r + 0 == 0) print "n/a"; else printf "%.0f", i / r }'; }
BIN="${BUILDS[0]#*=}" # the fake Google: the first build's
start_fake
for build in "${BUILDS[@]}"; do
    label="${build%%=*}"
    SERVER_BIN="${build#*=}"
    [ -x "$SERVER_BIN" ] || die "no executable at $SERVER_BIN ($label)"
    new_db "cost${#DATABASES[@]}" db
    log "$label: seeding $DB_USERS users"
    env TOKEN_ENCRYPTION_KEYS="$KEYS" SESSION_JWT_SECRET="$JWT_SECRET" "$(seeder_of "$SERVER_BIN")" \
        --database-url "$(db_url "$db")" --users "$DB_USERS" --skip-triggers \
        --jwt-file "$RUN_DIR/jwts-$label.txt" --jwt-count "$HOT_USERS" >"$RUN_DIR/seed-$label.txt"
    SERVER_WRAPPER=(valgrind --tool=callgrind --dump-instr=no --collect-jumps=no
        "--callgrind-out-file=$RUN_DIR/callgrind.out.%p")
    start_server "$db" "$label"
    log "$label: ready under callgrind in ${READY_MS} ms"
    for scenario in $SCENARIOS; do
        measure "$label" "$scenario"
        log "$label $scenario: ${REQ[$label,$scenario]} requests, ${ERRS[$label,$scenario]} errors, $(per "${IR[$label,$scenario]}" "${REQ[$label,$scenario]}") instructions per request"
    done
    stop_server
    rm -f "$RUN_DIR"/callgrind.out.*
done

first="${BUILDS[0]%%=*}"
{
    echo "# auth-server: instructions per request (callgrind)"
    echo
    echo "- run: $STAMP (UTC), $CONNS connections, ${DURATION} s measured after ${WARMUP} s warm-up, each build alone under valgrind $(valgrind --version | sed 's/valgrind-//')"
    echo "- machine: $(nproc) CPUs, Linux $(uname -r); PostgreSQL $(psql "$ADMIN_URL" -Atqc 'show server_version')"
    echo
    echo "| build | scenario | requests | errors | instructions per request | ÷ $first |"
    echo "|---|---|---|---|---|---|"
    for build in "${BUILDS[@]}"; do
        label="${build%%=*}"
        for scenario in $SCENARIOS; do
            mine="$(per "${IR[$label,$scenario]}" "${REQ[$label,$scenario]}")"
            base="$(per "${IR[$first,$scenario]}" "${REQ[$first,$scenario]}")"
            ratio="$(awk -v a="$mine" -v b="$base" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.3f", a / b }')"
            echo "| $label (\`${build#*=}\`) | $scenario | ${REQ[$label,$scenario]} | ${ERRS[$label,$scenario]} | $mine | $ratio |"
        done
    done
} >"$RESULTS"
cat "$RESULTS"
log "results written to ${RESULTS#"$ROOT"/}"
for build in "${BUILDS[@]}"; do
    for scenario in $SCENARIOS; do
        [ "${ERRS[${build%%=*},$scenario]}" = 0 ] || die "${build%%=*} $scenario had errors"
    done
done
