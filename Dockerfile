# The one Warden image: `warden controller` and `warden sidecar` (the gateways) both run from it.
# Node 24 runs the TypeScript sources directly (type stripping; docs/adr/0002), so the server side
# has no build step: production dependencies plus src/; only the web viewer's assets are built.
#
#   docker build -t ghcr.io/warden-dev/warden:0.1.0 .
#
# Runs as a non-root user with a read-only root filesystem: nothing is written outside /tmp and
# the gateway's spool directory, which the Deployments mount as emptyDir volumes.

FROM node:24-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, without install scripts; then ssh2's native crypto binding, built
# against this image's Node headers (scripts/build-native.ts, docs/adr/0013). The compilers stay in
# this stage; the final image only gets the built .node file inside node_modules.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/build-native.ts ./scripts/
RUN WARDEN_REQUIRE_NATIVE=1 node scripts/build-native.ts

# The web viewer's static assets (`warden ui`), built once with Vite from src/ui/web (dev
# dependencies exist only in this stage).
FROM node:24-slim AS ui
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN node --input-type=module -e "const { ensureAssets } = await import('./src/ui/assets.ts'); await ensureAssets({ outDir: '/app/ui-assets' });"

FROM node:24-slim
ENV NODE_ENV=production \
    NODE_OPTIONS=--disable-warning=ExperimentalWarning \
    WARDEN_UI_ASSETS=/app/ui
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
# `warden dev` validates manifests against the CRD schemas and runs the sample local configuration.
COPY crds ./crds
COPY config/samples/local ./config/samples/local
COPY --from=ui /app/ui-assets ./ui
RUN chmod 0555 bin/warden.js && ln -s /app/bin/warden.js /usr/local/bin/warden \
    && groupadd --system --gid 10001 warden \
    && useradd --system --uid 10001 --gid warden --home-dir /nonexistent --shell /usr/sbin/nologin warden \
    && mkdir -p /var/lib/warden/spool && chown warden:warden /var/lib/warden/spool
USER 10001:10001
ENTRYPOINT ["warden"]
CMD ["--help"]
