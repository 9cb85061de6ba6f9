#!/usr/bin/env bash
# Shared by bench/run.sh and bench/cost.sh (sourced, not run): tools, the
# database server, cleanup, fresh databases, the build, the settings of one
# run, starting the fake Google, the server and the bare server, and the
# measurements of bench/run.sh (wrk, pgbench, RSS, noise, perf). The caller sets ROOT,
# PORT, FAKE_PORT, PROFILE and RUN_DIR first; SERVER_WRAPPER (an array) is a
# command the server runs under (bench/cost.sh: valgrind), READY_TIMEOUT_S
# how long the server may take to answer /readyz (default 60), SKIP_BUILD=1
# leaves this checkout unbuilt (the caller brings its own binaries).
# shellcheck shell=bash disable=SC2034 # variables set here are the caller's to use

READY_TIMEOUT_S="${READY_TIMEOUT_S:-60}"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

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

# shellcheck disable=SC2153 # PORT is the caller's
for p in "$PORT" "$FAKE_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p on 127.0.0.1 is in use (set BENCH_PORT / BENCH_FAKE_PORT)"
    fi
done

# ---------------------------------------------------------------- build

export SQLX_OFFLINE=true
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$PROFILE" = release ]; then
    BIN_DIR="$TARGET_DIR/release"
else
    BIN_DIR="$TARGET_DIR/debug"
    [ "$PROFILE" = dev ] || BIN_DIR="$TARGET_DIR/$PROFILE"
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (profile $PROFILE)"
    cargo build --profile "$PROFILE" --locked --bin auth-server --examples
fi
BIN="$BIN_DIR/auth-server"
SERVER_BIN="${BENCH_SERVER_BIN:-$BIN}"
SEED="$BIN_DIR/examples/bench_seed"
STORM="$BIN_DIR/examples/bench_storm"
FLOW="$BIN_DIR/examples/bench_flow"
BARE="$BIN_DIR/examples/bench_bare"

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
        SESSION_JWT_SECRET="$JWT_SECRET" INTERNAL_API_KEYS="$INTERNAL_KEY" \
        TOKEN_ENCRYPTION_KEYS="$KEYS" \
        RATE_LIMIT_TOKEN_IP_PER_MIN=0 RATE_LIMIT_TOKEN_USER_PER_MIN=0 \
        RATE_LIMIT_BROWSER_IP_PER_MIN=0 RATE_LIMIT_CONNECT_USER_PER_MIN=0 \
        RUST_LOG=warn LOG_FORMAT=json \
        ${SERVER_WRAPPER[@]+"${SERVER_WRAPPER[@]}"} "$SERVER_BIN" serve) >"$RUN_DIR/server-$name.log" 2>&1 &
    SERVER_PID=$!
    while ! curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server did not start (see $RUN_DIR/server-$name.log)"
        if [ $(($(now_ns) - t0)) -gt $((READY_TIMEOUT_S * 1000000000)) ]; then die "the server was not ready within $READY_TIMEOUT_S s"; fi
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

# start_bare: the bare server (examples/bench_bare.rs, scenario 0) on $PORT,
# in place of the server (SERVER_PID).
start_bare() {
    (cd "$WORK" && exec "$BARE" --bind "127.0.0.1:$PORT") >"$RUN_DIR/server-bare.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 500); do
        curl -fsS -o /dev/null "$BASE/" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "the bare server did not start (see $RUN_DIR/server-bare.log)"
        sleep 0.01
    done
    die "the bare server did not answer"
}

# ================================================================ measurements
# (bench/run.sh). Results per scenario KEY: RPS, P50, P99 (ms), ERR, NOTE
# (other CPU work during the run) and PEAK (server RSS, KiB).

declare -A RPS P50 P99 ERR NOTE PEAK

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { [ -z "$1" ] || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# field LINE NAME: the value of NAME=… in a line of key=value words.
field() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# The server's RSS every 100 ms, from start_sampler KEY to stop_sampler KEY,
# whose peak goes into PEAK[KEY]. Nothing when no server runs.
start_sampler() {
    [ -n "$SERVER_PID" ] || return 0
    (while kill -0 "$SERVER_PID" 2>/dev/null; do
        rss_kib "$SERVER_PID"
        sleep 0.1
    done) >"$RUN_DIR/rss-$1.txt" &
    SAMPLER_PID=$!
}
stop_sampler() {
    [ -n "$SAMPLER_PID" ] || return 0
    rss_kib "$SERVER_PID" >>"$RUN_DIR/rss-$1.txt"
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    PEAK[$1]="$(sort -n "$RUN_DIR/rss-$1.txt" | tail -1)"
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
stop_noise() { # sets NOTE[$1] when other CPU work ran during the measurement
    if [ -n "$NOISE_PID" ]; then
        kill "$NOISE_PID" 2>/dev/null || true
        wait "$NOISE_PID" 2>/dev/null || true
    fi
    NOISE_PID=""
    NOTE[$1]="$(awk '{ n++; if ($1 > 0) busy++ } END { if (busy > 0) printf "other CPU work (compiler/browser) during %d%% of the run", 100 * busy / n }' "$NOISE_FILE")"
}

# BENCH_PERF=1: a system-wide CPU profile (perf, software clock) of the
# measured part of the scenarios in PERF_KEYS, summarised in the run directory.
PERF_PID=""
start_perf() {
    [ "${BENCH_PERF:-0}" = 1 ] || return 0
    case " $PERF_KEYS " in *" $1 "*) ;; *) return 0 ;; esac
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
    perf_report() { perf report -i "$data" --no-children --stdio "$@" 2>/dev/null | grep -v -e '^#' -e '^$' || true; }
    {
        echo "== CPU by process name (whole machine)"
        perf_report --sort comm | head -15
        echo "== server (pid $SERVER_PID): by binary (kernel, libc, the server)"
        perf_report --pid "$SERVER_PID" --sort dso | head -8
        echo "== server (pid $SERVER_PID): top symbols"
        perf_report --pid "$SERVER_PID" --sort dso,sym | head -40
        echo "== postgres: top symbols"
        perf_report --comm postgres --sort dso,sym | head -25
    } >"$RUN_DIR/perf-$1.txt"
    rm -f "$data"
}

