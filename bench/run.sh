#!/usr/bin/env bash
# The benchmark suite of issue 6 (results and how to read them: BENCHMARKS.md).
#
#   bench/run.sh            full run (about 3 minutes, plus the build)
#   bench/run.sh --smoke    every scenario for ~3 s with small sizes (CI; ~30 s)
#
# It installs its load generator (wrk, from the distribution's packages) and
# pgbench if missing, builds the release binaries, creates fresh databases,
# starts the fake Google and the server on 127.0.0.1, runs the scenarios,
# prints a table and writes it to target/bench/results-<time>.md (and
# target/bench/latest.md). Processes and databases it started are removed at
# exit. It exits non-zero when a scenario had errors or the refresh storm's
# upstream count is wrong (and, with BENCH_STRICT=1, when a target is missed).
#
# Overrides (environment):
#   BENCH_DURATION=20 BENCH_WARMUP=5      seconds per fixed-duration scenario
#   BENCH_CONNECTIONS=64 BENCH_THREADS=2  wrk -c / -t, pgbench -c / -j
#   BENCH_USERS=10000                     connected users (scenarios 1-3)
#   BENCH_SCALE_ROWS=1000000              rows of the scale scenario (0: skip)
#   BENCH_STORM_REQUESTS=1000 BENCH_STORM_USERS=100 BENCH_STORM_DELAY_MS=50
#   BENCH_REFRESH_CONCURRENCY=20          refreshes the server runs at once
#                                         (its database pool), for the target
#   BENCH_FLOWS=10000 BENCH_FLOW_WINDOW=2000 BENCH_FLOW_CONCURRENCY=16
#   BENCH_SCALE_FLOWS=2000                consent flows against the scale table
#   BENCH_PORT=58180 BENCH_FAKE_PORT=58181
#   BENCH_DATABASE_URL=postgres://…/postgres  admin URL (default: scripts/db.sh
#                                         finds or starts a local server)
#   BENCH_PROFILE=release|dev             cargo profile (dev: faster CI builds)
#   BENCH_SERVER_BIN=/path/auth-server    benchmark another build of the server
#   BENCH_LABEL="before the cache"        names that build in the results
#   BENCH_OUT=target/bench                where results and logs go
#   BENCH_STRICT=1                        exit non-zero when a target is missed
#   BENCH_KEEP=1                          keep the databases of the run
#   BENCH_PERF=1                          also profile scenarios 1, 3, 4a with
#                                         perf (system-wide; run dir perf-*.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench/run.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

if [ "$SMOKE" = 1 ]; then
    DURATION="${BENCH_DURATION:-2}"
    WARMUP="${BENCH_WARMUP:-1}"
    USERS="${BENCH_USERS:-1000}"
    SCALE_ROWS="${BENCH_SCALE_ROWS:-20000}"
    STORM_REQUESTS="${BENCH_STORM_REQUESTS:-100}"
    STORM_USERS="${BENCH_STORM_USERS:-10}"
    FLOWS="${BENCH_FLOWS:-200}"
    FLOW_WINDOW="${BENCH_FLOW_WINDOW:-100}"
    SCALE_FLOWS="${BENCH_SCALE_FLOWS:-100}"
else
    DURATION="${BENCH_DURATION:-20}"
    WARMUP="${BENCH_WARMUP:-5}"
    USERS="${BENCH_USERS:-10000}"
    SCALE_ROWS="${BENCH_SCALE_ROWS:-1000000}"
    STORM_REQUESTS="${BENCH_STORM_REQUESTS:-1000}"
    STORM_USERS="${BENCH_STORM_USERS:-100}"
    FLOWS="${BENCH_FLOWS:-10000}"
    FLOW_WINDOW="${BENCH_FLOW_WINDOW:-2000}"
    SCALE_FLOWS="${BENCH_SCALE_FLOWS:-2000}"
fi
CONNS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
STORM_DELAY_MS="${BENCH_STORM_DELAY_MS:-50}"
REFRESH_CONCURRENCY="${BENCH_REFRESH_CONCURRENCY:-20}"
FLOW_CONCURRENCY="${BENCH_FLOW_CONCURRENCY:-16}"
PORT="${BENCH_PORT:-58180}"
FAKE_PORT="${BENCH_FAKE_PORT:-58181}"
PROFILE="${BENCH_PROFILE:-release}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
# User numbers (ids are Uuid::from_u128(n)): valid users 1..USERS (and
# 1..SCALE_ROWS in the scale table), then ranges far above them.
STORM_FIRST=1000000001
FLOW_FIRST=2000000001
SCALE_FLOW_FIRST=3000000001

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
RUN_DIR="$OUT/run-$STAMP"
mkdir -p "$RUN_DIR"
RESULTS="$OUT/results-$STAMP.md"
[ "$SMOKE" = 1 ] && RESULTS="$OUT/smoke-$STAMP.md"

