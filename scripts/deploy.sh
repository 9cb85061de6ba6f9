#!/usr/bin/env bash
# Deploy auth-server on this host with Docker Compose, and put the previous
# version back by itself when the new one does not become ready.
#
#   scripts/deploy.sh             deploy the commit checked out here
#   DEPLOY_IMAGE=auth-server:ci-<sha> scripts/deploy.sh
#                                 the same with an image built beforehand
#                                 (the image job of ci.yml): no build, only
#                                 the swap and the wait for /readyz
#   scripts/deploy.sh --restart   recreate the container from the image it runs
#                                 (after a change of .env / AUTH_SERVER_ENV)
#   scripts/deploy.sh --rollback  swap in the previous image (and back on failure)
#
# Run by the `deploy` job of .gitea/workflows/ci.yml (after the tests pass on
# a push to main) and by .gitea/workflows/deploy.yml (manual restart or
# rollback), on the server's runner. Operators may run it by hand the same
# way: docs/operations.md.
#
# A deploy:
#  1. copies the checked-out commit (`git archive HEAD`) into $DEPLOY_DIR,
#     replacing everything there except .env, .env.previous,
#     docker-compose.override.yml and backups/;
#  2. writes $DEPLOY_DIR/.env from $AUTH_SERVER_ENV when that is set (mode
#     0600; the old one is kept as .env.previous), else uses the .env there;
#  3. tags the image of the running container as <image>:previous;
#  4. docker compose build auth-server (a failed build changes nothing), or,
#     with $DEPLOY_IMAGE, tags that image as the service's image instead;
#  5. docker compose up -d auth-server (serve applies the migrations at start);
#  6. waits up to $READY_TIMEOUT seconds for $READY_URL to answer 200;
#  7. if it does not: prints the failed container's logs, puts the previous
#     image (and .env) back, starts it, checks it, and exits 1.
#
# docker-compose.override.yml in $DEPLOY_DIR (kept across deploys) is applied
# on top of docker-compose.yml, as `docker compose` itself would.
#
# Environment:
#   DEPLOY_DIR         the Compose project directory (default /srv/auth-server)
#   AUTH_SERVER_ENV    content for .env; unset or empty: keep the existing .env
#   DEPLOY_IMAGE       an image already built from this commit (deploy only);
#                      unset: build it here. Its tag is removed once it
#                      serves, with the ci-* tags of older images.
#   READY_URL          readiness URL (default http://127.0.0.1:51123/readyz)
#   READY_TIMEOUT      seconds to wait for it (default 60)
#
# Needs: bash, git, docker with the Compose plugin (v2.24+), curl, flock.
set -euo pipefail

DEPLOY_DIR="${DEPLOY_DIR:-/srv/auth-server}"
READY_URL="${READY_URL:-http://127.0.0.1:51123/readyz}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
SERVICE=auth-server
# Entries of $DEPLOY_DIR that a deploy never replaces.
KEEP=(.env .env.previous .env.new docker-compose.override.yml backups .deploy.lock .auth-server-deploy)

mode=deploy
case "${1:-}" in
    "") ;;
    --restart) mode=restart ;;
    --rollback) mode=rollback ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

say() { printf '\n== %s\n' "$*"; }
fail() {
    printf '\n::error::%s\n' "$*" >&2
    printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    printf '!!! DEPLOY FAILED: %s\n' "$*" >&2
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    exit 1
}

for tool in git docker curl; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not installed on this host"
done
docker compose version >/dev/null 2>&1 || fail "the Docker Compose plugin ('docker compose') is missing"

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$DEPLOY_DIR"
DEPLOY_DIR="$(cd "$DEPLOY_DIR" && pwd)"
case "$DEPLOY_DIR" in
    / | /root | /home | "$HOME") fail "refusing to deploy into $DEPLOY_DIR" ;;
esac

# One deploy at a time on this host, whatever started it.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$DEPLOY_DIR/.deploy.lock"
    if ! flock -n 9; then
        echo "another deploy is running; waiting for it (at most 15 minutes)"
        flock -w 900 9 || fail "another deploy still holds $DEPLOY_DIR/.deploy.lock"
    fi
else
    echo "warning: flock is missing; deploys are not serialized" >&2
fi

compose() {
    local files=(-f "$DEPLOY_DIR/docker-compose.yml")
    if [ -f "$DEPLOY_DIR/docker-compose.override.yml" ]; then
        files+=(-f "$DEPLOY_DIR/docker-compose.override.yml")
    fi
    docker compose --project-directory "$DEPLOY_DIR" "${files[@]}" "$@"
}

