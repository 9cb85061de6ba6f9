# auth-server container image.
#
#   docker build -t auth-server:latest .        (or: docker compose build)
#
# Stages:
#   chef     the pinned Rust toolchain plus cargo-chef
#   planner  reduces the crate to a dependency "recipe" (Cargo.toml, Cargo.lock,
#            target skeletons); the recipe only changes when dependencies do
#   cacher   compiles every dependency from the recipe: this layer stays cached
#            while only the crate's own code changes
#   builder  compiles auth-server itself (queries are checked against the
#            committed .sqlx data, so no database is needed: SQLX_OFFLINE=true)
#   runtime  debian slim with CA certificates (rustls needs them to reach
#            Google; no OpenSSL) and the binary, run as an unprivileged user
#
# Migrations, templates and the stylesheet are compiled into the binary.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ENV CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS cacher
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --bin auth-server --recipe-path recipe.json

FROM cacher AS builder
COPY . .
RUN cargo build --release --locked --bin auth-server \
    && ./target/release/auth-server --version

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates is deliberately left unpinned: the image must get Debian's
# current CA bundle on every rebuild, and an exact pin breaks the build as soon
# as Debian ships a newer one. The base image itself is pinned by release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 auth-server \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin auth-server
COPY --from=builder /app/target/release/auth-server /usr/local/bin/auth-server
# scripts/deploy.sh prunes superseded images by this label.
LABEL org.opencontainers.image.title="auth-server" \
      org.opencontainers.image.description="Gmail Passport: Google consent, 재인증 and tokens for ro-being"

# The binary reads `.env` from its working directory when there is one; this
# directory is empty, so settings come only from the container's environment.
WORKDIR /app
USER 10001:10001

ENV BIND_ADDR=0.0.0.0:51123 \
    LOG_FORMAT=json
EXPOSE 51123

# Liveness without curl or wget in the image: bash (part of every Debian
# image) opens a TCP connection with its /dev/tcp redirection, sends a plain
# HTTP/1.1 request for /healthz and accepts only a "200" status line. The port
# is taken from BIND_ADDR, so the check follows a changed listen address. The
# timeout kills a hung check; /healthz needs no database, so a slow database
# does not make the container unhealthy (readiness is /readyz, checked by the
# deploy script).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${BIND_ADDR##*:}\" && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 4 _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["/usr/local/bin/auth-server"]
CMD ["serve"]
