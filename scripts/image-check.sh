#!/usr/bin/env bash
# Build the Docker image and run it for real on this machine (CI: .ci/run).
#
#   scripts/image-check.sh            the whole check (below)
#   scripts/image-check.sh --help     this text
#
# 1. Engine. Uses the running Docker engine, or starts Debian's dockerd with
#    no bridge and no iptables (--bridge=none --iptables=false): only
#    loopback traffic is allowed here, so every build and container uses the
#    host network. The engine started here is stopped at the end.
# 2. Base images. No image registry is reachable, so the two bases the
#    Dockerfile names are made from Debian packages of the same release and
#    tagged with the Dockerfile's names (the SAME Dockerfile builds here and on
#    the server): debian:<release>-slim (mmdebstrap of the host's apt
#    sources, `docker import`), and rust:<version>-slim-<release> (that base
#    plus gcc, libc6-dev, ca-certificates and this machine's rustup toolchain
#    of the Dockerfile's Rust version, where the official image has them:
#    RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo). The host's
#    own CA certificates (/usr/local/share/ca-certificates) go into the
#    builder base, so that cargo reaches the registry through this machine's
#    TLS inspection. Both carry a label with what they were made from, and
#    are made again only when that changes.
# 3. Build: `docker build --network host` (BuildKit when the client has it),
#    timed; prints the image's size and layer count.
# 4. Run against the local PostgreSQL (a fresh database imagecheck_<pid>,
#    dropped at the end), with the fake Google from the same image
#    (`auth-server fake-google`), on free loopback ports: the HEALTHCHECK
#    turns healthy, the process runs as a non-root uid, /readyz answers 200,
#    a full consent flow (connect → the fake consent page → its form →
#    callback → item page "connected" → the token API hands out a token),
#    and SIGTERM stops it with exit status 0 within the grace period.
# 5. Rollback: scripts/deploy.sh, with Docker Compose, deploys the image, then
#    a deliberately broken one (it exits at start); deploy.sh must fail, roll
#    back by itself, and the previous image answer /readyz again. Timed.
#    Compose v2 (2.24+ is needed for docker-compose.yml) is used when
#    installed; else Debian's docker-compose v2 package of the next release
#    is unpacked into the cache (not installed); where that fails too, this
#    part is skipped and says so.
#
# Exit status: 0 checked and healthy; 1 a check failed; 3 no Docker engine
# could be used (says why, and that the image was NOT checked).
#
# Environment:
#   IMAGE_CHECK_PG_URL   PostgreSQL server (default: the one scripts/db.sh finds
#                        or starts, as for the tests; usually
#                        postgres://postgres@127.0.0.1:5432)
#   IMAGE_CHECK_CACHE    cache for the base root file system and Compose
#                        (default ~/.cache/auth-server-image)
#   IMAGE_CHECK_IMAGE    tag of the image built (default auth-server:imagecheck)
#
# Needs: bash, curl, openssl, psql; docker.io and mmdebstrap (Debian
# packages; .ci/run installs them) unless an engine runs and the bases exist.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

PG_URL="${IMAGE_CHECK_PG_URL:-}"
# Only the local engine: a DOCKER_HOST or context elsewhere is not used.
unset DOCKER_HOST DOCKER_CONTEXT
CACHE="${IMAGE_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/auth-server-image}"
IMAGE="${IMAGE_CHECK_IMAGE:-auth-server:imagecheck}"
# Bump when the way the bases are made changes: they are made again.
BASE_RECIPE=1
BASE_LABEL=org.auth-server.image-check.base
# The grace period of docker-compose.yml (stop_grace_period).
GRACE=30

case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-check: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

t0=$SECONDS
say() { printf '\n== [%3ds] %s\n' "$((SECONDS - t0))" "$*"; }
fail() {
    printf '\nimage-check: FAILED: %s\n' "$*" >&2
    exit 1
}
engine_unavailable=""
not_checked() {
    engine_unavailable=1
    printf '\nimage-check: %s\n' "$*" >&2
    printf 'image-check: no Docker engine: the image was NOT checked\n' >&2
    exit 3
}