# Copy the checked-out commit into $DEPLOY_DIR (not when running from there).
sync_tree() {
    if [ "$src_dir" -ef "$DEPLOY_DIR" ]; then
        echo "running from $DEPLOY_DIR itself: deploying the tree that is there"
        return
    fi
    git -C "$src_dir" rev-parse --verify -q HEAD >/dev/null || fail "$src_dir is not a git checkout"
    local rev foreign=() entry name keep k
    rev="$(git -C "$src_dir" rev-parse HEAD)"
    # Never wipe a directory that deploy.sh did not create.
    if [ ! -e "$DEPLOY_DIR/.auth-server-deploy" ]; then
        for entry in "$DEPLOY_DIR"/* "$DEPLOY_DIR"/.[!.]* "$DEPLOY_DIR"/..?*; do
            [ -e "$entry" ] || continue
            name="$(basename "$entry")"
            keep=0
            for k in "${KEEP[@]}"; do [ "$name" = "$k" ] && keep=1; done
            [ "$keep" = 1 ] || foreign+=("$name")
        done
        [ "${#foreign[@]}" -eq 0 ] ||
            fail "$DEPLOY_DIR holds files that deploy.sh did not put there (${foreign[*]}); empty it or choose another DEPLOY_DIR"
        touch "$DEPLOY_DIR/.auth-server-deploy"
    fi
    say "copying $rev into $DEPLOY_DIR"
    local prune=(find "$DEPLOY_DIR" -mindepth 1 -maxdepth 1)
    for k in "${KEEP[@]}"; do prune+=(! -name "$k"); done
    "${prune[@]}" -exec rm -rf -- {} +
    git -C "$src_dir" archive --format=tar HEAD | tar -x -C "$DEPLOY_DIR"
    echo "$rev" >"$DEPLOY_DIR/REVISION"
}

# Write .env from $AUTH_SERVER_ENV; sets env_changed=1 when it changed.
env_changed=0
write_env() {
    local env="$DEPLOY_DIR/.env"
    if [ -z "${AUTH_SERVER_ENV:-}" ]; then
        [ -f "$env" ] || fail "no $env and AUTH_SERVER_ENV is empty: create it from .env.example or set the AUTH_SERVER_ENV secret"
        chmod 600 "$env"
        echo "using the existing $env"
        return
    fi
    (umask 077 && printf '%s\n' "$AUTH_SERVER_ENV" >"$env.new")
    if [ -f "$env" ] && cmp -s "$env" "$env.new"; then
        rm -f "$env.new"
        echo ".env is unchanged"
        return
    fi
    if [ -f "$env" ]; then cp -p "$env" "$env.previous"; fi
    mv -f "$env.new" "$env"
    env_changed=1
    echo "wrote $env from AUTH_SERVER_ENV (the old one is .env.previous)"
}

restore_env() {
    if [ "$env_changed" = 1 ] && [ -f "$DEPLOY_DIR/.env.previous" ]; then
        cp -p "$DEPLOY_DIR/.env.previous" "$DEPLOY_DIR/.env"
        echo "restored the previous .env"
    fi
}

# The image name:tag the service runs, and its :previous companion.
image_names() {
    image="$(compose config --images "$SERVICE" 2>/dev/null | head -n 1)"
    image="${image:-auth-server:latest}"
    local last="${image##*/}"
    if [[ "$last" == *:* ]]; then previous="${image%:*}:previous"; else previous="$image:previous"; fi
}

running_image_id() {
    local cid
    cid="$(compose ps -a -q "$SERVICE" 2>/dev/null | head -n 1)"
    if [ -n "$cid" ]; then docker inspect -f '{{.Image}}' "$cid" 2>/dev/null || true; fi
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT)) code
    echo "waiting up to ${READY_TIMEOUT}s for $READY_URL"
    while :; do
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$READY_URL" 2>/dev/null || true)"
        if [ "$code" = 200 ]; then
            echo "ready after $((SECONDS + READY_TIMEOUT - deadline))s"
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "not ready after ${READY_TIMEOUT}s (last answer: ${code:-none})"
            return 1
        fi
        sleep 1
    done
}

# Start the service from the image tagged $image (recreating it when the image
# or its settings changed, or always with --force-recreate) and check it.
start_and_check() {
    compose up -d --no-build "$@" "$SERVICE" && wait_ready
}

