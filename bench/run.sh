#!/usr/bin/env bash
# The benchmark suite of issues 6 and 16 (results and how to read them:
# BENCHMARKS.md).
#
#   bench/run.sh            full run (7-11 minutes, plus the build)
#   bench/run.sh --smoke    every scenario for ~3 s with small sizes (CI; ~45 s)
#
# It installs its load generator (wrk, from the distribution's packages) and
# pgbench if missing, builds the release binaries, creates fresh databases,
# starts the fake Google, a bare axum/hyper server and the server on
# 127.0.0.1, runs the scenarios, prints the tables and writes them to
# target/bench/results-<time>.md (and target/bench/latest.md). Processes and
# databases it started are removed at exit. It exits non-zero when a scenario
# had errors or the refresh storm's upstream count is wrong (and, with
# BENCH_STRICT=1, when a target is missed).
#
# Overrides (environment):
#   BENCH_DURATION=20 BENCH_WARMUP=5      seconds per fixed-duration scenario
#   BENCH_CONNECTIONS=64 BENCH_THREADS=2  wrk -c / -t, pgbench -c / -j
#   BENCH_PGBENCH_CONNECTIONS=64          pgbench -c alone (default: as wrk), for
#                                         a shared PostgreSQL short of connections
#   BENCH_USERS=10000                     connected users (scenarios 1-3), and
#                                         the hot subset of the scale table
#   BENCH_SCALE_SIZES="10000 100000 1000000 5000000"
#                                         rows of the scale table (one table
#                                         grown in steps, seeded once)
#   BENCH_SCALE_ROWS=1000000              the size reported as scenarios 4a/4b
#                                         (added to the sizes; 0: no scale part)
#   BENCH_SCALE_BIG_DURATION=10           seconds measured at sizes above
#                                         BENCH_SCALE_ROWS
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
#   BENCH_PERF=1                          also profile scenarios 0, 2a, 1, 3,
#                                         4a with perf (system-wide; run dir
#                                         perf-*.txt)
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
    SCALE_SIZES="${BENCH_SCALE_SIZES:-2000 20000}"
    SCALE_ROWS="${BENCH_SCALE_ROWS:-20000}"
    SCALE_BIG_DURATION="${BENCH_SCALE_BIG_DURATION:-2}"
    STORM_REQUESTS="${BENCH_STORM_REQUESTS:-100}"
    STORM_USERS="${BENCH_STORM_USERS:-10}"
    FLOWS="${BENCH_FLOWS:-200}"
    FLOW_WINDOW="${BENCH_FLOW_WINDOW:-100}"
    SCALE_FLOWS="${BENCH_SCALE_FLOWS:-100}"
else
    DURATION="${BENCH_DURATION:-20}"
    WARMUP="${BENCH_WARMUP:-5}"
    USERS="${BENCH_USERS:-10000}"
    SCALE_SIZES="${BENCH_SCALE_SIZES:-10000 100000 1000000 5000000}"
    SCALE_ROWS="${BENCH_SCALE_ROWS:-1000000}"
    SCALE_BIG_DURATION="${BENCH_SCALE_BIG_DURATION:-10}"
    STORM_REQUESTS="${BENCH_STORM_REQUESTS:-1000}"
    STORM_USERS="${BENCH_STORM_USERS:-100}"
    FLOWS="${BENCH_FLOWS:-10000}"
    FLOW_WINDOW="${BENCH_FLOW_WINDOW:-2000}"
    SCALE_FLOWS="${BENCH_SCALE_FLOWS:-2000}"
