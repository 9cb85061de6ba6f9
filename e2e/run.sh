#!/usr/bin/env bash
# Browser end-to-end tests of the Gmail Passport 재인증 journey.
#
# Builds the binary, creates a fresh database, starts `auth-server demo`
# (the service, a fake Google and the demo sign-in page) on two free local
# ports, runs the journeys in e2e/tests/ with node's test runner and headless
# Chromium (Debian's /usr/bin/chromium, driven by playwright-core; nothing is
# downloaded), then stops the demo and drops the database.
#
# Needs: the Rust toolchain, PostgreSQL (found or started as scripts/db.sh
# does), psql, node >= 20 with npm, and chromium. Prints a closing line
# `e2e: N passed, M failed` and exits non-zero when a journey fails.
#
# Settings (all optional): E2E_CHROMIUM (default /usr/bin/chromium),
# E2E_PORT / E2E_FAKE_PORT (default: two free ports), E2E_SCREENSHOT_DIR
# (default docs/screenshots), E2E_SKIP_BUILD=1 (use the existing binary),
# E2E_TIMEOUT (seconds for the whole test run, default 600); CARGO_TARGET_DIR
# is honoured.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { say "$*"; echo "e2e: 0 passed, 1 failed"; exit 1; }

CHROMIUM="${E2E_CHROMIUM:-/usr/bin/chromium}"
command -v node >/dev/null 2>&1 || die "node is not installed (apt-get install -y nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install -y npm)"
command -v psql >/dev/null 2>&1 || die "psql is not installed (apt-get install -y postgresql-client)"
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM (apt-get install -y chromium, or set E2E_CHROMIUM)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: playwright-core needs node >= 20"
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=ko 2>/dev/null | head -n 1)" ]; then
    say "warning: no Korean font installed; screenshots will show boxes instead of Hangul (apt-get install -y fonts-noto-cjk)"
fi

if [ "${E2E_SKIP_BUILD:-}" != 1 ]; then
    say "building"
    SQLX_OFFLINE=true cargo build --locked
fi
bin="${CARGO_TARGET_DIR:-$root/target}/debug/auth-server"
[ -x "$bin" ] || die "no binary at $bin (run without E2E_SKIP_BUILD)"

# shellcheck source=scripts/db.sh
. scripts/db.sh
ensure_database_server || die "no PostgreSQL server (see scripts/db.sh)"

work="$(mktemp -d /tmp/auth-server-e2e.XXXXXX)"
db="auth_server_e2e_$$"
demo_pid=""
created_db=""

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
    local status=$?
    set +e
    if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -TERM "$demo_pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$demo_pid" 2>/dev/null
        wait "$demo_pid" 2>/dev/null
    fi
    if [ -n "$created_db" ]; then
        psql "$ADMIN_DATABASE_URL" -Xqc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 ||
            psql "$ADMIN_DATABASE_URL" -Xqc "drop database if exists \"$db\"" >/dev/null 2>&1
    fi
    stop_throwaway
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$ADMIN_DATABASE_URL" -Xqc "create database \"$db\"" >/dev/null || die "cannot create database $db"
created_db=1
DATABASE_URL="$(printf '%s' "$ADMIN_DATABASE_URL" | sed -E "s#/[^/?]*(\\?|\$)#/$db\\1#")"

# Two free local ports, unless given.
if [ -n "${E2E_PORT:-}" ] && [ -n "${E2E_FAKE_PORT:-}" ]; then
    port="$E2E_PORT"; fake_port="$E2E_FAKE_PORT"
else
    read -r port fake_port < <(node -e '
      const net = require("node:net");
      const take = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); });
      Promise.all([take(), take()]).then((ss) => { console.log(ss.map((s) => s.address().port).join(" ")); ss.forEach((s) => s.close()); });')
fi
base="http://127.0.0.1:$port"
fake="http://127.0.0.1:$fake_port"
key="e2e-internal-api-key-0123456789"
secret="e2e-session-jwt-secret-0123456789abcdef"

say "starting auth-server demo on $base (fake Google $fake), database $db"
# From an empty directory, so that no developer's .env is read.
(
    cd "$work"
    unset GMAIL_PASSPORT_SCOPES TOKEN_ENCRYPTION_KEYS
    export DATABASE_URL INTERNAL_API_KEYS="$key" SESSION_JWT_SECRET="$secret" RUST_LOG=warn
    exec "$bin" demo --bind "127.0.0.1:$port" --fake-bind "127.0.0.1:$fake_port"
) >"$work/demo.log" 2>&1 &
demo_pid=$!

ready=""
for _ in $(seq 1 120); do
    if ! kill -0 "$demo_pid" 2>/dev/null; then
        cat "$work/demo.log" >&2
        die "auth-server demo exited before it was ready"
    fi
    if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$base/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
[ -n "$ready" ] || { cat "$work/demo.log" >&2; die "auth-server demo was not ready after 60 s"; }

if [ ! -d e2e/node_modules/playwright-core ]; then
    say "installing node packages (npm ci)"
    (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

say "running the journeys"
tap="$work/results.tap"
set +e
(
    cd e2e
    export E2E_BASE_URL="$base" E2E_FAKE_URL="$fake" E2E_INTERNAL_API_KEY="$key" \
        E2E_DATABASE_URL="$DATABASE_URL" E2E_CHROMIUM="$CHROMIUM" \
        E2E_SCREENSHOT_DIR="${E2E_SCREENSHOT_DIR:-$root/docs/screenshots}"
    timeout "${E2E_TIMEOUT:-600}" node --test --test-concurrency=1 \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$tap" \
        tests/*.test.mjs
)
status=$?
set -e

passed="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n 1)"
failed="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n 1)"
passed="${passed:-0}"
failed="${failed:-0}"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    say "demo log (last 40 lines):"
    tail -n 40 "$work/demo.log" >&2
    [ "$status" -ne 0 ] || status=1
    [ "$failed" -ne 0 ] || [ "$passed" -ne 0 ] || failed=1
fi
echo "e2e: $passed passed, $failed failed"
exit "$status"