# --- cleanup ------------------------------------------------------------------

work="$(mktemp -d)"
containers=()
database=""
started_engine=""
deploy_dir=""
cleanup() {
    local rc=$? c
    set +e
    # Exit status 3 means only "no engine"; any other failure is 1.
    if [ "$rc" = 3 ] && [ -z "$engine_unavailable" ]; then rc=1; fi
    for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
    if [ -n "$deploy_dir" ] && [ -f "$deploy_dir/docker-compose.yml" ]; then
        compose_in "$deploy_dir" down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1
    fi
    if [ -n "$database" ]; then
        psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1
    fi
    if [ -n "$started_engine" ]; then
        echo "stopping the Docker engine started by this check (pid $started_engine)"
        kill "$started_engine" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 "$started_engine" 2>/dev/null || break; sleep 1; done
        kill -9 "$started_engine" 2>/dev/null
    fi
    if declare -F stop_throwaway >/dev/null; then stop_throwaway; fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS WHAT COMMAND...: run COMMAND every second until it
# succeeds; fails the check after SECONDS.
wait_for() {
    local limit="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
    echo "$what after $((SECONDS + limit - deadline))s"
}

# --- 1. the engine ------------------------------------------------------------

# One check at a time on this machine: they share the engine and its tags.
mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -w 1800 8; then
    fail "another image check still runs (lock $CACHE/.lock)"
fi

engine() {
    say "Docker engine"
    command -v docker >/dev/null 2>&1 || not_checked "the docker client is not installed (Debian package docker.io)"
    if docker info >/dev/null 2>&1; then
        echo "using the running engine ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
        return
    fi
    command -v dockerd >/dev/null 2>&1 || not_checked "no engine runs and dockerd is not installed (Debian package docker.io)"
    [ "$(id -u)" = 0 ] || not_checked "no engine runs, and starting dockerd needs root"
    mkdir -p "$CACHE/engine"
    # No bridge, no NAT: nothing may reach a private-range address here.
    dockerd --bridge=none --iptables=false --ip-masq=false \
        --pidfile "$CACHE/engine/dockerd.pid" >"$CACHE/engine/dockerd.log" 2>&1 &
    started_engine=$!
    if ! wait_for 60 "engine up" docker info >/dev/null 2>&1; then
        tail -n 20 "$CACHE/engine/dockerd.log" >&2
        if kill -0 "$started_engine" 2>/dev/null; then
            kill "$started_engine" 2>/dev/null
            wait "$started_engine" 2>/dev/null || true
        fi
        started_engine=""
        not_checked "dockerd did not start within 60 s (its log above)"
    fi
    echo "started dockerd $(docker version -f '{{.Server.Version}}') (pid $started_engine; log $CACHE/engine/dockerd.log)"
}

# The build command: BuildKit (as on the server) when this client has it.
build_cmd=()
builder() {
    if docker buildx version >/dev/null 2>&1; then
        build_cmd=(docker build --progress plain)
        return
    fi
    local cli major
    for cli in docker /usr/bin/docker; do
        command -v "$cli" >/dev/null 2>&1 || continue
        major="$("$cli" version -f '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)"
        # Clients before 23 talk to the engine's own BuildKit without buildx.
        if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then
            build_cmd=(env DOCKER_BUILDKIT=1 "$cli" build --progress plain)
            return
        fi
    done
    echo "no BuildKit client here (no buildx plugin): the legacy builder is used"
    build_cmd=(env DOCKER_BUILDKIT=0 docker build)
}

# --- 2. the base images -------------------------------------------------------

dockerfile_arg() { sed -n "s/^ARG $1=//p" Dockerfile | head -n 1; }

label_of() { docker image inspect -f "{{index .Config.Labels \"$BASE_LABEL\"}}" "$1" 2>/dev/null || true; }

host_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        if [ -s "$f" ]; then echo "$f"; fi
    done
}

