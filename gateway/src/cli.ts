#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { INSTANCE_ID_RULE, isInstanceId, isKeyId, KEY_ID_RULE } from '@keygate/shared/api';
import { describeConfigError } from '@keygate/shared/config';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import { createSigningKeyFile } from './adapters/jwt/signing-keys.js';
import { AUDIT_USAGE, describeAuditRefusal, runAuditCommand } from './audit-command.js';
import { CLUSTERS_USAGE, runClustersCommand } from './clusters-command.js';
import { fileStore, loadGatewayConfig } from './config.js';
import { generateApiKey } from './core/auth/api-key.js';
import { FLEET_USAGE, openCliFleet, runFleetCommand } from './fleet-command.js';
import { runHsmCheck } from './hsm-check-command.js';
import { toKeyResource } from './http/key-json.js';
import { IDENTITY_USAGE, isIdentityCommand, runIdentityCommand } from './identity-command.js';
import { buildKeyRuntime, type KeyRuntime } from './key-runtime.js';
import { reserveThreadPool, runServe } from './main.js';
import { runPkiCommand } from './pki/pki-command.js';
import { isRotationCommand, ROTATION_USAGE, runRotationCommand } from './rotation-command.js';
import { runStoreCommand, STORE_USAGE } from './store-command.js';

const USAGE = `usage:
  keygate-gateway serve --config FILE
  keygate-gateway keys create  --config FILE --instance ID --name NAME [--description TEXT]
  keygate-gateway keys list    --config FILE --instance ID
  keygate-gateway keys get|disable|enable|destroy --config FILE --instance ID --id KEY_ID
${ROTATION_USAGE}
  keygate-gateway hsm check    --config FILE
  keygate-gateway apikey create [--name NAME]
  keygate-gateway tokens keygen FILE
${STORE_USAGE}
${IDENTITY_USAGE}
${AUDIT_USAGE}
${FLEET_USAGE}
${CLUSTERS_USAGE}`;

async function main(argv: string[]): Promise<number> {
  // pki has its own options; parseArgs below would reject them.
  if (argv[0] === 'pki') return runPkiCommand(argv.slice(1), (l) => console.log(l));
  // Help asked for, anywhere (`keygate-gateway keys create --help`): the usage on stdout, and success.
  if (argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (argv[0] === 'db' || argv[0] === 'store') {
    return runStoreCommand(
      argv,
      (l) => console.log(l),
      (l) => console.error(l),
    );
  }
  if (argv[0] === 'fleet') return runFleetCommand(argv.slice(1), console.log, console.error);
  if (argv[0] === 'clusters')
    return runClustersCommand(
      argv,
      (l) => console.log(l),
      (l) => console.error(l),
      {
        // remove forgets the cluster's nodes (a running file-store gateway also does on the change)
        openFleet: async (config, file, readOnly) => {
          const log = createLogger({ level: 'warn', name: 'keygate-gateway', destination: process.stderr });
          const f = await openCliFleet(config, file, log, readOnly);
          return {
            forgetCluster: (n) => f.store.forgetCluster(n),
            nodes: () => f.store.nodes(),
            close: () => f.close(),
          };
        },
      },
    );
  if (argv[0] === 'audit') {
    return runAuditCommand(
      argv.slice(1),
      (l) => console.log(l),
      (l) => console.error(l),
    );
  }
  if (isRotationCommand(argv))
    return runRotationCommand(
      argv,
      (l) => console.log(l),
      (l) => console.error(l),
    );
  // Identities in PostgreSQL (own options); `apikey create` without --identity stays below.
  if (isIdentityCommand(argv)) {
    return runIdentityCommand(
      argv,
      (l) => console.log(l),
      (l) => console.error(l),
    );
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      instance: { type: 'string' },
      name: { type: 'string' },
      description: { type: 'string' },
      id: { type: 'string' },
    },
  });
  const [cmd, sub, arg] = positionals;
  // Commands that need no gateway config.
  if (cmd === 'apikey' && sub === 'create') return apikeyCreate(values.name);
  if (cmd === 'tokens' && sub === 'keygen' && arg !== undefined) {
    const { kid } = await createSigningKeyFile(arg);
    console.log(`token signing key written to ${arg} (kid ${kid}); list it in tokens.signingKeyFiles`);
    return 0;
  }
  if (cmd === undefined || values.config === undefined) {
    console.error(USAGE);
    return 2;
  }
  const configFile = values.config;
  const config = loadGatewayConfig(configFile);
  // Before any async work, so `keys` and `hsm check` get a pool that fits the sessions too.
  reserveThreadPool(config);
  if (cmd === 'serve') {
    try {
      await runServe(config, configFile);
    } catch (err) {
      if (!isKeygateError(err) || err.code !== 'AUDIT_ANCHOR_MISMATCH') throw err;
      console.error(describeAuditRefusal(err, configFile));
      return 1;
    }
    return -1;
  }
  const logger = createLogger({
    level: config.log.level,
    name: 'keygate-gateway',
    destination: process.stderr,
  });
  // The first `keys create` makes the store file (serve needs it, or store.createIfMissing).
  const runtime = buildKeyRuntime(config, {
    configFile,
    logger,
    createStore: fileStore(config)?.createIfMissing === true || (cmd === 'keys' && sub === 'create'),
  });
  try {
    await runtime.store.open();
    if (cmd === 'keys') return await keysCommand(runtime, sub, values);
    if (cmd === 'hsm' && sub === 'check') return await runHsmCheck(runtime, config, (l) => console.log(l));
    console.error(USAGE);
    return 2;
  } finally {
    await runtime.close();
  }
}

