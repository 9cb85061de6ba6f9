#!/usr/bin/env bash
# A short run of every benchmark scenario (about 30 s after the build) that
# proves the suite still works: 1,000 users, 2 s per scenario, a 20,000-row
# scale table, a 100-request storm over 10 users, 200 consent flows. Exits
# non-zero if a scenario had errors or the storm's upstream count is wrong;
# its numbers mean nothing. For CI, `BENCH_PROFILE=dev bench/smoke.sh` reuses
# the test build instead of a release build.
set -euo pipefail
exec "$(dirname "$0")/run.sh" --smoke "$@"