fi
CONNS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
PG_CONNS="${BENCH_PGBENCH_CONNECTIONS:-$CONNS}"
STORM_DELAY_MS="${BENCH_STORM_DELAY_MS:-50}"
REFRESH_CONCURRENCY="${BENCH_REFRESH_CONCURRENCY:-20}"
FLOW_CONCURRENCY="${BENCH_FLOW_CONCURRENCY:-16}"
PORT="${BENCH_PORT:-58180}"
FAKE_PORT="${BENCH_FAKE_PORT:-58181}"
PROFILE="${BENCH_PROFILE:-release}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
# The scale table's sizes, ascending, with the one of scenarios 4a/4b.
if [ "$SCALE_ROWS" -gt 0 ]; then
    # shellcheck disable=SC2086 # one word per size
    SCALE_SIZES="$(printf '%s\n' $SCALE_SIZES "$SCALE_ROWS" | sort -n -u | tr '\n' ' ')"
else
    SCALE_SIZES=""
fi
# User numbers (ids are Uuid::from_u128(n)): valid users 1..USERS (and
# 1..size in the scale table), then ranges far above them.
STORM_FIRST=1000000001
FLOW_FIRST=2000000001
SCALE_FLOW_FIRST=3000000001
# Scenarios profiled with BENCH_PERF=1.
PERF_KEYS="bare healthz token status scale_all"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
RUN_DIR="$OUT/run-$STAMP"
mkdir -p "$RUN_DIR"
RESULTS="$OUT/results-$STAMP.md"
[ "$SMOKE" = 1 ] && RESULTS="$OUT/smoke-$STAMP.md"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

declare -A FOOT FLOW_LINE FLOW_ROWS SCALE_DB_SIZE SCALE_READY_MS SCALE_IDLE_KIB SCALE_SECONDS
FAILURES=()

# run_flows KEY DB FIRST FLOWS WINDOW: consent flows of new users numbered
# from FIRST, the table growing; FLOW_LINE[KEY], FLOW_ROWS[KEY] (before → after).
run_flows() {
    local key="$1" db="$2" first="$3" flows="$4" window="$5" before
    log "consent flow ($key): $flows flows, $FLOW_CONCURRENCY at a time"
    before="$(psql "$(db_url "$db")" -Atqc 'select count(*) from gmail_token')"
    start_sampler "flows_$key"
    start_noise "flows_$key"
    env SESSION_JWT_SECRET="$JWT_SECRET" "$FLOW" --url "$BASE" --first "$first" \
        --flows "$flows" --window "$window" --concurrency "$FLOW_CONCURRENCY" \
        >"$RUN_DIR/flows-$key.txt" 2>"$RUN_DIR/flows-$key.err" ||
        FAILURES+=("consent flows ($key): $(tail -1 "$RUN_DIR/flows-$key.err")")
    stop_noise "flows_$key"
    stop_sampler "flows_$key"
    FLOW_ROWS[$key]="$before → $(psql "$(db_url "$db")" -Atqc 'select count(*) from gmail_token')"
    FLOW_LINE[$key]="$(grep '^FLOWS' "$RUN_DIR/flows-$key.txt" || true)"
    log "flows ($key): ${FLOW_LINE[$key]} (gmail_token ${FLOW_ROWS[$key]} rows)"
}

# scale_key SIZE KIND: the result key of the scale table at SIZE (KIND all or
# hot); at SCALE_ROWS it is that of scenario 4a/4b.
scale_key() {
    if [ "$1" = "$SCALE_ROWS" ]; then echo "scale_$2"; else echo "scale_$2_$1"; fi
}

log "fake Google on $FAKE"
start_fake

# ================================================================ scenario 0: the bare server
start_bare
run_wrk bare "bare axum/hyper server, GET / (physical limit)" bare
stop_server

# ================================================================ phase 1: 10k users
new_db main MAIN_DB
log "seeding $USERS users into $MAIN_DB"
seed "$MAIN_DB" --users "$USERS" --skip-triggers --jwt-file "$JWT_FILE" --jwt-count "$USERS" |
    tee "$RUN_DIR/seed-main.txt" >&2

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
run_wrk token "token API, $USERS users" token BENCH_USERS="$USERS"
run_pgbench pgbench "pgbench select by primary key" "$MAIN_DB" "$USERS"
run_wrk status "status API, $USERS JWTs" status

