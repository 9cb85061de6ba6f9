#!/usr/bin/env bash
# Run `auth-server demo`: the service, a fake Google and a demo sign-in page.
# Uses DATABASE_URL's server, the local one, or a throwaway one.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/db.sh
. scripts/db.sh
ensure_database_server
DATABASE_URL="$(printf '%s' "$ADMIN_DATABASE_URL" | sed -E 's#/[^/?]*(\?|$)#/auth_server_demo\1#')"
export DATABASE_URL SQLX_OFFLINE=true
cargo run --locked -- demo "$@"
