# shellcheck shell=bash
# Sourced by test.sh: the test databases of runs that share one PostgreSQL
# server. Each run of test.sh has an id `k<digits>` (TEST_RUN_ID) and names
# its databases authtest_<id>_<32 hex> (tests/api/helpers.rs). While it runs,
# it holds one PostgreSQL session open whose application_name is
# `authtest_run:<id>` (start_run_keeper): that is how any machine sharing the
# server sees that the run is alive. The session ends with the run however
# the run ends (even kill -9): it reads from a pipe that the run holds open.
#
# drop_dead_runs drops the databases of runs whose session is gone, and only
# those. Databases of other shapes are left alone and counted: names from an
# older test.sh (authtest_r<digits>_<32 hex>: a run id but no session, so a
# live one cannot be told from a finished one) and from plain `cargo test`
# (authtest_<TEST_RUN_ID or "adhoc">_…) have no session to show whether their
# run is alive.
#
# Every function takes the admin URL (a database on the server, e.g.
# postgres) as its first argument.

# The application_name of a run's keeper session.
run_keeper_name() { printf 'authtest_run:%s' "$1"; }

# start_run_keeper URL ID: open the run's session in the background and wait
# (up to 10 s) until the server shows it. Sets RUN_KEEPER_FD (the pipe
# psql reads from; closing it ends the session).
start_run_keeper() {
    local url="$1" id="$2" name
    name="$(run_keeper_name "$id")"
    # psql connects, then waits for commands on the pipe; EOF ends it.
    exec {RUN_KEEPER_FD}> >(PGAPPNAME="$name" exec psql "$url" -Xq >/dev/null 2>&1)
    local _
    for _ in $(seq 1 100); do
        local seen
        seen="$(psql "$url" -XAtqc "select count(*) from pg_stat_activity where application_name = '$name'" 2>/dev/null)"
        if [[ "$seen" =~ ^[1-9][0-9]*$ ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "test.sh: the run's PostgreSQL session ($name) did not appear within 10 s" >&2
    return 1
}

# stop_run_keeper: end the run's session (closing the pipe ends psql).
stop_run_keeper() {
    if [ -n "${RUN_KEEPER_FD:-}" ]; then
        exec {RUN_KEEPER_FD}>&-
        RUN_KEEPER_FD=""
    fi
}

# drop_dead_runs URL: drop every authtest_k<digits>_<32 hex> database whose
# run has no live session. Prints one line: dropped, kept (live runs) and
# other shapes left alone. The databases are listed before the sessions, so a
# run that starts in between is not in the list.
drop_dead_runs() {
    local url="$1" live dbs db id dropped=0 kept=0 other
    dbs="$(psql "$url" -XAtqc "select datname from pg_database where datname ~ '^authtest_k[0-9]+_[0-9a-f]{32}\$' order by 1")" || return 1
    live="$(psql "$url" -XAtqc "select substr(application_name, 14) from pg_stat_activity where application_name like 'authtest\_run:%'")" || return 1
    while read -r db; do
        [ -n "$db" ] || continue
        id="${db#authtest_}"
        id="${id%_*}"
        if printf '%s\n' "$live" | grep -qxF -- "$id"; then
            kept=$((kept + 1))
        elif psql "$url" -Xqc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1; then
            dropped=$((dropped + 1))
        fi
    done <<<"$dbs"
    other="$(psql "$url" -XAtqc "select count(*) from pg_database where datname like 'authtest\_%' and datname !~ '^authtest_k[0-9]+_[0-9a-f]{32}\$'")"
    echo "test databases of finished runs: $dropped dropped; $kept of live runs kept; ${other:-0} of other shapes (no run session) left alone"
}

# drop_run_databases URL ID: drop this run's own databases; prints how many
# are left (0 unless a drop failed).
drop_run_databases() {
    local url="$1" id="$2" db
    while read -r db; do
        [ -n "$db" ] || continue
        psql "$url" -Xqc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
    done < <(psql "$url" -XAtqc "select datname from pg_database where datname like 'authtest\_${id}\_%'")
    psql "$url" -XAtqc "select count(*) from pg_database where datname like 'authtest\_${id}\_%'"
}
