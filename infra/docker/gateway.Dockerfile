# syntax=docker/dockerfile:1
# keygate gateway image. Build from the repository root:
#   docker build -f infra/docker/gateway.Dockerfile -t keygate-gateway:0.1.0 .
# The HSM vendor's PKCS#11 library is not in this image: mount it (Helm value hsm.library) or
# build FROM this image and COPY it in. pkcs11js is compiled in the build stage against the same
# Node major and Debian release as the runtime (bookworm), so the addon loads there.
# Node.js 24, an LTS line (20 is past its end of life: no security fixes). 22 also builds and
# runs (--build-arg NODE_MAJOR=22); docs/deploy.md lists the supported runtimes.
ARG NODE_MAJOR=24

# 1. Compile TypeScript (all dependencies, build tools present).
FROM node:${NODE_MAJOR}-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY shared/package.json shared/
COPY gateway/package.json gateway/
COPY shim/package.json shim/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY shared/ shared/
COPY gateway/ gateway/
# The release config leaves out *.test.ts and src/testing/ (test doubles), so nothing is deleted here.
RUN npx tsc -b gateway/tsconfig.build.json

# 2. Production dependencies of the gateway only; builds pkcs11js's native addon (node-gyp needs
#    python3, make and g++, which this stage has and the runtime does not).
FROM node:${NODE_MAJOR}-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY gateway/package.json gateway/
COPY shim/package.json shim/
COPY scripts/prepare.mjs scripts/
RUN npm ci --workspace gateway --include-workspace-root=false --omit=dev --no-audit --no-fund \
 && test -f node_modules/pkcs11js/build/Release/pkcs11.node \
 && rm -rf node_modules/pkcs11js/build/Release/obj.target node_modules/pkcs11js/src

# 3. Runtime: distroless Node (no shell, no package manager, no compiler), non-root.
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=deps /app/package.json ./
COPY --from=build /src/shared/package.json shared/
COPY --from=build /src/shared/dist shared/dist
COPY --from=build /src/gateway/package.json gateway/
COPY --from=build /src/gateway/dist gateway/dist
COPY --from=build /src/gateway/bin gateway/bin
ENV NODE_ENV=production
# The uid the Helm chart (runAsUser) and the file ownership docs expect.
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "/app/gateway/bin/keygate-gateway.js"]
CMD ["serve", "--config", "/etc/keygate/config/gateway.yaml"]
