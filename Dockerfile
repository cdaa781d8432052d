# syntax=docker/dockerfile:1
#
# Omnify: one image with every binary, for every mode.
#
#   docker build -t omnify:local .
#   docker run --rm omnify:local omnify --help
#
# The command chooses the binary and the mode (nothing is fixed at build time):
#   omnify monolith [--only g1,g2] [--except g1,g2]   (the default)
#   omnify-edge
#   omnify-auth ... omnify-infrastructure
#   omnify topics apply                              (one-shot)
# Settings come from OMNIFY_* variables (`omnify settings` lists them).
# PORT only tells the HEALTHCHECK which port to probe: 8000 for the edge and
# the monolith, the group's ops port (8001 ... 8007) for a group process.

# ---------------------------------------------------------------------------
# build: the whole CMake build on Debian bookworm, warnings as errors.
# ---------------------------------------------------------------------------
FROM debian:bookworm AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev \
      libmicrohttpd-dev libmongoc-dev libbson-dev libmsgpack-dev \
      libcurl4-openssl-dev libcmocka-dev libjansson-dev libjwt-dev libargon2-dev \
      libssl-dev \
      libnlopt-dev liblinear-dev \
 && rm -rf /var/lib/apt/lists/*

# librdkafka 2.8.0 from Debian 13's source package (bookworm has 2.0.2), the
# same script and flags as compose/local/deps, into /src/.local/librdkafka;
# linked statically, so the runtime stage installs no librdkafka. Its own
# layer: it is rebuilt only when the script changes.
WORKDIR /src
COPY compose/local/librdkafka compose/local/librdkafka
RUN compose/local/librdkafka && rm -rf /var/lib/apt/lists/*

COPY . .
RUN cmake -S . -B build -DOMNIFY_WERROR=ON \
 && cmake --build build -j"$(nproc)"

# Only the binaries that are deployed: build/bin/ also holds build tools
# (omnify-schemacheck) and benchmarks, which stay out of the image.
RUN mkdir -p /out \
 && cp build/bin/omnify build/bin/omnify-edge \
       build/bin/omnify-auth build/bin/omnify-integrations build/bin/omnify-agentkit \
       build/bin/omnify-analytics build/bin/omnify-onboarding build/bin/omnify-ml \
       build/bin/omnify-infrastructure \
       /out/ \
 && strip --strip-debug /out/*

# ---------------------------------------------------------------------------
# runtime: bookworm-slim with only the shared libraries the binaries link
# (librdkafka is inside them; libsasl2, zstd, lz4 and zlib are what it uses).
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libsasl2-2 libzstd1 liblz4-1 zlib1g \
      libmicrohttpd12 libmongoc-1.0-0 libbson-1.0-0 libmsgpackc2 \
      libcurl4 libjansson4 libjwt0 libargon2-1 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 omnify \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin omnify

COPY --from=build /out/ /usr/local/bin/

# Fails the build when a shared library is missing from the list above.
RUN omnify --version && omnify-edge --version

USER 10001:10001
ENV PORT=8000
EXPOSE 8000 8001-8007

# `omnify probe URL` exits 0 on a 2xx answer within 3 s (no curl in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD omnify probe "http://127.0.0.1:${PORT}/health"

# The binaries stop gracefully on SIGTERM (finish in-flight work, commit,
# leave the consumer group): give them more than OMNIFY_SHUTDOWN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
CMD ["omnify", "monolith"]
