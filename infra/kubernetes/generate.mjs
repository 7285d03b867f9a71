#!/usr/bin/env node
// Writes encryption-config.yaml (KMS v2) and encryption-config-v1.yaml from the generator the dev
// stack and the e2e tests use (tools/devstack/src/encryption-config.ts), with the shim's default socket
// path (shim/src/config.ts). test/infra/kubernetes.test.ts fails when the committed files differ.
// Usage: npx tsc -b && node infra/kubernetes/generate.mjs
import { writeFileSync } from 'node:fs';

const here = new URL('.', import.meta.url);
const { encryptionConfigV1, encryptionConfigV2 } = await import(
  '../../tools/devstack/dist/encryption-config.js'
);
const { shimConfigSchema } = await import('@keygate/shim');

const defaults = shimConfigSchema.parse({
  SERVER_CONFIG: { TOKEN_URL: 'https://gateway.invalid/identity/token' },
  KP_CONFIG: { CRK_ID: 'x', URL: 'https://gateway.invalid', INSTANCE_ID: 'x' },
});
const socket = defaults.SERVER_CONFIG.UNIX_SOCKET_PATH;
writeFileSync(new URL('encryption-config.yaml', here), encryptionConfigV2({ socket }));
writeFileSync(new URL('encryption-config-v1.yaml', here), encryptionConfigV1({ socket }));
process.stdout.write(
  `infra/kubernetes: encryption-config.yaml and encryption-config-v1.yaml for unix://${socket}\n`,
);