# Refresh storm.
log "refresh storm: $STORM_REQUESTS requests over $STORM_USERS just-expired users, fake /token ${STORM_DELAY_MS} ms"
seed "$MAIN_DB" --users 0 --expired "$STORM_USERS" --expired-offset $((STORM_FIRST - 1)) \
    --fake-url "$FAKE" --no-vacuum >"$RUN_DIR/seed-storm.txt"
start_sampler storm
start_noise storm
STORM_LINE="$(env BENCH_INTERNAL_KEY="$INTERNAL_KEY" "$STORM" --url "$BASE" --fake-url "$FAKE" \
    --first "$STORM_FIRST" --users "$STORM_USERS" --requests "$STORM_REQUESTS" \
    --token-delay-ms "$STORM_DELAY_MS" 2>"$RUN_DIR/storm.err")" || {
    cat "$RUN_DIR/storm.err" >&2
    FAILURES+=("refresh storm: $(tail -1 "$RUN_DIR/storm.err")")
}
stop_noise storm
stop_sampler storm
STORM_LINE="$(printf '%s\n' "$STORM_LINE" | grep '^STORM' || true)"
sfield() { field "$STORM_LINE" "$1"; }
log "storm: $STORM_LINE"

run_flows main "$MAIN_DB" "$FLOW_FIRST" "$FLOWS" "$FLOW_WINDOW"
FOOT[hwm_kib]="$(hwm_kib "$SERVER_PID")"
stop_server

# ================================================================ phase 2: scale
# One table grown in steps (each step seeds only the new rows, the server
# stopped, so it starts cold); per size: the token API over all rows (the
# database path), over the hot USERS, the table's size, start and RSS. It is
# dropped right after (up to gigabytes); the small databases at exit, since
# every DROP DATABASE waits for a checkpoint.
if [ -n "$SCALE_SIZES" ]; then
    new_db scale SCALE_DB
    seeded=0
    for size in $SCALE_SIZES; do
        log "scale: seeding users $((seeded + 1))…$size into $SCALE_DB"
        seed "$SCALE_DB" --users $((size - seeded)) --offset "$seeded" --skip-triggers |
            tee -a "$RUN_DIR/seed-scale.txt" >&2
        seeded="$size"
        SCALE_DB_SIZE[$size]="$(table_size "$SCALE_DB")"
        seconds="$DURATION"
        [ "$size" -le "$SCALE_ROWS" ] || seconds="$SCALE_BIG_DURATION"
        SCALE_SECONDS[$size]="$seconds"
        start_server "$SCALE_DB" "scale-$size"
        SCALE_READY_MS[$size]="$READY_MS"
        sleep 1
        SCALE_IDLE_KIB[$size]="$(rss_kib "$SERVER_PID")"
        DURATION="$seconds" run_wrk "$(scale_key "$size" all)" \
            "token API, $size rows, random among all" token BENCH_USERS="$size"
        if [ "$size" -gt "$USERS" ]; then
            DURATION="$seconds" run_wrk "$(scale_key "$size" hot)" \
                "token API, $size rows, random among $USERS" token BENCH_USERS="$USERS"
        fi
        if [ "$size" = "$SCALE_ROWS" ]; then
            run_flows scale "$SCALE_DB" "$SCALE_FLOW_FIRST" "$SCALE_FLOWS" "$SCALE_FLOWS"
        fi
        stop_server
    done
    psql "$ADMIN_URL" -qc "drop database if exists \"$SCALE_DB\" with (force)" >/dev/null
fi

# ================================================================ report
for k in "${!ERR[@]}"; do
    [ "${ERR[$k]}" = 0 ] || FAILURES+=("$k: ${ERR[$k]} errors")
