#!/usr/bin/env bash
# Shared by bench/run.sh and bench/cost.sh (sourced, not run): tools, the
# database server, cleanup, fresh databases, the build, the settings of one
# run, and starting the fake Google and the server. The caller sets ROOT,
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
