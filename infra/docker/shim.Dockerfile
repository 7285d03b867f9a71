# syntax=docker/dockerfile:1
# keygate shim image (the KMS plugin static pod). Build from the repository root:
#   docker build -f infra/docker/shim.Dockerfile -t keygate-shim:0.1.0 .
# The shim never talks to an HSM: pkcs11js (a gateway dependency) is not installed.
# Node.js 24, an LTS line (20 is past its end of life: no security fixes). 22 also builds and
# runs (--build-arg NODE_MAJOR=22); docs/deploy.md lists the supported runtimes.
ARG NODE_MAJOR=24

# 1. Compile TypeScript and bundle the shim into one file (scripts/bundle-shim.mjs: esbuild, whose
#    platform binary comes as an optional dependency). No native addon: no install scripts run.
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
COPY scripts/bundle-shim.mjs scripts/
COPY scripts/bundle/ scripts/bundle/
RUN npx tsc -b shim/tsconfig.build.json && node scripts/bundle-shim.mjs

# 2. Runtime: distroless Node, non-root, the package bin and the bundle only (no node_modules: the
#    bundle holds every dependency it runs, and the KMS messages are static code, so no .proto file
#    is read). shim/package.json makes bin/ an ES module. The uid owns
#    /var/run/keygate on the host (infra/shim/keygate-shim-tmpfiles.conf), the static pod's runAsUser.
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=build /src/shim/package.json shim/
COPY --from=build /src/shim/bin shim/bin
COPY --from=build /src/shim/dist/bundle shim/dist/bundle
ENV NODE_ENV=production
USER 10001:10001
ENTRYPOINT ["/nodejs/bin/node", "/app/shim/bin/keygate-shim.js"]
CMD ["serve", "--config", "/etc/keygate/shim/kmsplugin-config.yaml"]