bases() {
    say "base images"
    local release rust_version runtime_tag builder_tag sources key_rt key_b
    release="$(dockerfile_arg DEBIAN_RELEASE)"
    rust_version="$(dockerfile_arg RUST_VERSION)"
    [ -n "$release" ] && [ -n "$rust_version" ] || fail "Dockerfile: ARG DEBIAN_RELEASE / RUST_VERSION not found"
    runtime_tag="debian:$release-slim"
    builder_tag="rust:$rust_version-slim-$release"

    mapfile -t sources < <(host_sources)
    [ "${#sources[@]}" -gt 0 ] || fail "no apt sources on this host to make the $release base from"
    grep -hqE "(^|[[:space:]])$release([[:space:]]|$)" "${sources[@]}" ||
        fail "the host's apt sources (${sources[*]}) are not $release, the Dockerfile's release"
    key_rt="recipe$BASE_RECIPE;$release;$(cat "${sources[@]}" | sha256sum | cut -c1-16)"

    if [ "$(label_of "$runtime_tag")" = "$key_rt" ]; then
        echo "$runtime_tag: up to date ($key_rt)"
    else
        local rootfs
        rootfs="$CACHE/rootfs-$(printf '%s' "$key_rt" | sha256sum | cut -c1-16).tar"
        if [ ! -s "$rootfs" ]; then
            command -v mmdebstrap >/dev/null 2>&1 || fail "mmdebstrap is not installed (Debian package mmdebstrap)"
            echo "making $runtime_tag with mmdebstrap (minbase, the host's apt sources)"
            rm -rf "$CACHE"/rootfs-*
            local start=$SECONDS
            # Like the official slim image: no documentation, manuals or
            # translations, no apt lists. ("$1" is for the hook's shell.)
            # shellcheck disable=SC2016
            mmdebstrap --quiet --variant=minbase \
                --dpkgopt='path-exclude=/usr/share/doc/*' \
                --dpkgopt='path-exclude=/usr/share/man/*' \
                --dpkgopt='path-exclude=/usr/share/info/*' \
                --dpkgopt='path-exclude=/usr/share/locale/*' \
                --dpkgopt='path-include=/usr/share/locale/locale.alias' \
                --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
                "$release" "${rootfs%.tar}.part.tar" "${sources[@]}" || fail "mmdebstrap failed"
            mv "${rootfs%.tar}.part.tar" "$rootfs"
            echo "mmdebstrap took $((SECONDS - start))s"
        fi
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            --change "LABEL $BASE_LABEL=\"$key_rt\"" \
            "$rootfs" "$runtime_tag" >/dev/null || fail "docker import failed"
        echo "$runtime_tag: imported ($key_rt)"
    fi

    # The host's toolchain of the Dockerfile's Rust version.
    command -v rustup >/dev/null 2>&1 || fail "rustup is not installed: the builder base takes this machine's Rust $rust_version toolchain"
    local tc sysroot="" version=""
    for tc in $(rustup toolchain list | cut -d' ' -f1); do
        case "$tc" in
            "$rust_version"-* | "$rust_version".*-* | stable-*) ;;
            *) continue ;;
        esac
        local root
        root="$(rustup run "$tc" rustc --print sysroot 2>/dev/null)" || continue
        version="$("$root/bin/rustc" --version | cut -d' ' -f2)"
        if [ "$version" = "$rust_version" ] || [[ "$version" == "$rust_version".* ]]; then
            sysroot="$(cd "$root" && pwd -P)"
            break
        fi
    done
    [ -n "$sysroot" ] || fail "no rustup toolchain of Rust $rust_version here (the Dockerfile's rust:$rust_version): rustup toolchain install $rust_version --profile minimal"
    local cas=()
    mapfile -t cas < <(find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null | sort)
    key_b="$key_rt;rust $version;$("$sysroot/bin/rustc" -vV | sha256sum | cut -c1-12);ca $(cat /dev/null "${cas[@]}" | sha256sum | cut -c1-12)"
    if [ "$(label_of "$builder_tag")" = "$key_b" ]; then
        echo "$builder_tag: up to date ($key_b)"
        return
    fi
    echo "making $builder_tag from $runtime_tag and the toolchain in $sysroot"
    local ctx="$work/builder-base" name="$version-x86_64-unknown-linux-gnu" start=$SECONDS
    mkdir -p "$ctx/rustup/toolchains/$name" "$ctx/local-ca"
    tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$ctx/rustup/toolchains/$name" -xf -
    chmod -R a+w "$ctx/rustup"
    cp "$(command -v rustup)" "$ctx/rustup-init"
    if [ "${#cas[@]}" -gt 0 ]; then cp "${cas[@]}" "$ctx/local-ca/"; fi
    cat >"$ctx/Dockerfile" <<EOF
