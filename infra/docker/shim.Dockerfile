# syntax=docker/dockerfile:1
# keygate shim image (the KMS plugin static pod). Build from the repository root:
#   docker build -f infra/docker/shim.Dockerfile -t keygate-shim:0.1.0 .
# The shim never talks to an HSM: pkcs11js (a gateway dependency) is not installed.
# Node.js 24, an LTS line (20 is past its end of life: no security fixes). 22 also builds and
# runs (--build-arg NODE_MAJOR=22); docs/deploy.md lists the supported runtimes.
ARG NODE_MAJOR=24

# 1. Compile TypeScript. No native addon is needed to compile, so no install scripts run.
FROM node:${NODE_MAJOR}-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY shared/package.json shared/
COPY gateway/package.json gateway/
COPY shim/package.json shim/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY shared/ shared/
COPY shim/ shim/
# The release config leaves out *.test.ts and src/testing/ (test doubles), so nothing is deleted here.
RUN npx tsc -b shim/tsconfig.build.json

# 2. Production dependencies of the shim workspace only (no pkcs11js, no dev tools).
FROM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY gateway/package.json gateway/
COPY shim/package.json shim/
RUN npm ci --workspace shim --include-workspace-root=false --omit=dev --ignore-scripts --no-audit --no-fund \
 && test ! -e node_modules/pkcs11js

# 3. Runtime: distroless Node, non-root. The uid owns /var/run/keygate on the host
#    (infra/shim/keygate-shim-tmpfiles.conf) and is the static pod's runAsUser.
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=deps /app/package.json ./
COPY --from=build /src/shared/package.json shared/
COPY --from=build /src/shared/dist shared/dist
COPY --from=build /src/shim/package.json shim/
COPY --from=build /src/shim/dist shim/dist
COPY --from=build /src/shim/bin shim/bin
COPY --from=build /src/shim/proto shim/proto
ENV NODE_ENV=production
USER 10001:10001
ENTRYPOINT ["/nodejs/bin/node", "/app/shim/bin/keygate-shim.js"]
CMD ["serve", "--config", "/etc/keygate/shim/kmsplugin-config.yaml"]
