/**
 * keygate's import rules: the layers of docs/architecture.md ("Layers, and what may import what").
 * Layers point one way; `core/` stays pure so it can be tested with fakes of its ports.
 * test/import-rules.test.ts runs these rules against test/fixtures/import-rules/, where every
 * rule must be broken once, so a rule that stops biting fails CI.
 */
const IO_BUILTINS =
  '^(node:)?(fs|fs/promises|net|http|https|http2|tls|dgram|dns|dns/promises|child_process|cluster|worker_threads|readline|os|process|v8|vm|inspector|repl|tty)$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make layers meaningless and modules hard to test alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shared-imports-no-app',
      severity: 'error',
      comment: '@keygate/shared is the bottom layer: it imports neither the gateway nor the shim.',
      from: { path: '(^|/)shared/src/' },
      to: { path: '(^|/)(gateway|shim)/src/|@keygate/(gateway|shim)' },
    },
    {
      name: 'shim-not-gateway',
      severity: 'error',
      comment: 'shim and gateway are deployed apart; they share code only through @keygate/shared.',
      from: { path: '(^|/)shim/src/' },
      to: { path: '(^|/)gateway/src/|@keygate/gateway|node_modules/(pkcs11js|hono|@hono|jose|pg)/' },
    },
    {
      name: 'gateway-not-shim',
      severity: 'error',
      comment: 'shim and gateway are deployed apart; they share code only through @keygate/shared.',
      from: { path: '(^|/)gateway/src/' },
      to: { path: '(^|/)shim/src/|@keygate/shim' },
    },
    {
      name: 'core-no-adapters',
      severity: 'error',
      comment:
        'core/ holds ports and use cases; adapters, transports and main wire into it, never the reverse.',
      from: { path: '(^|/)src/core/' },
      to: {
        path: '(^|/)src/(adapters|http|grpc|gateway-client|transport|cli)(/|\\.ts$)|(^|/)src/(main|cli|config)\\.ts$',
      },
    },
    {
      name: 'core-no-vendor-transports',
      severity: 'error',
      comment: 'core/ must not reach a vendor library of an adapter or a transport.',
      from: { path: '(^|/)src/core/' },
      to: {
        path: 'node_modules/(pkcs11js|hono|@hono|undici|@grpc|jose|pino|prom-client|@peculiar|pg|pg-[a-z-]+)/',
      },
    },
    {
      name: 'core-no-io-builtins',
      severity: 'error',
      comment: 'core/ does no I/O: files, sockets, processes and the environment come through ports.',
      from: { path: '(^|/)src/core/' },
      to: { dependencyTypes: ['core'], path: IO_BUILTINS },
    },
    {
      name: 'http-not-adapters',
      severity: 'error',
      comment: 'Routes get ports injected; only main.ts wires adapters.',
      from: { path: '(^|/)gateway/src/http/' },
      to: { path: '(^|/)gateway/src/adapters/' },
    },
    {
      name: 'adapters-not-http',
      severity: 'error',
      comment: 'An adapter implements a port; it knows nothing of the HTTP transport.',
      from: { path: '(^|/)gateway/src/adapters/' },
      to: { path: '(^|/)gateway/src/http/' },
    },
    {
      name: 'prod-not-testing',
      severity: 'error',
      comment:
        'testing/ holds test doubles and test clusters, left out of the release build: production code never loads it.',
      from: {
        path: '(^|/)(gateway|shim)/src/',
        pathNot: '(^|/)src/testing/|\\.test\\.ts$|\\.contract\\.ts$',
      },
      to: { path: '(^|/)src/testing/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'types', 'default', 'node'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