FROM $runtime_tag
ENV RUSTUP_HOME=/usr/local/rustup \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$version
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY rustup /usr/local/rustup
COPY rustup-init /usr/local/cargo/bin/rustup
RUN set -eu; cd /usr/local/cargo/bin; \\
    for t in cargo cargo-clippy cargo-fmt clippy-driver rust-gdb rust-gdbgui rust-lldb rustc rustdoc rustfmt; do ln -s rustup "\$t"; done; \\
    printf 'version = "12"\\ndefault_toolchain = "$name"\\nprofile = "minimal"\\nauto_self_update = "disable"\\n' >/usr/local/rustup/settings.toml; \\
    chmod a+w /usr/local/rustup /usr/local/rustup/settings.toml /usr/local/cargo /usr/local/cargo/bin; \\
    cargo --version; rustc --version
LABEL $BASE_LABEL="$key_b"
EOF
    "${build_cmd[@]}" --network host -t "$builder_tag" "$ctx" >"$work/builder-base.log" 2>&1 || {
        tail -n 30 "$work/builder-base.log" >&2
        fail "the builder base did not build"
    }
    rm -rf "$ctx"
    echo "$builder_tag: made in $((SECONDS - start))s ($key_b)"
}

# --- 3. the build -------------------------------------------------------------

build() {
    say "docker build --network host -t $IMAGE ."
    local start=$SECONDS
    if ! "${build_cmd[@]}" --network host -t "$IMAGE" . >"$work/build.log" 2>&1; then
        tail -n 60 "$work/build.log" >&2
        fail "docker build failed (the log's end above)"
    fi
    build_secs=$((SECONDS - start))
    grep -E '^#[0-9]+ (CACHED|DONE [0-9.]+s)|Compiling auth-server|Finished' "$work/build.log" | tail -n 5 || true
    size_bytes="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
    layers="$(docker image inspect -f '{{len .RootFS.Layers}}' "$IMAGE")"
    size_mb="$(awk -v b="$size_bytes" 'BEGIN { printf "%.1f", b / 1e6 }')"
    echo "built in ${build_secs}s: $IMAGE is $size_mb MB in $layers layers"
    docker run --rm --network none "$IMAGE" --version
}

# --- 4. run it ----------------------------------------------------------------

# A loopback port nothing listens on.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    fail "no free port found"
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# A ro-being session: HS256 JWT {sub, iat, exp}.
session_jwt() {
    local secret="$1" sub="$2" now header payload sig
    now="$(date +%s)"
    header="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)"
    payload="$(printf '{"sub":"%s","iat":%d,"exp":%d}' "$sub" "$now" "$((now + 600))" | b64url)"
    sig="$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)"
    printf '%s.%s.%s' "$header" "$payload" "$sig"
}

# settings FILE PORT FAKE_PORT DATABASE: the service's environment.
settings() {
    local file="$1" port="$2" fake="$3" db="$4" fake_base="http://127.0.0.1:$3"
    docker run --rm --network none "$IMAGE" init --skills skill-imagecheck >"$work/init.out" ||
        fail "auth-server init failed in the image"
    (
        umask 077
        grep -E '^(INTERNAL_API_KEYS|TOKEN_ENCRYPTION_KEYS)=' "$work/init.out"
        cat <<EOF
DATABASE_URL=$PG_URL/$db
BIND_ADDR=127.0.0.1:$port
PUBLIC_BASE_URL=http://127.0.0.1:$port
ALLOWED_RETURN_ORIGINS=http://127.0.0.1:$port
INVENTORY_URL=http://127.0.0.1:$port/passport/gmail
GOOGLE_CLIENT_ID=$client_id
GOOGLE_CLIENT_SECRET=$client_secret
GOOGLE_AUTH_URL=$fake_base/o/oauth2/v2/auth
GOOGLE_TOKEN_URL=$fake_base/token
GOOGLE_USERINFO_URL=$fake_base/v1/userinfo
GOOGLE_REVOKE_URL=$fake_base/revoke
GOOGLE_TOKENINFO_URL=$fake_base/tokeninfo
GOOGLE_API_BASE_URL=$fake_base
SESSION_JWT_SECRET=$jwt_secret
LOG_FORMAT=json
EOF
    ) >"$file"
}