done
if [ -n "$STORM_LINE" ]; then
    [ "$(sfield errors)" = 0 ] || FAILURES+=("storm: $(sfield errors) errors")
    [ "$(sfield upstream_refresh)" = "$STORM_USERS" ] ||
        FAILURES+=("storm: $(sfield upstream_refresh) upstream refreshes for $STORM_USERS users")
else
    FAILURES+=("storm: no result")
fi
for k in "${!FLOW_LINE[@]}"; do
    [ -n "${FLOW_LINE[$k]}" ] && [ "$(field "${FLOW_LINE[$k]}" errors)" = 0 ] ||
        FAILURES+=("consent flows ($k): errors or no result")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 <= b + 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 >= b + 0) }'; }
verdict() { if "$@"; then echo "met"; else echo "**not met**"; fi; }
# target TEXT MEASURED CHECK…: one row of the targets table.
target() {
    local text="$1" measured="$2"
    shift 2
    printf '| %s | %s | %s |\n' "$text" "$measured" "$(verdict "$@")"
}

hot_met() {
    le "$(ratio "${P50[scale_hot]}" "${P50[token]}")" 1.2 && ge "$(ratio "${RPS[scale_hot]}" "${RPS[token]}")" 0.833
}
STORM_BUDGET_MS="$(awk -v d="$STORM_DELAY_MS" -v u="$STORM_USERS" -v c="$REFRESH_CONCURRENCY" \
    'BEGIN { w = u / c; if (w < 1) w = 1; w = (w == int(w)) ? w : int(w) + 1; printf "%d", 3 * d * w }')"
# The highest RSS peak of the server's scenarios (the bare server is not ours).
PEAK_MAX_KIB=0
PEAK_MAX_KEY=""
for k in "${!PEAK[@]}"; do
    [ "$k" != bare ] || continue
    if [ "${PEAK[$k]}" -gt "$PEAK_MAX_KIB" ]; then
        PEAK_MAX_KIB="${PEAK[$k]}"
        PEAK_MAX_KEY="$k"
    fi
done

MACHINE_CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
MACHINE_MEM="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
PG_VERSION="$(psql "$ADMIN_URL" -Atqc 'show server_version')"
PG_SETTINGS="$(psql "$ADMIN_URL" -Atqc "select string_agg(name || '=' || setting || coalesce(unit, ''), ', ' order by name) from pg_settings where name in ('shared_buffers','max_connections','synchronous_commit','fsync')")"
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- src migrations Cargo.toml Cargo.lock 2>/dev/null || GIT_REV="$GIT_REV + uncommitted changes in src/"