# After a deploy of $DEPLOY_IMAGE: remove its tag (the image stays as $image)
# and the ci-* tags of images older than it (runs that failed or were
# superseded), so that they can be pruned.
drop_ci_tags() {
    [ -n "${DEPLOY_IMAGE:-}" ] || return 0
    local created tag
    created="$(docker image inspect -f '{{.Created}}' "$image" 2>/dev/null)" || return 0
    if [ "$DEPLOY_IMAGE" != "$image" ] && [ "$DEPLOY_IMAGE" != "$previous" ]; then
        docker rmi "$DEPLOY_IMAGE" >/dev/null 2>&1 || true
    fi
    docker image ls --format '{{.Repository}}:{{.Tag}}' "${DEPLOY_IMAGE%:*}" 2>/dev/null |
        while read -r tag; do
            [[ "$tag" == *:ci-* ]] || continue
            if [[ "$(docker image inspect -f '{{.Created}}' "$tag" 2>/dev/null)" < "$created" ]]; then
                docker rmi "$tag" >/dev/null 2>&1 || true
            fi
        done
}

show_logs() {
    say "last 200 log lines of $SERVICE"
    compose logs --no-color --tail 200 "$SERVICE" || true
    compose ps -a || true
}

cd "$DEPLOY_DIR"
if [ "$mode" != deploy ] && [ ! -f "$DEPLOY_DIR/docker-compose.yml" ]; then
    fail "nothing is deployed in $DEPLOY_DIR yet (no docker-compose.yml)"
fi

case "$mode" in
deploy)
    sync_tree
    write_env
    image_names
    prev_id="$(running_image_id)"
    [ -n "$prev_id" ] || prev_id="$(image_id "$image")"
    if [ -n "$prev_id" ]; then
        docker tag "$prev_id" "$previous"
        echo "kept the running image ${prev_id:7:12} as $previous"
    else
        echo "first deploy: there is no previous image to fall back to"
    fi

    if [ -n "${DEPLOY_IMAGE:-}" ]; then
        new_id="$(image_id "$DEPLOY_IMAGE")"
        if [ -z "$new_id" ]; then
            restore_env
            fail "there is no image $DEPLOY_IMAGE to deploy; nothing was changed"
        fi
        docker tag "$new_id" "$image"
        echo "deploying the image built beforehand, $DEPLOY_IMAGE (${new_id:7:12}), as $image"
    else
        say "building $image"
        if ! compose build "$SERVICE"; then
            restore_env
            fail "the image did not build; nothing was changed"
        fi
    fi

    say "starting $image ($(image_id "$image" | cut -c8-19))"
    if start_and_check; then
        drop_ci_tags
        docker image prune -f --filter "label=org.opencontainers.image.title=auth-server" >/dev/null 2>&1 || true
        say "deployed $(cat "$DEPLOY_DIR/REVISION" 2>/dev/null || echo 'the tree in '"$DEPLOY_DIR")"
        compose ps
        exit 0
    fi

    show_logs
    if [ -z "$prev_id" ]; then
        fail "the new version did not become ready and there is no previous version to roll back to"
    fi
    say "rolling back to $previous (${prev_id:7:12})"
    restore_env
    docker tag "$prev_id" "$image"
    if start_and_check; then
        fail "the new version did not become ready; rolled back to the previous image, which is serving"
    fi
    show_logs
    fail "the new version did not become ready, and neither did the previous one after the rollback (a migration of the new version? see docs/operations.md, 'Rollback')"
    ;;

restart)
    image_names
    [ -n "$(image_id "$image")" ] || fail "there is no image $image to restart; deploy first"
    write_env
    say "recreating $SERVICE from $image"
    if start_and_check --force-recreate; then
        say "restarted"
        compose ps
        exit 0
    fi
    show_logs
    if [ "$env_changed" = 1 ]; then
        restore_env
        if start_and_check --force-recreate; then
            fail "the service did not become ready with the new .env; the previous .env is back and serving"
        fi
        show_logs
    fi
    fail "the service did not become ready after the restart"
    ;;

rollback)
    image_names
    cur_id="$(running_image_id)"
    [ -n "$cur_id" ] || cur_id="$(image_id "$image")"
    prev_id="$(image_id "$previous")"
    [ -n "$prev_id" ] || fail "there is no $previous image to roll back to"
    [ "$prev_id" != "$cur_id" ] || fail "$previous is the image that already runs; nothing to roll back to"
    say "rolling back: $image becomes ${prev_id:7:12}; ${cur_id:7:12} becomes $previous"
    docker tag "$prev_id" "$image"
    [ -z "$cur_id" ] || docker tag "$cur_id" "$previous"
    if start_and_check; then
        say "rolled back"
        compose ps
        exit 0
    fi
    show_logs
    if [ -n "$cur_id" ]; then
        say "the previous image did not become ready; putting ${cur_id:7:12} back"
        docker tag "$cur_id" "$image"
        docker tag "$prev_id" "$previous"
        if start_and_check; then
            fail "the previous image did not become ready (a newer migration? see docs/operations.md); the image that ran before is back and serving"
        fi
        show_logs
    fi
    fail "the rollback did not become ready, and neither did the image that ran before"
    ;;
esac
