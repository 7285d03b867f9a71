# syntax=docker/dockerfile:1
# keygate development image: the whole repository with SoftHSM2 and OpenSC, built, running the
# development stack (`npm start`: a gateway on a SoftHSM2 token and a shim). For trying keygate
# and for CI-like runs; not for production (it keeps the compilers and the dev dependencies).
#   docker build -f infra/docker/dev.Dockerfile -t keygate-dev .
#   docker run --rm -it keygate-dev                      # the stack; then in another shell:
#   docker exec -it <id> npm run demo
# Node.js 24, an LTS line (20 is past its end of life: no security fixes). 22 also builds and
# runs (--build-arg NODE_MAJOR=22); docs/deploy.md lists the supported runtimes.
ARG NODE_MAJOR=24
FROM node:${NODE_MAJOR}-bookworm AS dev
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 opensc \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 keygate \
 && useradd --system --uid 10001 --gid keygate --home-dir /var/lib/keygate --create-home keygate
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json biome.json ./
COPY shared/package.json shared/
COPY gateway/package.json gateway/
COPY shim/package.json shim/
# npm ci runs the root `prepare` (scripts/prepare.mjs), which skips the build until the sources are in.
COPY scripts/prepare.mjs scripts/
RUN npm ci --no-audit --no-fund && test -f node_modules/pkcs11js/build/Release/pkcs11.node
COPY shared/ shared/
COPY gateway/ gateway/
COPY shim/ shim/
COPY tools/ tools/
COPY test/ test/
COPY bench/ bench/
COPY scripts/ scripts/
RUN npx tsc -b && chown -R keygate:keygate /app
ENV KEYGATE_HOME=/var/lib/keygate/dev
USER 10001:10001
EXPOSE 8443
CMD ["node", "scripts/start.mjs"]
