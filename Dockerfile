# The app as a container image:
#   docker build -t shopify-app-rust .
#   docker run --env-file .env -p 8080:8080 -v shopify-app-data:/data shopify-app-rust
# Deploy guides: docs/deploy/README.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=trixie

# ---- build: the release binary ------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS build
WORKDIR /build

# Dependencies in a layer of their own, rebuilt only when Cargo.toml or Cargo.lock change.
# Stand-in sources (an empty library, binary and bench) let cargo compile every dependency;
# the stand-ins' own artifacts are then removed, so the real sources below are compiled afresh
# whatever their file times.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && echo 'fn main() {}' > benches/core.rs \
    && cargo build --release --locked \
    && cargo clean --release --locked -p shopify-app-rust \
    && rm -rf src benches

# The app. templates/ (askama), locales/ (include_str!) and migrations/ (listed by build.rs)
# are compiled into the binary; benches/ is listed in Cargo.toml, so cargo wants it present.
COPY build.rs ./
COPY src ./src
COPY templates ./templates
COPY locales ./locales
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked

# ---- runtime: the binary, static/ and CA certificates ---------------------------------------
FROM debian:${DEBIAN_SUITE}-slim

# ca-certificates: calls to Shopify use TLS, verified against the system's root certificates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY docker/http-check.sh /usr/local/bin/http-check
# A fixed, non-root uid/gid (10001) that owns /data, where the SQLite database lives.
RUN chmod 755 /usr/local/bin/http-check \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data \
    && chmod 700 /data

# The working directory matters: /static/* is served from ./static.
WORKDIR /app
COPY static ./static
COPY --from=build /build/target/release/shopify-app-rust /usr/local/bin/shopify-app-rust

# Defaults only: the platform's environment wins. A postgres:// DATABASE_URL leaves /data unused.
ENV PORT=8080 \
    DATABASE_URL=sqlite:/data/app.db
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001

# 200 once the database answers; see docker/http-check.sh for why it is not curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["http-check", "/healthz"]
CMD ["shopify-app-rust"]