function apikeyCreate(name: string | undefined): number {
  const { apiKey, hash } = generateApiKey(systemRandom);
  console.error('API key (shown once; give it to the shim as API_KEY and keep it secret):');
  console.log(apiKey);
  console.error('Paste the hash into the gateway config (identities[].apiKeyHashes):');
  if (name !== undefined) console.log(`  - name: ${name}`);
  console.log(`    apiKeyHashes: ['${hash}']`);
  return 0;
}

async function keysCommand(
  rt: KeyRuntime,
  sub: string | undefined,
  v: { instance?: string; name?: string; description?: string; id?: string },
): Promise<number> {
  if (v.instance === undefined) {
    console.error('--instance is required');
    return 2;
  }
  if (!isInstanceId(v.instance)) {
    console.error(`--instance: expected ${INSTANCE_ID_RULE}`);
    return 2;
  }
  const instance = v.instance;
  const print = (x: unknown) => console.log(JSON.stringify(x, null, 2));
  if (sub === 'create') {
    if (v.name === undefined) {
      console.error('--name is required');
      return 2;
    }
    print(toKeyResource(await rt.keys.create({ instance, name: v.name, description: v.description })));
    return 0;
  }
  if (sub === 'list') {
    print((await rt.keys.list(instance)).map(toKeyResource));
    return 0;
  }
  const id = v.id;
  if (id === undefined) {
    console.error('--id is required');
    return 2;
  }
  if (!isKeyId(id)) {
    console.error(`--id: expected ${KEY_ID_RULE}`);
    return 2;
  }
  const ops = {
    get: () => rt.keys.get(instance, id),
    disable: () => rt.keys.disable(instance, id),
    enable: () => rt.keys.enable(instance, id),
    destroy: () => rt.keys.destroy(instance, id),
  } as const;
  const op = sub !== undefined && Object.hasOwn(ops, sub) ? ops[sub as keyof typeof ops] : undefined;
  if (op === undefined) {
    console.error(USAGE);
    return 2;
  }
  try {
    print(toKeyResource(await op()));
  } catch (err) {
    // Destroying a destroyed key deletes again what a half-done destroy left in the HSM, then
    // answers KEY_DELETED_ERR (the API's 410): here, what hsm check tells operators to run.
    if (sub !== 'destroy' || !isKeygateError(err) || err.code !== 'KEY_DELETED_ERR') throw err;
    console.error(`key ${id} was already destroyed; its HSM objects were looked for and deleted again`);
    print(toKeyResource(await rt.keys.get(instance, id)));
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (isKeygateError(err) && err.code === 'CONFIG_INVALID') console.error(describeConfigError(err));
    else if (isKeygateError(err))
      console.error(`keygate-gateway: ${err.code}: ${err.message}`, err.detail ?? '');
    else console.error('keygate-gateway: failed:', err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