# ---------------------------------------------------------------- tools

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$APT_UPDATED" = 0 ]; then
        as_root apt-get update -qq >/dev/null 2>&1 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (load generator) from the distribution's packages"
    apt_install wrk || true
fi
if ! command -v wrk >/dev/null 2>&1; then
    # oha (cargo install oha --locked) cannot vary a POST body per request,
    # which scenario 1 needs (a random user per request); so no fallback.
    die "wrk is needed and could not be installed; install it with your package manager (apt-get install wrk, dnf install wrk, brew install wrk)"
fi
if ! command -v pgbench >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    log "installing the PostgreSQL client tools (psql, pgbench)"
    apt_install postgresql-client || true
    command -v pgbench >/dev/null 2>&1 || die "pgbench is needed (package postgresql-client)"
fi
command -v curl >/dev/null 2>&1 || apt_install curl || die "curl is needed"

# ---------------------------------------------------------------- database server

THROWAWAY_STOP=()
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
    ADMIN_URL="$BENCH_DATABASE_URL"
else
    # shellcheck source=scripts/db.sh
    . scripts/db.sh
    ensure_database_server
    ADMIN_URL="$ADMIN_DATABASE_URL"
fi
psql "$ADMIN_URL" -Atqc 'select 1' >/dev/null || die "cannot reach PostgreSQL at $ADMIN_URL"
db_url() { # the URL of database $1 on the admin URL's server
    printf '%s' "$ADMIN_URL" | sed -E "s#^([a-z]+://[^/]*)/[^?]*#\1/$1#"
}

# ---------------------------------------------------------------- cleanup

