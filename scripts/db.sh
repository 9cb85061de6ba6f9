# shellcheck shell=bash
# Sourced by test.sh and demo.sh: make sure a PostgreSQL server is reachable
# and export its URL as ADMIN_DATABASE_URL.
#
# Order: $DATABASE_URL (or $TEST_DATABASE_URL) if it answers; else the local
# server on 127.0.0.1:5432; else a throwaway server started from the
# installed PostgreSQL binaries (initdb); else a throwaway Docker container.
# A throwaway server is stopped when the calling script exits.

db_reachable() {
    local url="$1"
    if command -v psql >/dev/null 2>&1; then
        psql "$url" -Atqc 'select 1' >/dev/null 2>&1
    else
        local hostport host port
        hostport="$(printf '%s' "$url" | sed -E 's#^[a-z]+://([^@/]*@)?([^/?]*).*#\2#')"
        host="${hostport%:*}"; port="${hostport##*:}"
        [ "$host" = "$hostport" ] && port=5432
        (exec 3<>"/dev/tcp/${host:-127.0.0.1}/${port}") 2>/dev/null
    fi
}

start_throwaway_initdb() {
    local bindir
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    if [ -z "$bindir" ]; then
        bindir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
    fi
    [ -x "$bindir/initdb" ] || return 1
    local dir port=55432 as=()
    dir="$(mktemp -d /tmp/auth-server-pg.XXXXXX)"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || return 1
        chown postgres "$dir"
        as=(runuser -u postgres --)
    fi
    echo "scripts/db.sh: starting a throwaway PostgreSQL in $dir on port $port" >&2
    "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
    THROWAWAY_STOP=("${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast stop)
    ADMIN_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

start_throwaway_docker() {
    command -v docker >/dev/null 2>&1 || return 1
    docker info >/dev/null 2>&1 || return 1
    local name="auth-server-test-pg-$$"
    echo "scripts/db.sh: starting a throwaway PostgreSQL container $name" >&2
    docker run -d --rm --name "$name" -e POSTGRES_HOST_AUTH_METHOD=trust -p 127.0.0.1:55433:5432 postgres:16 >/dev/null
    THROWAWAY_STOP=(docker stop "$name")
    ADMIN_DATABASE_URL="postgres://postgres@127.0.0.1:55433/postgres"
    for _ in $(seq 1 60); do
        db_reachable "$ADMIN_DATABASE_URL" && return 0
        sleep 1
    done
    return 1
}

stop_throwaway() {
    if [ "${#THROWAWAY_STOP[@]}" -gt 0 ]; then
        "${THROWAWAY_STOP[@]}" >/dev/null 2>&1 || true
    fi
}

ensure_database_server() {
    THROWAWAY_STOP=()
    local candidate="${TEST_DATABASE_URL:-${DATABASE_URL:-}}"
    if [ -n "$candidate" ] && db_reachable "$candidate"; then
        ADMIN_DATABASE_URL="$candidate"
    elif db_reachable "postgres://postgres@127.0.0.1:5432/postgres"; then
        ADMIN_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    elif start_throwaway_initdb || start_throwaway_docker; then
        trap stop_throwaway EXIT
    else
        echo "scripts/db.sh: no PostgreSQL reachable and none could be started;" >&2
        echo "  install PostgreSQL (or Docker), or set DATABASE_URL to a server" >&2
        return 1
    fi
    export ADMIN_DATABASE_URL
}