# run_wrk KEY LABEL MODE [VAR=VALUE…]: warm-up, then the measured run
# (DURATION seconds), the server's RSS sampled throughout.
run_wrk() {
    local key="$1" label="$2" mode="$3"
    shift 3
    local out="$RUN_DIR/wrk-$key.txt" line
    local -a load=(env BENCH_MODE="$mode" BENCH_KEY="$INTERNAL_KEY" BENCH_JWT_FILE="$JWT_FILE" "$@"
        wrk -t"$THREADS" -c"$CONNS" --timeout 10s -s bench/wrk.lua)
    log "$label: ${WARMUP}s warm-up, ${DURATION}s at $CONNS connections"
    start_sampler "$key"
    "${load[@]}" -d"${WARMUP}s" "$BASE" >/dev/null 2>&1 || true
    start_noise "$key"
    start_perf "$key"
    "${load[@]}" -d"${DURATION}s" --latency "$BASE" >"$out" 2>&1 || die "wrk failed for $label (see $out)"
    stop_perf "$key"
    stop_noise "$key"
    stop_sampler "$key"
    line="$(grep '^BENCH_RESULT' "$out")" || die "no result from wrk for $label (see $out)"
    RPS[$key]="$(awk -v r="$(field "$line" requests)" -v d="$(field "$line" duration_us)" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
    P50[$key]="$(awk -v u="$(field "$line" p50_us)" 'BEGIN { printf "%.2f", u / 1000 }')"
    P99[$key]="$(awk -v u="$(field "$line" p99_us)" 'BEGIN { printf "%.2f", u / 1000 }')"
    ERR[$key]="$(field "$line" errors)"
    log "$label: ${RPS[$key]} req/s, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms, ${ERR[$key]} errors, peak RSS $(mib "${PEAK[$key]:-}") MiB"
}

# run_pgbench KEY LABEL DB USERS: one gmail_token row by primary key, the
# columns the service selects, prepared as sqlx does.
run_pgbench() {
    local key="$1" label="$2" db="$3" users="$4"
    local dir="$RUN_DIR/pgbench-$key" url n
    url="$(db_url "$db")"
    mkdir -p "$dir"
    cat >"$dir/select.sql" <<'SQL'
\set id random(1, :users)
SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
       expires_at, scopes, status, last_error, last_refreshed_at, consented_at,
       created_at, updated_at
FROM gmail_token WHERE user_id = lpad(to_hex(:id::bigint), 32, '0')::uuid;
SQL
    local -a load=(pgbench -n -M prepared -c "$PG_CONNS" -j "$THREADS" -D users="$users" -f select.sql)
    log "$label: ${WARMUP}s warm-up, ${DURATION}s at $PG_CONNS connections"
    (cd "$dir" && "${load[@]}" -T "$WARMUP" "$url") >/dev/null 2>&1 || true
    start_noise "$key"
    (cd "$dir" && "${load[@]}" -T "$DURATION" -l --sampling-rate=0.1 --log-prefix=tx "$url") >"$dir/out.txt" 2>&1 ||
        die "pgbench failed (see $dir/out.txt)"
    stop_noise "$key"
    RPS[$key]="$(awk '/^tps = / { printf "%.0f", $3 }' "$dir/out.txt")"
    ERR[$key]="$(awk -F'[: ]+' '/number of failed transactions/ { print $5 }' "$dir/out.txt")"
    ERR[$key]="${ERR[$key]:-0}"
    # Per-transaction log (10% sample): third column is the latency in µs.
    cat "$dir"/tx.* | awk '{ print $3 }' | sort -n >"$dir/lat.txt"
    n="$(wc -l <"$dir/lat.txt")"
    P50[$key]="$(awk -v n="$n" 'NR == int(n * 0.50 + 0.5) { printf "%.2f", $1 / 1000 }' "$dir/lat.txt")"
    P99[$key]="$(awk -v n="$n" 'NR == int(n * 0.99 + 0.5) { printf "%.2f", $1 / 1000 }' "$dir/lat.txt")"
    rm -f "$dir"/tx.*
    log "$label: ${RPS[$key]} tps, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms, ${ERR[$key]} failed"
}

# seed DB ARGS…: bench_seed with the run's keys into database DB.
seed() {
    local db="$1"
    shift
    env TOKEN_ENCRYPTION_KEYS="$KEYS" SESSION_JWT_SECRET="$JWT_SECRET" \
        "$SEED" --database-url "$(db_url "$db")" "$@"
}

# table_size DB: gmail_token with its indexes and TOAST, e.g. "512 MB".
table_size() {
    psql "$(db_url "$1")" -Atqc "select pg_size_pretty(pg_total_relation_size('gmail_token'))"
}