SERVER_PID=""
FAKE_PID=""
SAMPLER_PID=""
DATABASES=()
cleanup() {
    local status=$?
    set +e
    [ -n "${PERF_PID:-}" ] && kill -INT "$PERF_PID" 2>/dev/null
    for pid in "$SAMPLER_PID" "${NOISE_PID:-}" "$SERVER_PID" "$FAKE_PID"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
    done
    for pid in "$SAMPLER_PID" "${NOISE_PID:-}" "${PERF_PID:-}" "$SERVER_PID" "$FAKE_PID"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null
    done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        for db in "${DATABASES[@]}"; do
            psql "$ADMIN_URL" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1
        done
        [ -n "${WORK:-}" ] && rm -rf "$WORK"
    fi
    if [ "${#THROWAWAY_STOP[@]}" -gt 0 ]; then "${THROWAWAY_STOP[@]}" >/dev/null 2>&1; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Databases left by runs that died without cleaning up.
psql "$ADMIN_URL" -Atqc "select datname from pg_database where datname like 'authbench\_%'" 2>/dev/null |
    while read -r db; do
        pid="${db##*_}"
        if ! kill -0 "$pid" 2>/dev/null; then
            psql "$ADMIN_URL" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
        fi
    done

new_db() { # new_db KIND VAR: create a fresh database, store its name in VAR
    local name="authbench_$1_$$"
    psql "$ADMIN_URL" -qc "drop database if exists \"$name\" with (force)" >/dev/null
    psql "$ADMIN_URL" -qc "create database \"$name\"" >/dev/null
    DATABASES+=("$name")
    printf -v "$2" '%s' "$name"
}

for p in "$PORT" "$FAKE_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p on 127.0.0.1 is in use (set BENCH_PORT / BENCH_FAKE_PORT)"
    fi
done

# ---------------------------------------------------------------- build

export SQLX_OFFLINE=true
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$PROFILE" = release ]; then
    log "building (release)"
    cargo build --release --locked --bin auth-server --examples
    BIN_DIR="$TARGET_DIR/release"
else
    log "building (profile $PROFILE)"
    cargo build --profile "$PROFILE" --locked --bin auth-server --examples
    BIN_DIR="$TARGET_DIR/debug"
    [ "$PROFILE" = dev ] || BIN_DIR="$TARGET_DIR/$PROFILE"
fi
BIN="$BIN_DIR/auth-server"
SERVER_BIN="${BENCH_SERVER_BIN:-$BIN}"
SEED="$BIN_DIR/examples/bench_seed"
STORM="$BIN_DIR/examples/bench_storm"
FLOW="$BIN_DIR/examples/bench_flow"

# ---------------------------------------------------------------- settings

WORK="$(mktemp -d /tmp/authbench.XXXXXX)" # cwd of the server: no .env there
KEYS="bench:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
INTERNAL_KEY="bench-$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
CLIENT_ID="bench-client.apps.googleusercontent.com"
CLIENT_SECRET="bench-client-secret"
BASE="http://127.0.0.1:$PORT"
FAKE="http://127.0.0.1:$FAKE_PORT"
JWT_FILE="$WORK/jwts.txt"

start_fake() {
    (cd "$WORK" && exec env -i PATH="$PATH" RUST_LOG=warn LOG_FORMAT=json \
        "$BIN" fake-google --bind "127.0.0.1:$FAKE_PORT" \
        --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET") >"$RUN_DIR/fake.log" 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$FAKE/__fake/calls" 2>/dev/null && return 0
        kill -0 "$FAKE_PID" 2>/dev/null || die "the fake Google did not start (see $RUN_DIR/fake.log)"
        sleep 0.05
    done
    die "the fake Google did not answer"
}

now_ns() { date +%s%N; }

# start_server DB LOGNAME: starts the server, sets SERVER_PID and READY_MS
# (process start to the first 200 from /readyz).
start_server() {
    local db="$1" name="$2"
    local t0 t1
    t0="$(now_ns)"
    (cd "$WORK" && exec env -i PATH="$PATH" \
        DATABASE_URL="$(db_url "$db")" \
        BIND_ADDR="127.0.0.1:$PORT" \
        PUBLIC_BASE_URL="$BASE" \
        GOOGLE_CLIENT_ID="$CLIENT_ID" GOOGLE_CLIENT_SECRET="$CLIENT_SECRET" \
        GOOGLE_AUTH_URL="$FAKE/o/oauth2/v2/auth" GOOGLE_TOKEN_URL="$FAKE/token" \
        GOOGLE_USERINFO_URL="$FAKE/v1/userinfo" GOOGLE_REVOKE_URL="$FAKE/revoke" \
        GOOGLE_TOKENINFO_URL="$FAKE/tokeninfo" GOOGLE_API_BASE_URL="$FAKE" \
        SESSION_JWT_SECRET="$JWT_SECRET" INTERNAL_API_KEYS="bench:$INTERNAL_KEY" \
        TOKEN_ENCRYPTION_KEYS="$KEYS" \
        RATE_LIMIT_TOKEN_IP_PER_MIN=0 RATE_LIMIT_TOKEN_USER_PER_MIN=0 \
        RATE_LIMIT_BROWSER_IP_PER_MIN=0 RATE_LIMIT_CONNECT_USER_PER_MIN=0 \
        RUST_LOG=warn LOG_FORMAT=json \
        "$SERVER_BIN" serve) >"$RUN_DIR/server-$name.log" 2>&1 &
    SERVER_PID=$!
    while ! curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server did not start (see $RUN_DIR/server-$name.log)"
        if [ $(($(now_ns) - t0)) -gt 60000000000 ]; then die "the server was not ready within 60 s"; fi
        sleep 0.002
    done
    t1="$(now_ns)"
    READY_MS=$(((t1 - t0) / 1000000))
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

start_sampler() { # sample the server's RSS every 100 ms into $1
    (while kill -0 "$SERVER_PID" 2>/dev/null; do
        rss_kib "$SERVER_PID"
        sleep 0.1
    done) >"$1" &
    SAMPLER_PID=$!
}
stop_sampler() {
    if [ -n "$SAMPLER_PID" ]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
    fi
    SAMPLER_PID=""
}

# Other CPU-heavy work on the machine (a compiler) skews every number: a
# monitor samples it every 0.5 s during each measured run, and the table notes it.
NOISE_PID=""
NOISE_FILE=""
start_noise() {
    NOISE_FILE="$RUN_DIR/noise-$1.txt"
    (while :; do
        # shellcheck disable=SC2009 # pgrep -x refuses patterns over 15 characters
        ps -eo comm= | grep -cxE 'rustc|cargo|cc1|cc1plus|ld|clippy-driver|rust-analyzer|node|chrome|chromium' || true
        sleep 0.5
    done) >"$NOISE_FILE" &
    NOISE_PID=$!
}
stop_noise() { # prints a note when other CPU work ran during the measurement
    if [ -n "$NOISE_PID" ]; then
        kill "$NOISE_PID" 2>/dev/null || true
        wait "$NOISE_PID" 2>/dev/null || true
    fi
    NOISE_PID=""
    awk '{ n++; if ($1 > 0) busy++ } END { if (busy > 0) printf "other CPU work (compiler/browser) during %d%% of the run", 100 * busy / n }' "$NOISE_FILE"
}

# BENCH_PERF=1: a system-wide CPU profile (perf, software clock) of the
# measured part of scenarios 1, 3 and 4a, summarised in the run directory.
PERF_PID=""
start_perf() {
    [ "${BENCH_PERF:-0}" = 1 ] || return 0
    command -v perf >/dev/null 2>&1 || return 0
    perf record -a -e cpu-clock -F 499 -o "$RUN_DIR/perf-$1.data" >/dev/null 2>&1 &
    PERF_PID=$!
}
stop_perf() {
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    local data="$RUN_DIR/perf-$1.data"
    [ -s "$data" ] || return 0
    {
        echo "== CPU by process name (whole machine)"
        perf report -i "$data" --no-children --sort comm --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -15 || true
        echo "== auth-server (pid $SERVER_PID): by binary (kernel, libc, the server)"
        perf report -i "$data" --no-children --pid "$SERVER_PID" --sort dso --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -8 || true
        echo "== auth-server (pid $SERVER_PID): top symbols"
        perf report -i "$data" --no-children --pid "$SERVER_PID" --sort dso,sym --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -40 || true
        echo "== postgres: top symbols"
        perf report -i "$data" --no-children --comm postgres --sort dso,sym --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -25 || true
    } >"$RUN_DIR/perf-$1.txt"
    rm -f "$data"
}

# ---------------------------------------------------------------- measurements

declare -A RPS P50 P99 ERR NOTE

# run_wrk KEY LABEL MODE [VAR=VALUE…]: warm-up, then the measured run.
run_wrk() {
    local key="$1" label="$2" mode="$3"
    shift 3
    local out="$RUN_DIR/wrk-$key.txt"
    log "$label: ${WARMUP}s warm-up, ${DURATION}s at $CONNS connections"
    env BENCH_MODE="$mode" BENCH_KEY="$INTERNAL_KEY" BENCH_JWT_FILE="$JWT_FILE" "$@" \
        wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout 10s -s bench/wrk.lua "$BASE" >/dev/null 2>&1 || true
    start_noise "$key"
    case "$key" in token | status | scale_all) start_perf "$key" ;; esac
    env BENCH_MODE="$mode" BENCH_KEY="$INTERNAL_KEY" BENCH_JWT_FILE="$JWT_FILE" "$@" \
        wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency -s bench/wrk.lua "$BASE" >"$out" 2>&1 ||
        die "wrk failed for $label (see $out)"
    stop_perf "$key"
    NOTE[$key]="$(stop_noise)"
    local line
    line="$(grep '^BENCH_RESULT' "$out")" || die "no result from wrk for $label (see $out)"
    field() { printf '%s\n' "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    RPS[$key]="$(awk -v r="$(field requests)" -v d="$(field duration_us)" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
    P50[$key]="$(awk -v u="$(field p50_us)" 'BEGIN { printf "%.2f", u / 1000 }')"
    P99[$key]="$(awk -v u="$(field p99_us)" 'BEGIN { printf "%.2f", u / 1000 }')"
    ERR[$key]="$(field errors)"
    log "$label: ${RPS[$key]} req/s, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms, ${ERR[$key]} errors"
}

# run_pgbench KEY LABEL DB USERS
run_pgbench() {
    local key="$1" label="$2" db="$3" users="$4"
    local dir="$RUN_DIR/pgbench-$key"
    mkdir -p "$dir"
    cat >"$dir/select.sql" <<'SQL'
\set id random(1, :users)
SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
       expires_at, scopes, status, last_error, last_refreshed_at, consented_at,
       created_at, updated_at
FROM gmail_token WHERE user_id = lpad(to_hex(:id::bigint), 32, '0')::uuid;
SQL
    log "$label: ${WARMUP}s warm-up, ${DURATION}s at $CONNS connections"
    local url
    url="$(db_url "$db")"
    pgbench -n -M prepared -c "$CONNS" -j "$THREADS" -T "$WARMUP" -D users="$users" \
        -f "$dir/select.sql" "$url" >/dev/null 2>&1 || true
    start_noise "$key"
    (cd "$dir" && pgbench -n -M prepared -c "$CONNS" -j "$THREADS" -T "$DURATION" -D users="$users" \
        -f select.sql -l --sampling-rate=0.1 --log-prefix=tx "$url") >"$dir/out.txt" 2>&1 ||
        die "pgbench failed (see $dir/out.txt)"
    NOTE[$key]="$(stop_noise)"
    RPS[$key]="$(awk '/^tps = / { printf "%.0f", $3 }' "$dir/out.txt")"
    ERR[$key]="$(awk -F'[: ]+' '/number of failed transactions/ { print $5 }' "$dir/out.txt")"
    ERR[$key]="${ERR[$key]:-0}"
    # Per-transaction log (10% sample): third column is the latency in µs.
    cat "$dir"/tx.* | awk '{ print $3 }' | sort -n >"$dir/lat.txt"
    local n
    n="$(wc -l <"$dir/lat.txt")"
    P50[$key]="$(awk -v n="$n" 'NR == int(n * 0.50 + 0.5) { printf "%.2f", $1 / 1000 }' "$dir/lat.txt")"
    P99[$key]="$(awk -v n="$n" 'NR == int(n * 0.99 + 0.5) { printf "%.2f", $1 / 1000 }' "$dir/lat.txt")"
    rm -f "$dir"/tx.*
    log "$label: ${RPS[$key]} tps, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms, ${ERR[$key]} failed"
}

declare -A FOOT
FAILURES=()

# ================================================================ phase 1: 10k users
log "fake Google on $FAKE"
start_fake

new_db main MAIN_DB
log "seeding $USERS users into $MAIN_DB"
env TOKEN_ENCRYPTION_KEYS="$KEYS" SESSION_JWT_SECRET="$JWT_SECRET" \
    "$SEED" --database-url "$(db_url "$MAIN_DB")" --users "$USERS" --skip-triggers \
    --jwt-file "$JWT_FILE" --jwt-count "$USERS" | tee "$RUN_DIR/seed-main.txt" >&2

# Footprint: first start on an empty database (migrations run) …
new_db empty EMPTY_DB
start_server "$EMPTY_DB" empty
FOOT[ready_empty_ms]="$READY_MS"
stop_server
# … and the start that is measured: the seeded, migrated database.
start_server "$MAIN_DB" main
FOOT[ready_ms]="$READY_MS"
log "server ready in ${READY_MS} ms (empty database: ${FOOT[ready_empty_ms]} ms)"
sleep 1
FOOT[idle_kib]="$(rss_kib "$SERVER_PID")"
log "idle RSS $(mib "${FOOT[idle_kib]}") MiB"

run_wrk healthz "/healthz (HTTP ceiling)" healthz

start_sampler "$RUN_DIR/rss-token.txt"
run_wrk token "token API, $USERS users" token BENCH_USERS="$USERS"
stop_sampler
FOOT[peak_kib]="$(sort -n "$RUN_DIR/rss-token.txt" | tail -1)"
FOOT[hwm_kib]="$(hwm_kib "$SERVER_PID")"
log "peak RSS during the token API $(mib "${FOOT[peak_kib]}") MiB (VmHWM $(mib "${FOOT[hwm_kib]}") MiB)"

run_pgbench pgbench "pgbench select by primary key" "$MAIN_DB" "$USERS"

run_wrk status "status API, $USERS JWTs" status

# Refresh storm.
log "refresh storm: $STORM_REQUESTS requests over $STORM_USERS just-expired users, fake /token ${STORM_DELAY_MS} ms"
env TOKEN_ENCRYPTION_KEYS="$KEYS" \
    "$SEED" --database-url "$(db_url "$MAIN_DB")" --users 0 --expired "$STORM_USERS" \
    --expired-offset $((STORM_FIRST - 1)) --fake-url "$FAKE" --no-vacuum >"$RUN_DIR/seed-storm.txt"
start_noise storm
STORM_LINE="$(env BENCH_INTERNAL_KEY="$INTERNAL_KEY" "$STORM" --url "$BASE" --fake-url "$FAKE" \
    --first "$STORM_FIRST" --users "$STORM_USERS" --requests "$STORM_REQUESTS" \
    --token-delay-ms "$STORM_DELAY_MS" 2>"$RUN_DIR/storm.err")" || {
    cat "$RUN_DIR/storm.err" >&2
    FAILURES+=("refresh storm: $(tail -1 "$RUN_DIR/storm.err")")
}
NOTE[storm]="$(stop_noise)"
STORM_LINE="$(printf '%s\n' "$STORM_LINE" | grep '^STORM' || true)"
sfield() { printf '%s\n' "$STORM_LINE" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
log "storm: $STORM_LINE"

# Consent flows, the table growing.
log "consent flow: $FLOWS flows, $FLOW_CONCURRENCY at a time"
ROWS_BEFORE="$(psql "$(db_url "$MAIN_DB")" -Atqc 'select count(*) from gmail_token')"
start_noise flows
env SESSION_JWT_SECRET="$JWT_SECRET" "$FLOW" --url "$BASE" --first "$FLOW_FIRST" \
    --flows "$FLOWS" --window "$FLOW_WINDOW" --concurrency "$FLOW_CONCURRENCY" \
    >"$RUN_DIR/flows-main.txt" 2>"$RUN_DIR/flows-main.err" || FAILURES+=("consent flows: $(tail -1 "$RUN_DIR/flows-main.err")")
NOTE[flows]="$(stop_noise)"
ROWS_AFTER="$(psql "$(db_url "$MAIN_DB")" -Atqc 'select count(*) from gmail_token')"
FLOW_LINE="$(grep '^FLOWS' "$RUN_DIR/flows-main.txt" || true)"
ffield() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
log "flows: $FLOW_LINE (gmail_token $ROWS_BEFORE → $ROWS_AFTER rows)"
stop_server

# ================================================================ phase 2: scale
if [ "$SCALE_ROWS" -gt 0 ]; then
    new_db scale SCALE_DB
    log "seeding $SCALE_ROWS users into $SCALE_DB"
    env TOKEN_ENCRYPTION_KEYS="$KEYS" \
        "$SEED" --database-url "$(db_url "$SCALE_DB")" --users "$SCALE_ROWS" --skip-triggers |
        tee "$RUN_DIR/seed-scale.txt" >&2
    start_server "$SCALE_DB" scale
    FOOT[ready_scale_ms]="$READY_MS"
    sleep 1
    FOOT[idle_scale_kib]="$(rss_kib "$SERVER_PID")"
    start_sampler "$RUN_DIR/rss-scale.txt"
    run_wrk scale_all "token API, $SCALE_ROWS rows, random among all" token BENCH_USERS="$SCALE_ROWS"
    stop_sampler
    FOOT[peak_scale_kib]="$(sort -n "$RUN_DIR/rss-scale.txt" | tail -1)"
    run_wrk scale_hot "token API, $SCALE_ROWS rows, random among $USERS" token BENCH_USERS="$USERS"
    SCALE_ROWS_BEFORE="$(psql "$(db_url "$SCALE_DB")" -Atqc 'select count(*) from gmail_token')"
    env SESSION_JWT_SECRET="$JWT_SECRET" "$FLOW" --url "$BASE" --first "$SCALE_FLOW_FIRST" \
        --flows "$SCALE_FLOWS" --window "$SCALE_FLOWS" --concurrency "$FLOW_CONCURRENCY" \
        >"$RUN_DIR/flows-scale.txt" 2>"$RUN_DIR/flows-scale.err" || FAILURES+=("consent flows at scale: $(tail -1 "$RUN_DIR/flows-scale.err")")
    SCALE_FLOW_LINE="$(grep '^FLOWS' "$RUN_DIR/flows-scale.txt" || true)"
    log "flows at $SCALE_ROWS_BEFORE rows: $SCALE_FLOW_LINE"
    stop_server
fi

# ================================================================ report
for k in healthz token pgbench status scale_all scale_hot; do
    [ -n "${ERR[$k]:-}" ] || continue
    [ "${ERR[$k]}" = 0 ] || FAILURES+=("$k: ${ERR[$k]} errors")
done
if [ -n "$STORM_LINE" ]; then
    [ "$(sfield errors)" = 0 ] || FAILURES+=("storm: $(sfield errors) errors")
    [ "$(sfield upstream_refresh)" = "$STORM_USERS" ] ||
        FAILURES+=("storm: $(sfield upstream_refresh) upstream refreshes for $STORM_USERS users")
else
    FAILURES+=("storm: no result")
fi
[ -n "$FLOW_LINE" ] && [ "$(ffield "$FLOW_LINE" errors)" = 0 ] || FAILURES+=("consent flows: errors or no result")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 <= b + 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 >= b + 0) }'; }
verdict() { if "$@"; then echo "met"; else echo "**not met**"; fi; }

R_TOKEN_HEALTHZ="$(ratio "${RPS[token]}" "${RPS[healthz]}")"
R_TOKEN_PGBENCH="$(ratio "${RPS[token]}" "${RPS[pgbench]}")"
if [ "$SCALE_ROWS" -gt 0 ]; then
    R_SCALE_P50="$(ratio "${P50[scale_all]}" "${P50[token]}")"
    R_SCALE_RPS="$(ratio "${RPS[scale_all]}" "${RPS[token]}")"
    R_HOT_P50="$(ratio "${P50[scale_hot]}" "${P50[token]}")"
    R_HOT_RPS="$(ratio "${RPS[scale_hot]}" "${RPS[token]}")"
fi
STORM_BUDGET_MS="$(awk -v d="$STORM_DELAY_MS" -v u="$STORM_USERS" -v c="$REFRESH_CONCURRENCY" \
    'BEGIN { w = u / c; if (w < 1) w = 1; w = (w == int(w)) ? w : int(w) + 1; printf "%d", 3 * d * w }')"

MACHINE_CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
MACHINE_MEM="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
PG_VERSION="$(psql "$ADMIN_URL" -Atqc 'show server_version')"
PG_SETTINGS="$(psql "$ADMIN_URL" -Atqc "select string_agg(name || '=' || setting || coalesce(unit, ''), ', ' order by name) from pg_settings where name in ('shared_buffers','max_connections','synchronous_commit','fsync')")"
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- src migrations Cargo.toml Cargo.lock 2>/dev/null || GIT_REV="$GIT_REV + uncommitted changes in src/"

row() { # key label conns
    local k="$1"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$3" "${RPS[$k]:-}" "${P50[$k]:-}" "${P99[$k]:-}" "${ERR[$k]:-}" "${NOTE[$k]:-}"
}

{
    if [ "$SMOKE" = 1 ]; then
        echo "# auth-server benchmark — smoke run (sizes and durations too small to mean anything)"
    else
        echo "# auth-server benchmark results"
    fi
    echo
    echo "- run: $STAMP (UTC), commit $GIT_REV, server binary \`${SERVER_BIN#"$ROOT"/}\`${BENCH_LABEL:+ ($BENCH_LABEL)} ($PROFILE build, $(rustc --version 2>/dev/null | awk '{print $1, $2}'))"
    echo "- machine: $(nproc) CPUs ($MACHINE_CPU), $MACHINE_MEM RAM, Linux $(uname -r)"
    echo "- PostgreSQL $PG_VERSION ($PG_SETTINGS); $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}'); pgbench $(pgbench --version | awk '{print $3}')"
    echo "- load: $CONNS connections, $THREADS load-generator threads, ${DURATION} s measured after ${WARMUP} s warm-up; everything on this machine (127.0.0.1)"
    echo
    echo "## Fixed-duration scenarios"
    echo
    echo "| scenario | connections | req/s | p50 ms | p99 ms | errors | note |"
    echo "|---|---|---|---|---|---|---|"
    row token "1. token API, valid tokens, random users among $USERS" "$CONNS"
    row healthz "2a. \`/healthz\` (HTTP ceiling)" "$CONNS"
    row pgbench "2b. pgbench: one \`gmail_token\` row by primary key (database ceiling; tps)" "$CONNS"
    row status "3. status API, random session JWTs among $USERS" "$CONNS"
    if [ "$SCALE_ROWS" -gt 0 ]; then
        row scale_all "4a. token API, $SCALE_ROWS rows, random users among all $SCALE_ROWS" "$CONNS"
        row scale_hot "4b. token API, $SCALE_ROWS rows, random users among $USERS" "$CONNS"
    fi
    echo
    echo "## Refresh storm (scenario 5)"
    echo
    echo "$STORM_REQUESTS concurrent token requests over $STORM_USERS users whose tokens had just expired; fake Google \`/token\` latency ${STORM_DELAY_MS} ms; driven by \`examples/bench_storm.rs\` (one task per request, released together), not wrk."
    echo
    echo "| requests | users | upstream refresh calls | wall time ms | p50 ms | p99 ms | errors | distinct tokens per user (max) | note |"
    echo "|---|---|---|---|---|---|---|---|---|"
    echo "| $(sfield requests) | $(sfield users) | $(sfield upstream_refresh) | $(sfield wall_ms) | $(sfield p50_ms) | $(sfield p99_ms) | $(sfield errors) | $(sfield max_distinct_tokens_per_user) | ${NOTE[storm]:-} |"
    echo
    echo "## Consent flow (scenario 6)"
    echo
    echo "connect → fake consent (form POST) → callback, $FLOW_CONCURRENCY flows at a time, each a new user (a new \`gmail_token\` row); \`examples/bench_flow.rs\`."
    echo
    echo "| table | flows | flows/s overall | flows/s per window of completed flows | errors | note |"
    echo "|---|---|---|---|---|---|"
    echo "| $ROWS_BEFORE → $ROWS_AFTER rows | $(ffield "$FLOW_LINE" flows) | $(ffield "$FLOW_LINE" flows_per_s) | $(grep '^FLOW_WINDOW' "$RUN_DIR/flows-main.txt" | awk '{ split($2, a, "="); split($3, b, "="); split($4, c, "="); printf "%s%s–%s: %s", (NR > 1 ? "; " : ""), a[2], b[2], c[2] }') | $(ffield "$FLOW_LINE" errors) | ${NOTE[flows]:-} |"
    if [ "$SCALE_ROWS" -gt 0 ]; then
        echo "| $SCALE_ROWS_BEFORE → $((SCALE_ROWS_BEFORE + $(ffield "$SCALE_FLOW_LINE" flows | grep . || echo 0))) rows | $(ffield "$SCALE_FLOW_LINE" flows) | $(ffield "$SCALE_FLOW_LINE" flows_per_s) | | $(ffield "$SCALE_FLOW_LINE" errors) | |"
    fi
    echo
    echo "## Footprint (scenario 7)"
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| RSS idle (after start, $USERS rows) | $(mib "${FOOT[idle_kib]}") MiB |"
    echo "| RSS peak during scenario 1 (sampled every 100 ms; VmHWM) | $(mib "${FOOT[peak_kib]}") MiB ($(mib "${FOOT[hwm_kib]}") MiB) |"
    if [ "$SCALE_ROWS" -gt 0 ]; then
        echo "| RSS idle / peak, scale (scenario 4a) | $(mib "${FOOT[idle_scale_kib]}") / $(mib "${FOOT[peak_scale_kib]}") MiB |"
    fi
    echo "| process start → \`/readyz\` 200, migrated database | ${FOOT[ready_ms]} ms |"
    echo "| process start → \`/readyz\` 200, empty database (all migrations run) | ${FOOT[ready_empty_ms]} ms |"
    if [ "$SCALE_ROWS" -gt 0 ]; then
        echo "| process start → \`/readyz\` 200, $SCALE_ROWS rows | ${FOOT[ready_scale_ms]} ms |"
    fi
    echo
    echo "## Ratios (same run) and targets"
    echo
    echo "| target | measured | verdict |"
    echo "|---|---|---|"
    echo "| token API ≥ 0.5 × \`/healthz\` req/s | ${R_TOKEN_HEALTHZ} × | $(verdict ge "$R_TOKEN_HEALTHZ" 0.5) |"
    echo "| token API ≥ pgbench single-row tps | ${R_TOKEN_PGBENCH} × | $(verdict ge "$R_TOKEN_PGBENCH" 1.0) |"
    echo "| token API: zero errors | ${ERR[token]} | $(verdict [ "${ERR[token]}" = 0 ]) |"
    if [ "$SCALE_ROWS" -gt 0 ]; then
        echo "| scale: p50 at $SCALE_ROWS rows ≤ 1.2 × p50 at $USERS (random among all rows) | ${R_SCALE_P50} × | $(verdict le "$R_SCALE_P50" 1.2) |"
        echo "| scale: req/s at $SCALE_ROWS rows ≥ req/s at $USERS ÷ 1.2, i.e. ratio ≥ 0.83 (random among all rows) | ${R_SCALE_RPS} × | $(verdict ge "$R_SCALE_RPS" 0.833) |"
        echo "| scale, $USERS hot users in the $SCALE_ROWS-row table (4b ÷ 1): p50 ≤ 1.2 × / req/s ≥ 0.83 × | ${R_HOT_P50} × / ${R_HOT_RPS} × | $(verdict le "$R_HOT_P50" 1.2) / $(verdict ge "$R_HOT_RPS" 0.833) |"
    fi
    echo "| storm: upstream refresh calls = $STORM_USERS | $(sfield upstream_refresh) | $(verdict [ "$(sfield upstream_refresh)" = "$STORM_USERS" ]) |"
    echo "| storm: wall < 3 × ${STORM_DELAY_MS} ms × ⌈$STORM_USERS ÷ $REFRESH_CONCURRENCY refreshes at once⌉ = ${STORM_BUDGET_MS} ms | $(sfield wall_ms) ms | $(verdict awk -v a="$(sfield wall_ms)" -v b="$STORM_BUDGET_MS" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }') |"
    echo "| storm: zero errors | $(sfield errors) | $(verdict [ "$(sfield errors)" = 0 ]) |"
    echo "| idle RSS < 30 MiB | $(mib "${FOOT[idle_kib]}") MiB | $(verdict [ "${FOOT[idle_kib]}" -lt 30720 ]) |"
    echo "| peak RSS < 150 MiB | $(mib "${FOOT[peak_kib]}") MiB | $(verdict [ "${FOOT[peak_kib]}" -lt 153600 ]) |"
    echo "| start → ready < 1 s | ${FOOT[ready_ms]} ms | $(verdict [ "${FOOT[ready_ms]}" -lt 1000 ]) |"
    if [ "${#FAILURES[@]}" -gt 0 ]; then
        echo
        echo "## Failures"
        echo
        for f in "${FAILURES[@]}"; do echo "- $f"; done
    fi
    echo
    echo "Raw outputs: \`${RUN_DIR#"$ROOT"/}/\`."
} >"$RESULTS"
cp "$RESULTS" "$OUT/latest.md"

echo
cat "$RESULTS"
echo
log "results written to ${RESULTS#"$ROOT"/} (and ${OUT#"$ROOT"/}/latest.md)"

if [ "${#FAILURES[@]}" -gt 0 ]; then
    log "FAILED: ${FAILURES[*]}"
    exit 1
fi
if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q 'not met' "$RESULTS"; then
    log "targets not met (BENCH_STRICT=1)"
    exit 1
fi