row() { # KEY LABEL: one row of the fixed-duration table
    local k="$1"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$2" "${RPS[$k]:-}" "${P50[$k]:-}" "${P99[$k]:-}" \
        "${ERR[$k]:-}" "$(mib "${PEAK[$k]:-}")" "${NOTE[$k]:-}"
}
scale_row() { # SIZE KIND DRAWN-AMONG
    local size="$1" k
    k="$(scale_key "$size" "$2")"
    [ -n "${RPS[$k]:-}" ] || return 0
    printf '| %s | %s | %s | %s s | %s | %s | %s | %s | %s / %s | %s | %s |\n' "$size" "${SCALE_DB_SIZE[$size]}" "$3" \
        "${SCALE_SECONDS[$size]}" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${ERR[$k]}" \
        "$(mib "${SCALE_IDLE_KIB[$size]}")" "$(mib "${PEAK[$k]:-}")" "${SCALE_READY_MS[$size]}" "${NOTE[$k]:-}"
}
flow_windows() { # the flows/s per window of completed flows, in file $1
    grep '^FLOW_WINDOW' "$1" | awk '{ split($2, a, "="); split($3, b, "="); split($4, c, "="); printf "%s%s–%s: %s", (NR > 1 ? "; " : ""), a[2], b[2], c[2] }'
}
flow_row() { # KEY
    local line="${FLOW_LINE[$1]:-}"
    [ -n "${FLOW_ROWS[$1]:-}" ] || return 0
    printf '| %s rows | %s | %s | %s | %s | %s | %s |\n' "${FLOW_ROWS[$1]}" "$(field "$line" flows)" \
        "$(field "$line" flows_per_s)" "$(flow_windows "$RUN_DIR/flows-$1.txt")" "$(field "$line" errors)" \
        "$(mib "${PEAK[flows_$1]:-}")" "${NOTE[flows_$1]:-}"
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
    echo "Peak RSS: the server's, sampled every 100 ms from the warm-up to the end."
    echo
    echo "| scenario | req/s | p50 ms | p99 ms | errors | peak RSS MiB | note |"
    echo "|---|---|---|---|---|---|---|"
    row bare "0. bare axum/hyper server, \`GET /\`, no middleware (\`examples/bench_bare.rs\`; physical limit)"
    row token "1. token API, valid tokens, random users among $USERS"
    row healthz "2a. \`/healthz\` (HTTP ceiling of our stack)"
    row pgbench "2b. pgbench: one \`gmail_token\` row by primary key, random among $USERS, $PG_CONNS connections (database ceiling; tps)"
    row status "3. status API, random session JWTs among $USERS"
    if [ -n "$SCALE_SIZES" ]; then
        row scale_all "4a. token API, $SCALE_ROWS rows, random users among all $SCALE_ROWS (database path)"
        row scale_hot "4b. token API, $SCALE_ROWS rows, random users among $USERS"
    fi
    if [ -n "$SCALE_SIZES" ]; then
        echo
        echo "## Cost as work grows (token API)"
        echo
        echo "One \`gmail_token\` table grown in steps; at each size the server starts cold, then the token API runs over users drawn uniformly among all rows (nearly every answer a database read) and among the first $USERS (answers from the cache). Table size: \`pg_total_relation_size\` (indexes and TOAST included)."
        echo
        echo "| rows | table size | users drawn among | measured | req/s | p50 ms | p99 ms | errors | RSS idle / peak MiB | start → ready ms | note |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
        for size in $SCALE_SIZES; do
            scale_row "$size" all "all $size"
            scale_row "$size" hot "$USERS"
        done
    fi
    echo
    echo "## Refresh storm (scenario 5)"
    echo
    echo "$STORM_REQUESTS concurrent token requests over $STORM_USERS users whose tokens had just expired; fake Google \`/token\` latency ${STORM_DELAY_MS} ms; driven by \`examples/bench_storm.rs\` (one task per request, released together), not wrk."
    echo
    echo "| requests | users | upstream refresh calls | wall time ms | p50 ms | p99 ms | errors | distinct tokens per user (max) | peak RSS MiB | note |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    echo "| $(sfield requests) | $(sfield users) | $(sfield upstream_refresh) | $(sfield wall_ms) | $(sfield p50_ms) | $(sfield p99_ms) | $(sfield errors) | $(sfield max_distinct_tokens_per_user) | $(mib "${PEAK[storm]:-}") | ${NOTE[storm]:-} |"
    echo
    echo "## Consent flow (scenario 6)"
    echo
    echo "connect → fake consent (form POST) → callback, $FLOW_CONCURRENCY flows at a time, each a new user (a new \`gmail_token\` row); \`examples/bench_flow.rs\`."
    echo
    echo "| table | flows | flows/s overall | flows/s per window of completed flows | errors | peak RSS MiB | note |"
    echo "|---|---|---|---|---|---|---|"
    flow_row main
    flow_row scale
    echo
    echo "## Footprint (scenario 7)"
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| RSS idle (after start, $USERS rows) | $(mib "${FOOT[idle_kib]}") MiB |"
    echo "| RSS peak over every scenario of the server (sampled every 100 ms) | $(mib "$PEAK_MAX_KIB") MiB ($PEAK_MAX_KEY) |"
    echo "| VmHWM of the $USERS-row server after scenarios 1–3, 5, 6 | $(mib "${FOOT[hwm_kib]}") MiB |"
    echo "| process start → \`/readyz\` 200, migrated database | ${FOOT[ready_ms]} ms |"
    echo "| process start → \`/readyz\` 200, empty database (all migrations run) | ${FOOT[ready_empty_ms]} ms |"
    echo
    echo "## Ratios (same run) and targets"
    echo
    echo "| target | measured | verdict |"
    echo "|---|---|---|"
    target "\`/healthz\` ≥ 0.8 × bare server req/s (2a ÷ 0)" "$(ratio "${RPS[healthz]}" "${RPS[bare]}") ×" ge "$(ratio "${RPS[healthz]}" "${RPS[bare]}")" 0.8
    target "token API ≥ 0.85 × \`/healthz\` req/s (1 ÷ 2a)" "$(ratio "${RPS[token]}" "${RPS[healthz]}") ×" ge "$(ratio "${RPS[token]}" "${RPS[healthz]}")" 0.85
    echo "| token API ÷ bare server req/s (1 ÷ 0; no target) | $(ratio "${RPS[token]}" "${RPS[bare]}") × | — |"
    target "token API p99 ≤ 2 × \`/healthz\` p99" "$(ratio "${P99[token]}" "${P99[healthz]}") × (${P99[token]} / ${P99[healthz]} ms)" le "$(ratio "${P99[token]}" "${P99[healthz]}")" 2
    target "token API ≥ pgbench single-row tps (1 ÷ 2b)" "$(ratio "${RPS[token]}" "${RPS[pgbench]}") ×" ge "$(ratio "${RPS[token]}" "${RPS[pgbench]}")" 1.0
    if [ -n "$SCALE_SIZES" ]; then
        target "database path ≥ 0.5 × pgbench single-row tps (4a ÷ 2b)" "$(ratio "${RPS[scale_all]}" "${RPS[pgbench]}") ×" ge "$(ratio "${RPS[scale_all]}" "${RPS[pgbench]}")" 0.5
    fi
    target "status API ≥ 0.5 × token API req/s (3 ÷ 1)" "$(ratio "${RPS[status]}" "${RPS[token]}") ×" ge "$(ratio "${RPS[status]}" "${RPS[token]}")" 0.5
    if [ -n "$SCALE_SIZES" ]; then
        target "$USERS hot users in the $SCALE_ROWS-row table (4b ÷ 1): p50 ≤ 1.2 × / req/s ≥ 0.83 ×" \
            "$(ratio "${P50[scale_hot]}" "${P50[token]}") × / $(ratio "${RPS[scale_hot]}" "${RPS[token]}") ×" \
            hot_met
    fi
    target "peak RSS ≤ 100 MiB in every scenario of the server (highest shown; per scenario in the tables)" "$(mib "$PEAK_MAX_KIB") MiB ($PEAK_MAX_KEY)" [ "$PEAK_MAX_KIB" -le 102400 ]
    target "idle RSS < 30 MiB" "$(mib "${FOOT[idle_kib]}") MiB" [ "${FOOT[idle_kib]}" -lt 30720 ]
    target "start → ready < 1 s" "${FOOT[ready_ms]} ms" [ "${FOOT[ready_ms]}" -lt 1000 ]
    target "storm: upstream refresh calls = $STORM_USERS" "$(sfield upstream_refresh)" [ "$(sfield upstream_refresh)" = "$STORM_USERS" ]
    target "storm: wall < 3 × ${STORM_DELAY_MS} ms × ⌈$STORM_USERS ÷ $REFRESH_CONCURRENCY refreshes at once⌉ = ${STORM_BUDGET_MS} ms" \
        "$(sfield wall_ms) ms" awk -v a="$(sfield wall_ms)" -v b="$STORM_BUDGET_MS" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'
    target "zero errors in every scenario" "${#FAILURES[@]} failing" [ "${#FAILURES[@]}" = 0 ]
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