health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null; }
is_healthy() {
    local h
    h="$(health_of "$1")"
    if [ "$h" = unhealthy ] || [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" != true ]; then
        docker logs --tail 40 "$1" >&2 || true
        fail "container $1 is $h / not running"
    fi
    [ "$h" = healthy ]
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" 2>/dev/null || true; }
answers_200() { [ "$(http_code "$1")" = 200 ]; }

# A full consent through the container: connect → fake consent page → its
# form → callback → item page, then the token API.
consent_flow() {
    local base="$1" fake_base="$2" user jwt loc page form account granted item token
    user="$(cat /proc/sys/kernel/random/uuid)"
    jwt="$(session_jwt "$jwt_secret" "$user")"
    local jar="$work/cookies" curl_=(curl -sS --max-time 10 -b "$work/cookies" -c "$work/cookies")
    printf '127.0.0.1\tFALSE\t/\tFALSE\t0\taccess_token\t%s\n' "$jwt" >"$jar"

    loc="$("${curl_[@]}" -o /dev/null -w '%{redirect_url}' "$base/passport/gmail/connect")"
    [[ "$loc" == "$fake_base/o/oauth2/v2/auth?"* ]] || fail "connect did not send the browser to the fake Google (went to '$loc')"
    echo "connect → $fake_base/o/oauth2/v2/auth?…"
    page="$("${curl_[@]}" "$loc")"
    grep -q '<form method="post" action="/o/oauth2/v2/auth">' <<<"$page" || fail "the fake consent page has no consent form"
    account="$(grep -o 'name="account" value="[^"]*" checked' <<<"$page" | head -n 1 | sed 's/.*value="\([^"]*\)".*/\1/')"
    [ -n "$account" ] || fail "the fake consent page preselects no account"
    form="${loc#*\?}&account=$(jq -rn --arg v "$account" '$v|@uri')&decision=allow"
    while read -r granted; do
        form+="&granted=$(jq -rn --arg v "$granted" '$v|@uri')"
    done < <(grep -o 'name="granted" value="[^"]*"' <<<"$page" | sed 's/.*value="\([^"]*\)"/\1/')
    echo "consent page: account $account, $(grep -c 'name="granted"' <<<"$page") scope boxes ticked"
    loc="$("${curl_[@]}" -o /dev/null -w '%{redirect_url}' --data "$form" "$fake_base/o/oauth2/v2/auth")"
    [[ "$loc" == "$base/passport/gmail/callback?"* ]] || fail "the consent form did not come back to the callback (went to '$loc')"
    echo "consent form → $base/passport/gmail/callback?…"
    loc="$("${curl_[@]}" -o "$work/callback.html" -w '%{http_code} %{redirect_url}' "$loc")"
    [[ "$loc" == 30[0-9]" $base/passport/gmail"* ]] || {
        head -c 2000 "$work/callback.html" >&2
        fail "the callback did not send the browser to the item page (answer: $loc)"
    }
    echo "callback → ${loc#* }"
    item="$("${curl_[@]}" "${loc#* }")"
    grep -q 'class="account">'"$account" <<<"$item" || fail "the item page does not show $account as connected"
    echo "item page: connected as $account"
    token="$(curl -sS --max-time 10 -H "Authorization: Bearer $internal_key" -H 'content-type: application/json' \
        --data "{\"user_id\":\"$user\",\"scopes\":[\"gmail.send\"]}" "$base/internal/passport/gmail/token")"
    [ "$(jq -r '.access_token | length > 0' <<<"$token" 2>/dev/null)" = true ] ||
        fail "the token API did not hand out a token: $token"
    echo "token API: an access token for $(jq -r .email <<<"$token"), expires $(jq -r .expires_at <<<"$token")"
}

run_checks() {
    say "run $IMAGE against PostgreSQL and the fake Google"
    command -v psql >/dev/null 2>&1 || fail "psql is needed (Debian package postgresql-client)"
    database="imagecheck_$$"
    psql -q "$PG_URL/postgres" -c "CREATE DATABASE $database" || fail "cannot create the database $database on $PG_URL"
    local port fake svc fakec start env="$work/env"
    port="$(free_port)"
    fake="$(free_port)"
    client_id="imagecheck-$(openssl rand -hex 6).apps.googleusercontent.com"
    client_secret="$(openssl rand -hex 24)"
    jwt_secret="$(openssl rand -hex 32)"
    settings "$env" "$port" "$fake" "$database"
    internal_key="$(sed -n 's/^INTERNAL_API_KEYS=//p' "$env" | cut -d, -f1)"
    docker run --rm --network host --env-file "$env" "$IMAGE" check-settings ||
        fail "the settings of the check are refused (above)"

    fakec="imagecheck-fake-$$"
    containers+=("$fakec")
    docker run -d --name "$fakec" --network host "$IMAGE" fake-google \
        --bind "127.0.0.1:$fake" --client-id "$client_id" --client-secret "$client_secret" \
        --redirect-uri "http://127.0.0.1:$port/passport/gmail/callback" >/dev/null
    svc="imagecheck-$$"
    containers+=("$svc")
    start=$SECONDS
    docker run -d --name "$svc" --network host --env-file "$env" --stop-timeout "$GRACE" "$IMAGE" >/dev/null
    echo "service on 127.0.0.1:$port (container $svc), fake Google on 127.0.0.1:$fake, database $database"
    wait_for 30 "fake Google answers" answers_200 "http://127.0.0.1:$fake/fake.css" || {
        docker logs --tail 20 "$fakec" >&2
        fail "the fake Google does not answer"
    }
    wait_for 60 "/readyz 200" answers_200 "http://127.0.0.1:$port/readyz" || {
        docker logs --tail 40 "$svc" >&2
        fail "/readyz did not answer 200 within 60 s"
    }
    wait_for 120 "HEALTHCHECK healthy" is_healthy "$svc" || {
        docker inspect -f '{{json .State.Health}}' "$svc" >&2
        fail "the HEALTHCHECK did not report healthy within 120 s"
    }
    health_secs=$((SECONDS - start))

    local uid pid
    uid="$(docker exec "$svc" id -u)"
    pid="$(docker inspect -f '{{.State.Pid}}' "$svc")"
    [ "$uid" != 0 ] && [ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" != 0 ] ||
        fail "the service runs as root"
    echo "runs as uid $uid ($(docker inspect -f '{{.Config.User}}' "$svc")), not root"

    consent_flow "http://127.0.0.1:$port" "http://127.0.0.1:$fake"

    say "SIGTERM (grace period ${GRACE}s)"
    start=$SECONDS
    docker kill -s TERM "$svc" >/dev/null
    local code
    code="$(timeout $((GRACE + 10)) docker wait "$svc")" || fail "still running $((GRACE + 10))s after SIGTERM"
    stop_secs=$((SECONDS - start))
    [ "$code" = 0 ] || { docker logs --tail 20 "$svc" >&2; fail "exit status $code after SIGTERM (want 0)"; }
    [ "$stop_secs" -lt "$GRACE" ] || fail "took ${stop_secs}s to stop (grace period ${GRACE}s)"
    echo "stopped with exit status 0 after ${stop_secs}s"
    docker rm "$svc" >/dev/null
    docker rm -f "$fakec" >/dev/null
    docker container inspect "$svc" >/dev/null 2>&1 && fail "container $svc was not removed"
    echo "containers removed"
}

# --- 5. rollback with scripts/deploy.sh --------------------------------------

compose_in() {
    docker compose --project-directory "$1" -f "$1/docker-compose.yml" \
        -f "$1/docker-compose.override.yml" "${@:2}"
}

# Docker Compose v2.24+ (docker-compose.yml needs it): the installed plugin,
# or Debian's package of the next release unpacked into the cache.
compose_ready() {
    local v
    v="$(docker compose version --short 2>/dev/null || true)"
    if [ -n "$v" ] && printf '2.24\n%s\n' "${v#v}" | sort -V -C; then
        echo "Docker Compose $v"
        return 0
    fi
    export DOCKER_CONFIG="$CACHE/docker-config"
    if [ -x "$DOCKER_CONFIG/cli-plugins/docker-compose" ]; then
        echo "Docker Compose $(docker compose version --short) (from $DOCKER_CONFIG)"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || return 1
    # Debian's docker-compose is v2 from trixie on; bookworm's is 1.29. Fetch
    # the package with apt from the host's own Debian mirror, without
    # touching the host's apt configuration, and unpack only the plugin.
    local apt="$CACHE/apt" src
    rm -rf "$apt" && mkdir -p "$apt/parts" "$apt/lists/partial" "$apt/cache/archives/partial"
    src="$(host_sources | grep '\.sources$' | head -n 1)"
    [ -n "$src" ] || return 1
    awk 'BEGIN { RS = ""; ORS = "\n\n" } /Suites:[^\n]*bookworm( |\n|$)/ { print; exit }' "$src" |
        sed 's/^Suites:.*/Suites: trixie/' >"$apt/parts/next.sources"
    [ -s "$apt/parts/next.sources" ] || return 1
    local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/parts"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
    echo "fetching Debian trixie's docker-compose (v2) package into $apt"
    timeout 300 apt-get -qq "${opts[@]}" update >/dev/null 2>&1 || return 1
    (cd "$apt" && timeout 300 apt-get -qq "${opts[@]}" download docker-compose >/dev/null 2>&1) || return 1
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    dpkg-deb --fsys-tarfile "$apt"/docker-compose_*.deb |
        tar -xO ./usr/libexec/docker/cli-plugins/docker-compose >"$DOCKER_CONFIG/cli-plugins/docker-compose.part" || return 1
    chmod +x "$DOCKER_CONFIG/cli-plugins/docker-compose.part"
    mv "$DOCKER_CONFIG/cli-plugins/docker-compose.part" "$DOCKER_CONFIG/cli-plugins/docker-compose"
    rm -rf "$apt"
    echo "Docker Compose $(docker compose version --short) (from $DOCKER_CONFIG)"
}

rollback_check() {
    say "rollback: scripts/deploy.sh with a broken image"
    if ! compose_ready; then
        echo "Docker Compose v2.24+ is not available here: the rollback was NOT checked"
        rollback_result="NOT checked (no Docker Compose v2.24+)"
        return
    fi
    local port repo_tag="auth-server-rollback-check" start
    port="$(free_port)"
    deploy_dir="$work/deploy"
    mkdir -p "$deploy_dir"
    # The production network (a private range) is never created here: host
    # networking (the project's network becomes the existing `host`), no
    # published ports, no bundled database, a port of its own.
    cat >"$deploy_dir/docker-compose.override.yml" <<EOF
services:
  auth-server:
    network_mode: host
    ports: !reset []
    depends_on: !reset {}
    environment:
      BIND_ADDR: 127.0.0.1:$port
networks:
  default:
    name: host
    external: true
    ipam: !reset {}
EOF
    export COMPOSE_PROJECT_NAME="imagecheck-$$"
    local envs
    envs="$(grep -vE '^(BIND_ADDR|PUBLIC_BASE_URL|ALLOWED_RETURN_ORIGINS|INVENTORY_URL)=' "$work/env")
AUTH_SERVER_IMAGE=$repo_tag:latest
AUTH_SERVER_DATABASE_URL=$PG_URL/$database
PUBLIC_BASE_URL=http://127.0.0.1:$port
ALLOWED_RETURN_ORIGINS=http://127.0.0.1:$port
INVENTORY_URL=http://127.0.0.1:$port/passport/gmail"
    local deploy=(env DEPLOY_DIR="$deploy_dir" READY_URL="http://127.0.0.1:$port/readyz"
        READY_TIMEOUT=30 AUTH_SERVER_ENV="$envs" "$repo/scripts/deploy.sh")

    # The good version: the image just checked, as the workflow's image job
    # hands it over.
    docker tag "$IMAGE" "$repo_tag:ci-good"
    start=$SECONDS
    DEPLOY_IMAGE="$repo_tag:ci-good" "${deploy[@]}" >"$work/deploy-good.log" 2>&1 || {
        cat "$work/deploy-good.log" >&2
        fail "deploy.sh did not deploy the good image"
    }
    deploy_secs=$((SECONDS - start))
    grep -E '^ready after|^== (deployed|starting)' "$work/deploy-good.log" || true
    echo "deploy.sh (swap → /readyz 200) took ${deploy_secs}s"
    local good_id
    good_id="$(docker image inspect -f '{{.Id}}' "$repo_tag:latest")"

    # A broken version: the same image, whose start fails at once.
    printf 'FROM %s\nENTRYPOINT ["/bin/false"]\n' "$IMAGE" |
        "${build_cmd[@]}" --network host -t "$repo_tag:ci-broken" - >"$work/broken.log" 2>&1 ||
        { cat "$work/broken.log" >&2; fail "the broken image did not build"; }
    start=$SECONDS
    if DEPLOY_IMAGE="$repo_tag:ci-broken" "${deploy[@]}" >"$work/deploy-broken.log" 2>&1; then
        cat "$work/deploy-broken.log" >&2
        fail "deploy.sh reported success for a broken image"
    fi
    rollback_secs=$((SECONDS - start))
    grep -E 'DEPLOY FAILED|^== rolling back|^ready after|^not ready' "$work/deploy-broken.log" || true
    grep -q 'rolled back to the previous image, which is serving' "$work/deploy-broken.log" || {
        cat "$work/deploy-broken.log" >&2
        fail "deploy.sh did not roll back"
    }
    answers_200 "http://127.0.0.1:$port/readyz" || fail "/readyz is not 200 after the rollback"
    [ "$(docker image inspect -f '{{.Id}}' "$repo_tag:latest")" = "$good_id" ] ||
        fail "$repo_tag:latest is not the good image after the rollback"
    local running
    running="$(docker inspect -f '{{.Image}}' "$(compose_in "$deploy_dir" ps -q auth-server)")"
    [ "$running" = "$good_id" ] || fail "the running container is not the good image after the rollback"
    echo "rolled back: the good image serves, /readyz 200; broken deploy → rolled back and ready in ${rollback_secs}s"
    rollback_result="${rollback_secs}s (broken deploy → previous image ready again)"
    compose_in "$deploy_dir" down --volumes --timeout 10 >/dev/null 2>&1 || true
    deploy_dir=""
    docker rmi "$repo_tag:ci-broken" "$repo_tag:latest" "$repo_tag:previous" >/dev/null 2>&1 || true
    docker image prune -f --filter "label=org.opencontainers.image.title=auth-server" >/dev/null 2>&1 || true
}

# --- main ---------------------------------------------------------------------

engine
for tool in curl openssl jq psql; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is needed"
done
if [ -z "$PG_URL" ]; then
    # shellcheck source=scripts/db.sh
    . scripts/db.sh
    ensure_database_server || fail "no PostgreSQL server (see scripts/db.sh)"
    PG_URL="${ADMIN_DATABASE_URL%/*}"
fi
builder
bases
build
run_checks
rollback_check

say "summary"
echo "build ${build_secs}s; HEALTHCHECK healthy ${health_secs}s after the start; SIGTERM → exit 0 in ${stop_secs}s"
echo "deploy.sh swap → /readyz ${deploy_secs:-?}s; rollback: $rollback_result"
echo "image $IMAGE: $size_mb MB, $layers layers: healthy"
